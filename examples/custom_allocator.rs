//! Plugging your own allocator into rcvm.
//!
//! `TracingAllocator` wraps any other allocator and keeps a histogram of
//! request sizes: the kind of instrument a memory-policy experiment
//! needs. Implement `Allocator` (an `unsafe trait`: you promise aligned,
//! disjoint, valid blocks), hand it to `Heap::new`, run a program.
//!
//! Run with: `cargo run --example custom_allocator`

use rcvm::mem::alloc::{AllocStats, Allocator, PoolAllocator};
use rcvm::mem::Heap;
use rcvm::vm::{Limits, Vm};
use std::collections::BTreeMap;
use std::ptr::NonNull;

struct TracingAllocator<A> {
    inner: A,
    sizes: BTreeMap<usize, u64>,
}

// SAFETY: every block comes unchanged from `inner`, which upholds the
// contract.
unsafe impl<A: Allocator> Allocator for TracingAllocator<A> {
    fn name(&self) -> &str {
        "tracing"
    }
    fn alloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        *self.sizes.entry(size).or_insert(0) += 1;
        self.inner.alloc(size)
    }
    unsafe fn free(&mut self, ptr: NonNull<u8>, size: usize) {
        // SAFETY: forwarded under the caller's guarantee.
        unsafe { self.inner.free(ptr, size) }
    }
    unsafe fn realloc(&mut self, ptr: NonNull<u8>, old: usize, new: usize) -> Option<NonNull<u8>> {
        *self.sizes.entry(new).or_insert(0) += 1;
        // SAFETY: forwarded under the caller's guarantee.
        unsafe { self.inner.realloc(ptr, old, new) }
    }
    fn bytes_in_use(&self) -> usize {
        self.inner.bytes_in_use()
    }
    // What an allocation adds, as the wrapped allocator counts it: the
    // heap checks --max-heap with these.
    fn alloc_charge(&self, size: usize) -> usize {
        self.inner.alloc_charge(size)
    }
    fn realloc_charge(&self, ptr: NonNull<u8>, old: usize, new: usize) -> usize {
        self.inner.realloc_charge(ptr, old, new)
    }
    fn stats(&self) -> AllocStats {
        AllocStats { kind: "tracing".into(), ..self.inner.stats() }
    }
}

const PROGRAM: &str = r#"
    list r0
    li r1, 0
loop:
    new r2, 2              ; a 2-slot record: 16-byte header + 2 values
    store r2, 0, r1
    push r0, r2            ; the list's buffer grows through the allocator too
    add r1, r1, 1
    lt r3, r1, 1000
    jnz r3, loop
    str r4, "done"
    print r4
"#;

fn main() {
    let loaded = rcvm::load("example.asm", PROGRAM.as_bytes()).expect("the program assembles");
    let alloc = TracingAllocator { inner: PoolAllocator::new(), sizes: BTreeMap::new() };
    let heap = Heap::new(alloc, 64 << 20);
    let mut vm = Vm::new(&loaded.program, heap, Limits::default());
    let mut out = std::io::stdout();
    vm.run(&mut out).expect("the program runs");
    let heap = vm.into_heap();
    println!("objects: {:?}", heap.object_stats());
    println!("request sizes (bytes: count):");
    for (size, n) in &heap.allocator().sizes {
        println!("  {size:>6}: {n}");
    }
}
