//! Arbitrary text (and bytes) to the assembler: never panics; an accepted
//! program verifies, and its disassembly reassembles to identical bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match std::str::from_utf8(data) {
        Ok(text) => {
            if let Err(e) = rcvm::fuzzing::check_assemble(text) {
                panic!("{e}");
            }
        }
        Err(_) => {
            let _ = rcvm::load("fuzz.asm", data);
        }
    }
});
