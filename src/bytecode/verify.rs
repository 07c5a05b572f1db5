//! The verifier: the only way to obtain a [`Program`], which the interpreter
//! trusts.
//!
//! Every load, from assembly text or from a bytecode file, goes through
//! [`verify`]. It checks what the interpreter relies on and therefore does
//! not check again at run time:
//! - every register operand and register-list entry is within its frame;
//! - jump targets are inside the function; call targets exist;
//! - constant, integer-pool and register-list indexes are in bounds;
//! - calls pass exactly the callee's arity; `main` exists and takes none;
//! - generations are 0..=2 and thresholds are non-negative;
//! - every function ends with an instruction that does not fall through,
//!   so the program counter never leaves the code;
//! - the line table covers every instruction, with positions from 1:1.
//!
//! It also checks that the module is in the one form the assembler writes,
//! so that every accepted file disassembles to text that reassembles to the
//! same bytes (`rcvm disasm`'s promise): each frame size is exactly the
//! highest register named plus one (at least the arity); the integer and
//! string pools hold distinct values, all used, numbered in order of first
//! use; each register list belongs to one instruction, in code order, with
//! nothing left over; a wide immediate does not fit in 32 bits (else it is
//! stored inline).

use super::format::Module;
use super::isa::{Instr, Operand};
use thiserror::Error;

/// Most arguments a call can pass.
pub const MAX_ARGS: usize = 16;

/// A verified module, ready to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    module: Module,
}

impl Program {
    pub fn module(&self) -> &Module {
        &self.module
    }
    pub fn into_module(self) -> Module {
        self.module
    }
}

impl std::ops::Deref for Program {
    type Target = Module;
    fn deref(&self) -> &Module {
        &self.module
    }
}

/// Why a module was rejected.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{}{msg}", match (.func, .pc) {
    (Some(f), Some(pc)) => format!("in function `{f}`, instruction {pc}: "),
    (Some(f), None) => format!("in function `{f}`: "),
    _ => String::new(),
})]
pub struct VerifyError {
    pub func: Option<String>,
    pub pc: Option<usize>,
    pub msg: String,
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '.')
        && !crate::asm::lexer::is_register_name(s)
}

/// Checks a module completely and returns it as a runnable [`Program`].
pub fn verify(module: Module) -> Result<Program, VerifyError> {
    let err =
        |func: Option<&str>, pc: Option<usize>, msg: String| VerifyError { func: func.map(str::to_string), pc, msg };
    if module.funcs.is_empty() {
        return Err(err(None, None, "the module has no functions".into()));
    }
    if module.funcs.len() > u16::MAX as usize + 1 {
        return Err(err(None, None, "too many functions".into()));
    }
    let main = module
        .funcs
        .get(module.main as usize)
        .ok_or_else(|| err(None, None, format!("main index {} out of range", module.main)))?;
    if main.name != "main" {
        return Err(err(None, None, format!("the entry function is `{}`, not `main`", main.name)));
    }
    if main.arity != 0 {
        return Err(err(Some("main"), None, "main must take no arguments".into()));
    }
    // Register lists: walk them once to know where each list starts.
    let mut list_starts = vec![false; module.reglists.len()];
    let mut at = 0;
    while at < module.reglists.len() {
        list_starts[at] = true;
        at += 1 + module.reglists[at] as usize;
    }
    if at != module.reglists.len() {
        return Err(err(None, None, "register-list pool is truncated".into()));
    }
    let mut names = std::collections::HashSet::new();
    for f in &module.funcs {
        let fname = Some(f.name.as_str());
        if !is_ident(&f.name) {
            return Err(err(fname, None, "invalid function name".into()));
        }
        if !names.insert(f.name.as_str()) {
            return Err(err(fname, None, "duplicate function name".into()));
        }
        if f.arity as usize > MAX_ARGS {
            return Err(err(fname, None, format!("arity {} exceeds {MAX_ARGS}", f.arity)));
        }
        if f.frame_size > 256 || f.frame_size < f.arity as u16 {
            return Err(err(fname, None, format!("bad frame size {}", f.frame_size)));
        }
        if f.lines.len() != f.code.len() {
            return Err(err(fname, None, "line table does not match the code".into()));
        }
        match f.code.last() {
            Some(last) if last.is_terminator() => {}
            _ => return Err(err(fname, None, "code must end with ret, halt or jmp (falls off the end)".into())),
        }
        for (pc, ins) in f.code.iter().enumerate() {
            check_instr(&module, f.frame_size, f.code.len(), &list_starts, ins).map_err(|m| err(fname, Some(pc), m))?;
        }
        let named = f.code.iter().filter_map(|ins| highest_register(&module, ins)).max();
        let want = named.map_or(0, |r| r as u16 + 1).max(f.arity as u16);
        if f.frame_size != want {
            let why = match named {
                Some(r) => format!("the highest register it names is r{r}"),
                None => "it names no register".into(),
            };
            return Err(err(
                fname,
                None,
                format!(
                    "frame size {} does not match the code: {why} and it takes {} arguments, so the frame size is {want}",
                    f.frame_size, f.arity
                ),
            ));
        }
        if let Some(pc) = f.lines.iter().position(|p| p.line == 0 || p.col == 0) {
            let p = f.lines[pc];
            return Err(err(
                fname,
                Some(pc),
                format!(
                    "line table position {}:{} is not a source position (lines and columns count from 1)",
                    p.line, p.col
                ),
            ));
        }
    }
    check_pools(&module)?;
    Ok(Program { module })
}

/// The highest register `ins` names (operands and register list), if any.
/// The verifier has checked its register lists are in bounds.
fn highest_register(m: &Module, ins: &Instr) -> Option<u8> {
    ins.operands()
        .into_iter()
        .filter_map(|op| match op {
            Operand::D(r) | Operand::R(r) => Some(r),
            Operand::A(a) => m.reglist(a).iter().copied().max(),
            _ => None,
        })
        .max()
}

/// The pools are exactly what the assembler builds from the code: constants
/// numbered in order of first use (walking the functions and their code in
/// order), each value once, none unused; one register list per instruction
/// that has one, laid out in code order with no gaps; wide immediates only
/// for values outside `i32`.
fn check_pools(m: &Module) -> Result<(), VerifyError> {
    // Index the next new constant of each pool must have.
    let mut next_int = 0usize;
    let mut next_string = 0usize;
    let mut next_list = 0usize;
    for f in &m.funcs {
        for (pc, ins) in f.code.iter().enumerate() {
            let at = |msg: String| VerifyError { func: Some(f.name.clone()), pc: Some(pc), msg };
            for op in ins.operands() {
                match op {
                    Operand::W(w) => {
                        let v = m.ints[w as usize];
                        if i32::try_from(v).is_ok() {
                            return Err(at(format!(
                                "wide immediate {v} fits in 32 bits, so it must be stored inline (the `{}` form with an immediate operand)",
                                ins.info().mnemonic
                            )));
                        }
                        first_use(w as usize, &mut next_int, "integer constant").map_err(at)?;
                    }
                    Operand::T(t) => first_use(t as usize, &mut next_int, "integer constant").map_err(at)?,
                    Operand::S(i) => first_use(i as usize, &mut next_string, "string constant").map_err(at)?,
                    Operand::A(a) => {
                        if a as usize != next_list {
                            return Err(at(format!(
                                "register list #{a} is not the next one in the pool (#{next_list}): each instruction has its own list, in code order"
                            )));
                        }
                        next_list += 1 + m.reglist(a).len();
                    }
                    _ => {}
                }
            }
        }
    }
    let module = |msg: String| VerifyError { func: None, pc: None, msg };
    if let Some(v) = m.ints.get(next_int) {
        return Err(module(format!("integer constant #{next_int} ({v}) is never used")));
    }
    if let Some(s) = m.strings.get(next_string) {
        return Err(module(format!("string constant #{next_string} ({s:?}) is never used")));
    }
    if next_list < m.reglists.len() {
        return Err(module(format!("the register-list pool has unused entries from byte {next_list}")));
    }
    let mut seen = std::collections::HashMap::new();
    for (i, v) in m.ints.iter().enumerate() {
        if let Some(first) = seen.insert(*v, i) {
            return Err(module(format!("integer constant #{i} ({v}) duplicates #{first}: each value is stored once")));
        }
    }
    let mut seen = std::collections::HashMap::new();
    for (i, s) in m.strings.iter().enumerate() {
        if let Some(first) = seen.insert(s.as_str(), i) {
            return Err(module(format!("string constant #{i} ({s:?}) duplicates #{first}: each value is stored once")));
        }
    }
    Ok(())
}

/// A constant index in a pool numbered in order of first use: an index
/// seen before, or the next new one.
fn first_use(i: usize, next: &mut usize, what: &str) -> Result<(), String> {
    match i.cmp(next) {
        std::cmp::Ordering::Less => Ok(()),
        std::cmp::Ordering::Equal => {
            *next += 1;
            Ok(())
        }
        std::cmp::Ordering::Greater => {
            Err(format!("{what} #{i} is used before #{next}: constants are numbered in order of first use"))
        }
    }
}

fn check_instr(m: &Module, frame: u16, code_len: usize, list_starts: &[bool], ins: &Instr) -> Result<(), String> {
    let reg = |r: u8| {
        if (r as u16) < frame {
            Ok(())
        } else {
            Err(format!("register r{r} outside the frame of {frame} registers"))
        }
    };
    if ins.info().is_internal() {
        return Err(format!("opcode 0x{:02x} is internal to the VM and cannot appear in bytecode", ins.code()));
    }
    let mut list_len = None;
    for op in ins.operands() {
        match op {
            Operand::D(r) | Operand::R(r) => reg(r)?,
            Operand::I(_) | Operand::N(_) => {}
            Operand::W(i) => {
                if i as usize >= m.ints.len() {
                    return Err(format!("integer constant #{i} out of range"));
                }
            }
            Operand::T(i) => match m.ints.get(i as usize) {
                Some(v) if *v >= 0 => {}
                Some(v) => return Err(format!("negative threshold {v}")),
                None => return Err(format!("integer constant #{i} out of range")),
            },
            Operand::G(g) => {
                if g > 2 {
                    return Err(format!("generation {g} out of range 0..=2"));
                }
            }
            Operand::L(t) => {
                if t as usize >= code_len {
                    return Err(format!("jump target {t} outside the function"));
                }
            }
            Operand::F(f) => {
                if f as usize >= m.funcs.len() {
                    return Err(format!("call of function #{f}, which does not exist"));
                }
            }
            Operand::S(s) => {
                if s as usize >= m.strings.len() {
                    return Err(format!("string constant #{s} out of range"));
                }
            }
            Operand::A(a) => {
                if !list_starts.get(a as usize).copied().unwrap_or(false) {
                    return Err(format!("register list #{a} out of range"));
                }
                let regs = m.reglist(a);
                for &r in regs {
                    reg(r)?;
                }
                list_len = Some(regs.len());
            }
        }
    }
    match *ins {
        Instr::Call { f, .. } => {
            let callee = &m.funcs[f as usize];
            let n = list_len.unwrap_or(0);
            if n != callee.arity as usize {
                return Err(format!("call of `{}` passes {n} arguments, it takes {}", callee.name, callee.arity));
            }
        }
        _ if list_len.is_some_and(|n| n < ins.info().min_list_len()) => {
            let min = ins.info().min_list_len();
            return Err(format!(
                "{} needs at least {min} register{}",
                ins.info().mnemonic,
                if min == 1 { "" } else { "s" }
            ));
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytecode::format::Pos;

    fn module(src: &str) -> Module {
        crate::asm::assemble("t.asm", src).expect("assembles").module
    }

    /// The verifier's message for `m`, which must be rejected.
    fn rejected(m: Module) -> String {
        verify(m).expect_err("must be rejected").to_string()
    }

    #[test]
    fn assembled_modules_are_canonical() {
        let src = "li r0, 0x1_0000_0000\nli r1, 0x1_0000_0000\nstr r2, \"a\"\nstr r3, \"a\"\nprint r0, r1\n\
                   gcthreshold 7, 0x1_0000_0000, 7\ncall r4, f, r0, r1, r2\n.func f 3\nret\n.end\n";
        let m = module(src);
        assert_eq!(m.funcs[1].frame_size, 3, "at least the arity");
        verify(m).expect("the assembler's output verifies");
    }

    #[test]
    fn frame_size_must_be_exactly_what_the_code_names() {
        let mut m = module("li r0, 1\nprint r0\n");
        m.funcs[0].frame_size = 40;
        let e = rejected(m);
        assert!(e.contains("frame size 40 does not match the code: the highest register it names is r0"), "{e}");
        let mut m = module(".func f 2\nret\n.end\nhalt\n");
        m.funcs[1].frame_size = 3;
        assert!(rejected(m).contains("it names no register and it takes 2 arguments, so the frame size is 2"));
    }

    #[test]
    fn line_table_positions_count_from_one() {
        let mut m = module("halt\n");
        m.funcs[0].lines[0] = Pos { line: 0, col: 0 };
        assert!(rejected(m).contains("instruction 0: line table position 0:0 is not a source position"));
        let mut m = module("halt\n");
        m.funcs[0].lines[0].col = 0;
        assert!(rejected(m).contains("position 1:0"));
    }

    #[test]
    fn pools_hold_each_value_once_all_used_in_first_use_order() {
        let mut m = module("li r0, 0x1_0000_0000\n");
        m.ints.push(5);
        assert!(rejected(m).contains("integer constant #1 (5) is never used"));
        let mut m = module("li r0, 0x1_0000_0000\nli r1, 0x2_0000_0000\n");
        m.ints.swap(0, 1);
        m.funcs[0].code[0] = Instr::LiW { d: 0, w: 1 };
        m.funcs[0].code[1] = Instr::LiW { d: 1, w: 0 };
        assert!(rejected(m).contains("instruction 0: integer constant #1 is used before #0"));
        let mut m = module("li r0, 0x1_0000_0000\nli r1, 0x1_0000_0000\n");
        m.ints.push(1 << 32);
        m.funcs[0].code[1] = Instr::LiW { d: 1, w: 1 };
        assert!(rejected(m).contains("integer constant #1 (4294967296) duplicates #0"));
        let mut m = module("str r0, \"a\"\nstr r1, \"a\"\n");
        m.strings.push("a".into());
        m.funcs[0].code[1] = Instr::Str { d: 1, s: 1 };
        assert!(rejected(m).contains("string constant #1 (\"a\") duplicates #0"));
        let mut m = module("str r0, \"a\"\n");
        m.strings.push("b".into());
        assert!(rejected(m).contains("string constant #1 (\"b\") is never used"));
    }

    #[test]
    fn small_values_are_not_wide_immediates() {
        let mut m = module("li r0, 0x1_0000_0000\n");
        m.ints[0] = 7;
        assert!(rejected(m).contains("wide immediate 7 fits in 32 bits"));
    }

    #[test]
    fn each_register_list_belongs_to_one_instruction_in_order() {
        let mut m = module("print r0\nprint r0\n");
        m.funcs[0].code[1] = Instr::Print { args: 0 };
        assert!(rejected(m).contains("instruction 1: register list #0 is not the next one in the pool (#2)"));
        let mut m = module("print r0\n");
        m.reglists.extend_from_slice(&[1, 0]);
        assert!(rejected(m).contains("the register-list pool has unused entries from byte 2"));
    }
}
