//! Plugging your own collector policy into rcvm.
//!
//! The collector itself (trial deletion over three generations) is fixed;
//! *when* it runs, and on which generation, is a `GcPolicy`. The heap asks
//! the policy each time count 0 (tracked allocations minus deallocations
//! since the last collection) passes threshold 0; returning `Some(g)`
//! collects generations `0..=g` there and then, `None` lets the program
//! carry on. The default, `CPythonPolicy`, is CPython's: the oldest
//! generation whose count passes its threshold, with the 25% rule holding
//! back full collections.
//!
//! `YoungOnly` never runs a full collection: cheaper pauses, but cycles that
//! survive into generation 2 stay until the program collects by hand. The
//! example runs the same cycle-making program under both and compares.
//!
//! Run with: `cargo run --example custom_gc_policy`

use rcvm::mem::alloc::PoolAllocator;
use rcvm::mem::gc::{CPythonPolicy, GcCounters, GcPolicy};
use rcvm::mem::Heap;
use rcvm::vm::{Limits, Vm};

/// Collect generation 0, or 1 when its count passes its threshold; never 2.
struct YoungOnly;

impl GcPolicy for YoungOnly {
    fn on_alloc(&mut self, c: &GcCounters) -> Option<usize> {
        Some(if c.counts[1] > c.thresholds[1] { 1 } else { 0 })
    }
    fn name(&self) -> &str {
        "young-only"
    }
}

/// 200,000 two-record cycles, each dropped at once; every 1000th is also
/// kept alive for a while (held in a list that is cleared periodically), so
/// some cycles age into the older generations before they become garbage.
const PROGRAM: &str = r#"
    li r0, 0
    list r5
loop:
    new r1, 1
    new r2, 1
    store r1, 0, r2
    store r2, 0, r1
    mod r3, r0, 1000
    jnz r3, drop
    push r5, r1
    len r4, r5
    lt r4, r4, 20
    jnz r4, drop
    list r5                 ; the old list and the cycles it held become garbage
drop:
    del r1
    del r2
    add r0, r0, 1
    lt r3, r0, 200000
    jnz r3, loop
    del r5
    gccount r6, 0
    print r6
"#;

fn run(policy: Box<dyn GcPolicy>) {
    let loaded = rcvm::load("example.asm", PROGRAM.as_bytes()).expect("the program assembles");
    let mut heap = Heap::new(PoolAllocator::new(), usize::MAX);
    heap.set_gc_policy(policy);
    let mut vm = Vm::new(&loaded.program, heap, Limits::default());
    let mut out = Vec::new();
    vm.run(&mut out).expect("the program runs");
    let heap = vm.into_heap();
    let g = heap.gc_stats();
    println!(
        "{:>10}: collections {:?}, collected {:?}, still alive at exit {}",
        g.policy,
        g.collections,
        g.collected,
        heap.object_stats().alive
    );
}

fn main() {
    run(Box::new(CPythonPolicy));
    run(Box::new(YoungOnly));
}
