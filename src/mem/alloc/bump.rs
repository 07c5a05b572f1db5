//! The `bump` allocator: bumpalo. Allocation is a pointer bump; `free` is a
//! no-op, so memory comes back only when the allocator is dropped at exit.
//!
//! Accounting: `bytes_in_use` counts every block ever handed out and never
//! goes down, because the memory really stays taken; `--max-heap` therefore
//! limits the total a program allocates under `bump`, not what it keeps
//! alive. The per-class counters are not kept (there are no classes);
//! `frees` are counted to show how much garbage the bump arena holds.

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
}

impl BumpAllocator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Blocks whose `free` was a no-op, and their bytes.
    pub fn garbage(&self) -> (u64, usize) {
        (self.frees, self.freed_bytes)
    }
}

// SAFETY: bumpalo hands out disjoint blocks of the requested layout (16-byte
// aligned here) that stay valid until the `Bump` is dropped or reset, and we
// never reset it.
unsafe impl Allocator for BumpAllocator {
    fn name(&self) -> &str {
        "bump"
    }

    #[inline]
    fn alloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        let layout = Layout::from_size_align(size.max(1), ALIGN).ok()?.pad_to_align();
        let p = self.bump.try_alloc_layout(layout).ok()?;
        self.handed_out += layout.size();
        self.allocs += 1;
        Some(p)
    }

    #[inline]
    unsafe fn free(&mut self, _ptr: NonNull<u8>, size: usize) {
        self.frees += 1;
        self.freed_bytes += size;
    }

    #[inline(always)]
    fn bytes_in_use(&self) -> usize {
        self.handed_out
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
}
