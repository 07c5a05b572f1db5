//! The instruction set, defined once.
//!
//! [`for_each_op!`] lists every opcode with its mnemonic, its operand kinds
//! and a one-line meaning (Pulley's `for_each_op!`, Lua's `lopcodes.h`). The
//! executable [`Instr`] enum, the binary encoder and decoder, the operand
//! view used by the verifier and the disassembler, the assembler's form
//! table and the table in `docs/asm.md` are all generated from it, so they
//! cannot drift apart.
//!
//! Register and immediate forms are separate opcodes: `add rD, rA, K` is
//! `AddRR` when K is a register, `AddRI` when it is an immediate that fits
//! in an `i32` (stored inline) and `AddRW` otherwise (a wide immediate: an
//! index into the module's integer pool). The hot loop never branches on an
//! operand's kind.

/// What an operand of an instruction is, and how it is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Destination register (written), `u8`.
    D,
    /// Source register (read), `u8`.
    R,
    /// Integer immediate stored inline, `i32`.
    I,
    /// Wide integer immediate: index into the integer pool, `u32`.
    W,
    /// Record size immediate 0..=65535, `u16`.
    N,
    /// Collector generation 0..=2, `u8`.
    G,
    /// Non-negative threshold immediate: index into the integer pool, `u16`.
    T,
    /// Jump target: instruction index in the same function, `u32`.
    L,
    /// Function index, `u16`.
    F,
    /// String constant index, `u32`.
    S,
    /// Register list: index of a count-prefixed list in the register-list
    /// pool (call arguments, print operands), `u32`.
    A,
}

impl Kind {
    /// How the kind is written in the syntax column of the docs.
    pub fn syntax(self) -> &'static str {
        match self {
            Kind::D => "rD",
            Kind::R => "rS",
            Kind::I | Kind::W => "IMM",
            Kind::N => "N",
            Kind::G => "G",
            Kind::T => "T",
            Kind::L => "LABEL",
            Kind::F => "FUNC",
            Kind::S => "\"text\"",
            Kind::A => "rA …",
        }
    }

    /// Size of the operand in the bytecode file, in bytes.
    pub fn encoded_size(self) -> usize {
        match self {
            Kind::D | Kind::R | Kind::G => 1,
            Kind::N | Kind::T | Kind::F => 2,
            Kind::I | Kind::W | Kind::L | Kind::S | Kind::A => 4,
        }
    }
}

/// One operand of an instruction, as the verifier and disassembler see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    D(u8),
    R(u8),
    I(i32),
    W(u32),
    N(u16),
    G(u8),
    T(u16),
    L(u32),
    F(u16),
    S(u32),
    A(u32),
}

impl Operand {
    pub fn kind(self) -> Kind {
        match self {
            Operand::D(_) => Kind::D,
            Operand::R(_) => Kind::R,
            Operand::I(_) => Kind::I,
            Operand::W(_) => Kind::W,
            Operand::N(_) => Kind::N,
            Operand::G(_) => Kind::G,
            Operand::T(_) => Kind::T,
            Operand::L(_) => Kind::L,
            Operand::F(_) => Kind::F,
            Operand::S(_) => Kind::S,
            Operand::A(_) => Kind::A,
        }
    }
}

/// Static description of one opcode.
#[derive(Debug)]
pub struct OpInfo {
    /// The opcode's name (the `Instr` variant).
    pub name: &'static str,
    /// Opcode byte in the bytecode file.
    pub code: u8,
    /// Assembly mnemonic; several opcodes may share one.
    pub mnemonic: &'static str,
    /// Operand kinds, in assembly order.
    pub kinds: &'static [Kind],
    /// One-line meaning.
    pub doc: &'static str,
}

impl OpInfo {
    /// Internal opcodes (mnemonic `(fused)`) exist only in the VM's
    /// execution copy of verified code: the assembler cannot write them,
    /// the verifier rejects them in bytecode files, and the docs omit them.
    pub fn is_internal(&self) -> bool {
        self.mnemonic.starts_with('(')
    }

    /// The fewest registers the register list (kind `A`) of this opcode
    /// may hold: `print` prints at least one value; a call passes exactly
    /// its callee's arity, which the assembler and verifier check
    /// separately. The assembler and the verifier both read this, so text
    /// the assembler accepts is never rejected by the verifier.
    pub fn min_list_len(&self) -> usize {
        usize::from(self.mnemonic == "print")
    }
}

/// Invokes `$m!` with the whole instruction table. Each entry is
/// `Name = byte, "mnemonic" { field: Kind, ... } "meaning";`, fields in
/// assembly order.
#[macro_export]
#[doc(hidden)]
macro_rules! for_each_op {
    ($m:ident) => {
        $m! {
            LiI = 0x01, "li" { d: D, i: I } "rD = IMM";
            LiW = 0x02, "li" { d: D, w: W } "rD = IMM (wide)";
            Mov = 0x03, "mov" { d: D, s: R } "rD = rS, retaining it";
            Del = 0x04, "del" { d: D } "release rD and set it to nil";

            AddRR = 0x10, "add" { d: D, a: R, b: R } "rD = rA + rB (checked; two strings concatenate)";
            AddRI = 0x11, "add" { d: D, a: R, i: I } "rD = rA + IMM (checked)";
            AddRW = 0x12, "add" { d: D, a: R, w: W } "rD = rA + IMM (checked, wide)";
            SubRR = 0x13, "sub" { d: D, a: R, b: R } "rD = rA - rB (checked)";
            SubRI = 0x14, "sub" { d: D, a: R, i: I } "rD = rA - IMM (checked)";
            SubRW = 0x15, "sub" { d: D, a: R, w: W } "rD = rA - IMM (checked, wide)";
            MulRR = 0x16, "mul" { d: D, a: R, b: R } "rD = rA * rB (checked)";
            MulRI = 0x17, "mul" { d: D, a: R, i: I } "rD = rA * IMM (checked)";
            MulRW = 0x18, "mul" { d: D, a: R, w: W } "rD = rA * IMM (checked, wide)";
            DivRR = 0x19, "div" { d: D, a: R, b: R } "rD = rA // rB (floor; 0 is an error)";
            DivRI = 0x1a, "div" { d: D, a: R, i: I } "rD = rA // IMM (floor)";
            DivRW = 0x1b, "div" { d: D, a: R, w: W } "rD = rA // IMM (floor, wide)";
            ModRR = 0x1c, "mod" { d: D, a: R, b: R } "rD = rA % rB (sign of the divisor)";
            ModRI = 0x1d, "mod" { d: D, a: R, i: I } "rD = rA % IMM (sign of the divisor)";
            ModRW = 0x1e, "mod" { d: D, a: R, w: W } "rD = rA % IMM (wide)";

            EqRR = 0x20, "eq" { d: D, a: R, b: R } "rD = 1 if rA equals rB else 0";
            EqRI = 0x21, "eq" { d: D, a: R, i: I } "rD = 1 if rA equals IMM else 0";
            EqRW = 0x22, "eq" { d: D, a: R, w: W } "rD = 1 if rA equals IMM else 0 (wide)";
            NeRR = 0x23, "ne" { d: D, a: R, b: R } "rD = 1 if rA differs from rB else 0";
            NeRI = 0x24, "ne" { d: D, a: R, i: I } "rD = 1 if rA differs from IMM else 0";
            NeRW = 0x25, "ne" { d: D, a: R, w: W } "rD = 1 if rA differs from IMM else 0 (wide)";
            LtRR = 0x26, "lt" { d: D, a: R, b: R } "rD = 1 if rA < rB else 0 (ints)";
            LtRI = 0x27, "lt" { d: D, a: R, i: I } "rD = 1 if rA < IMM else 0";
            LtRW = 0x28, "lt" { d: D, a: R, w: W } "rD = 1 if rA < IMM else 0 (wide)";
            LeRR = 0x29, "le" { d: D, a: R, b: R } "rD = 1 if rA <= rB else 0 (ints)";
            LeRI = 0x2a, "le" { d: D, a: R, i: I } "rD = 1 if rA <= IMM else 0";
            LeRW = 0x2b, "le" { d: D, a: R, w: W } "rD = 1 if rA <= IMM else 0 (wide)";
            GtRR = 0x2c, "gt" { d: D, a: R, b: R } "rD = 1 if rA > rB else 0 (ints)";
            GtRI = 0x2d, "gt" { d: D, a: R, i: I } "rD = 1 if rA > IMM else 0";
            GtRW = 0x2e, "gt" { d: D, a: R, w: W } "rD = 1 if rA > IMM else 0 (wide)";
            GeRR = 0x2f, "ge" { d: D, a: R, b: R } "rD = 1 if rA >= rB else 0 (ints)";
            GeRI = 0x30, "ge" { d: D, a: R, i: I } "rD = 1 if rA >= IMM else 0";
            GeRW = 0x31, "ge" { d: D, a: R, w: W } "rD = 1 if rA >= IMM else 0 (wide)";
            Not = 0x32, "not" { d: D, s: R } "rD = 1 if rS is nil or 0 else 0";

            Jmp = 0x40, "jmp" { t: L } "jump to LABEL";
            Jz = 0x41, "jz" { s: R, t: L } "jump to LABEL if rS is nil or 0";
            Jnz = 0x42, "jnz" { s: R, t: L } "jump to LABEL unless rS is nil or 0";
            Call = 0x43, "call" { d: D, f: F, args: A } "rD = FUNC(rA …), arguments retained into the callee's r0 …";
            Ret0 = 0x44, "ret" { } "return nil, releasing the frame";
            Ret = 0x45, "ret" { s: R } "return rS, releasing the frame";
            Halt = 0x46, "halt" { } "stop the program, releasing every frame";
            Print = 0x47, "print" { args: A } "print the values, separated by a space, then a newline";

            New = 0x50, "new" { d: D, n: N } "rD = new record of N nil slots";
            List = 0x51, "list" { d: D } "rD = new empty list";
            Dict = 0x52, "dict" { d: D } "rD = new empty dict";
            Str = 0x53, "str" { d: D, s: S } "rD = new string";
            LoadRR = 0x54, "load" { d: D, o: R, k: R } "rD = rO[rK] (index or key)";
            LoadRI = 0x55, "load" { d: D, o: R, i: I } "rD = rO[IMM]";
            LoadRW = 0x56, "load" { d: D, o: R, w: W } "rD = rO[IMM] (wide)";
            StoreRR = 0x57, "store" { o: R, k: R, s: R } "rO[rK] = rS";
            StoreRI = 0x58, "store" { o: R, i: I, s: R } "rO[IMM] = rS";
            StoreRW = 0x59, "store" { o: R, w: W, s: R } "rO[IMM] = rS (wide)";
            Push = 0x5a, "push" { l: R, s: R } "append rS to list rL";
            Pop = 0x5b, "pop" { d: D, l: R } "rD = last element of list rL, removed";
            Len = 0x5c, "len" { d: D, o: R } "rD = slots, elements, entries or string bytes of rO";
            HasRR = 0x5d, "has" { d: D, o: R, k: R } "rD = 1 if dict rO has key rK else 0";
            HasRI = 0x5e, "has" { d: D, o: R, i: I } "rD = 1 if dict rO has key IMM else 0";
            HasRW = 0x5f, "has" { d: D, o: R, w: W } "rD = 1 if dict rO has key IMM else 0 (wide)";
            DelItemRR = 0x60, "delitem" { o: R, k: R } "remove key rK of a dict, or element rK of a list";
            DelItemRI = 0x61, "delitem" { o: R, i: I } "remove key or element IMM";
            DelItemRW = 0x62, "delitem" { o: R, w: W } "remove key or element IMM (wide)";
            Incref = 0x63, "incref" { s: R } "add one count to rS's object, with no new owner";
            Decref = 0x64, "decref" { s: R } "remove one count from rS's object, freeing it at 0";
            Refcount = 0x65, "refcount" { d: D, s: R } "rD = the refcount of rS's object";

            Gc = 0x70, "gc" { d: D, g: G } "collect generations 0..=G (default 2); rD = objects freed";
            GcEnable = 0x71, "gcenable" { } "turn automatic collection on";
            GcDisable = 0x72, "gcdisable" { } "turn automatic collection off";
            GcThreshold = 0x73, "gcthreshold" { t0: T, t1: T, t2: T } "set the thresholds (T0 = 0: automatic collection off)";
            GcCount = 0x74, "gccount" { d: D, g: G } "rD = the count of generation G";

            LtRRJ = 0xd0, "(fused)" { d: D, a: R, b: R, off: G, z: G } "internal: `lt rD, rA, rB` and the `jz`/`jnz rD` after it (Z = 1: jz) to the instruction OFF (signed) from the `lt`";
            LtRIJ = 0xd1, "(fused)" { d: D, a: R, i: N, off: G, z: G } "internal: `lt rD, rA, IMM` (IMM a signed 16-bit value) and the `jz`/`jnz rD` after it, as LtRRJ";
            LeRRJ = 0xd2, "(fused)" { d: D, a: R, b: R, off: G, z: G } "internal: `le rD, rA, rB` and the `jz`/`jnz rD` after it (Z = 1: jz) to the instruction OFF (signed) from the `le`";
            LeRIJ = 0xd3, "(fused)" { d: D, a: R, i: N, off: G, z: G } "internal: `le rD, rA, IMM` (IMM a signed 16-bit value) and the `jz`/`jnz rD` after it, as LeRRJ";
            GtRRJ = 0xd4, "(fused)" { d: D, a: R, b: R, off: G, z: G } "internal: `gt rD, rA, rB` and the `jz`/`jnz rD` after it (Z = 1: jz) to the instruction OFF (signed) from the `gt`";
            GtRIJ = 0xd5, "(fused)" { d: D, a: R, i: N, off: G, z: G } "internal: `gt rD, rA, IMM` (IMM a signed 16-bit value) and the `jz`/`jnz rD` after it, as GtRRJ";
            GeRRJ = 0xd6, "(fused)" { d: D, a: R, b: R, off: G, z: G } "internal: `ge rD, rA, rB` and the `jz`/`jnz rD` after it (Z = 1: jz) to the instruction OFF (signed) from the `ge`";
            GeRIJ = 0xd7, "(fused)" { d: D, a: R, i: N, off: G, z: G } "internal: `ge rD, rA, IMM` (IMM a signed 16-bit value) and the `jz`/`jnz rD` after it, as GeRRJ";
            EqRRJ = 0xd8, "(fused)" { d: D, a: R, b: R, off: G, z: G } "internal: `eq rD, rA, rB` and the `jz`/`jnz rD` after it (Z = 1: jz) to the instruction OFF (signed) from the `eq`";
            EqRIJ = 0xd9, "(fused)" { d: D, a: R, i: N, off: G, z: G } "internal: `eq rD, rA, IMM` (IMM a signed 16-bit value) and the `jz`/`jnz rD` after it, as EqRRJ";
            NeRRJ = 0xda, "(fused)" { d: D, a: R, b: R, off: G, z: G } "internal: `ne rD, rA, rB` and the `jz`/`jnz rD` after it (Z = 1: jz) to the instruction OFF (signed) from the `ne`";
            NeRIJ = 0xdb, "(fused)" { d: D, a: R, i: N, off: G, z: G } "internal: `ne rD, rA, IMM` (IMM a signed 16-bit value) and the `jz`/`jnz rD` after it, as NeRRJ";
            AddICall = 0xe0, "(fused)" { x: D, a: R, i: G, d: D, f: F } "internal: `add rX, rA, I` (I a signed byte) and the `call rD, FUNC, rX` after it";
            SubICall = 0xe1, "(fused)" { x: D, a: R, i: G, d: D, f: F } "internal: `sub rX, rA, I` (I a signed byte) and the `call rD, FUNC, rX` after it";
            LoadRU = 0xe4, "(fused)" { d: D, o: R, i: N } "internal: `load rD, rO, IMM` with IMM in 0..=65535 (no counting from the end)";
            StoreRU = 0xe5, "(fused)" { o: R, i: N, s: R } "internal: `store rO, IMM, rS` with IMM in 0..=65535 (no counting from the end)";
            Call1 = 0xee, "(fused)" { d: D, f: F, a: R } "internal: `call rD, FUNC, rA` with its one argument inline";
            Call2 = 0xef, "(fused)" { d: D, f: F, a: R, b: R } "internal: `call rD, FUNC, rA, rB` with its two arguments inline";
            IncLtJnz = 0xf0, "(fused)" { d: D, y: R, span: G, last: I } "internal: `add rD, rD, 1; lt rY, rD, LAST + 1; jnz rY, T` in one dispatch, T being SPAN - 3 instructions before it (SPAN: the instructions of one round)";
            Trap = 0xff, "(trap)" { } "internal: what the VM fetches past the end of the code (never, for verified code): an error, not a panic";
        }
    };
}

macro_rules! field_ty {
    (D) => {
        u8
    };
    (R) => {
        u8
    };
    (I) => {
        i32
    };
    (W) => {
        u32
    };
    (N) => {
        u16
    };
    (G) => {
        u8
    };
    (T) => {
        u16
    };
    (L) => {
        u32
    };
    (F) => {
        u16
    };
    (S) => {
        u32
    };
    (A) => {
        u32
    };
}

macro_rules! define_isa {
    ($( $name:ident = $code:literal, $mn:literal { $($f:ident : $k:ident),* } $doc:literal; )*) => {
        /// One executable instruction: an opcode with its operands inline.
        /// Its size is pinned at 8 bytes by a test.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Instr {
            $( #[doc = $doc] $name { $($f: field_ty!($k)),* }, )*
        }

        /// Every opcode, in table order.
        pub static OPS: &[OpInfo] = &[
            $( OpInfo { name: stringify!($name), code: $code, mnemonic: $mn,
                        kinds: &[$(Kind::$k),*], doc: $doc }, )*
        ];

        impl Instr {
            /// The static description of this instruction's opcode.
            pub fn info(&self) -> &'static OpInfo {
                op_info(self.code()).expect("every opcode is in OPS")
            }

            /// The opcode byte.
            pub fn code(&self) -> u8 {
                match self { $( Instr::$name { .. } => $code, )* }
            }

            /// The operands, in assembly order.
            #[allow(unused_mut)]
            pub fn operands(&self) -> smallvec::SmallVec<[Operand; 4]> {
                let mut v = smallvec::SmallVec::new();
                match *self {
                    $( Instr::$name { $($f),* } => { $( v.push(Operand::$k($f)); )* } )*
                }
                v
            }

            /// Builds an instruction from an opcode byte and operands of the
            /// right kinds; `None` if they do not match.
            #[allow(unused_mut, unused_variables)]
            pub fn from_operands(code: u8, ops: &[Operand]) -> Option<Instr> {
                match code {
                    $( $code => {
                        let mut it = ops.iter();
                        $( let $f = match it.next() { Some(Operand::$k(x)) => *x, _ => return None }; )*
                        if it.next().is_some() { return None; }
                        Some(Instr::$name { $($f),* })
                    } )*
                    _ => None,
                }
            }
        }
    };
}

for_each_op!(define_isa);

/// The description of the opcode with byte `code`.
pub fn op_info(code: u8) -> Option<&'static OpInfo> {
    // Built once; opcode bytes are sparse.
    static TABLE: std::sync::OnceLock<[Option<&'static OpInfo>; 256]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [None; 256];
        for op in OPS {
            t[op.code as usize] = Some(op);
        }
        t
    })[code as usize]
}

/// The opcodes sharing a mnemonic, in table order.
pub fn forms(mnemonic: &str) -> impl Iterator<Item = &'static OpInfo> + '_ {
    OPS.iter().filter(move |op| op.mnemonic == mnemonic)
}

/// Every distinct mnemonic, in table order.
pub fn mnemonics() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for op in OPS.iter().filter(|op| !op.is_internal()) {
        if !out.contains(&op.mnemonic) {
            out.push(op.mnemonic);
        }
    }
    out
}

impl Instr {
    /// True for instructions after which control never falls through.
    pub fn is_terminator(&self) -> bool {
        matches!(self, Instr::Jmp { .. } | Instr::Ret0 {} | Instr::Ret { .. } | Instr::Halt {})
    }

    /// The register this instruction writes, if any (for `--trace`).
    pub fn dest(&self) -> Option<u8> {
        self.operands().iter().find_map(|o| match o {
            Operand::D(r) => Some(*r),
            _ => None,
        })
    }
}

/// The instruction table as Markdown, as `docs/asm.md` must contain it.
pub fn markdown_table() -> String {
    let mut s = String::from("| opcode | byte | syntax | meaning |\n|---|---|---|---|\n");
    for op in OPS.iter().filter(|op| !op.is_internal()) {
        let syn: Vec<&str> = op.kinds.iter().map(|k| k.syntax()).collect();
        let syntax =
            if syn.is_empty() { op.mnemonic.to_string() } else { format!("{} {}", op.mnemonic, syn.join(", ")) };
        s.push_str(&format!("| `{}` | `0x{:02x}` | `{}` | {} |\n", op.name, op.code, syntax, op.doc));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instruction_is_eight_bytes() {
        assert_eq!(std::mem::size_of::<Instr>(), 8);
    }

    #[test]
    fn opcode_bytes_are_unique_and_round_trip() {
        let mut seen = [false; 256];
        for op in OPS {
            assert!(!seen[op.code as usize], "duplicate opcode byte {:#x}", op.code);
            seen[op.code as usize] = true;
            assert_eq!(op_info(op.code).unwrap().name, op.name);
        }
    }

    #[test]
    fn from_operands_inverts_operands() {
        let i = Instr::StoreRI { o: 3, i: -5, s: 7 };
        assert_eq!(Instr::from_operands(i.code(), &i.operands()), Some(i));
        assert_eq!(Instr::from_operands(i.code(), &[Operand::R(1)]), None);
        assert_eq!(i.info().mnemonic, "store");
    }
}
