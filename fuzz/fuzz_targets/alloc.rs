//! Sequences of alloc, free and realloc against a model, for each
//! allocator.
#![no_main]
use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use rcvm::mem::alloc::{BumpAllocator, PoolAllocator, SystemAllocator};

fuzz_target!(|data: &[u8]| {
    let (which, rest) = data.split_first().unwrap_or((&0, &[]));
    let mut u = Unstructured::new(rest);
    let r = match which % 3 {
        0 => rcvm::fuzzing::check_alloc_ops(&mut PoolAllocator::new(), &mut u, false),
        1 => rcvm::fuzzing::check_alloc_ops(&mut SystemAllocator::new(), &mut u, false),
        _ => rcvm::fuzzing::check_alloc_ops(&mut BumpAllocator::new(), &mut u, true),
    };
    if let Err(e) = r {
        panic!("{e}");
    }
});
