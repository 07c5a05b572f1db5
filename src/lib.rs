//! rcvm: a register-based bytecode VM whose objects live in a memory
//! subsystem built like CPython's: a pooled small-object allocator,
//! reference counting, and a threshold-triggered generational cycle
//! collector. Every layer is pluggable, behind a trait:
//! [`mem::alloc::Allocator`], [`mem::RefcountHooks`] and
//! [`mem::gc::GcPolicy`].
//!
//! The pipeline: [`asm`] turns text into a [`bytecode::Module`];
//! [`bytecode::verify`] checks it into a [`bytecode::Program`]; a
//! [`vm::Vm`] runs it over a [`mem::Heap`] built on any
//! [`mem::alloc::Allocator`]. [`load`] is the one-call front door.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod asm;
pub mod bytecode;
pub mod diag;
#[doc(hidden)]
pub mod fuzzing;
pub mod mem;
pub mod stats;
pub mod vm;

use bytecode::format::{Module, MAGIC};
use diag::Diagnostic;

/// Why a program could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// Assembly errors (every one found, up to a cap).
    Asm(Vec<Diagnostic>),
    /// A bytecode file that could not be decoded or verified.
    Bytecode(String),
    /// Neither text nor bytecode: a diagnostic pointing at the first byte
    /// that is not text, to be rendered over the input read lossily
    /// (`String::from_utf8_lossy`; the offsets agree up to that byte).
    NotText(Diagnostic),
}

/// A loaded, verified program, with warnings from assembling it.
pub struct Loaded {
    pub program: bytecode::Program,
    pub warnings: Vec<Diagnostic>,
}

/// True if `bytes` start like a bytecode file.
pub fn is_bytecode(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC[..4])
}

/// Loads `.asm` text or `.rcb` bytecode (told apart by the magic bytes)
/// and verifies it. `name` is the file name used in diagnostics.
pub fn load(name: &str, bytes: &[u8]) -> Result<Loaded, LoadError> {
    if is_bytecode(bytes) {
        let m = Module::from_bytes(bytes).map_err(|e| LoadError::Bytecode(e.to_string()))?;
        let program = bytecode::verify(m).map_err(|e| LoadError::Bytecode(format!("verification failed: {e}")))?;
        return Ok(Loaded { program, warnings: Vec::new() });
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.valid_up_to();
            return Err(LoadError::NotText(
                Diagnostic::error(format!("`{name}` is neither UTF-8 assembly text nor rcvm bytecode"), at..at + 1)
                    .with_label(format!("invalid UTF-8 byte 0x{:02x}", bytes[at]))
                    .with_help("assembly must be UTF-8 text; bytecode starts with the bytes `\\x89RCB`"),
            ));
        }
    };
    if let Some(at) = text.find('\0') {
        return Err(LoadError::NotText(
            Diagnostic::error(format!("`{name}` looks like a binary file, not assembly text"), at..at + 1)
                .with_label("NUL byte"),
        ));
    }
    let a = asm::assemble(name, text).map_err(LoadError::Asm)?;
    let program = bytecode::verify(a.module)
        .map_err(|e| LoadError::Bytecode(format!("internal: assembled code failed verification: {e}")))?;
    Ok(Loaded { program, warnings: a.warnings })
}
