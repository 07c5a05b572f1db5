//! The bytecode: the instruction set ([`isa`]), the module and its file
//! format ([`format`]), the verifier ([`verify`]) and the disassembler
//! ([`disasm`]).
pub mod disasm;
pub mod format;
pub mod isa;
pub mod verify;

pub use format::{Function, Module, Pos};
pub use isa::Instr;
pub use verify::{verify, Program};
