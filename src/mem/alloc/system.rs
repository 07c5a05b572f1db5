//! The `system` allocator: every block straight from the Rust global
//! allocator (on Linux, glibc's malloc). The baseline the pool allocator is
//! measured against.

use super::{AllocStats, Allocator, ALIGN};
use std::alloc::Layout;
use std::ptr::NonNull;

/// Every block from the Rust global allocator, with 16-byte alignment.
#[derive(Default)]
pub struct SystemAllocator {
    in_use: usize,
    peak: usize,
    allocs: u64,
}

impl SystemAllocator {
    pub fn new() -> Self {
        Self::default()
    }

    fn layout(size: usize) -> Option<Layout> {
        Layout::from_size_align(size.max(1), ALIGN).ok()
    }
}

// SAFETY: every block comes from the global allocator with a layout of at
// least the requested size and 16-byte alignment; the global allocator
// keeps live blocks disjoint.
unsafe impl Allocator for SystemAllocator {
    fn name(&self) -> &str {
        "system"
    }

    #[inline]
    fn alloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        let layout = Self::layout(size)?;
        // SAFETY: the layout has non-zero size.
        let p = NonNull::new(unsafe { std::alloc::alloc(layout) })?;
        self.in_use += layout.size();
        self.peak = self.peak.max(self.in_use);
        self.allocs += 1;
        Some(p)
    }

    #[inline]
    unsafe fn free(&mut self, ptr: NonNull<u8>, size: usize) {
        let layout = Self::layout(size).expect("a block of this size was allocated");
        self.in_use -= layout.size();
        // SAFETY: the caller passes a live block from `alloc` with its size,
        // hence this same layout.
        unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) }
    }

    unsafe fn realloc(&mut self, ptr: NonNull<u8>, old_size: usize, new_size: usize) -> Option<NonNull<u8>> {
        let old = Self::layout(old_size)?;
        let new = Self::layout(new_size)?;
        // SAFETY: `ptr` is live with layout `old` (the caller's promise);
        // `new.size()` is non-zero and a valid layout size.
        let p = NonNull::new(unsafe { std::alloc::realloc(ptr.as_ptr(), old, new.size()) })?;
        self.in_use = self.in_use - old.size() + new.size();
        self.peak = self.peak.max(self.in_use);
        self.allocs += 1;
        Some(p)
    }

    #[inline(always)]
    fn bytes_in_use(&self) -> usize {
        self.in_use
    }

    fn alloc_charge(&self, size: usize) -> usize {
        size.max(1)
    }

    /// `realloc` counts the new size in place of the old at once (the
    /// global allocator moves the block, if it must, inside the call).
    fn realloc_charge(&self, _ptr: NonNull<u8>, old_size: usize, new_size: usize) -> usize {
        new_size.max(1).saturating_sub(old_size.max(1))
    }

    fn stats(&self) -> AllocStats {
        AllocStats {
            kind: "system".into(),
            bytes_in_use: self.in_use as u64,
            bytes_peak: self.peak as u64,
            bytes_reserved: self.in_use as u64,
            large_allocs: self.allocs,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_realloc_free_keep_contents_and_counts() {
        let mut a = SystemAllocator::new();
        let b = a.alloc(10).unwrap();
        assert_eq!(b.as_ptr() as usize % ALIGN, 0);
        // SAFETY: 10 live bytes, then resized and freed with the sizes used.
        unsafe {
            std::ptr::copy_nonoverlapping(b"0123456789".as_ptr(), b.as_ptr(), 10);
            let c = a.realloc(b, 10, 1000).unwrap();
            assert_eq!(std::slice::from_raw_parts(c.as_ptr(), 10), b"0123456789");
            assert_eq!(a.bytes_in_use(), 1000);
            a.free(c, 1000);
        }
        assert_eq!(a.bytes_in_use(), 0);
        assert_eq!(a.stats().bytes_peak, 1000);
    }
}
