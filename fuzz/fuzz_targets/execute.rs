//! Structure-aware programs using every object and gc instruction, calls
//! and jumps: no panic, the heap verifier holds after every instruction,
//! and without incref/decref nothing is alive after a final collection.
#![no_main]
use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use rcvm::fuzzing::{check_execute, gen_program, GenOptions};

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let manual = u.arbitrary::<bool>().unwrap_or(false);
    let o = GenOptions { manual_counts: manual, ..GenOptions::default() };
    let Ok(text) = gen_program(&mut u, &o, 40) else { return };
    if let Err(e) = check_execute(&text, manual) {
        panic!("{e}\n--- program ---\n{text}");
    }
});
