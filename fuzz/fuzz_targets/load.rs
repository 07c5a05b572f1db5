//! Arbitrary bytes as a bytecode file: never panics; an accepted file runs
//! under step, depth and heap limits without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Half the inputs get a valid header so the fuzzer reaches the body
    // (the same mapping the regression replay uses).
    rcvm::fuzzing::check_load(&rcvm::fuzzing::load_target_input(data));
});
