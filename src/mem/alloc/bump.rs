//! The `bump` allocator: bumpalo. Allocation is a pointer bump; `free` is a
//! no-op, so memory comes back only when the allocator is dropped at exit.
//!
//! Accounting: `bytes_in_use` counts every block ever handed out (rounded
//! up to 16 bytes, as bumped) and never goes down, because the memory
//! really stays taken; `--max-heap` therefore limits the total a program
//! allocates under `bump`, not what it keeps alive. A `realloc` that must
//! move a block counts the whole new block (the old one stays taken), so
//! [`Allocator::realloc_charge`] says so; the last block handed out grows
//! in place when its chunk has room, counting only the growth. The
//! per-class counters are not kept (there are no classes); `frees` are
//! counted to show how much garbage the bump arena holds.

use super::{AllocStats, Allocator, ALIGN};
use bumpalo::Bump;
use std::alloc::Layout;
use std::ptr::NonNull;

/// A bumpalo arena behind the [`Allocator`] trait.
#[derive(Default)]
pub struct BumpAllocator {
    bump: Bump,
    handed_out: usize,
    allocs: u64,
    frees: u64,
    freed_bytes: usize,
    /// Address of the last block handed out: bumpalo bumps downwards, so
    /// its start is the chunk's bump pointer and it can grow in place by
    /// taking the bytes just below it.
    last: usize,
}

impl BumpAllocator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Blocks whose `free` was a no-op, and their bytes.
    pub fn garbage(&self) -> (u64, usize) {
        (self.frees, self.freed_bytes)
    }

    /// The bytes a request of `size` takes: rounded up to [`ALIGN`].
    fn padded(size: usize) -> Option<usize> {
        size.max(1).checked_next_multiple_of(ALIGN)
    }

    /// Can the block at `ptr`, `old` bytes as bumped, grow in place to
    /// `new`? Only the last block can, by `new - old` bytes taken from
    /// below it in the same chunk.
    fn grows_in_place(&self, ptr: NonNull<u8>, old: usize, new: usize) -> bool {
        ptr.as_ptr() as usize == self.last && new - old <= self.bump.chunk_capacity()
    }
}

// SAFETY: bumpalo hands out disjoint blocks of the requested layout (16-byte
// aligned here) that stay valid until the `Bump` is dropped or reset, and we
// never reset it. A block grown in place is the caller's block plus the
// bytes bumpalo has just handed out directly below it.
unsafe impl Allocator for BumpAllocator {
    fn name(&self) -> &str {
        "bump"
    }

    #[inline]
    fn alloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        let layout = Layout::from_size_align(Self::padded(size)?, ALIGN).ok()?;
        let p = self.bump.try_alloc_layout(layout).ok()?;
        self.handed_out += layout.size();
        self.allocs += 1;
        self.last = p.as_ptr() as usize;
        Some(p)
    }

    #[inline]
    unsafe fn free(&mut self, _ptr: NonNull<u8>, size: usize) {
        self.frees += 1;
        self.freed_bytes += size;
    }

    /// A block keeps its place when it does not outgrow its padded size,
    /// and the last block grows in place when its chunk has room (as
    /// bumpalo's own `grow` does); any other block moves to a new one,
    /// the old staying taken.
    unsafe fn realloc(&mut self, ptr: NonNull<u8>, old_size: usize, new_size: usize) -> Option<NonNull<u8>> {
        let old = Self::padded(old_size)?;
        let new = Self::padded(new_size)?;
        if new <= old {
            return Some(ptr);
        }
        if self.grows_in_place(ptr, old, new) {
            let delta = Layout::from_size_align(new - old, ALIGN).ok()?;
            let p = self.bump.try_alloc_layout(delta).ok()?;
            self.handed_out += delta.size();
            self.allocs += 1;
            self.last = p.as_ptr() as usize;
            let adjacent = p.as_ptr() as usize + delta.size() == ptr.as_ptr() as usize;
            // Otherwise bumpalo changed how it bumps: the delta block is
            // garbage, and the block moves below (counted twice; release
            // builds stay sound).
            debug_assert!(adjacent, "bumpalo's last block is not directly above the next one");
            if adjacent {
                // SAFETY: `p..p + delta` was just handed out and `ptr..ptr +
                // old` is the caller's block, directly above it in the same
                // chunk (checked), so `p..p + new` is one span of that chunk
                // owned by the caller from now on; `p` carries the chunk's
                // provenance (bumpalo derives it from the chunk pointer, as
                // its own `grow` relies on). `copy` allows the overlap.
                unsafe { std::ptr::copy(ptr.as_ptr(), p.as_ptr(), old_size) };
                return Some(p);
            }
        }
        let p = self.alloc(new_size)?;
        // SAFETY: both blocks are live and distinct, `old_size` bytes
        // readable at `ptr` and at least `new_size > old_size` writable at
        // `p`.
        unsafe { std::ptr::copy_nonoverlapping(ptr.as_ptr(), p.as_ptr(), old_size) };
        Some(p)
    }

    #[inline(always)]
    fn bytes_in_use(&self) -> usize {
        self.handed_out
    }

    #[inline]
    fn alloc_charge(&self, size: usize) -> usize {
        Self::padded(size).unwrap_or(usize::MAX)
    }

    fn realloc_charge(&self, ptr: NonNull<u8>, old_size: usize, new_size: usize) -> usize {
        match (Self::padded(old_size), Self::padded(new_size)) {
            (Some(old), Some(new)) if new <= old => 0,
            (Some(old), Some(new)) if self.grows_in_place(ptr, old, new) => new - old,
            (_, new) => new.unwrap_or(usize::MAX),
        }
    }

    fn stats(&self) -> AllocStats {
        AllocStats {
            kind: "bump".into(),
            bytes_in_use: self.handed_out as u64,
            bytes_peak: self.handed_out as u64,
            bytes_reserved: self.bump.allocated_bytes() as u64,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frees_are_noops_and_blocks_stay_disjoint() {
        let mut a = BumpAllocator::new();
        let x = a.alloc(24).unwrap();
        let y = a.alloc(24).unwrap();
        assert_eq!(x.as_ptr() as usize % ALIGN, 0);
        assert_eq!(y.as_ptr() as usize % ALIGN, 0);
        assert!((x.as_ptr() as usize).abs_diff(y.as_ptr() as usize) >= 24);
        // SAFETY: live blocks, freed once.
        unsafe {
            y.as_ptr().write(7);
            a.free(x, 24);
            assert_eq!(y.as_ptr().read(), 7);
        }
        assert_eq!(a.garbage(), (1, 24));
        assert_eq!(a.bytes_in_use(), 64, "a freed block still counts: bump never reuses");
        // SAFETY: live, then a no-op free.
        unsafe {
            let z = a.realloc(y, 24, 100).unwrap();
            assert_eq!(z.as_ptr().read(), 7);
            a.free(z, 100);
        }
        assert!(a.stats().bytes_reserved >= 64);
    }

    /// The last block grows in place (downwards, by the growth only);
    /// any other moves, counted whole; each as `realloc_charge` says.
    #[test]
    fn the_last_block_grows_in_place_and_the_charges_say_so() {
        let mut a = BumpAllocator::new();
        let x = a.alloc(40).unwrap();
        // SAFETY: 40 live bytes.
        unsafe { x.as_ptr().write_bytes(5, 40) };
        assert_eq!((a.alloc_charge(40), a.realloc_charge(x, 40, 48)), (48, 0));
        // SAFETY: `x` is live with 40 bytes; within its padding it stays.
        assert_eq!(unsafe { a.realloc(x, 40, 48) }, Some(x));
        assert_eq!(a.realloc_charge(x, 48, 200), 208 - 48);
        let before = a.bytes_in_use();
        // SAFETY: live, 48 bytes.
        let y = unsafe { a.realloc(x, 48, 200) }.unwrap();
        assert_eq!(y.as_ptr() as usize + 208 - 48, x.as_ptr() as usize, "grown downwards in place");
        assert_eq!(a.bytes_in_use() - before, 208 - 48);
        // SAFETY: the first 40 bytes were kept; 200 bytes are live.
        unsafe {
            assert!(std::slice::from_raw_parts(y.as_ptr(), 40).iter().all(|&b| b == 5));
            y.as_ptr().add(199).write(9);
        }
        let z = a.alloc(16).unwrap();
        assert_eq!(a.realloc_charge(y, 200, 400), 400, "not the last block: it moves");
        let before = a.bytes_in_use();
        // SAFETY: live, 200 bytes.
        let w = unsafe { a.realloc(y, 200, 400) }.unwrap();
        assert_eq!(a.bytes_in_use() - before, 400);
        // SAFETY: the first 200 bytes were kept.
        unsafe {
            assert_eq!(w.as_ptr().read(), 5);
            assert_eq!(w.as_ptr().add(199).read(), 9);
        }
        assert_ne!(w, z);
    }
}
