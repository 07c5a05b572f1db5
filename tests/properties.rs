//! Property tests over generated programs and damaged inputs, using the
//! same generators and oracles as the cargo-fuzz targets.

use arbitrary::Unstructured;
use proptest::prelude::*;
use rcvm::bytecode::disasm::check_round_trip;
use rcvm::fuzzing::{check_assemble, check_execute, check_load, gen_program, GenOptions};

fn program(bytes: &[u8], o: &GenOptions, max_len: usize) -> String {
    gen_program(&mut Unstructured::new(bytes), o, max_len).unwrap_or_else(|_| "halt\n".into())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random valid programs assemble, verify, disassemble and reassemble to
    /// identical bytes; the bytes decode to the same module.
    #[test]
    fn generated_programs_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let text = program(&bytes, &GenOptions::default(), 30);
        prop_assert!(rcvm::load("gen.asm", text.as_bytes()).is_ok(), "generated program rejected:\n{}", text);
        if let Err(e) = check_assemble(&text) {
            prop_assert!(false, "{}\n--- program ---\n{}", e, text);
        }
    }

    /// For programs without incref/decref, the heap verifier holds after
    /// every instruction, and nothing is alive after the run and a full
    /// collection.
    #[test]
    fn heap_verifier_holds_after_every_instruction(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let o = GenOptions { manual_counts: false, ..GenOptions::default() };
        let text = program(&bytes, &o, 25);
        if let Err(e) = check_execute(&text, false) {
            prop_assert!(false, "{}\n--- program ---\n{}", e, text);
        }
    }

    /// With incref/decref (dangling references, double frees), the heap
    /// stays verifiable and the VM never panics.
    #[test]
    fn manual_counts_never_corrupt_the_heap(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let text = program(&bytes, &GenOptions::default(), 25);
        if let Err(e) = check_execute(&text, true) {
            prop_assert!(false, "{}\n--- program ---\n{}", e, text);
        }
    }

    /// Damaged bytecode files are rejected or run under limits; never a
    /// panic.
    #[test]
    fn damaged_bytecode_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let text = program(&bytes, &GenOptions::default(), 20);
        let mut rcb = rcvm::load("gen.asm", text.as_bytes()).unwrap().program.to_bytes();
        for (at, b) in flips {
            let n = rcb.len();
            rcb[at % n] ^= b | 1;
        }
        check_load(&rcb);
        if let Ok(l) = rcvm::load("damaged.rcb", &rcb) {
            if let Err(e) = check_round_trip(&l.program) {
                prop_assert!(false, "an accepted file does not round-trip: {}", e);
            }
        }
        rcb.truncate(cut % (rcb.len() + 1));
        check_load(&rcb);
    }

    /// Arbitrary text made of the language's own tokens never panics the
    /// assembler, and whatever it accepts round-trips.
    #[test]
    fn token_soup_never_panics(words in proptest::collection::vec(
        prop_oneof![
            Just("add"), Just("r1"), Just("r300"), Just(","), Just(":"), Just("\n"), Just(".func"),
            Just(".end"), Just("f"), Just("1"), Just("-9223372036854775809"), Just("\"s\\x"),
            Just("call"), Just("L"), Just("jmp"), Just("ret"), Just("@"), Just(";"), Just("gc"),
            Just("new"), Just("65536"), Just("0b2"), Just("\t"), Just("é"), Just("store"), Just("\"a\""),
        ], 0..60)) {
        let text = words.join(" ");
        if let Err(e) = check_assemble(&text) {
            prop_assert!(false, "{}\n--- input ---\n{}", e, text);
        }
    }
}

/// Every bytecode file the loader accepts disassembles to text that
/// reassembles to the same bytes (`rcvm disasm`'s promise): each byte of
/// each assembled `asm/*.asm` program, changed four ways, gives a file that
/// is either rejected or round-trips. A frame size larger than the code
/// needs, a line or column 0 and a constant index out of first-use order
/// are among what this finds.
#[test]
fn accepted_bytecode_disassembles_to_the_same_bytes() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("asm");
    let mut paths: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    let (mut tried, mut accepted) = (0, 0);
    for path in paths.iter().filter(|p| p.extension().is_some_and(|e| e == "asm")) {
        let src = std::fs::read(path).unwrap();
        let bytes =
            rcvm::load("prog.asm", &src).unwrap_or_else(|_| panic!("{} loads", path.display())).program.to_bytes();
        for at in 0..bytes.len() {
            let b = bytes[at];
            for changed in [b.wrapping_add(1), b.wrapping_sub(1), 0, b ^ 0x80] {
                if changed == b {
                    continue;
                }
                let mut damaged = bytes.clone();
                damaged[at] = changed;
                tried += 1;
                if let Ok(l) = rcvm::load("damaged.rcb", &damaged) {
                    accepted += 1;
                    if let Err(e) = check_round_trip(&l.program) {
                        panic!("{}, byte {at} set to {changed:#04x}: accepted, but {e}", path.display());
                    }
                }
            }
        }
    }
    // Some damage is harmless (a register, an immediate, a position):
    // those files must be accepted, or this test checks nothing.
    assert!(accepted > tried / 20, "only {accepted} of {tried} damaged files were accepted");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// After a full collection the survivors are exactly what a mark from
    /// the roots reaches, and `gc` reports the unreachable containers.
    #[test]
    fn collector_frees_exactly_the_unreachable(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        if let Err(e) = rcvm::fuzzing::check_gc_oracle(&mut Unstructured::new(&bytes)) {
            prop_assert!(false, "{}", e);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Each allocator against the model: aligned, disjoint, contents kept,
    /// accounting right.
    #[test]
    fn allocators_behave_like_the_model(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        use rcvm::mem::alloc::{BumpAllocator, PoolAllocator, SystemAllocator};
        let check = |r: Result<(), String>, which: &str| r.map_err(|e| format!("{which}: {e}"));
        let r = check(rcvm::fuzzing::check_alloc_ops(&mut PoolAllocator::new(), &mut Unstructured::new(&bytes), false), "pool")
            .and_then(|_| check(rcvm::fuzzing::check_alloc_ops(&mut SystemAllocator::new(), &mut Unstructured::new(&bytes), false), "system"))
            .and_then(|_| check(rcvm::fuzzing::check_alloc_ops(&mut BumpAllocator::new(), &mut Unstructured::new(&bytes), true), "bump"));
        if let Err(e) = r {
            prop_assert!(false, "{}", e);
        }
    }
}
