//! Placeholder until the allocator branch lands.
use super::{AllocStats, Allocator, ALIGN};
use std::alloc::Layout;
use std::ptr::NonNull;

/// Every block from the Rust global allocator.
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
}

// SAFETY: blocks come from the global allocator with 16-byte alignment.
unsafe impl Allocator for SystemAllocator {
    fn name(&self) -> &str {
        "system"
    }
    fn alloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        let layout = Layout::from_size_align(size.max(1), ALIGN).ok()?;
        // SAFETY: the layout has non-zero size.
        let p = NonNull::new(unsafe { std::alloc::alloc(layout) })?;
        self.in_use += size;
        self.peak = self.peak.max(self.in_use);
        self.allocs += 1;
        Some(p)
    }
    unsafe fn free(&mut self, ptr: NonNull<u8>, size: usize) {
        self.in_use -= size;
        // SAFETY: the caller passes a block from `alloc` with its size.
        unsafe { std::alloc::dealloc(ptr.as_ptr(), Layout::from_size_align_unchecked(size.max(1), ALIGN)) }
    }
    fn bytes_in_use(&self) -> usize {
        self.in_use
    }
    fn stats(&self) -> AllocStats {
        AllocStats {
            kind: "system".into(),
            bytes_in_use: self.in_use as u64,
            bytes_peak: self.peak as u64,
            large_allocs: self.allocs,
            ..Default::default()
        }
    }
}
