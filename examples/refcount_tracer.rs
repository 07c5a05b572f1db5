//! Watching the reference-count layer: a `RefcountHooks` tracer.
//!
//! The heap tells its hooks of every object it creates and frees (and of
//! every `incref`/`decref`), like CPython 3.13's `PyRefTracer_SetTracer`.
//! `Tracer` tallies objects by kind and by why they were freed (their
//! count reached zero, or the cycle collector found them unreachable), and
//! keeps a histogram of lifetimes. The clock is the object ids: an id is
//! the object's allocation number, so an object's age when it is freed is
//! how many objects were made after it. The histogram shows the
//! generational hypothesis the collector is built on: most objects die
//! young, and the few that survive live long.
//!
//! Give the hooks to the heap with `Heap::with_hooks`; read them back with
//! `heap.hooks()` (or `into_hooks()`). A heap made with `Heap::new` has
//! `NoHooks`, which compiles to nothing.
//!
//! Objects still alive when the heap is dropped (here, the cycles made
//! after the last automatic collection) are not reported freed: the heap
//! gives their memory back whole. The table's `alive` column is them.
//!
//! Run with: `cargo run --example refcount_tracer`

use rcvm::mem::alloc::PoolAllocator;
use rcvm::mem::heap::{ObjectStats, Site};
use rcvm::mem::object::ObjKind;
use rcvm::mem::{FreeCause, Heap, RefcountHooks};
use rcvm::vm::{Limits, Vm};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Counts per kind, per cause, per allocation site, and ages at death.
#[derive(Default)]
struct Tracer {
    /// The newest id created: the clock.
    latest: u32,
    /// Per kind: objects created, and the bytes of their blocks.
    created: BTreeMap<&'static str, (u64, u64)>,
    /// Per kind and cause: objects freed.
    freed: BTreeMap<(&'static str, Cause), u64>,
    /// Objects created per allocation site.
    sites: BTreeMap<Site, u64>,
    /// `ages[k]`: objects freed at an age (in allocations) below 2^k and
    /// at least 2^(k-1) (`ages[0]`: age 0, freed before anything else was
    /// made).
    ages: Vec<u64>,
}

/// `FreeCause` in a fixed order, for the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Cause {
    Refcount,
    Collector,
    HeldByGarbage,
}

impl RefcountHooks for Tracer {
    fn on_create(&mut self, id: u32, kind: ObjKind, size: usize, site: Site) {
        self.latest = id;
        let c = self.created.entry(kind.name()).or_default();
        c.0 += 1;
        c.1 += size as u64;
        *self.sites.entry(site).or_default() += 1;
    }

    fn on_free(&mut self, id: u32, kind: ObjKind, cause: FreeCause, _site: Site) {
        let cause = match cause {
            FreeCause::Refcount => Cause::Refcount,
            FreeCause::Collector => Cause::Collector,
            FreeCause::HeldByGarbage => Cause::HeldByGarbage,
        };
        *self.freed.entry((kind.name(), cause)).or_default() += 1;
        let age = self.latest - id;
        let k = (u32::BITS - age.leading_zeros()) as usize;
        if self.ages.len() <= k {
            self.ages.resize(k + 1, 0);
        }
        self.ages[k] += 1;
    }
}

/// 20,000 rounds. Each makes a 3-slot record and a string that die in the
/// next round; every 10th record is kept in a list to the end; every
/// 100th round makes a two-record cycle holding a string, left to the
/// automatic collector.
const PROGRAM: &str = r#"
    list r0                 ; the long-lived list
    li r1, 0
loop:
    new r2, 3               ; frees the previous round's record
    store r2, 0, r1
    str r3, "tmp"           ; held by the record too
    store r2, 1, r3
    mod r4, r1, 10
    jnz r4, no_keep
    push r0, r2             ; kept
no_keep:
    mod r4, r1, 100
    jnz r4, next
    new r5, 2               ; a cycle: garbage as soon as the registers let go
    new r6, 1
    store r5, 0, r6
    store r6, 0, r5
    str r7, "in a cycle"    ; freed when the collector frees the cycle
    store r5, 1, r7
    del r5
    del r6
    del r7
next:
    add r1, r1, 1
    lt r4, r1, 20000
    jnz r4, loop
    len r4, r0
    print r4                ; 2000
"#;

/// Runs the program with a `Tracer`: the tracer, the heap's statistics,
/// and the source line of each allocation site.
fn trace() -> (Tracer, ObjectStats, BTreeMap<Site, (u32, String)>) {
    let loaded = rcvm::load("tracer.asm", PROGRAM.as_bytes()).expect("the program assembles");
    let heap = Heap::with_hooks(PoolAllocator::new(), 64 << 20, Tracer::default());
    let mut vm = Vm::new(&loaded.program, heap, Limits::default());
    let mut out = Vec::new();
    vm.run(&mut out).expect("the program runs");
    assert_eq!(out, b"2000\n");
    let lines = PROGRAM.lines().collect::<Vec<_>>();
    let sites = vm
        .heap()
        .hooks()
        .sites
        .keys()
        .map(|&s| {
            let line = vm.site_pos(s).1.line;
            let text = lines[line as usize - 1].split(';').next().unwrap_or("").trim().to_string();
            (s, (line, text))
        })
        .collect();
    let stats = vm.heap().object_stats();
    (vm.into_heap().into_hooks(), stats, sites)
}

/// The tracer's report.
fn report(t: &Tracer, sites: &BTreeMap<Site, (u32, String)>) -> String {
    let mut r = String::new();
    let _ = writeln!(r, "                            freed by:");
    let _ = writeln!(r, "kind     created     bytes  refcount collector  garbage   alive");
    for (kind, (n, bytes)) in &t.created {
        let f = |c| t.freed.get(&(*kind, c)).copied().unwrap_or(0);
        let (rc, gc, held) = (f(Cause::Refcount), f(Cause::Collector), f(Cause::HeldByGarbage));
        let alive = n - rc - gc - held;
        let _ = writeln!(r, "{kind:<8} {n:>7} {bytes:>9} {rc:>9} {gc:>9} {held:>8} {alive:>7}");
    }
    let _ = writeln!(r, "\nobjects created per source line:");
    for (site, n) in &t.sites {
        let (line, text) = &sites[site];
        let _ = writeln!(r, "  line {line:>2}: {n:>6}  {text}");
    }
    let _ = writeln!(r, "\nage when freed (objects made between its creation and its free):");
    let total: u64 = t.ages.iter().sum();
    let widest = t.ages.iter().copied().max().unwrap_or(1).max(1);
    for (k, &n) in t.ages.iter().enumerate().filter(|&(_, &n)| n > 0) {
        let range = match k {
            0 | 1 => k.to_string(),
            _ => format!("{}..{}", 1u64 << (k - 1), (1u64 << k) - 1),
        };
        let bar = "#".repeat((n * 40).div_ceil(widest) as usize);
        let _ = writeln!(r, "  {range:>13} {n:>7} {:>5.1}%  {bar}", 100.0 * n as f64 / total as f64);
    }
    r
}

fn main() {
    let (tracer, stats, sites) = trace();
    print!("{}", report(&tracer, &sites));
    // The same totals as the heap's own counters (`--stats`).
    println!(
        "\nheap statistics: {} allocated, {} freed by refcount, {} by the collector, {} alive",
        stats.allocated, stats.freed_by_refcount, stats.freed_by_gc, stats.alive
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tracer_sees_every_object_the_program_makes() {
        let (t, stats, sites) = trace();
        let created = |k| t.created.get(k).map_or(0, |c| c.0);
        let freed = |k, c| t.freed.get(&(k, c)).copied().unwrap_or(0);
        // 20,000 records of 3 slots (64 bytes) and 200 cycles of a 2-slot
        // (48) and a 1-slot record (32); a string each round and each
        // cycle; one list.
        assert_eq!(created("record"), 20_400);
        assert_eq!(t.created["record"].1, 20_000 * 64 + 200 * (48 + 32));
        assert_eq!(created("string"), 20_200);
        assert_eq!(created("list"), 1);
        // Refcounting frees every record and string but the cycles' (the
        // list and what it kept are freed when main returns)...
        assert_eq!(freed("record", Cause::Refcount), 20_000);
        assert_eq!(freed("string", Cause::Refcount), 20_000);
        assert_eq!(freed("list", Cause::Refcount), 1);
        // ...and the collector frees the cycles made before its last
        // collection, with their strings; the rest are still alive when
        // the heap goes.
        let cycles = freed("record", Cause::Collector) / 2;
        assert!(cycles > 150, "{cycles}");
        assert_eq!(freed("record", Cause::Collector), 2 * cycles);
        assert_eq!(freed("string", Cause::HeldByGarbage), cycles);
        assert_eq!(stats.freed_by_gc, 3 * cycles);
        assert_eq!(stats.freed_by_refcount, 40_001);
        assert_eq!(stats.alive, 3 * (200 - cycles));
        // Every free has its age; most objects die very young.
        let frees: u64 = t.ages.iter().sum();
        assert_eq!(frees, stats.freed_by_refcount + stats.freed_by_gc);
        assert!(t.ages[..3].iter().sum::<u64>() * 10 > frees * 8, "{:?}", t.ages);
        // Allocations come from the six allocating lines.
        assert_eq!(t.sites.len(), 6);
        let text = report(&t, &sites);
        assert!(text.contains("line  5:  20000  new r2, 3"), "{text}");
    }
}
