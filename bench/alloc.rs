//! Criterion benchmarks for layer 1 of the memory subsystem: the pool
//! allocator against the system allocator, through the public
//! `rcvm::mem::alloc::Allocator` trait (the same monomorphised calls the
//! heap makes).
//!
//! - `alloc_free_pair/{pool,system}/SIZE`: one `alloc` immediately followed
//!   by its `free`, for 16, 32, 64, 128 and 512 bytes, with one other block
//!   of the size kept live throughout (a warm pool, as in any running
//!   program: otherwise every free would empty the pool and every alloc
//!   would fetch a fresh one, which is obmalloc's, and CPython's, worst
//!   case rather than its pair cost). The block comes straight back off the
//!   free list it went to.
//! - `steady_state/{pool,system}/SIZE`: a window of 1000 live blocks; each
//!   iteration frees the oldest and allocates a replacement (and writes its
//!   first word, as the heap writes an object header). `mixed` cycles the
//!   request size through 16..=512 so several size classes are live at once.
//!
//! Run with `cargo bench --bench alloc` (add `-- steady_state` to filter).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rcvm::mem::alloc::{Allocator, PoolAllocator, SystemAllocator};
use std::hint::black_box;
use std::ptr::NonNull;
use std::time::Duration;

const SIZES: [usize; 5] = [16, 32, 64, 128, 512];
const WINDOW: usize = 1000;
/// Request sizes of the `mixed` steady-state variant (16-byte multiples,
/// in a scrambled order so consecutive requests hit different classes).
const MIXED: [usize; 8] = [48, 512, 16, 96, 256, 32, 128, 64];

fn pair<A: Allocator>(a: &mut A, size: usize) {
    let p = a.alloc(black_box(size)).expect("out of memory");
    // SAFETY: `p` was just allocated by `a` with this size and not freed.
    unsafe { a.free(black_box(p), size) }
}

fn bench_pairs(c: &mut Criterion) {
    let mut g = c.benchmark_group("alloc_free_pair");
    g.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    for size in SIZES {
        g.bench_with_input(BenchmarkId::new("pool", size), &size, |b, &size| {
            let mut a = PoolAllocator::new();
            let keep = a.alloc(size).expect("out of memory");
            b.iter(|| pair(&mut a, size));
            // SAFETY: allocated above with this size, freed once.
            unsafe { a.free(keep, size) };
        });
        g.bench_with_input(BenchmarkId::new("system", size), &size, |b, &size| {
            let mut a = SystemAllocator::new();
            let keep = a.alloc(size).expect("out of memory");
            b.iter(|| pair(&mut a, size));
            // SAFETY: allocated above with this size, freed once.
            unsafe { a.free(keep, size) };
        });
    }
    g.finish();
}

/// A ring of live blocks: each `step` frees the oldest and allocates a
/// replacement of size `size_of(step number)`.
struct Window<A: Allocator, F: Fn(usize) -> usize> {
    alloc: A,
    blocks: Vec<(NonNull<u8>, usize)>,
    next: usize,
    n: usize,
    size_of: F,
}

impl<A: Allocator, F: Fn(usize) -> usize> Window<A, F> {
    fn new(mut alloc: A, size_of: F) -> Self {
        let blocks = (0..WINDOW)
            .map(|i| {
                let size = size_of(i);
                (alloc.alloc(size).expect("out of memory"), size)
            })
            .collect();
        Window { alloc, blocks, next: 0, n: WINDOW, size_of }
    }

    #[inline]
    fn step(&mut self) {
        let (old, old_size) = self.blocks[self.next];
        // SAFETY: every block in the window is live and was allocated by
        // `self.alloc` with the size stored next to it.
        unsafe { self.alloc.free(black_box(old), old_size) };
        let size = (self.size_of)(self.n);
        let p = self.alloc.alloc(black_box(size)).expect("out of memory");
        // SAFETY: the block is at least `size >= 16` bytes and 16-aligned.
        unsafe { p.as_ptr().cast::<u64>().write(self.n as u64) };
        self.blocks[self.next] = (p, size);
        self.next = (self.next + 1) % WINDOW;
        self.n += 1;
    }
}

impl<A: Allocator, F: Fn(usize) -> usize> Drop for Window<A, F> {
    fn drop(&mut self) {
        for &(p, size) in &self.blocks {
            // SAFETY: as in `step`; each block is freed exactly once.
            unsafe { self.alloc.free(p, size) };
        }
    }
}

fn bench_steady(c: &mut Criterion) {
    let mut g = c.benchmark_group("steady_state");
    g.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    for size in SIZES {
        g.bench_with_input(BenchmarkId::new("pool", size), &size, |b, &size| {
            let mut w = Window::new(PoolAllocator::new(), |_| size);
            b.iter(|| w.step());
        });
        g.bench_with_input(BenchmarkId::new("system", size), &size, |b, &size| {
            let mut w = Window::new(SystemAllocator::new(), |_| size);
            b.iter(|| w.step());
        });
    }
    g.bench_function(BenchmarkId::new("pool", "mixed"), |b| {
        let mut w = Window::new(PoolAllocator::new(), |i| MIXED[i % MIXED.len()]);
        b.iter(|| w.step());
    });
    g.bench_function(BenchmarkId::new("system", "mixed"), |b| {
        let mut w = Window::new(SystemAllocator::new(), |i| MIXED[i % MIXED.len()]);
        b.iter(|| w.step());
    });
    g.finish();
}

criterion_group!(benches, bench_pairs, bench_steady);
criterion_main!(benches);
