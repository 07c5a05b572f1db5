//! Arbitrary bytes as a bytecode file: never panics; an accepted file runs
//! under step, depth and heap limits without panicking, and disassembles
//! to text that reassembles to the same bytes (`rcvm disasm`'s promise).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Half the inputs get a valid header so the fuzzer reaches the body
    // (the same mapping the regression replay uses).
    let input = rcvm::fuzzing::load_target_input(data);
    rcvm::fuzzing::check_load(&input);
    if let Ok(l) = rcvm::load("fuzz.rcb", &input) {
        if let Err(e) = rcvm::bytecode::disasm::check_round_trip(&l.program) {
            panic!("an accepted file does not round-trip: {e}");
        }
    }
});
