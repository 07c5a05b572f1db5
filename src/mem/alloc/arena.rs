//! Where the pool allocator's arenas come from.
//!
//! On Linux (outside Miri) arenas are mapped with `mmap`, two to a
//! 2 MiB-aligned chunk, and the chunk may be marked `MADV_HUGEPAGE`
//! (on by default; [`PoolAllocator::with_huge_pages`]). With the kernel's
//! transparent huge pages in `madvise` or `always` mode, the first touch of
//! a chunk then maps one 2 MiB page instead of 512 pages of 4 KiB, one
//! fault at a time: building a million objects takes about 23 faults
//! instead of about 12,000, and the collector's walks over them miss the
//! TLB far less. The cost: a program's first arena makes 2 MiB resident at
//! once. Where huge pages are unavailable the advice is ignored and pages
//! fault in 4 KiB at a time as before.
//!
//! An arena given back while its chunk-mate is in use returns its memory
//! with `MADV_DONTNEED` (so it leaves the resident set, as an unmapped
//! arena would); a chunk whose two arenas are both given back is unmapped.
//!
//! Elsewhere (and under Miri, which cannot run `mmap`) every arena is one
//! block from the Rust global allocator, 16 KiB aligned.
//!
//! [`PoolAllocator::with_huge_pages`]: super::PoolAllocator::with_huge_pages

use super::pool::ARENA_SIZE;
#[cfg(not(all(target_os = "linux", not(miri))))]
use super::pool::POOL_SIZE;
use std::ptr::NonNull;

/// Bytes per chunk: two arenas.
#[cfg(all(target_os = "linux", not(miri)))]
const CHUNK: usize = 2 * ARENA_SIZE;

/// Hands out and takes back arena memory (`ARENA_SIZE` bytes, aligned to
/// `POOL_SIZE` at least).
pub(super) struct ArenaSource {
    #[cfg(all(target_os = "linux", not(miri)))]
    huge_pages: bool,
    /// Live chunks by base address: which halves hold a live arena
    /// (bit 0 the low half, bit 1 the high half).
    #[cfg(all(target_os = "linux", not(miri)))]
    chunks: std::collections::HashMap<usize, u8>,
    /// Chunks that had a free half when last seen (checked on use).
    #[cfg(all(target_os = "linux", not(miri)))]
    half_free: Vec<usize>,
}

impl ArenaSource {
    #[cfg_attr(not(all(target_os = "linux", not(miri))), allow(unused_variables))]
    pub(super) fn new(huge_pages: bool) -> Self {
        ArenaSource {
            #[cfg(all(target_os = "linux", not(miri)))]
            huge_pages,
            #[cfg(all(target_os = "linux", not(miri)))]
            chunks: std::collections::HashMap::new(),
            #[cfg(all(target_os = "linux", not(miri)))]
            half_free: Vec::new(),
        }
    }

    /// Whether arenas are advised onto huge pages.
    pub(super) fn huge_pages(&self) -> bool {
        #[cfg(all(target_os = "linux", not(miri)))]
        return self.huge_pages;
        #[cfg(not(all(target_os = "linux", not(miri))))]
        false
    }

    #[cfg(not(all(target_os = "linux", not(miri))))]
    fn layout() -> std::alloc::Layout {
        // ARENA_SIZE and POOL_SIZE are powers of two; this cannot fail.
        std::alloc::Layout::from_size_align(ARENA_SIZE, POOL_SIZE).expect("arena layout")
    }

    /// A fresh arena, or `None` if the system refuses.
    #[cfg(not(all(target_os = "linux", not(miri))))]
    pub(super) fn get(&mut self) -> Option<NonNull<u8>> {
        // SAFETY: the layout has non-zero size.
        NonNull::new(unsafe { std::alloc::alloc(Self::layout()) })
    }

    /// Gives an arena back.
    ///
    /// # Safety
    /// `base` came from `get` on this source, was not given back since,
    /// and no block in it is used any more.
    #[cfg(not(all(target_os = "linux", not(miri))))]
    pub(super) unsafe fn put(&mut self, base: NonNull<u8>) {
        // SAFETY: per the caller, `base` came from `alloc(layout())`.
        unsafe { std::alloc::dealloc(base.as_ptr(), Self::layout()) }
    }

    #[cfg(all(target_os = "linux", not(miri)))]
    pub(super) fn get(&mut self) -> Option<NonNull<u8>> {
        while let Some(c) = self.half_free.pop() {
            let Some(used) = self.chunks.get_mut(&c) else { continue };
            let half = match *used {
                1 => 1,
                2 => 0,
                _ => continue,
            };
            *used |= 1 << half;
            return NonNull::new((c + half * ARENA_SIZE) as *mut u8);
        }
        let c = Self::map_chunk(self.huge_pages)?;
        self.chunks.insert(c.as_ptr() as usize, 1);
        self.half_free.push(c.as_ptr() as usize);
        Some(c)
    }

    /// Maps a fresh, `CHUNK`-aligned chunk.
    #[cfg(all(target_os = "linux", not(miri)))]
    fn map_chunk(huge: bool) -> Option<NonNull<u8>> {
        // Map twice the size and trim to alignment: mmap only promises page
        // alignment.
        let len = 2 * CHUNK;
        // SAFETY: an anonymous private mapping at an address of the kernel's
        // choosing touches no existing memory.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        let start = p as usize;
        let aligned = (start + CHUNK - 1) & !(CHUNK - 1);
        let head = aligned - start;
        let tail = len - head - CHUNK;
        // SAFETY: both ranges lie inside the mapping just made and outside
        // the chunk we keep; nothing refers to them.
        unsafe {
            if head > 0 {
                libc::munmap(p, head);
            }
            if tail > 0 {
                libc::munmap((aligned + CHUNK) as *mut libc::c_void, tail);
            }
            if huge {
                // Advice only: failure (no THP support) changes nothing.
                libc::madvise(aligned as *mut libc::c_void, CHUNK, libc::MADV_HUGEPAGE);
            }
        }
        NonNull::new(aligned as *mut u8)
    }

    /// Gives an arena back.
    ///
    /// # Safety
    /// `base` came from `get` on this source, was not given back since,
    /// and no block in it is used any more.
    #[cfg(all(target_os = "linux", not(miri)))]
    pub(super) unsafe fn put(&mut self, base: NonNull<u8>) {
        let a = base.as_ptr() as usize;
        let c = a & !(CHUNK - 1);
        let half = (a - c) / ARENA_SIZE;
        let used = self.chunks.get_mut(&c).expect("arena from this source");
        *used &= !(1 << half);
        if *used == 0 {
            self.chunks.remove(&c);
            // SAFETY: both arenas of the chunk are given back; per the
            // caller nothing uses them. The chunk is exactly one mapping.
            unsafe { libc::munmap(c as *mut libc::c_void, CHUNK) };
        } else {
            // SAFETY: the half is an arena nobody uses any more (per the
            // caller); its pages are dropped and read as zeros if reused.
            unsafe { libc::madvise(a as *mut libc::c_void, ARENA_SIZE, libc::MADV_DONTNEED) };
            self.half_free.push(c);
        }
    }
}

#[cfg(all(test, target_os = "linux", not(miri)))]
mod tests {
    use super::*;

    #[test]
    fn arenas_pair_up_in_aligned_chunks_and_chunks_go_back_when_both_halves_do() {
        let mut s = ArenaSource::new(true);
        let a = s.get().unwrap();
        let b = s.get().unwrap();
        assert_eq!(a.as_ptr() as usize % CHUNK, 0);
        assert_eq!(b.as_ptr() as usize, a.as_ptr() as usize + ARENA_SIZE);
        // The memory is usable and zeroed.
        // SAFETY: both arenas are ARENA_SIZE bytes we own.
        unsafe {
            assert_eq!(*a.as_ptr().add(ARENA_SIZE - 1), 0);
            b.as_ptr().write_bytes(7, ARENA_SIZE);
        }
        // SAFETY: `b` came from `s` and is not used.
        unsafe { s.put(b) };
        assert_eq!(s.chunks.len(), 1);
        // The freed half is reused, its pages zero again.
        let b2 = s.get().unwrap();
        assert_eq!(b2, b);
        // SAFETY: as above.
        unsafe { assert_eq!(*b2.as_ptr(), 0) };
        let c = s.get().unwrap();
        assert_ne!(c.as_ptr() as usize & !(CHUNK - 1), a.as_ptr() as usize);
        // SAFETY: all three came from `s` and are not used.
        unsafe {
            s.put(a);
            s.put(b2);
            s.put(c);
        }
        assert!(s.chunks.is_empty());
    }
}
