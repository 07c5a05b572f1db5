//! Arbitrary bytes as a bytecode file: never panics; an accepted file runs
//! under step, depth and heap limits without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Half the inputs get a valid header so the fuzzer reaches the body.
    if data.first().is_some_and(|b| b & 1 == 1) {
        let mut v = b"\x89RCB\r\n\x1a\n\x01\x00".to_vec();
        v.extend_from_slice(&data[1..]);
        rcvm::fuzzing::check_load(&v);
    } else {
        rcvm::fuzzing::check_load(data);
    }
});
