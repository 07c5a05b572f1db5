//! Random object graphs and roots: the collector frees exactly the
//! unreachable set.
#![no_main]
use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = rcvm::fuzzing::check_gc_oracle(&mut Unstructured::new(data)) {
        panic!("{e}");
    }
});
