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
//! - the line table covers every instruction.

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
    }
    Ok(Program { module })
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
            return Err(format!("{} needs at least {min} register{}", ins.info().mnemonic, if min == 1 { "" } else { "s" }));
        }
        _ => {}
    }
    Ok(())
}
