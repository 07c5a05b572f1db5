//! Layer 1 of the memory subsystem: raw blocks.
//!
//! An [`Allocator`] hands out 16-byte-aligned blocks. The object heap
//! (`mem::heap`) is generic over it, so the hot path is monomorphised and a
//! library user can plug in an allocator of their own (see
//! `examples/custom_allocator.rs`).
//!
//! Three implementations ship with rcvm, selected on the command line with
//! `--alloc`:
//! - [`PoolAllocator`] (`pool`, the default), after CPython's obmalloc;
//! - [`SystemAllocator`] (`system`), the Rust global allocator;
//! - [`BumpAllocator`] (`bump`), bumpalo: frees are no-ops.

use serde::Serialize;
use std::ptr::NonNull;

mod arena;
mod bump;
#[doc(hidden)]
pub mod model;
mod pool;
mod system;

pub use bump::BumpAllocator;
pub use pool::PoolAllocator;
pub use system::SystemAllocator;

/// Every block an [`Allocator`] returns is aligned to this many bytes.
pub const ALIGN: usize = 16;

/// Per-size-class figures (the pool allocator's 32 classes; other allocators
/// may report none).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SizeClassStats {
    /// Block size of the class in bytes (16, 32, ..., 512).
    pub size: u32,
    /// Pools currently serving this class.
    pub pools: u64,
    /// Blocks of this class currently handed out.
    pub blocks_in_use: u64,
    /// Allocations served by this class since start.
    pub allocs: u64,
    /// Frees returned to this class since start.
    pub frees: u64,
}

/// Allocator statistics, as reported in `--stats` / `--stats-json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AllocStats {
    /// `pool`, `system`, `bump` or a user-chosen name.
    pub kind: String,
    /// Bytes in blocks currently handed out, counted at the size actually
    /// reserved (the pool allocator rounds to its size class).
    pub bytes_in_use: u64,
    /// Highest value `bytes_in_use` has had.
    pub bytes_peak: u64,
    /// Bytes currently obtained from the system: live arenas plus large
    /// blocks for `pool`, the chunks bumpalo holds for `bump`, the live
    /// blocks for `system`. `bytes_reserved - bytes_in_use` is the memory
    /// the allocator holds but no object uses (fragmentation, spare
    /// arenas, uncarved pools, bump garbage).
    pub bytes_reserved: u64,
    /// Arenas obtained from the system (pool allocator; 0 for others).
    pub arenas_allocated: u64,
    /// Arenas given back to the system.
    pub arenas_freed: u64,
    /// Requests served directly by the system allocator (over 512 bytes
    /// for the pool allocator; every request for `system`).
    pub large_allocs: u64,
    /// Per-size-class figures; empty for allocators without classes.
    pub size_classes: Vec<SizeClassStats>,
}

/// A source of raw memory blocks for the object heap.
///
/// # Safety
///
/// Implementors promise that every pointer returned by [`Allocator::alloc`]
/// or [`Allocator::realloc`] is aligned to [`ALIGN`], valid for reads and
/// writes of the requested size, and does not overlap any other live block,
/// until it is passed to [`Allocator::free`] or [`Allocator::realloc`] or
/// the allocator is dropped. The heap relies on this for soundness.
pub unsafe trait Allocator {
    /// Short name shown in statistics.
    fn name(&self) -> &str;

    /// Returns a block of at least `size` bytes (`size > 0`), aligned to
    /// [`ALIGN`], or `None` when memory is exhausted. The contents are
    /// unspecified.
    fn alloc(&mut self, size: usize) -> Option<NonNull<u8>>;

    /// Gives a block back.
    ///
    /// # Safety
    ///
    /// `ptr` must have come from `alloc`/`realloc` on this same allocator
    /// with this same `size`, and must not have been freed since.
    unsafe fn free(&mut self, ptr: NonNull<u8>, size: usize);

    /// Resizes a block, keeping the first `min(old_size, new_size)` bytes.
    /// On `None` the old block is untouched and still owned by the caller.
    ///
    /// # Safety
    ///
    /// As for [`Allocator::free`] with `old_size`.
    unsafe fn realloc(&mut self, ptr: NonNull<u8>, old_size: usize, new_size: usize) -> Option<NonNull<u8>> {
        let new = self.alloc(new_size)?;
        // SAFETY: both blocks are live, distinct (the allocator contract),
        // and at least `min(old_size, new_size)` bytes long.
        unsafe {
            std::ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), old_size.min(new_size));
            self.free(ptr, old_size);
        }
        Some(new)
    }

    /// Bytes currently handed out (cheap: called on every allocation to
    /// enforce `--max-heap`).
    fn bytes_in_use(&self) -> usize;

    /// The most that `alloc(size)` can raise [`Allocator::bytes_in_use`]
    /// (and so the peak), for a limit checked before allocating:
    /// `bytes_in_use() + alloc_charge(size) <= max` keeps `bytes_in_use`
    /// within `max` after the call. The default, `size`, is right for an
    /// allocator that counts exactly the bytes asked for; one that rounds
    /// requests up (to a size class, to [`ALIGN`]) must say so here.
    fn alloc_charge(&self, size: usize) -> usize {
        size
    }

    /// The most that `realloc(ptr, old_size, new_size)` can raise
    /// [`Allocator::bytes_in_use`] at any moment of the call, as for
    /// [`Allocator::alloc_charge`]. `new_size - old_size` is not always
    /// enough: a block that moves may be counted twice while it is copied
    /// (`pool` between size classes), or for good (`bump`, whose frees are
    /// no-ops). The default suits
    /// the default `realloc`, which allocates the new block before freeing
    /// the old one: `alloc_charge(new_size)`. `ptr` is the block to be
    /// resized (a live block of `old_size` bytes from this allocator); it
    /// is only compared, never read.
    fn realloc_charge(&self, ptr: NonNull<u8>, old_size: usize, new_size: usize) -> usize {
        let _ = (ptr, old_size);
        self.alloc_charge(new_size)
    }

    /// `alloc(size)` if that keeps [`Allocator::bytes_in_use`] plus
    /// `others` (bytes charged elsewhere) within `limit`, else `None`
    /// without allocating: the heap's allocation under `--max-heap`. The
    /// default asks `bytes_in_use` and `alloc_charge` first, then
    /// allocates; there is no need to override it.
    #[inline(always)]
    fn alloc_within(&mut self, size: usize, others: usize, limit: usize) -> Option<NonNull<u8>> {
        if (self.bytes_in_use() + others).saturating_add(self.alloc_charge(size)) > limit {
            return None;
        }
        self.alloc(size)
    }

    /// A snapshot of the statistics.
    fn stats(&self) -> AllocStats;

    /// Checks the allocator's internal invariants (free lists, counters),
    /// for the heap verifier. The default has nothing to check.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

/// A boxed allocator is an allocator, so a heap can take a
/// `Box<dyn Allocator>` chosen at run time. Every call then goes through
/// the vtable; see also [`Selected`].
// SAFETY: every call is forwarded to `A`, whose blocks keep `A`'s promises.
unsafe impl<A: Allocator + ?Sized> Allocator for Box<A> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn alloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        (**self).alloc(size)
    }
    unsafe fn free(&mut self, ptr: NonNull<u8>, size: usize) {
        // SAFETY: the caller's promise is passed on unchanged.
        unsafe { (**self).free(ptr, size) }
    }
    unsafe fn realloc(&mut self, ptr: NonNull<u8>, old_size: usize, new_size: usize) -> Option<NonNull<u8>> {
        // SAFETY: the caller's promise is passed on unchanged.
        unsafe { (**self).realloc(ptr, old_size, new_size) }
    }
    fn bytes_in_use(&self) -> usize {
        (**self).bytes_in_use()
    }
    fn alloc_charge(&self, size: usize) -> usize {
        (**self).alloc_charge(size)
    }
    fn realloc_charge(&self, ptr: NonNull<u8>, old_size: usize, new_size: usize) -> usize {
        (**self).realloc_charge(ptr, old_size, new_size)
    }
    fn alloc_within(&mut self, size: usize, others: usize, limit: usize) -> Option<NonNull<u8>> {
        (**self).alloc_within(size, others, limit)
    }
    fn stats(&self) -> AllocStats {
        (**self).stats()
    }
    fn check(&self) -> Result<(), String> {
        (**self).check()
    }
}

/// An allocator chosen at run time with one interpreter for all of them:
/// the pool allocator's calls are direct (and its fast paths inline), any
/// other's go through the vtable. A heap over `Selected` is one copy of
/// the interpreter in the binary, where a heap over `PoolAllocator` and
/// another over `Box<dyn Allocator>` would be two (the `rcvm` binary was
/// 188 KB of code larger that way, and nearly all of a binary's code is
/// resident in a run: the kernel maps 64 KiB around every page touched).
/// Choosing costs the pool's fast path one predictable branch per call.
// The pool stays inline (a box would put a pointer chase on every
// allocation); a `Selected` is made once per run.
#[allow(clippy::large_enum_variant)]
pub enum Selected {
    Pool(PoolAllocator),
    Other(Box<dyn Allocator>),
}

// SAFETY: every call is forwarded to the allocator inside, whose blocks
// keep its promises. Replacing a `Selected`'s allocator (the variants are
// public) drops the old one, as dropping any allocator may; a block must
// go back to the allocator it came from, the caller's promise exactly as
// for `Box<dyn Allocator>`.
unsafe impl Allocator for Selected {
    fn name(&self) -> &str {
        match self {
            Selected::Pool(p) => p.name(),
            Selected::Other(a) => a.name(),
        }
    }
    #[inline(always)]
    fn alloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        match self {
            Selected::Pool(p) => p.alloc(size),
            Selected::Other(a) => other_alloc(a.as_mut(), size),
        }
    }
    /// One test of the variant for the limit and the allocation.
    #[inline(always)]
    fn alloc_within(&mut self, size: usize, others: usize, limit: usize) -> Option<NonNull<u8>> {
        match self {
            Selected::Pool(p) => p.alloc_within(size, others, limit),
            Selected::Other(a) => other_alloc_within(a.as_mut(), size, others, limit),
        }
    }
    #[inline(always)]
    unsafe fn free(&mut self, ptr: NonNull<u8>, size: usize) {
        match self {
            // SAFETY: the caller's promise is passed on unchanged.
            Selected::Pool(p) => unsafe { p.free(ptr, size) },
            // SAFETY: as above.
            Selected::Other(a) => unsafe { other_free(a.as_mut(), ptr, size) },
        }
    }
    unsafe fn realloc(&mut self, ptr: NonNull<u8>, old_size: usize, new_size: usize) -> Option<NonNull<u8>> {
        // SAFETY: the caller's promise is passed on unchanged.
        unsafe {
            match self {
                Selected::Pool(p) => p.realloc(ptr, old_size, new_size),
                Selected::Other(a) => a.realloc(ptr, old_size, new_size),
            }
        }
    }
    #[inline(always)]
    fn bytes_in_use(&self) -> usize {
        match self {
            Selected::Pool(p) => p.bytes_in_use(),
            Selected::Other(a) => other_bytes_in_use(a.as_ref()),
        }
    }
    #[inline(always)]
    fn alloc_charge(&self, size: usize) -> usize {
        match self {
            Selected::Pool(p) => p.alloc_charge(size),
            Selected::Other(a) => other_alloc_charge(a.as_ref(), size),
        }
    }
    fn realloc_charge(&self, ptr: NonNull<u8>, old_size: usize, new_size: usize) -> usize {
        match self {
            Selected::Pool(p) => p.realloc_charge(ptr, old_size, new_size),
            Selected::Other(a) => a.realloc_charge(ptr, old_size, new_size),
        }
    }
    fn stats(&self) -> AllocStats {
        match self {
            Selected::Pool(p) => p.stats(),
            Selected::Other(a) => a.stats(),
        }
    }
    fn check(&self) -> Result<(), String> {
        match self {
            Selected::Pool(p) => p.check(),
            Selected::Other(a) => a.check(),
        }
    }
}

// The vtable calls of `Selected`, out of line and cold: at every inlined
// allocation and free, the pool's path is the one laid out straight.
#[cold]
#[inline(never)]
fn other_alloc(a: &mut dyn Allocator, size: usize) -> Option<NonNull<u8>> {
    a.alloc(size)
}

#[cold]
#[inline(never)]
fn other_alloc_within(a: &mut dyn Allocator, size: usize, others: usize, limit: usize) -> Option<NonNull<u8>> {
    a.alloc_within(size, others, limit)
}

/// # Safety
///
/// As for [`Allocator::free`].
#[cold]
#[inline(never)]
unsafe fn other_free(a: &mut dyn Allocator, ptr: NonNull<u8>, size: usize) {
    // SAFETY: the caller's promise is passed on unchanged.
    unsafe { a.free(ptr, size) }
}

#[cold]
#[inline(never)]
fn other_bytes_in_use(a: &dyn Allocator) -> usize {
    a.bytes_in_use()
}

#[cold]
#[inline(never)]
fn other_alloc_charge(a: &dyn Allocator, size: usize) -> usize {
    a.alloc_charge(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a run does to the allocator under `--max-heap max`, with the
    /// limit checked as the heap should check it (before each call,
    /// `bytes_in_use() + charge <= max`): one list buffer grown as
    /// `list_push` grows it (CPython's `list_resize`, 16-byte values),
    /// with `records` 16-byte records (`new r1, 0`) and `strings` string
    /// objects of odd sizes allocated per push, until a request is
    /// refused. `bytes_in_use` and the peak never pass `max`; returns the
    /// values pushed.
    fn push_until_refused<A: Allocator>(a: &mut A, max: usize, records: usize, strings: usize) -> usize {
        let name = a.name().to_string();
        let (mut buf, mut cap, mut len): (Option<NonNull<u8>>, usize, usize) = (None, 0, 0);
        let mut blocks: Vec<(NonNull<u8>, usize)> = Vec::new();
        let fits = |a: &A, charge: usize| a.bytes_in_use().saturating_add(charge) <= max;
        'run: loop {
            for i in 0..records + strings {
                let size = if i < records { 16 } else { 32 + (len + i) % 37 };
                if !fits(a, a.alloc_charge(size)) {
                    break 'run;
                }
                blocks.push((a.alloc(size).expect("memory"), size));
            }
            if len == cap {
                let new_cap = (len + 1 + ((len + 1) >> 3) + 6) & !3;
                let (old_bytes, new_bytes) = (cap * 16, new_cap * 16);
                let charge = match buf {
                    None => a.alloc_charge(new_bytes),
                    Some(p) => a.realloc_charge(p, old_bytes, new_bytes),
                };
                if !fits(a, charge) {
                    break 'run;
                }
                let p = match buf {
                    None => a.alloc(new_bytes),
                    // SAFETY: `p` is this allocator's live block of `old_bytes`.
                    Some(p) => unsafe { a.realloc(p, old_bytes, new_bytes) },
                }
                .expect("memory");
                if len > 0 {
                    // SAFETY: the first `len` values were kept.
                    unsafe {
                        assert_eq!(*p.as_ptr(), 0, "{name}");
                        assert_eq!(*p.as_ptr().add((len - 1) * 16), (len - 1) as u8, "{name}");
                    }
                }
                (buf, cap) = (Some(p), new_cap);
            }
            // SAFETY: `len < cap`: value `len` lies inside the buffer.
            unsafe { *buf.expect("a buffer").as_ptr().add(len * 16) = len as u8 };
            len += 1;
            assert!(a.bytes_in_use() <= max, "{name}: {} bytes in use, over {max}", a.bytes_in_use());
        }
        assert!(a.stats().bytes_peak <= max as u64, "{name}: peak {} over {max}", a.stats().bytes_peak);
        // SAFETY: every block is live, from `a`, with the size it was
        // allocated (or last resized) with.
        unsafe {
            for (p, size) in blocks {
                a.free(p, size);
            }
            if let Some(p) = buf {
                a.free(p, cap * 16);
            }
        }
        len
    }

    /// With the limit checked through the charges, no allocator passes
    /// it: not `pool`, whose size classes round strings up and whose
    /// realloc between classes holds both blocks for a moment; not
    /// `bump`, where a moved buffer's old block stays taken; not behind
    /// `Selected` or a box (which must forward the charges).
    #[test]
    fn charges_keep_every_allocator_within_the_limit() {
        let limits: &[usize] =
            if cfg!(miri) { &[300, 5_000, 40_000] } else { &[300, 5_000, 64 << 10, 1 << 20, 3 << 20] };
        for &max in limits {
            for (records, strings) in [(0, 0), (1, 0), (0, 1), (2, 1)] {
                push_until_refused(&mut PoolAllocator::new(), max, records, strings);
                push_until_refused(&mut SystemAllocator::new(), max, records, strings);
                push_until_refused(&mut BumpAllocator::new(), max, records, strings);
                push_until_refused(&mut Selected::Pool(PoolAllocator::new()), max, records, strings);
                push_until_refused(&mut Selected::Other(Box::new(BumpAllocator::new())), max, records, strings);
            }
        }
    }

    /// Both arms hand out usable, aligned blocks, account for them and
    /// take them back; the name and statistics are the chosen allocator's.
    #[test]
    fn selected_forwards_to_the_allocator_it_holds() {
        let arms: [(Selected, &str); 2] = [
            (Selected::Pool(PoolAllocator::new()), "pool"),
            (Selected::Other(Box::new(SystemAllocator::new())), "system"),
        ];
        for (mut a, name) in arms {
            assert_eq!(a.name(), name);
            let small = a.alloc(48).expect("a small block");
            let big = a.alloc(4096).expect("a large block");
            assert_eq!(small.as_ptr() as usize % ALIGN, 0);
            assert_eq!(big.as_ptr() as usize % ALIGN, 0);
            // SAFETY: both blocks are live and at least as long as written.
            unsafe {
                small.as_ptr().write_bytes(1, 48);
                big.as_ptr().write_bytes(2, 4096);
            }
            assert!(a.bytes_in_use() >= 48 + 4096, "{name}");
            // SAFETY: `big` came from this allocator with this size.
            let grown = unsafe { a.realloc(big, 4096, 8192) }.expect("grown");
            // SAFETY: the first 4096 bytes were kept.
            assert_eq!(unsafe { *grown.as_ptr().add(4095) }, 2);
            // SAFETY: each block came from this allocator with this size.
            unsafe {
                a.free(small, 48);
                a.free(grown, 8192);
            }
            assert_eq!(a.bytes_in_use(), 0, "{name}");
            // The limit counts the others' bytes and the block's charge.
            let charge = a.alloc_charge(100);
            assert!(a.alloc_within(100, 10, 10 + charge - 1).is_none(), "{name}");
            assert_eq!(a.bytes_in_use(), 0, "{name}");
            let b = a.alloc_within(100, 10, 10 + charge).expect("a block within the limit");
            assert_eq!(a.bytes_in_use(), charge, "{name}");
            // SAFETY: `b` came from this allocator with this size.
            unsafe { a.free(b, 100) };
            assert_eq!(a.stats().kind, name);
            a.check().unwrap();
        }
    }
}
