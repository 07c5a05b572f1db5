//! The bytecode module and its file format (`.rcb`).
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! magic      8 bytes  "\x89RCB\r\n\x1a\n"
//! version    u16      FORMAT_VERSION
//! ints       u32 count, then i64 each             (wide immediates, thresholds)
//! strings    u32 count, then (u32 len, UTF-8 bytes) each
//! reglists   u32 len, then bytes                   (count-prefixed register lists)
//! funcs      u32 count, then each:
//!              name (u32 len, bytes), arity u8, frame_size u16,
//!              code: u32 count, then (opcode u8, operands per the ISA table)
//! main       u16      index of `main` in funcs
//! debug      source name (u32 len, bytes), then per function and per
//!            instruction its source position (u32 line, u32 col)
//! ```
//!
//! Decoding never trusts a count: every length is checked against the bytes
//! that remain before anything is allocated. Decoding only parses; the
//! verifier (`bytecode::verify`) checks what the interpreter relies on.

use super::isa::{op_info, Instr, Kind, Operand};
use thiserror::Error;

/// The first bytes of every bytecode file. Like PNG's signature, it has a
/// non-ASCII byte and line endings, so text mangling is detected.
pub const MAGIC: &[u8; 8] = b"\x89RCB\r\n\x1a\n";
/// The version of the file format this build reads and writes.
pub const FORMAT_VERSION: u16 = 1;

/// A source position: 1-based line and column (in characters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

/// One function of a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    pub name: String,
    /// Number of arguments, arriving in `r0 … r(arity-1)`.
    pub arity: u8,
    /// Registers in the frame: the highest register named, plus one (and at
    /// least `arity`).
    pub frame_size: u16,
    pub code: Vec<Instr>,
    /// Source position of each instruction (the line table).
    pub lines: Vec<Pos>,
}

/// A whole program: constants, register lists and functions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Module {
    /// Integer pool (wide immediates and thresholds).
    pub ints: Vec<i64>,
    /// String constants.
    pub strings: Vec<String>,
    /// Count-prefixed register lists (call arguments, print operands).
    pub reglists: Vec<u8>,
    pub funcs: Vec<Function>,
    /// Index of `main` in `funcs`.
    pub main: u16,
    /// Name of the source file the line table refers to.
    pub source_name: String,
}

impl Module {
    /// The registers of the count-prefixed list at `at`. The verifier has
    /// checked that it is in bounds.
    pub fn reglist(&self, at: u32) -> &[u8] {
        let at = at as usize;
        let n = self.reglists[at] as usize;
        &self.reglists[at + 1..at + 1 + n]
    }

    /// Index of the function called `name`.
    pub fn func_index(&self, name: &str) -> Option<usize> {
        self.funcs.iter().position(|f| f.name == name)
    }

    /// Encodes the module as a bytecode file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Vec::new();
        w.extend_from_slice(MAGIC);
        w.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        put_u32(&mut w, self.ints.len() as u32);
        for i in &self.ints {
            w.extend_from_slice(&i.to_le_bytes());
        }
        put_u32(&mut w, self.strings.len() as u32);
        for s in &self.strings {
            put_bytes(&mut w, s.as_bytes());
        }
        put_bytes(&mut w, &self.reglists);
        put_u32(&mut w, self.funcs.len() as u32);
        for f in &self.funcs {
            put_bytes(&mut w, f.name.as_bytes());
            w.push(f.arity);
            w.extend_from_slice(&f.frame_size.to_le_bytes());
            put_u32(&mut w, f.code.len() as u32);
            for ins in &f.code {
                encode_instr(&mut w, ins);
            }
        }
        w.extend_from_slice(&self.main.to_le_bytes());
        put_bytes(&mut w, self.source_name.as_bytes());
        for f in &self.funcs {
            for p in &f.lines {
                put_u32(&mut w, p.line);
                put_u32(&mut w, p.col);
            }
        }
        w
    }

    /// Decodes a bytecode file. Structural errors only; run the verifier
    /// before executing the result.
    pub fn from_bytes(bytes: &[u8]) -> Result<Module, DecodeError> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(MAGIC.len())? != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let version = r.u16()?;
        if version != FORMAT_VERSION {
            return Err(DecodeError::Version(version));
        }
        let n = r.count(8)?;
        let mut ints = Vec::with_capacity(n);
        for _ in 0..n {
            ints.push(i64::from_le_bytes(r.take(8)?.try_into().unwrap_or_default()));
        }
        let n = r.count(4)?;
        let mut strings = Vec::with_capacity(n);
        for _ in 0..n {
            let at = r.at;
            let b = r.bytes()?;
            strings.push(String::from_utf8(b.to_vec()).map_err(|_| DecodeError::Utf8 { offset: at })?);
        }
        let reglists = r.bytes()?.to_vec();
        let n = r.count(11)?;
        let mut funcs = Vec::with_capacity(n);
        for _ in 0..n {
            let at = r.at;
            let name = String::from_utf8(r.bytes()?.to_vec()).map_err(|_| DecodeError::Utf8 { offset: at })?;
            let arity = r.u8()?;
            let frame_size = r.u16()?;
            let len = r.count(1)?;
            let mut code = Vec::with_capacity(len);
            for _ in 0..len {
                code.push(decode_instr(&mut r)?);
            }
            funcs.push(Function { name, arity, frame_size, code, lines: Vec::new() });
        }
        let main = r.u16()?;
        let at = r.at;
        let source_name = String::from_utf8(r.bytes()?.to_vec()).map_err(|_| DecodeError::Utf8 { offset: at })?;
        for f in &mut funcs {
            if r.remaining() / 8 < f.code.len() {
                return Err(DecodeError::Truncated { offset: r.at });
            }
            f.lines = (0..f.code.len())
                .map(|_| Ok(Pos { line: r.u32()?, col: r.u32()? }))
                .collect::<Result<_, DecodeError>>()?;
        }
        if r.remaining() != 0 {
            return Err(DecodeError::Trailing { offset: r.at });
        }
        Ok(Module { ints, strings, reglists, funcs, main, source_name })
    }
}

/// Why a bytecode file could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("not an rcvm bytecode file (bad magic bytes)")]
    BadMagic,
    #[error("unsupported bytecode format version {0} (this rcvm reads version {FORMAT_VERSION})")]
    Version(u16),
    #[error("truncated bytecode file: data ends early at byte {offset}")]
    Truncated { offset: usize },
    #[error("invalid UTF-8 in a name or string at byte {offset}")]
    Utf8 { offset: usize },
    #[error("unknown opcode 0x{code:02x} at byte {offset}")]
    Opcode { code: u8, offset: usize },
    #[error("unexpected trailing data at byte {offset}")]
    Trailing { offset: usize },
}

fn put_u32(w: &mut Vec<u8>, v: u32) {
    w.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(w: &mut Vec<u8>, b: &[u8]) {
    put_u32(w, b.len() as u32);
    w.extend_from_slice(b);
}

fn encode_instr(w: &mut Vec<u8>, ins: &Instr) {
    w.push(ins.code());
    for op in ins.operands() {
        match op {
            Operand::D(x) | Operand::R(x) | Operand::G(x) => w.push(x),
            Operand::N(x) | Operand::T(x) | Operand::F(x) => w.extend_from_slice(&x.to_le_bytes()),
            Operand::I(x) => w.extend_from_slice(&x.to_le_bytes()),
            Operand::W(x) | Operand::L(x) | Operand::S(x) | Operand::A(x) => put_u32(w, x),
        }
    }
}

fn decode_instr(r: &mut Reader) -> Result<Instr, DecodeError> {
    let offset = r.at;
    let code = r.u8()?;
    let info = op_info(code).ok_or(DecodeError::Opcode { code, offset })?;
    let mut ops = smallvec::SmallVec::<[Operand; 4]>::new();
    for k in info.kinds {
        ops.push(match k {
            Kind::D => Operand::D(r.u8()?),
            Kind::R => Operand::R(r.u8()?),
            Kind::G => Operand::G(r.u8()?),
            Kind::N => Operand::N(r.u16()?),
            Kind::T => Operand::T(r.u16()?),
            Kind::F => Operand::F(r.u16()?),
            Kind::I => Operand::I(r.u32()? as i32),
            Kind::W => Operand::W(r.u32()?),
            Kind::L => Operand::L(r.u32()?),
            Kind::S => Operand::S(r.u32()?),
            Kind::A => Operand::A(r.u32()?),
        });
    }
    Instr::from_operands(code, &ops).ok_or(DecodeError::Opcode { code, offset })
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated { offset: self.bytes.len() });
        }
        let s = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// A count of items each at least `min_size` bytes long, checked against
    /// what remains so a damaged count cannot cause a huge allocation.
    fn count(&mut self, min_size: usize) -> Result<usize, DecodeError> {
        let at = self.at;
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size) > self.remaining() {
            return Err(DecodeError::Truncated { offset: at });
        }
        Ok(n)
    }
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.count(1)?;
        self.take(n)
    }
}
