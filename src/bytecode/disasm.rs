//! The disassembler: a module back to assembly text that reassembles to
//! the same bytes.
//!
//! Jump targets get labels `L<index>`; wide immediates and thresholds are
//! printed as their values; each instruction carries its original source
//! position as an `@LINE:COL` annotation and the listing starts with a
//! `.source` directive, so the line table survives the round trip too.

use super::format::Module;
use super::isa::{Instr, Operand};
use super::verify::Program;
use crate::asm::lexer::quote;
use std::collections::BTreeSet;
use std::fmt::Write;

/// Formats one operand as assembly text.
fn operand(m: &Module, op: Operand, out: &mut String) {
    match op {
        Operand::D(r) | Operand::R(r) => {
            let _ = write!(out, "r{r}");
        }
        Operand::I(i) => {
            let _ = write!(out, "{i}");
        }
        Operand::W(w) => {
            let _ = write!(out, "{}", m.ints[w as usize]);
        }
        Operand::T(t) => {
            let _ = write!(out, "{}", m.ints[t as usize]);
        }
        Operand::N(n) => {
            let _ = write!(out, "{n}");
        }
        Operand::G(g) => {
            let _ = write!(out, "{g}");
        }
        Operand::L(t) => {
            let _ = write!(out, "L{t}");
        }
        Operand::F(f) => out.push_str(&m.funcs[f as usize].name),
        Operand::S(s) => quote(&m.strings[s as usize], out),
        Operand::A(a) => {
            let regs: Vec<String> = m.reglist(a).iter().map(|r| format!("r{r}")).collect();
            out.push_str(&regs.join(", "));
        }
    }
}

/// One instruction as assembly text, without label or location.
pub fn instr_text(m: &Module, ins: &Instr) -> String {
    let mut s = String::from(ins.info().mnemonic);
    let ops = ins.operands();
    for (i, op) in ops.iter().enumerate() {
        if matches!(op, Operand::A(a) if m.reglist(*a).is_empty()) {
            continue;
        }
        s.push_str(if i == 0 { " " } else { ", " });
        operand(m, *op, &mut s);
    }
    s
}

/// Disassembles a verified module.
pub fn disassemble(m: &Module) -> String {
    let mut out = String::new();
    out.push_str(".source ");
    quote(&m.source_name, &mut out);
    out.push('\n');
    for f in &m.funcs {
        let _ = writeln!(out, "\n.func {} {}", f.name, f.arity);
        let targets: BTreeSet<u32> = f
            .code
            .iter()
            .flat_map(|i| i.operands())
            .filter_map(|o| if let Operand::L(t) = o { Some(t) } else { None })
            .collect();
        for (pc, ins) in f.code.iter().enumerate() {
            if targets.contains(&(pc as u32)) {
                let _ = writeln!(out, "L{pc}:");
            }
            let text = instr_text(m, ins);
            let p = f.lines[pc];
            let _ = writeln!(out, "    {text:<32} @{}:{}", p.line, p.col);
        }
        out.push_str(".end\n");
    }
    out
}

/// Checks `rcvm disasm`'s promise for a loaded program: its disassembly
/// reassembles to the same bytes. The verifier's canonical-form checks are
/// what make this hold for every file the loader accepts; this is their
/// oracle, for tests and fuzzing.
pub fn check_round_trip(p: &Program) -> Result<(), String> {
    let listing = disassemble(p);
    let again = crate::asm::assemble("listing.asm", &listing).map_err(|e| {
        format!("the disassembly does not reassemble:\n{}{listing}", crate::diag::render("listing.asm", &listing, &e))
    })?;
    let again = super::verify(again.module)
        .map_err(|e| format!("the disassembly reassembles but does not verify: {e}\n{listing}"))?;
    if again.to_bytes() != p.to_bytes() {
        return Err(format!("the disassembly reassembles to different bytes:\n{listing}"));
    }
    Ok(())
}
