//! Generators and oracles shared by the property tests (`cargo test`, on
//! stable) and the cargo-fuzz targets (`fuzz/`). Keeping them here, in
//! ordinary code, keeps the fuzz logic exercised on every test run.
//!
//! [`gen_program`] turns arbitrary bytes into a *valid* assembly program
//! over a handful of registers, using every instruction; the oracles check
//! what must hold for any input.

use crate::bytecode::disasm::disassemble;
use crate::mem::alloc::Allocator;
use crate::mem::Heap;
use crate::vm::{Limits, Vm};
use arbitrary::{Result, Unstructured};
use std::fmt::Write;

/// What a generated program may contain.
#[derive(Clone, Copy, Debug)]
pub struct GenOptions {
    /// `incref` and `decref` (which may leave dangling references).
    pub manual_counts: bool,
    /// `gc`, `gcenable`, `gcdisable`, `gcthreshold`, `gccount`.
    pub gc: bool,
    /// Registers per function (at least 4).
    pub regs: u8,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions { manual_counts: true, gc: true, regs: 6 }
    }
}

const STRINGS: &[&str] = &["", "a", "k", "hello", "a\"b\n", "é✓"];

fn reg(u: &mut Unstructured, o: &GenOptions) -> Result<String> {
    Ok(format!("r{}", u.int_in_range(0..=o.regs - 1)?))
}

/// Registers by role, set up by each function's prologue: r0 list,
/// r1 record, r2 dict, r3 int, r4 string, r5 and above scratch. Operations
/// pick registers of the right role most of the time, so programs run long
/// enough to build nested structures and cycles, and a random register now
/// and then exercises the error paths.
fn typed(u: &mut Unstructured, o: &GenOptions, roles: &[u8]) -> Result<String> {
    if u.ratio(1, 12)? {
        return reg(u, o);
    }
    let r = *u.choose(roles)?;
    Ok(format!("r{}", r.min(o.regs - 1)))
}

fn ikey(u: &mut Unstructured, o: &GenOptions) -> Result<String> {
    Ok(match u.int_in_range(0..=5)? {
        0 => typed(u, o, &[3])?,
        1 => imm(u)?,
        _ => format!("{}", u.int_in_range(-2..=3)?),
    })
}

fn imm(u: &mut Unstructured) -> Result<String> {
    Ok(match u.int_in_range(0..=9)? {
        0 => i64::MIN.to_string(),
        1 => i64::MAX.to_string(),
        2 => format!("0x{:x}", u.int_in_range(0..=0xffffu32)?),
        3 => format!("{}", u.arbitrary::<i64>()?),
        4 => "-1".into(),
        _ => format!("{}", u.int_in_range(-3..=5)?),
    })
}

/// Generates a valid program: `main` plus up to three functions, each of
/// up to `max_len` instructions, with labels, calls (arity-correct),
/// objects and, per `o`, manual counts and collector instructions.
pub fn gen_program(u: &mut Unstructured, o: &GenOptions, max_len: usize) -> Result<String> {
    let nfuncs = u.int_in_range(0..=3)?;
    let arities: Vec<u8> = (0..nfuncs).map(|_| u.int_in_range(0..=3)).collect::<Result<_>>()?;
    let mut out = String::new();
    for f in 0..=nfuncs {
        let (name, arity) = if f == 0 { ("main".to_string(), 0) } else { (format!("f{f}"), arities[f - 1]) };
        let _ = writeln!(out, ".func {name} {arity}");
        let prologue = ["list r0", "new r1, 3", "dict r2", "li r3, 1", "str r4, \"k\""];
        for (i, line) in prologue.iter().enumerate() {
            if i >= arity as usize && u.ratio(7, 8)? {
                let _ = writeln!(out, "{line}");
            }
        }
        let len = u.int_in_range(1..=max_len.max(1))?;
        let nlabels = u.int_in_range(0..=3usize)?;
        let mut at: Vec<usize> = (0..nlabels).map(|_| u.int_in_range(0..=len - 1)).collect::<Result<_>>()?;
        at.sort_unstable();
        at.dedup();
        for i in 0..len {
            if let Some(l) = at.iter().position(|&p| p == i) {
                let _ = write!(out, "L{l}: ");
            }
            let label = |u: &mut Unstructured| -> Result<String> {
                Ok(if at.is_empty() { String::new() } else { format!("L{}", u.int_in_range(0..=at.len() - 1)?) })
            };
            let line = loop {
                let choice = u.int_in_range(0..=41)?;
                let r = |u: &mut Unstructured| reg(u, o);
                let s = match choice {
                    0 => format!("li {}, {}", typed(u, o, &[3, 5])?, imm(u)?),
                    1 => format!("mov {}, {}", typed(u, o, &[0, 1, 2, 4, 5])?, r(u)?),
                    2 => format!("del {}", typed(u, o, &[5, 5, 0, 1, 2, 4])?),
                    3..=7 => {
                        let m = ["add", "sub", "mul", "div", "mod"][choice - 3];
                        if m == "add" && u.ratio(1, 4)? {
                            format!("add {}, {}, {}", typed(u, o, &[4, 5])?, typed(u, o, &[4])?, typed(u, o, &[4])?)
                        } else {
                            let kk = if u.ratio(1, 2)? { typed(u, o, &[3])? } else { imm(u)? };
                            format!("{m} {}, {}, {kk}", typed(u, o, &[3, 5])?, typed(u, o, &[3])?)
                        }
                    }
                    8 => {
                        let m = *u.choose(&["eq", "ne", "lt", "le", "gt", "ge"])?;
                        let roles: &[u8] = if m == "eq" || m == "ne" { &[0, 1, 2, 3, 4, 5] } else { &[3] };
                        let kk = if u.ratio(1, 2)? { typed(u, o, roles)? } else { imm(u)? };
                        format!("{m} {}, {}, {kk}", typed(u, o, &[3, 5])?, typed(u, o, roles)?)
                    }
                    9 => format!("not {}, {}", typed(u, o, &[3, 5])?, r(u)?),
                    10 | 11 => {
                        let l = label(u)?;
                        if l.is_empty() {
                            continue;
                        }
                        match u.int_in_range(0..=2)? {
                            0 => format!("jmp {l}"),
                            1 => format!("jz {}, {l}", r(u)?),
                            _ => format!("jnz {}, {l}", r(u)?),
                        }
                    }
                    12 => {
                        if nfuncs == 0 {
                            continue;
                        }
                        let callee = u.int_in_range(1..=nfuncs)?;
                        let mut s = format!("call {}, f{callee}", typed(u, o, &[5])?);
                        for _ in 0..arities[callee - 1] {
                            s.push_str(&format!(", {}", r(u)?));
                        }
                        s
                    }
                    13 => {
                        if !u.ratio(1, 3)? {
                            continue;
                        }
                        if u.ratio(1, 2)? {
                            format!("ret {}", r(u)?)
                        } else {
                            "ret".into()
                        }
                    }
                    14 => {
                        if u.ratio(1, 8)? {
                            "halt".into()
                        } else {
                            continue;
                        }
                    }
                    15 => {
                        let n = u.int_in_range(1..=3)?;
                        let regs: Vec<String> = (0..n).map(|_| r(u)).collect::<Result<_>>()?;
                        format!("print {}", regs.join(", "))
                    }
                    16 | 17 => format!("new {}, {}", typed(u, o, &[1, 5])?, u.int_in_range(0..=4)?),
                    18 => format!("list {}", typed(u, o, &[0, 5])?),
                    19 => format!("dict {}", typed(u, o, &[2, 5])?),
                    20 => {
                        let mut q = String::new();
                        crate::asm::lexer::quote(u.choose(STRINGS)?, &mut q);
                        format!("str {}, {q}", typed(u, o, &[4, 5])?)
                    }
                    21 | 22 => {
                        let (obj, key) = match u.int_in_range(0..=2)? {
                            0 => (typed(u, o, &[0])?, ikey(u, o)?),
                            1 => (typed(u, o, &[1])?, ikey(u, o)?),
                            _ => (typed(u, o, &[2])?, if u.ratio(1, 2)? { typed(u, o, &[3, 4])? } else { ikey(u, o)? }),
                        };
                        format!("load {}, {obj}, {key}", typed(u, o, &[5, 5, 3])?)
                    }
                    23..=25 | 40 => {
                        let (obj, key) = match u.int_in_range(0..=2)? {
                            0 => (typed(u, o, &[0])?, ikey(u, o)?),
                            1 => (typed(u, o, &[1])?, ikey(u, o)?),
                            _ => (typed(u, o, &[2])?, if u.ratio(1, 2)? { typed(u, o, &[3, 4])? } else { ikey(u, o)? }),
                        };
                        format!("store {obj}, {key}, {}", r(u)?)
                    }
                    26 | 27 => format!("push {}, {}", typed(u, o, &[0])?, r(u)?),
                    28 => format!("pop {}, {}", typed(u, o, &[5])?, typed(u, o, &[0])?),
                    29 => format!("len {}, {}", typed(u, o, &[3, 5])?, typed(u, o, &[0, 1, 2, 4])?),
                    30 => format!("has {}, {}, {}", typed(u, o, &[3, 5])?, typed(u, o, &[2])?, ikey(u, o)?),
                    31 => {
                        let obj = typed(u, o, &[0, 2])?;
                        format!("delitem {obj}, {}", if u.ratio(1, 3)? { typed(u, o, &[4])? } else { ikey(u, o)? })
                    }
                    32 => format!("refcount {}, {}", typed(u, o, &[3, 5])?, typed(u, o, &[0, 1, 2, 4])?),
                    33 if o.manual_counts => format!("incref {}", typed(u, o, &[0, 1, 2, 4])?),
                    34 if o.manual_counts => format!("decref {}", typed(u, o, &[0, 1, 2, 4, 5])?),
                    35 if o.gc => format!("gc {}, {}", typed(u, o, &[3, 5])?, u.int_in_range(0..=2)?),
                    36 if o.gc => format!("gccount {}, {}", typed(u, o, &[3, 5])?, u.int_in_range(0..=2)?),
                    37 if o.gc => {
                        format!(
                            "gcthreshold {}, {}, {}",
                            u.int_in_range(0..=5)?,
                            u.int_in_range(0..=3)?,
                            u.int_in_range(0..=3)?
                        )
                    }
                    38 if o.gc => (*u.choose(&["gcenable", "gcdisable"])?).into(),
                    39 => format!("mov {}, {}", typed(u, o, &[0, 1, 2, 5])?, r(u)?),
                    41 => {
                        // A counted-loop tail, which the VM fuses into one
                        // dispatch; odd register roles exercise its
                        // fallbacks (non-int counter, reference in rY).
                        let l = label(u)?;
                        if l.is_empty() {
                            continue;
                        }
                        let x = typed(u, o, &[3, 3, 3, 4, 5])?;
                        let y = if u.ratio(1, 4)? { x.clone() } else { typed(u, o, &[3, 5, 0, 1])? };
                        let k = if u.ratio(1, 8)? { imm(u)? } else { u.int_in_range(-3..=3i32)?.to_string() };
                        let lim = u.int_in_range(-10..=100i32)?;
                        format!("add {x}, {x}, {k}\nlt {y}, {x}, {lim}\njnz {y}, {l}")
                    }
                    _ => continue,
                };
                break s;
            };
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(out, ".end");
    }
    Ok(out)
}

/// Oracle for assembly: whatever the text, assembling never panics; an
/// accepted program verified, and its disassembly reassembles to identical
/// bytes, which decode back to the same module.
pub fn check_assemble(text: &str) -> std::result::Result<(), String> {
    let Ok(loaded) = crate::load("fuzz.asm", text.as_bytes()) else { return Ok(()) };
    let bytes = loaded.program.to_bytes();
    let listing = disassemble(&loaded.program);
    let again = crate::load("listing.asm", listing.as_bytes())
        .map_err(|e| format!("disassembly does not reassemble: {e:?}\n{listing}"))?;
    if again.program.to_bytes() != bytes {
        return Err(format!("disassembly reassembles to different bytes:\n{listing}"));
    }
    let decoded = crate::bytecode::Module::from_bytes(&bytes).map_err(|e| format!("own bytes do not decode: {e}"))?;
    if &decoded != loaded.program.module() {
        return Err("decoding the encoded module gives a different module".into());
    }
    Ok(())
}

/// Limits for running untrusted programs in tests and fuzzing.
pub fn fuzz_limits() -> Limits {
    Limits { max_steps: Some(20_000), max_depth: 200 }
}

/// Standard output for oracle runs: at most [`OUTPUT_CAP`] bytes, then a
/// write error (which the VM reports as a runtime error), so a program that
/// prints a growing list every step stays cheap to check.
#[derive(Default)]
pub struct CappedOutput(pub Vec<u8>);

/// See [`CappedOutput`].
pub const OUTPUT_CAP: usize = 64 << 10;

impl std::io::Write for CappedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > OUTPUT_CAP {
            return Err(std::io::Error::other("output cap for oracle runs reached"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs a loaded program under limits with `heap`; returns the VM's heap
/// after the run (every frame released), or the heap verifier's complaint.
/// With `verify_each_step`, the verifier runs after every instruction.
pub fn run_checked<A: Allocator>(
    prog: &crate::bytecode::Program,
    heap: Heap<A>,
    verify_each_step: bool,
) -> std::result::Result<(Heap<A>, String), String> {
    let mut vm = Vm::new(prog, heap, fuzz_limits());
    vm.set_verify_each_step(verify_each_step);
    let mut out = CappedOutput::default();
    let err = vm.run(&mut out).err().map(|e| e.message);
    let heap = checked_heap(vm, err.as_deref())?;
    Ok((heap, String::from_utf8_lossy(&out.0).into_owned()))
}

/// After a run that ended with `err`: the per-step verifier's complaint,
/// if it made one, else the heap verified with the (released) frames as
/// roots and again without them; the heap, once it holds.
fn checked_heap<A: Allocator>(mut vm: Vm<'_, A>, err: Option<&str>) -> std::result::Result<Heap<A>, String> {
    if let Some(m) = err.filter(|m| m.starts_with("heap verifier")) {
        return Err(m.to_string());
    }
    vm.verify_heap().map_err(|e| format!("after the run: {e}"))?;
    let mut heap = vm.into_heap();
    heap.verify(std::iter::empty()).map_err(|e| format!("after the run: {e}"))?;
    Ok(heap)
}

/// Oracle for execution: the heap verifier holds after every instruction
/// and after the run; for programs without manual counts, a final full
/// collection leaves nothing alive.
///
/// The program also runs on the fast path (fused superinstructions, no
/// per-step checks): output, error, instruction count and object counts
/// must be exactly those of the checked, one-instruction-at-a-time run.
pub fn check_execute(text: &str, manual_counts: bool) -> std::result::Result<(), String> {
    let loaded = crate::load("gen.asm", text.as_bytes()).map_err(|e| format!("generated program rejected: {e:?}"))?;
    let (_, fast) = outcome(&loaded.program, false);
    // The checked run (one instruction at a time, the heap verified after
    // each) is also the one whose heap is checked below: one run, not two.
    let (vm, slow) = outcome(&loaded.program, true);
    let mut heap = checked_heap(vm, slow.1.as_deref())?;
    if fast != slow {
        return Err(format!("the fast path differs from the checked one:\n  fast: {fast:?}\n  slow: {slow:?}"));
    }
    heap.collect(2, 0);
    heap.verify(std::iter::empty()).map_err(|e| format!("after the final collection: {e}"))?;
    if !manual_counts && heap.object_stats().alive != 0 {
        return Err(format!(
            "{} objects alive after every frame was released and a full collection: {:?}",
            heap.object_stats().alive,
            heap.live_objects()
        ));
    }
    Ok(())
}

/// What a run shows from outside: output, error message with the call
/// stack's positions, instructions executed, objects allocated and still
/// alive.
type Outcome = (String, Option<String>, u64, u64, u64);

/// Runs `prog` under the fuzzing limits (checked one instruction at a time
/// with the heap verifier when `verify_each_step`); returns the VM after
/// the run and what the run showed.
fn outcome(
    prog: &crate::bytecode::Program,
    verify_each_step: bool,
) -> (Vm<'_, crate::mem::alloc::PoolAllocator>, Outcome) {
    let heap = Heap::new(crate::mem::alloc::PoolAllocator::new(), 1 << 24);
    let mut vm = Vm::new(prog, heap, fuzz_limits());
    vm.set_verify_each_step(verify_each_step);
    let mut out = CappedOutput::default();
    // The message and where each frame stood: a fused instruction must
    // fail at the same place as the ones it stands for.
    let err = vm.run(&mut out).err().map(|e| {
        let at: Vec<String> = e.frames.iter().map(|f| format!("{}:{}:{}", f.func, f.pos.line, f.pos.col)).collect();
        format!("{} at {}", e.message, at.join(" < "))
    });
    let s = vm.heap().object_stats();
    let o = (String::from_utf8_lossy(&out.0).into_owned(), err, vm.instructions(), s.allocated, s.alive);
    (vm, o)
}

/// The `load` fuzz target's input as a bytecode file. Inputs that already
/// start with the magic bytes (the seed corpus: real `.rcb` files) are used
/// as they are; of the rest, those with an odd first byte get a valid
/// header in its place, so the fuzzer reaches the body often. The
/// regression replay uses the same mapping, so a saved crash reproduces.
pub fn load_target_input(data: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let magic = &crate::bytecode::format::MAGIC[..];
    if !data.starts_with(magic) && data.first().is_some_and(|b| b & 1 == 1) {
        let mut v = magic.to_vec();
        v.extend_from_slice(&crate::bytecode::format::FORMAT_VERSION.to_le_bytes());
        v.extend_from_slice(&data[1..]);
        std::borrow::Cow::Owned(v)
    } else {
        std::borrow::Cow::Borrowed(data)
    }
}

/// Oracle for loading bytes as bytecode: never panics; an accepted file
/// runs under step, depth and heap limits without panicking.
pub fn check_load(bytes: &[u8]) {
    if let Ok(l) = crate::load("fuzz.rcb", bytes) {
        let heap = Heap::new(crate::mem::alloc::PoolAllocator::new(), 1 << 22);
        let _ = run_checked(&l.program, heap, false);
    }
}

/// Oracle for the collector: builds a random graph of records, lists and
/// dicts (with strings) whose only roots are the values in `roots`, runs a
/// full collection, and checks that exactly the objects a plain mark from
/// the roots reaches survive, that the collector's count is the number of
/// unreachable containers, and that the heap verifier holds.
pub fn check_gc_oracle(u: &mut Unstructured) -> std::result::Result<(), String> {
    use crate::mem::value::Value;
    let mut heap = Heap::new(crate::mem::alloc::PoolAllocator::new(), usize::MAX);
    heap.gc_set_enabled(u.arbitrary().map_err(|e| e.to_string())?);
    let n = u.int_in_range(1..=60usize).map_err(|e| e.to_string())?;
    let mut objs: Vec<Value> = Vec::with_capacity(n);
    for _ in 0..n {
        let v = match u.int_in_range(0..=3u8).map_err(|e| e.to_string())? {
            0 => heap.new_record(u.int_in_range(0..=3u16).map_err(|e| e.to_string())?, 0),
            1 => heap.new_list(0),
            2 => heap.new_dict(0),
            _ => heap.new_str("s", 0),
        }
        .map_err(|e| format!("{e:?}"))?;
        objs.push(v);
    }
    // Random edges.
    let edges = u.int_in_range(0..=3 * n).map_err(|e| e.to_string())?;
    for _ in 0..edges {
        let from = objs[u.int_in_range(0..=n - 1).map_err(|e| e.to_string())?];
        let to = objs[u.int_in_range(0..=n - 1).map_err(|e| e.to_string())?];
        let k = Value::Int(u.int_in_range(0..=2i64).map_err(|e| e.to_string())?);
        match heap.kind(match from {
            Value::Ref(h) => h,
            _ => continue,
        }) {
            Ok(crate::mem::object::ObjKind::List) => heap.push(from, to).map_err(|e| format!("{e:?}"))?,
            Ok(crate::mem::object::ObjKind::Str) => continue,
            _ => {
                let _ = heap.store(from, k, to, 0);
            }
        }
    }
    // Roots: a random subset keeps its count; the rest are released.
    let mut roots = Vec::new();
    for v in &objs {
        if u.ratio(1, 4).map_err(|e| e.to_string())? {
            roots.push(*v);
        } else {
            heap.release(*v, 0).map_err(|e| format!("{e:?}"))?;
        }
    }
    // Expected survivors: mark from the roots (an explicit stack).
    let mut marked = std::collections::HashSet::new();
    let mut stack: Vec<Value> = roots.clone();
    while let Some(Value::Ref(h)) = stack.pop() {
        if heap.check(h).is_err() || !marked.insert(h.id()) {
            continue;
        }
        let mut kids = Vec::new();
        heap.objs.for_each_ref(h.slot, |c| kids.push(Value::Ref(c)));
        stack.extend(kids);
    }
    let before: std::collections::HashSet<u32> = heap.live_objects().iter().map(|o| o.0).collect();
    let unreachable_containers =
        heap.live_objects().iter().filter(|o| !marked.contains(&o.0) && o.1.is_container()).count() as u64;
    // Either direction of move_unreachable (see `Heap::collect`).
    heap.gc_set_direction(2, u.arbitrary().map_err(|e| e.to_string())?);
    let found = heap.collect(2, 0);
    let after: std::collections::HashSet<u32> = heap.live_objects().iter().map(|o| o.0).collect();
    if after != marked {
        return Err(format!(
            "survivors {:?} differ from the marked set {:?} (live before {:?})",
            sorted(&after),
            sorted(&marked),
            sorted(&before)
        ));
    }
    if found != unreachable_containers {
        return Err(format!("collect returned {found}, expected {unreachable_containers} unreachable containers"));
    }
    heap.verify(roots.iter().copied())?;
    for v in roots {
        heap.release(v, 0).map_err(|e| format!("{e:?}"))?;
    }
    heap.collect(2, 0);
    if heap.object_stats().alive != 0 {
        return Err("objects left after releasing every root and collecting".into());
    }
    heap.verify(std::iter::empty())
}

fn sorted(s: &std::collections::HashSet<u32>) -> Vec<u32> {
    let mut v: Vec<u32> = s.iter().copied().collect();
    v.sort_unstable();
    v
}

pub use crate::mem::alloc::model::check_alloc_ops;
