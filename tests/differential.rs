//! Differential tests against CPython (`python3`, 3.11 here).
//!
//! Random straight-line programs are generated twice: as rcvm assembly and
//! as the equivalent Python, where a record is a `Rec` (a `list` subclass
//! with no extra slots, so it is one GC object like an rcvm record), a
//! string is an `S` (a fresh object per `str`/`add`, as in rcvm, so string
//! refcounts match too) and every operation goes through a helper that
//! applies rcvm's rules (i64 overflow, type errors, Python-style indexes).
//! One `python3` process runs a whole batch.
//!
//! - `refcounts_and_output_match_cpython`: records, lists, dicts, strings;
//!   stdout (including every `refcount`, compared with
//!   `sys.getrefcount` minus its temporaries) and whether the run failed.
//!   Automatic collection is off on both sides.
//! - `gc_counts_match_cpython`: lists and records building and dropping
//!   cycles; every `gc rD, G` value must equal `gc.collect(G)`. Dicts are
//!   left out: CPython untracks dicts that hold only atoms.

use arbitrary::Unstructured;
use rcvm::mem::alloc::PoolAllocator;
use rcvm::mem::Heap;
use rcvm::vm::{Limits, Vm};
use std::fmt::Write;
use std::process::Command;

const PRELUDE: &str = r#"
import sys, gc
MIN, MAX = -2**63, 2**63 - 1
class Err(Exception): pass
class Rec(list):
    __slots__ = ()
class S:
    __slots__ = ('v',)
    def __init__(self, v): self.v = v
def isint(x): return type(x) is int
def chk(x):
    if not (MIN <= x <= MAX): raise Err('overflow')
    return x
def ints(a, b):
    if not (isint(a) and isint(b)): raise Err('type')
def add(a, b):
    if isint(a) and isint(b): return chk(a + b)
    if type(a) is S and type(b) is S: return S(a.v + b.v)
    raise Err('type')
def sub(a, b): ints(a, b); return chk(a - b)
def mul(a, b): ints(a, b); return chk(a * b)
def div(a, b):
    ints(a, b)
    if b == 0: raise Err('zero')
    return chk(a // b)
def mod(a, b):
    ints(a, b)
    if b == 0: raise Err('zero')
    return a % b
def eq(a, b):
    if a is None or b is None: return int(a is b)
    if isint(a) and isint(b): return int(a == b)
    if type(a) is S and type(b) is S: return int(a.v == b.v)
    if isint(a) or isint(b) or type(a) is S or type(b) is S: return 0
    return int(a is b)
def lt(a, b): ints(a, b); return int(a < b)
def le(a, b): ints(a, b); return int(a <= b)
def gt(a, b): ints(a, b); return int(a > b)
def ge(a, b): ints(a, b); return int(a >= b)
def not_(a): return int(a is None or (isint(a) and a == 0))
def key(k):
    if isint(k): return k
    if type(k) is S: return k.v
    raise Err('key type')
def idx(o, k):
    if not isint(k): raise Err('index type')
    n = len(o)
    j = k + n if k < 0 else k
    if not (0 <= j < n): raise Err('range')
    return j
def seq(o): return type(o) is Rec or type(o) is list
def load(o, k):
    if seq(o): return o[idx(o, k)]
    if type(o) is dict:
        k = key(k)
        if k not in o: raise Err('missing')
        return o[k]
    raise Err('type')
def store(o, k, v):
    if seq(o): o[idx(o, k)] = v
    elif type(o) is dict: o[key(k)] = v
    else: raise Err('type')
def push(l, v):
    if type(l) is not list: raise Err('type')
    l.append(v)
def pop(l):
    if type(l) is not list or not l: raise Err('pop')
    return l.pop()
def length(o):
    if seq(o) or type(o) is dict: return len(o)
    if type(o) is S: return len(o.v.encode())
    raise Err('type')
def has(o, k):
    if type(o) is not dict: raise Err('type')
    return int(key(k) in o)
def delitem(o, k):
    if type(o) is list: del o[idx(o, k)]
    elif type(o) is dict:
        k = key(k)
        if k not in o: raise Err('missing')
        del o[k]
    else: raise Err('type')
def rc(x):
    if x is None or isint(x): raise Err('type')
    return sys.getrefcount(x) - 2
def q(s):
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch == '\n': out.append('\\n')
        elif ch == '\t': out.append('\\t')
        elif ch == '\r': out.append('\\r')
        elif ch == '\\': out.append('\\\\')
        elif ch == '"': out.append('\\"')
        elif ch == '\0': out.append('\\0')
        elif c < 0x20 or c == 0x7f: out.append('\\x%02x' % c)
        else: out.append(ch)
    out.append('"')
    return ''.join(out)
def go(v, top, out, busy):
    if v is None: out.append('nil')
    elif isint(v): out.append(str(v))
    elif type(v) is S: out.append(v.v if top else q(v.v))
    else:
        o, c, again = ('(', ')', '(...)') if type(v) is Rec else ('[', ']', '[...]') if type(v) is list else ('{', '}', '{...}')
        if id(v) in busy:
            out.append(again); return
        busy.add(id(v)); out.append(o)
        if type(v) is dict:
            for i, (k, x) in enumerate(v.items()):
                if i: out.append(', ')
                out.append(str(k) if isint(k) else q(k)); out.append(': '); go(x, False, out, busy)
        else:
            for i, x in enumerate(v):
                if i: out.append(', ')
                go(x, False, out, busy)
        out.append(c); busy.discard(id(v))
def show(v):
    # No closures here: a recursive closure is a garbage cycle per call,
    # which gc.collect() would count.
    out = []
    go(v, True, out, set())
    return ''.join(out)
def p(*vs): print(' '.join(show(v) for v in vs))
def main():
    progs = sys.stdin.read().split('\n#####\n')
    for i, code in enumerate(progs):
        gc.disable()
        # Compiling leaves garbage cycles (symtable entries): compile
        # first, collect, then run.
        obj = compile(code, 'prog', 'exec')
        ns = dict(globals())
        for r in range(8): ns['r%d' % r] = None
        gc.collect()
        status = 0
        try:
            exec(obj, ns)
        except Err:
            status = 1
        ns.clear()
        print('=== exit %d' % status)
main()
"#;

/// Registers by role: r0 list, r1 record, r2 dict, r3 int, r4 string, r5
/// scratch (as in `rcvm::fuzzing`).
struct Gen<'a, 'b> {
    u: &'a mut Unstructured<'b>,
    asm: String,
    py: String,
    dicts_and_strings: bool,
}

impl Gen<'_, '_> {
    fn pick(&mut self, roles: &[u8]) -> u8 {
        if self.u.ratio(1, 30).unwrap_or(false) {
            return self.u.int_in_range(0..=5).unwrap_or(5);
        }
        *self.u.choose(roles).unwrap_or(&5)
    }
    fn imm(&mut self) -> i64 {
        match self.u.int_in_range(0..=6).unwrap_or(0) {
            0 => i64::MAX,
            1 => i64::MIN,
            2 => self.u.arbitrary().unwrap_or(0),
            _ => self.u.int_in_range(-2..=3).unwrap_or(0),
        }
    }
    /// A K operand: (asm text, python text).
    fn k(&mut self, roles: &[u8]) -> (String, String) {
        if self.u.ratio(1, 2).unwrap_or(false) {
            let r = self.pick(roles);
            (format!("r{r}"), format!("r{r}"))
        } else {
            let i = self.imm();
            (i.to_string(), i.to_string())
        }
    }
    fn small_k(&mut self, roles: &[u8]) -> (String, String) {
        if self.u.ratio(1, 4).unwrap_or(false) {
            let r = self.pick(roles);
            (format!("r{r}"), format!("r{r}"))
        } else {
            let i = self.u.int_in_range(-2..=1).unwrap_or(0);
            (i.to_string(), i.to_string())
        }
    }
    fn emit(&mut self, a: String, p: String) {
        let _ = writeln!(self.asm, "{a}");
        let _ = writeln!(self.py, "{p}");
    }
    fn program(&mut self, len: usize) {
        let prologue: &[(&str, &str)] = if self.dicts_and_strings {
            &[
                ("list r0", "r0 = []"),
                ("new r1, 3", "r1 = Rec([None] * 3)"),
                ("dict r2", "r2 = {}"),
                ("li r3, 1", "r3 = 1"),
                ("str r4, \"k\"", "r4 = S('k')"),
                ("push r0, r3", "push(r0, r3)"),
                ("push r0, r4", "push(r0, r4)"),
                ("store r2, 0, r3", "store(r2, 0, r3)"),
                ("store r2, 1, r0", "store(r2, 1, r0)"),
            ]
        } else {
            &[
                ("list r0", "r0 = []"),
                ("new r1, 2", "r1 = Rec([None] * 2)"),
                ("list r2", "r2 = []"),
                ("li r3, 1", "r3 = 1"),
                ("push r0, r1", "push(r0, r1)"),
                ("push r2, r0", "push(r2, r0)"),
            ]
        };
        for (a, p) in prologue {
            self.emit(a.to_string(), p.to_string());
        }
        for _ in 0..len {
            self.instr();
        }
    }
    fn instr(&mut self) {
        let ds = self.dicts_and_strings;
        let top = if ds { 24 } else { 18 };
        match self.u.int_in_range(0..=top).unwrap_or(0) {
            0 => {
                let (d, i) = (self.pick(&[3, 5]), self.imm());
                self.emit(format!("li r{d}, {i}"), format!("r{d} = {i}"));
            }
            1 | 2 => {
                let (d, s) = (self.pick(&[5, 5, 5, 0, 1, 2]), self.pick(&[0, 1, 2, 3, 4, 5]));
                self.emit(format!("mov r{d}, r{s}"), format!("r{d} = r{s}"));
            }
            3 => {
                let d = self.pick(&[5, 5, 5, 1]);
                self.emit(format!("del r{d}"), format!("r{d} = None"));
            }
            4 => {
                let m = *self.u.choose(&["add", "sub", "mul", "div", "mod"]).unwrap_or(&"add");
                let (d, a) = (self.pick(&[3, 5]), self.pick(&[3]));
                let (ka, kp) = self.k(&[3]);
                self.emit(format!("{m} r{d}, r{a}, {ka}"), format!("r{d} = {m}(r{a}, {kp})"));
            }
            5 => {
                let m = *self.u.choose(&["eq", "ne", "lt", "le", "gt", "ge"]).unwrap_or(&"eq");
                let roles: &[u8] = if m == "eq" || m == "ne" { &[0, 1, 2, 3, 4, 5] } else { &[3] };
                let (d, a) = (self.pick(&[3, 5]), self.pick(roles));
                let (ka, kp) = self.k(roles);
                let py = match m {
                    "ne" => format!("r{d} = 1 - eq(r{a}, {kp})"),
                    _ => format!("r{d} = {m}(r{a}, {kp})"),
                };
                self.emit(format!("{m} r{d}, r{a}, {ka}"), py);
            }
            6 => {
                let (d, s) = (self.pick(&[3, 5]), self.pick(&[0, 3, 5]));
                self.emit(format!("not r{d}, r{s}"), format!("r{d} = not_(r{s})"));
            }
            7 => {
                let n = self.u.int_in_range(1..=3).unwrap_or(1);
                let regs: Vec<u8> = (0..n).map(|_| self.pick(&[0, 1, 2, 3, 4, 5])).collect();
                let a: Vec<String> = regs.iter().map(|r| format!("r{r}")).collect();
                self.emit(format!("print {}", a.join(", ")), format!("p({})", a.join(", ")));
            }
            8 => {
                let (d, n) = (self.pick(&[1, 5]), self.u.int_in_range(0..=3).unwrap_or(1));
                self.emit(format!("new r{d}, {n}"), format!("r{d} = Rec([None] * {n})"));
            }
            9 => {
                let d = self.pick(&[0, 2, 5]);
                self.emit(format!("list r{d}"), format!("r{d} = []"));
            }
            10 | 11 => {
                let o = self.pick(&[0, 1, 2]);
                let (ka, kp) = self.small_k(if o == 2 { &[3, 4] } else { &[3] });
                let s = self.pick(&[0, 1, 2, 3, 4, 5]);
                self.emit(format!("store r{o}, {ka}, r{s}"), format!("store(r{o}, {kp}, r{s})"));
            }
            12 | 13 => {
                let (l, s) = (self.pick(if ds { &[0] } else { &[0, 2] }), self.pick(&[0, 1, 2, 3, 4, 5]));
                self.emit(format!("push r{l}, r{s}"), format!("push(r{l}, r{s})"));
            }
            14 => {
                let (d, o) = (self.pick(&[5]), self.pick(&[0, 1, 2]));
                let (ka, kp) = self.small_k(if o == 2 { &[3, 4] } else { &[3] });
                self.emit(format!("load r{d}, r{o}, {ka}"), format!("r{d} = load(r{o}, {kp})"));
            }
            15 => {
                let (d, l) = (self.pick(&[5]), self.pick(if ds { &[0] } else { &[0, 2] }));
                self.emit(format!("pop r{d}, r{l}"), format!("r{d} = pop(r{l})"));
            }
            16 => {
                let (d, o) = (self.pick(&[3, 5]), self.pick(if ds { &[0, 1, 2, 4] } else { &[0, 1, 2] }));
                self.emit(format!("len r{d}, r{o}"), format!("r{d} = length(r{o})"));
            }
            17 => {
                if ds {
                    let (d, s) = (self.pick(&[3]), self.pick(&[0, 1, 2, 4]));
                    self.emit(format!("refcount r{d}, r{s}"), format!("r{d} = rc(r{s})"));
                    self.emit(format!("print r{d}"), format!("p(r{d})"));
                } else {
                    let (d, g) = (self.pick(&[3, 5]), self.u.int_in_range(0..=2).unwrap_or(2));
                    self.emit(format!("gc r{d}, {g}"), format!("r{d} = gc.collect({g})"));
                    self.emit(format!("print r{d}"), format!("p(r{d})"));
                }
            }
            18 => {
                let (d, s) = (self.pick(&[3]), self.pick(&[0, 1, 2]));
                self.emit(format!("refcount r{d}, r{s}"), format!("r{d} = rc(r{s})"));
                self.emit(format!("print r{d}"), format!("p(r{d})"));
            }
            19 => {
                let d = self.pick(&[2, 5]);
                self.emit(format!("dict r{d}"), format!("r{d} = {{}}"));
            }
            20 => {
                let d = self.pick(&[4, 5]);
                let s = *self.u.choose(&["", "k", "ab", "a\"\n", "é"]).unwrap_or(&"k");
                let mut q = String::new();
                rcvm::asm::lexer::quote(s, &mut q);
                self.emit(format!("str r{d}, {q}"), format!("r{d} = S({})", py_str(s)));
            }
            21 => {
                let (d, o) = (self.pick(&[3, 5]), self.pick(&[2]));
                let (ka, kp) = self.small_k(&[3, 4]);
                self.emit(format!("has r{d}, r{o}, {ka}"), format!("r{d} = has(r{o}, {kp})"));
            }
            22 => {
                let o = self.pick(&[0, 2]);
                let (ka, kp) = self.small_k(if o == 2 { &[3, 4] } else { &[3] });
                self.emit(format!("delitem r{o}, {ka}"), format!("delitem(r{o}, {kp})"));
            }
            23 => {
                let (d, a, b) = (self.pick(&[4, 5]), self.pick(&[4]), self.pick(&[4]));
                self.emit(format!("add r{d}, r{a}, r{b}"), format!("r{d} = add(r{a}, r{b})"));
            }
            _ => {
                let o = self.pick(&[2]);
                let s = self.pick(&[0, 1, 2, 3, 4, 5]);
                let k = self.pick(&[4]);
                self.emit(format!("store r{o}, r{k}, r{s}"), format!("store(r{o}, r{k}, r{s})"));
            }
        }
    }
}

/// A Python string literal for `s`.
fn py_str(s: &str) -> String {
    let mut out = String::from("'");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('\'');
    out
}

fn rcvm_run(asm: &str, gc_on: bool) -> (String, u64) {
    let loaded =
        rcvm::load("diff.asm", asm.as_bytes()).unwrap_or_else(|e| panic!("generated program rejected: {e:?}\n{asm}"));
    let mut heap = Heap::new(PoolAllocator::new(), usize::MAX);
    heap.gc_set_enabled(gc_on);
    let mut vm = Vm::new(&loaded.program, heap, Limits::default());
    let mut out = Vec::new();
    let status = vm.run(&mut out).is_err() as i32;
    vm.verify_heap().unwrap_or_else(|e| panic!("heap verifier after run: {e}\n{asm}"));
    (format!("{}=== exit {status}\n", String::from_utf8_lossy(&out)), vm.instructions())
}

fn python_batch(progs: &[String]) -> Vec<String> {
    use std::io::Write as _;
    let mut child = Command::new("python3")
        .args(["-c", PRELUDE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is needed for the differential tests (CPython 3.11)");
    child.stdin.take().unwrap().write_all(progs.join("\n#####\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python3 failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut res = Vec::new();
    let mut cur = String::new();
    for line in text.split_inclusive('\n') {
        cur.push_str(line);
        if line.starts_with("=== exit") {
            res.push(std::mem::take(&mut cur));
        }
    }
    res
}

fn differential(seed: u64, n: usize, len: usize, dicts_and_strings: bool) {
    let mut state = seed;
    let mut asms = Vec::new();
    let mut pys = Vec::new();
    for _ in 0..n {
        let bytes: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        let mut u = Unstructured::new(&bytes);
        let mut g = Gen { u: &mut u, asm: String::new(), py: String::new(), dicts_and_strings };
        g.program(len);
        asms.push(g.asm);
        pys.push(g.py);
    }
    let expected = python_batch(&pys);
    assert_eq!(expected.len(), n, "python produced {} results for {n} programs", expected.len());
    let mut executed = 0;
    let mut ok = 0;
    for i in 0..n {
        let (got, steps) = rcvm_run(&asms[i], false);
        executed += steps;
        if got.ends_with("exit 0\n") {
            ok += 1;
        }
        assert_eq!(
            got, expected[i],
            "program {i} differs from CPython\n--- rcvm asm ---\n{}\n--- python ---\n{}",
            asms[i], pys[i]
        );
    }
    // The comparison means something only if programs get somewhere
    // before their first error (errors are compared too).
    let avg = executed as f64 / n as f64;
    eprintln!("{n} programs: {ok} ran to the end, {avg:.1} instructions on average");
    assert!(avg >= 15.0, "programs stop too early ({avg:.1} instructions on average)");
}

#[test]
fn refcounts_and_output_match_cpython() {
    differential(0x9e37_79b9_7f4a_7c15, 1000, 40, true);
}

#[test]
fn gc_counts_match_cpython() {
    differential(0xd1b5_4a32_d192_ed03, 1000, 40, false);
}
