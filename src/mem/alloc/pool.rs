//! The `pool` allocator, after CPython's obmalloc (3.10 and later, 64-bit).
//!
//! ```text
//! arena (1 MiB, from the system, 16 KiB aligned)
//!   pool 0 (16 KiB) | pool 1 | ... | pool 63
//! pool
//!   PoolHeader (48 bytes) | block | block | ... (one size class per pool)
//! ```
//!
//! - Requests of 1..=512 bytes are rounded up to one of 32 size classes
//!   (16, 32, ..., 512) and served from a pool of that class; larger ones
//!   go straight to the system allocator.
//! - A pool keeps a LIFO free list threaded through its free blocks, and
//!   carves never-used blocks lazily (`nextoffset`), so a fresh pool costs
//!   nothing until its blocks are wanted.
//! - `used[c]` lists the partly used pools of class `c`; the allocation
//!   fast path is "pop the head of `used[c]`'s free list".
//! - Arenas with free pools sit in `usable`, sorted by how many free pools
//!   they have, fewest first, so allocation favours the fullest arena and
//!   nearly empty ones can drain; `nfp2lasta[n]` points at the last arena
//!   with `n` free pools, which keeps the sort O(1) per change (CPython's
//!   scheme).
//! - An arena whose pools are all empty goes back to the system, unless it
//!   is the last of the usable list (CPython's guard against thrashing
//!   when a program hovers around an arena boundary: one spare is kept).
//!
//! Free needs no address lookup: the [`Allocator`] contract passes the
//! size back, so `size > 512` means a system block and anything else a pool
//! block whose header sits at the block's address rounded down to 16 KiB.

use super::arena::ArenaSource;
use super::{AllocStats, Allocator, SizeClassStats, ALIGN};
use std::alloc::Layout;
use std::ptr::{self, NonNull};

/// Bytes per arena.
pub const ARENA_SIZE: usize = 1 << 20;
/// Bytes per pool.
pub const POOL_SIZE: usize = 16 << 10;
/// Largest request served from pools.
pub const SMALL_REQUEST_THRESHOLD: usize = 512;
/// Number of size classes (16-byte steps up to 512).
pub const NUM_CLASSES: usize = SMALL_REQUEST_THRESHOLD / ALIGN;
/// Pools per arena (arenas are pool-aligned, so none is lost).
pub const POOLS_PER_ARENA: u32 = (ARENA_SIZE / POOL_SIZE) as u32;
/// Bytes at the start of each pool taken by its header.
const POOL_OVERHEAD: usize = std::mem::size_of::<PoolHeader>();
const _: () = assert!(POOL_OVERHEAD.is_multiple_of(ALIGN));

const NONE: u32 = u32::MAX;

/// Size class index of a request of `size` bytes (1..=512).
#[inline(always)]
fn class_of(size: usize) -> usize {
    (size.max(1) - 1) / ALIGN
}

/// Block size of class `c`.
#[inline(always)]
const fn class_size(c: usize) -> usize {
    (c + 1) * ALIGN
}

/// The header at the start of every pool, inside the pool's own memory as
/// in CPython.
#[repr(C)]
struct PoolHeader {
    /// Blocks currently handed out.
    count: u32,
    /// Size class this pool serves.
    class: u32,
    /// Index of the owning arena in `PoolAllocator::arenas`.
    arena: u32,
    /// Offset of the next never-used block.
    nextoffset: u32,
    /// Largest offset at which a whole block still fits.
    maxnextoffset: u32,
    _pad: u32,
    /// Head of the LIFO free list (null: none; carve at `nextoffset`).
    freeblock: *mut u8,
    /// Links in `used[class]` (doubly linked) or the arena's free-pool list
    /// (singly linked through `next`).
    next: *mut PoolHeader,
    prev: *mut PoolHeader,
}

/// Bookkeeping for one arena (kept outside the arena, as CPython's
/// `arena_object`).
struct Arena {
    /// Start of the arena's memory; null once given back.
    base: *mut u8,
    /// Empty pools not yet handed out, and pools never carved.
    nfreepools: u32,
    /// Empty pools that have been used before, singly linked.
    freepools: *mut PoolHeader,
    /// Offset of the next never-carved pool.
    pool_offset: u32,
    /// Links in the `usable` list (arena indexes).
    next: u32,
    prev: u32,
}

#[derive(Clone, Copy, Default)]
struct ClassCounters {
    pools: u64,
    allocs: u64,
    frees: u64,
}

/// A pymalloc-style pooled allocator. See the module docs.
pub struct PoolAllocator {
    /// Where arenas come from (mmap'd chunks on Linux; see `arena.rs`).
    source: ArenaSource,
    /// Partly used pools per class (heads of doubly linked lists).
    used: [*mut PoolHeader; NUM_CLASSES],
    classes: [ClassCounters; NUM_CLASSES],
    arenas: Vec<Arena>,
    /// Indexes of `arenas` entries whose memory was given back, for reuse.
    unused_arenas: Vec<u32>,
    /// Head of the usable list: arenas with at least one free pool, by
    /// `nfreepools` ascending.
    usable: u32,
    /// `nfp2lasta[n]`: the last arena in `usable` with `n` free pools.
    nfp2lasta: [u32; POOLS_PER_ARENA as usize + 1],
    bytes_in_use: usize,
    bytes_peak: usize,
    arenas_allocated: u64,
    arenas_freed: u64,
    large_allocs: u64,
    large_frees: u64,
    large_bytes: usize,
}

impl Default for PoolAllocator {
    fn default() -> Self {
        Self::new()
    }
}

impl PoolAllocator {
    /// A pool allocator whose arenas are advised onto transparent huge
    /// pages where the system offers them (see [`PoolAllocator::with_huge_pages`]).
    pub fn new() -> Self {
        Self::with_huge_pages(true)
    }

    /// A pool allocator; `huge_pages` says whether its arenas (mapped in
    /// 2 MiB-aligned pairs on Linux) are marked `MADV_HUGEPAGE`. With huge
    /// pages a million small objects cost a few dozen page faults instead of
    /// about twelve thousand, at the price of 2 MiB resident as soon as the
    /// first object is allocated. Without them, pages fault in 4 KiB at a
    /// time, as CPython's arenas do. Off Linux (and under Miri) arenas come
    /// from the Rust global allocator and this has no effect.
    pub fn with_huge_pages(huge_pages: bool) -> Self {
        PoolAllocator {
            source: ArenaSource::new(huge_pages),
            used: [ptr::null_mut(); NUM_CLASSES],
            classes: [ClassCounters::default(); NUM_CLASSES],
            arenas: Vec::new(),
            unused_arenas: Vec::new(),
            usable: NONE,
            nfp2lasta: [NONE; POOLS_PER_ARENA as usize + 1],
            bytes_in_use: 0,
            bytes_peak: 0,
            arenas_allocated: 0,
            arenas_freed: 0,
            large_allocs: 0,
            large_frees: 0,
            large_bytes: 0,
        }
    }

    /// Whether arenas are advised onto huge pages (see
    /// [`PoolAllocator::with_huge_pages`]; always false off Linux).
    pub fn huge_pages(&self) -> bool {
        self.source.huge_pages()
    }

    /// Arenas currently held from the system.
    pub fn arenas_live(&self) -> u64 {
        self.arenas_allocated - self.arenas_freed
    }

    #[inline(always)]
    fn note_alloc(&mut self, bytes: usize) {
        self.bytes_in_use += bytes;
        if self.bytes_in_use > self.bytes_peak {
            self.bytes_peak = self.bytes_in_use;
        }
    }

    /// The fast path: a block from a partly used pool of class `c`.
    #[inline(always)]
    fn alloc_small(&mut self, c: usize) -> Option<NonNull<u8>> {
        let pool = self.used[c];
        let block = if !pool.is_null() {
            // SAFETY: pools in `used` are live pool headers of class `c`
            // inside arenas we own, and have at least one free or uncarved
            // block (a pool leaves `used` when it fills).
            unsafe { self.take_block(pool, c) }
        } else {
            self.alloc_from_new_pool(c)?
        };
        let cc = &mut self.classes[c];
        cc.allocs += 1;
        self.note_alloc(class_size(c));
        // SAFETY: `block` points into an arena, never null.
        Some(unsafe { NonNull::new_unchecked(block) })
    }

    /// Takes one block from `pool` (in `used[c]`, not full), unlinking the
    /// pool from `used[c]` if that fills it.
    ///
    /// # Safety
    /// `pool` must be a live pool header of class `c` with a free block.
    #[inline(always)]
    unsafe fn take_block(&mut self, pool: *mut PoolHeader, c: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `pool` is a live header; its free
        // list holds blocks of this pool, whose first word is the next link.
        unsafe {
            let p = &mut *pool;
            p.count += 1;
            let bp = p.freeblock;
            let next = bp.cast::<*mut u8>().read();
            p.freeblock = next;
            if next.is_null() {
                // The list ran out: carve the next block, if one fits.
                if p.nextoffset <= p.maxnextoffset {
                    let nb = pool.cast::<u8>().add(p.nextoffset as usize);
                    nb.cast::<*mut u8>().write(ptr::null_mut());
                    p.freeblock = nb;
                    p.nextoffset += class_size(c) as u32;
                } else {
                    // Full: it leaves the used list.
                    let nextp = p.next;
                    self.used[c] = nextp;
                    if !nextp.is_null() {
                        (*nextp).prev = ptr::null_mut();
                    }
                    p.next = ptr::null_mut();
                    p.prev = ptr::null_mut();
                }
            }
            bp
        }
    }

    /// Gets an empty pool (from the fullest usable arena), initialises it
    /// for class `c`, puts it in `used[c]` and returns its first block.
    #[cold]
    fn alloc_from_new_pool(&mut self, c: usize) -> Option<*mut u8> {
        if self.usable == NONE {
            let a = self.new_arena()?;
            self.usable = a;
            self.nfp2lasta[POOLS_PER_ARENA as usize] = a;
        }
        let ai = self.usable;
        let nf = self.arenas[ai as usize].nfreepools;
        // The head has the fewest free pools, so taking one keeps it first;
        // only the `nfp2lasta` pointers move.
        if self.nfp2lasta[nf as usize] == ai {
            self.nfp2lasta[nf as usize] = NONE;
        }
        if nf > 1 {
            self.nfp2lasta[nf as usize - 1] = ai;
        }
        let arena = &mut self.arenas[ai as usize];
        arena.nfreepools -= 1;
        let pool: *mut PoolHeader;
        let reused;
        if !arena.freepools.is_null() {
            pool = arena.freepools;
            // SAFETY: `freepools` links live (empty) pool headers of this arena.
            arena.freepools = unsafe { (*pool).next };
            reused = true;
        } else {
            debug_assert!((arena.pool_offset as usize) < ARENA_SIZE);
            // SAFETY: `pool_offset < ARENA_SIZE` while `nfreepools` counts an
            // uncarved pool, so the pool lies inside the arena.
            pool = unsafe { arena.base.add(arena.pool_offset as usize) }.cast();
            arena.pool_offset += POOL_SIZE as u32;
            reused = false;
        }
        if arena.nfreepools == 0 {
            // Wholly allocated: it leaves the usable list.
            let next = arena.next;
            arena.next = NONE;
            arena.prev = NONE;
            self.usable = next;
            if next != NONE {
                self.arenas[next as usize].prev = NONE;
            }
        }
        let size = class_size(c);
        // SAFETY: `pool` is POOL_SIZE bytes of our arena, 16 KiB aligned,
        // not handed out to anyone: we (re)initialise its header and its
        // first block's link. A reused pool of the same class keeps its
        // free list (CPython's shortcut); otherwise it is carved afresh.
        unsafe {
            let old_class_same = reused && (*pool).class as usize == c && !(*pool).freeblock.is_null();
            if old_class_same {
                let p = &mut *pool;
                p.count = 0;
            } else {
                let first = pool.cast::<u8>().add(POOL_OVERHEAD);
                first.cast::<*mut u8>().write(ptr::null_mut());
                pool.write(PoolHeader {
                    count: 0,
                    class: c as u32,
                    arena: ai,
                    nextoffset: (POOL_OVERHEAD + size) as u32,
                    maxnextoffset: (POOL_SIZE - size) as u32,
                    _pad: 0,
                    freeblock: first,
                    next: ptr::null_mut(),
                    prev: ptr::null_mut(),
                });
            }
            (*pool).next = self.used[c];
            (*pool).prev = ptr::null_mut();
            if !self.used[c].is_null() {
                (*self.used[c]).prev = pool;
            }
            self.used[c] = pool;
            self.classes[c].pools += 1;
            Some(self.take_block(pool, c))
        }
    }

    /// Gets a fresh arena from the system; returns its index.
    #[cold]
    fn new_arena(&mut self) -> Option<u32> {
        let base = self.source.get()?.as_ptr();
        let arena = Arena {
            base,
            nfreepools: POOLS_PER_ARENA,
            freepools: ptr::null_mut(),
            pool_offset: 0,
            next: NONE,
            prev: NONE,
        };
        let ai = match self.unused_arenas.pop() {
            Some(i) => {
                self.arenas[i as usize] = arena;
                i
            }
            None => {
                self.arenas.push(arena);
                (self.arenas.len() - 1) as u32
            }
        };
        self.arenas_allocated += 1;
        Some(ai)
    }

    /// Returns a pool block.
    ///
    /// # Safety
    /// `p` is a live block of class `c` from this allocator.
    #[inline(always)]
    unsafe fn free_small(&mut self, p: *mut u8, c: usize) {
        self.classes[c].frees += 1;
        self.bytes_in_use -= class_size(c);
        // The pool header sits at the block's address rounded down to the
        // pool size (pools are POOL_SIZE-aligned). `map_addr` keeps the
        // arena's provenance.
        let pool = p.map_addr(|a| a & !(POOL_SIZE - 1)).cast::<PoolHeader>();
        // SAFETY: `p` is a live block, so `pool` is a live header in an arena
        // we own; the block's first word becomes its free-list link.
        unsafe {
            let hdr = &mut *pool;
            debug_assert_eq!(hdr.class as usize, c, "freed with the wrong size");
            let lastfree = hdr.freeblock;
            p.cast::<*mut u8>().write(lastfree);
            hdr.freeblock = p;
            hdr.count -= 1;
            if lastfree.is_null() {
                // The pool was full: back into the used list (at the front,
                // so the next allocation of this class reuses it).
                let head = self.used[c];
                hdr.next = head;
                hdr.prev = ptr::null_mut();
                if !head.is_null() {
                    (*head).prev = pool;
                }
                self.used[c] = pool;
                if hdr.count != 0 {
                    return;
                }
            } else if hdr.count != 0 {
                return;
            }
            self.pool_emptied(pool, c);
        }
    }

    /// A pool of class `c` became empty: move it to its arena's free pools
    /// and re-sort or release the arena.
    ///
    /// # Safety
    /// `pool` is a live, empty pool header in `used[c]`.
    #[cold]
    unsafe fn pool_emptied(&mut self, pool: *mut PoolHeader, c: usize) {
        // SAFETY: per the caller, `pool` and its neighbours in `used[c]` are
        // live headers.
        let ai = unsafe {
            let hdr = &mut *pool;
            if hdr.prev.is_null() {
                self.used[c] = hdr.next;
            } else {
                (*hdr.prev).next = hdr.next;
            }
            if !hdr.next.is_null() {
                (*hdr.next).prev = hdr.prev;
            }
            hdr.prev = ptr::null_mut();
            hdr.arena
        };
        self.classes[c].pools -= 1;
        let arena = &mut self.arenas[ai as usize];
        // SAFETY: `pool` is ours and no longer in any list.
        unsafe { (*pool).next = arena.freepools };
        arena.freepools = pool;
        let nf = arena.nfreepools;
        // Maintain nfp2lasta for the old count.
        let lastnf = self.nfp2lasta[nf as usize];
        if lastnf == ai {
            let prev = self.arenas[ai as usize].prev;
            self.nfp2lasta[nf as usize] =
                if prev != NONE && self.arenas[prev as usize].nfreepools == nf { prev } else { NONE };
        }
        let nf = nf + 1;
        self.arenas[ai as usize].nfreepools = nf;

        // Case 1: wholly free and not the last usable arena: give it back.
        if nf == POOLS_PER_ARENA && self.arenas[ai as usize].next != NONE {
            self.unlink_usable(ai);
            self.release_arena(ai);
            return;
        }
        // Case 2: it was full, so it was not in the usable list: it goes in
        // at the front (it has the fewest free pools, 1).
        if nf == 1 {
            let a = &mut self.arenas[ai as usize];
            a.next = self.usable;
            a.prev = NONE;
            if self.usable != NONE {
                self.arenas[self.usable as usize].prev = ai;
            }
            self.usable = ai;
            if self.nfp2lasta[1] == NONE {
                self.nfp2lasta[1] = ai;
            }
            return;
        }
        // Case 3: it is in the list; keep the list sorted.
        if self.nfp2lasta[nf as usize] == NONE {
            self.nfp2lasta[nf as usize] = ai;
        }
        if lastnf == ai {
            // It was the last arena with its old count: already in place.
            return;
        }
        debug_assert_ne!(lastnf, NONE, "an arena in the usable list has a last-of-its-count");
        // Move it to just after `lastnf`, the last arena that had its old
        // count (every arena after that one has at least `nf` free pools).
        self.unlink_usable(ai);
        let after = self.arenas[lastnf as usize].next;
        {
            let a = &mut self.arenas[ai as usize];
            a.prev = lastnf;
            a.next = after;
        }
        self.arenas[lastnf as usize].next = ai;
        if after != NONE {
            self.arenas[after as usize].prev = ai;
        }
    }

    fn unlink_usable(&mut self, ai: u32) {
        let (prev, next) = {
            let a = &self.arenas[ai as usize];
            (a.prev, a.next)
        };
        if prev != NONE {
            self.arenas[prev as usize].next = next;
        } else {
            debug_assert_eq!(self.usable, ai);
            self.usable = next;
        }
        if next != NONE {
            self.arenas[next as usize].prev = prev;
        }
        let a = &mut self.arenas[ai as usize];
        a.next = NONE;
        a.prev = NONE;
    }

    /// Gives a wholly free arena, already out of the usable list, back to
    /// the system.
    fn release_arena(&mut self, ai: u32) {
        let nf = POOLS_PER_ARENA as usize;
        if self.nfp2lasta[nf] == ai {
            self.nfp2lasta[nf] = NONE;
        }
        let a = &mut self.arenas[ai as usize];
        let base = std::mem::replace(&mut a.base, ptr::null_mut());
        a.freepools = ptr::null_mut();
        a.nfreepools = 0;
        // SAFETY: `base` came from `self.source` (it is not null: the arena
        // was live) and no block in it is live (all its pools are empty).
        unsafe { self.source.put(NonNull::new_unchecked(base)) };
        self.unused_arenas.push(ai);
        self.arenas_freed += 1;
    }

    fn large_layout(size: usize) -> Option<Layout> {
        Layout::from_size_align(size.checked_next_multiple_of(ALIGN)?, ALIGN).ok()
    }

    #[cold]
    fn alloc_large(&mut self, size: usize) -> Option<NonNull<u8>> {
        let layout = Self::large_layout(size)?;
        // SAFETY: the layout has non-zero size (size > 512).
        let p = NonNull::new(unsafe { std::alloc::alloc(layout) })?;
        self.large_allocs += 1;
        self.large_bytes += layout.size();
        self.note_alloc(layout.size());
        Some(p)
    }

    /// The pool that holds `p`, as `(arena index, pool offset)`, if any
    /// live arena does (for tests and the checker).
    fn locate(&self, p: *const u8) -> Option<(usize, usize)> {
        self.arenas.iter().enumerate().find_map(|(i, a)| {
            let base = a.base as usize;
            let addr = p as usize;
            (!a.base.is_null() && addr >= base && addr < base + ARENA_SIZE)
                .then(|| (i, (addr - base) & !(POOL_SIZE - 1)))
        })
    }
}

// SAFETY: pool blocks are disjoint slices of arenas we own, 16-byte aligned
// (arena bases are 16 KiB aligned, the pool header is 48 bytes and block
// sizes are multiples of 16); a block is handed out at most once until
// freed (it is either on one free list, uncarved, or handed out). Large
// blocks come from the global allocator with 16-byte alignment.
unsafe impl Allocator for PoolAllocator {
    fn name(&self) -> &str {
        "pool"
    }

    #[inline]
    fn alloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        if size <= SMALL_REQUEST_THRESHOLD {
            self.alloc_small(class_of(size))
        } else {
            self.alloc_large(size)
        }
    }

    #[inline(always)]
    unsafe fn free(&mut self, ptr: NonNull<u8>, size: usize) {
        if size <= SMALL_REQUEST_THRESHOLD {
            // SAFETY: forwarded from the caller: a live block of this size.
            unsafe { self.free_small(ptr.as_ptr(), class_of(size)) }
        } else {
            let layout = Self::large_layout(size).expect("a block of this size was allocated");
            self.large_frees += 1;
            self.large_bytes -= layout.size();
            self.bytes_in_use -= layout.size();
            // SAFETY: allocated by `alloc_large` with this same layout.
            unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) }
        }
    }

    unsafe fn realloc(&mut self, ptr: NonNull<u8>, old_size: usize, new_size: usize) -> Option<NonNull<u8>> {
        let small_old = old_size <= SMALL_REQUEST_THRESHOLD;
        let small_new = new_size <= SMALL_REQUEST_THRESHOLD;
        if small_old && small_new && class_of(old_size) == class_of(new_size) {
            return Some(ptr);
        }
        if !small_old && !small_new {
            let old = Self::large_layout(old_size)?;
            let new = Self::large_layout(new_size)?;
            // SAFETY: `ptr` was allocated with `old` (16-byte alignment);
            // `new.size()` is non-zero and, being a valid Layout, does not
            // overflow isize.
            let p = NonNull::new(unsafe { std::alloc::realloc(ptr.as_ptr(), old, new.size()) })?;
            self.large_bytes = self.large_bytes - old.size() + new.size();
            self.bytes_in_use -= old.size();
            self.note_alloc(new.size());
            self.large_allocs += 1;
            self.large_frees += 1;
            return Some(p);
        }
        let new = self.alloc(new_size)?;
        // SAFETY: both blocks are live and distinct, each at least
        // `min(old_size, new_size)` bytes.
        unsafe {
            ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), old_size.min(new_size));
            self.free(ptr, old_size);
        }
        Some(new)
    }

    #[inline(always)]
    fn bytes_in_use(&self) -> usize {
        self.bytes_in_use
    }

    #[inline(always)]
    fn alloc_charge(&self, size: usize) -> usize {
        if size <= SMALL_REQUEST_THRESHOLD {
            class_size(class_of(size))
        } else {
            Self::large_layout(size).map_or(usize::MAX, |l| l.size())
        }
    }

    /// Within a class nothing moves; between large blocks the system's
    /// realloc swaps the counts at once; otherwise the new block is taken
    /// before the old one is given back, so both count for a moment.
    fn realloc_charge(&self, _ptr: NonNull<u8>, old_size: usize, new_size: usize) -> usize {
        let small_old = old_size <= SMALL_REQUEST_THRESHOLD;
        let small_new = new_size <= SMALL_REQUEST_THRESHOLD;
        if (small_old && small_new && class_of(old_size) == class_of(new_size)) || (!small_old && !small_new) {
            self.alloc_charge(new_size).saturating_sub(self.alloc_charge(old_size))
        } else {
            self.alloc_charge(new_size)
        }
    }

    fn stats(&self) -> AllocStats {
        AllocStats {
            kind: "pool".into(),
            bytes_in_use: self.bytes_in_use as u64,
            bytes_peak: self.bytes_peak as u64,
            bytes_reserved: self.arenas_live() * ARENA_SIZE as u64 + self.large_bytes as u64,
            arenas_allocated: self.arenas_allocated,
            arenas_freed: self.arenas_freed,
            large_allocs: self.large_allocs,
            size_classes: (0..NUM_CLASSES)
                .map(|c| {
                    let cc = &self.classes[c];
                    SizeClassStats {
                        size: class_size(c) as u32,
                        pools: cc.pools,
                        blocks_in_use: cc.allocs - cc.frees,
                        allocs: cc.allocs,
                        frees: cc.frees,
                    }
                })
                .collect(),
        }
    }

    /// Walks every arena and pool: free lists stay inside their pool, on
    /// block boundaries, without cycles; `count` plus free and uncarved
    /// blocks make the pool's capacity; the per-class and byte counters
    /// agree with the pools; the usable list is sorted and `nfp2lasta`
    /// points at the right arenas.
    fn check(&self) -> Result<(), String> {
        let mut blocks = [0u64; NUM_CLASSES];
        let mut pools = [0u64; NUM_CLASSES];
        let mut usable_expected = 0usize;
        for (ai, a) in self.arenas.iter().enumerate() {
            if a.base.is_null() {
                continue;
            }
            let carved = a.pool_offset as usize / POOL_SIZE;
            let mut free_listed = 0usize;
            let mut fp = a.freepools;
            while !fp.is_null() {
                free_listed += 1;
                if free_listed > carved {
                    return Err(format!("arena {ai}: free-pool list longer than its carved pools"));
                }
                // SAFETY: free pools are headers inside this live arena.
                let h = unsafe { &*fp };
                if h.count != 0 {
                    return Err(format!("arena {ai}: a pool on the free-pool list has {} blocks in use", h.count));
                }
                fp = h.next;
            }
            let expect_nf = (POOLS_PER_ARENA as usize - carved) + free_listed;
            if a.nfreepools as usize != expect_nf {
                return Err(format!("arena {ai}: nfreepools {} but {} pools are free", a.nfreepools, expect_nf));
            }
            if a.nfreepools > 0 {
                usable_expected += 1;
            }
            for pi in 0..carved {
                // SAFETY: carved pools lie inside the live arena and have
                // initialised headers.
                let pool = unsafe { a.base.add(pi * POOL_SIZE) }.cast::<PoolHeader>();
                // SAFETY: as above: an initialised header we own.
                let h = unsafe { &*pool };
                if h.count == 0 {
                    continue; // on the free-pool list (checked above)
                }
                if h.arena as usize != ai {
                    return Err(format!("arena {ai} pool {pi}: header names arena {}", h.arena));
                }
                let c = h.class as usize;
                if c >= NUM_CLASSES {
                    return Err(format!("arena {ai} pool {pi}: bad class {c}"));
                }
                let size = class_size(c);
                let capacity = (POOL_SIZE - POOL_OVERHEAD) / size;
                let carved_blocks = (h.nextoffset as usize - POOL_OVERHEAD) / size;
                let mut free = 0usize;
                let mut b = h.freeblock;
                while !b.is_null() {
                    let off = b as usize - pool as usize;
                    if off < POOL_OVERHEAD
                        || off >= h.nextoffset as usize
                        || !(off - POOL_OVERHEAD).is_multiple_of(size)
                    {
                        return Err(format!("arena {ai} pool {pi}: free block at bad offset {off}"));
                    }
                    free += 1;
                    if free > carved_blocks {
                        return Err(format!("arena {ai} pool {pi}: free list has a cycle"));
                    }
                    // SAFETY: `b` is a free block of this pool (checked
                    // above); its first word is the next link.
                    b = unsafe { b.cast::<*mut u8>().read() };
                }
                // The head of the free list is the one block of the carved
                // region that may be carved but counted as free.
                if h.count as usize + free != carved_blocks || carved_blocks > capacity {
                    return Err(format!(
                        "arena {ai} pool {pi}: {} in use + {free} free != {carved_blocks} carved",
                        h.count
                    ));
                }
                blocks[c] += h.count as u64;
                pools[c] += 1;
            }
        }
        for c in 0..NUM_CLASSES {
            let cc = &self.classes[c];
            if cc.allocs - cc.frees != blocks[c] {
                return Err(format!(
                    "class {}: counters say {} blocks in use, pools hold {}",
                    class_size(c),
                    cc.allocs - cc.frees,
                    blocks[c]
                ));
            }
            if cc.pools != pools[c] {
                return Err(format!("class {}: {} pools counted, {} found", class_size(c), cc.pools, pools[c]));
            }
            // Pools in `used[c]`: each of class c and not full.
            let mut p = self.used[c];
            let mut prev: *mut PoolHeader = ptr::null_mut();
            let mut n = 0u64;
            while !p.is_null() {
                // SAFETY: used pools are live headers.
                let h = unsafe { &*p };
                if h.class as usize != c || h.prev != prev || h.freeblock.is_null() {
                    return Err(format!("class {}: used list corrupt", class_size(c)));
                }
                n += 1;
                if n > pools[c] {
                    return Err(format!("class {}: used list has a cycle", class_size(c)));
                }
                prev = p;
                p = h.next;
            }
        }
        let small: usize = (0..NUM_CLASSES).map(|c| blocks[c] as usize * class_size(c)).sum();
        if small + self.large_bytes != self.bytes_in_use {
            return Err(format!(
                "bytes_in_use {} but blocks hold {} (+{} large)",
                self.bytes_in_use, small, self.large_bytes
            ));
        }
        // The usable list: every arena with a free pool, sorted ascending,
        // and nfp2lasta[n] is the last one with n.
        let mut n = 0usize;
        let mut ai = self.usable;
        let mut prev = NONE;
        let mut last_nf = 0;
        let mut last_of = [NONE; POOLS_PER_ARENA as usize + 1];
        while ai != NONE {
            let a = &self.arenas[ai as usize];
            if a.base.is_null() || a.prev != prev || a.nfreepools < last_nf || a.nfreepools == 0 {
                return Err(format!("usable arena list corrupt at arena {ai}"));
            }
            last_nf = a.nfreepools;
            last_of[a.nfreepools as usize] = ai;
            n += 1;
            if n > self.arenas.len() {
                return Err("usable arena list has a cycle".into());
            }
            prev = ai;
            ai = a.next;
        }
        if n != usable_expected {
            return Err(format!("{n} arenas in the usable list, {usable_expected} have free pools"));
        }
        if last_of[1..] != self.nfp2lasta[1..] {
            return Err("nfp2lasta does not match the usable list".into());
        }
        Ok(())
    }
}

impl Drop for PoolAllocator {
    fn drop(&mut self) {
        for a in &mut self.arenas {
            if !a.base.is_null() {
                // SAFETY: each live arena came from `self.source`; the
                // allocator owns it and nothing may use its blocks after the
                // allocator is gone (the trait contract).
                unsafe { self.source.put(NonNull::new_unchecked(a.base)) };
                a.base = ptr::null_mut();
            }
        }
    }
}

impl PoolAllocator {
    /// For tests: which arena and pool offset hold `p`.
    #[doc(hidden)]
    pub fn locate_block(&self, p: NonNull<u8>) -> Option<(usize, usize)> {
        self.locate(p.as_ptr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a() -> PoolAllocator {
        PoolAllocator::new()
    }

    #[test]
    fn classes_round_up_in_16_byte_steps() {
        assert_eq!(class_of(1), 0);
        assert_eq!(class_of(16), 0);
        assert_eq!(class_of(17), 1);
        assert_eq!(class_of(512), 31);
        assert_eq!(class_size(31), 512);
        assert_eq!(POOL_OVERHEAD, 48);
    }

    #[test]
    fn blocks_are_aligned_disjoint_and_keep_contents() {
        let mut p = a();
        let mut live = Vec::new();
        for (i, size) in [16, 24, 48, 100, 512, 513, 4000, 33].into_iter().enumerate() {
            let b = p.alloc(size).unwrap();
            assert_eq!(b.as_ptr() as usize % ALIGN, 0);
            // SAFETY: a fresh block of `size` bytes.
            unsafe { ptr::write_bytes(b.as_ptr(), i as u8 + 1, size) };
            live.push((b, size, i as u8 + 1));
        }
        for &(b, size, v) in &live {
            // SAFETY: still live.
            let s = unsafe { std::slice::from_raw_parts(b.as_ptr(), size) };
            assert!(s.iter().all(|&x| x == v));
        }
        p.check().unwrap();
        for (b, size, _) in live {
            // SAFETY: allocated above with this size.
            unsafe { p.free(b, size) };
        }
        p.check().unwrap();
        assert_eq!(p.bytes_in_use(), 0);
    }

    #[test]
    fn free_list_is_lifo_and_blocks_are_carved_lazily() {
        let mut p = a();
        let x = p.alloc(32).unwrap();
        let y = p.alloc(32).unwrap();
        assert_eq!(y.as_ptr() as usize - x.as_ptr() as usize, 32, "carved in order");
        // SAFETY: live blocks of 32 bytes.
        unsafe {
            p.free(x, 32);
            p.free(y, 32);
        }
        assert_eq!(p.alloc(32).unwrap(), y, "last freed, first reused");
        assert_eq!(p.alloc(32).unwrap(), x);
        p.check().unwrap();
        let s = p.stats();
        assert_eq!(s.size_classes[1].allocs, 4);
        assert_eq!(s.size_classes[1].blocks_in_use, 2);
        assert_eq!(s.size_classes[1].pools, 1);
        assert_eq!(s.arenas_allocated, 1);
    }

    #[test]
    fn a_full_pool_leaves_the_used_list_and_a_new_one_starts() {
        let mut p = a();
        let per_pool = (POOL_SIZE - POOL_OVERHEAD) / 512;
        let blocks: Vec<_> = (0..per_pool + 1).map(|_| p.alloc(512).unwrap()).collect();
        assert_eq!(p.stats().size_classes[31].pools, 2);
        p.check().unwrap();
        let first_pool = blocks[0].as_ptr() as usize & !(POOL_SIZE - 1);
        assert!(blocks[..per_pool].iter().all(|b| b.as_ptr() as usize & !(POOL_SIZE - 1) == first_pool));
        // Freeing one block of the full pool puts it back in front.
        // SAFETY: live 512-byte block.
        unsafe { p.free(blocks[3], 512) };
        assert_eq!(p.alloc(512).unwrap(), blocks[3]);
        for b in blocks {
            // SAFETY: each is live with size 512.
            unsafe { p.free(b, 512) };
        }
        p.check().unwrap();
        assert_eq!(p.stats().size_classes[31].pools, 0);
    }

    #[test]
    fn empty_arenas_go_back_but_one_spare_is_kept() {
        let mut p = a();
        // Three arenas' worth of 512-byte blocks (31 per pool, 64 pools).
        let per_arena = (POOL_SIZE - POOL_OVERHEAD) / 512 * POOLS_PER_ARENA as usize;
        let blocks: Vec<_> = (0..3 * per_arena).map(|_| p.alloc(512).unwrap()).collect();
        assert_eq!(p.stats().arenas_allocated, 3);
        p.check().unwrap();
        for b in blocks {
            // SAFETY: live 512-byte blocks.
            unsafe { p.free(b, 512) };
        }
        p.check().unwrap();
        let s = p.stats();
        assert_eq!(s.arenas_freed, 2, "all but one spare arena returned");
        assert_eq!(p.arenas_live(), 1);
        // The spare is reused, no new arena.
        let b = p.alloc(16).unwrap();
        assert_eq!(p.stats().arenas_allocated, 3);
        // SAFETY: live 16-byte block.
        unsafe { p.free(b, 16) };
    }

    #[test]
    fn allocation_prefers_the_fullest_arena() {
        let mut p = a();
        let per_pool = (POOL_SIZE - POOL_OVERHEAD) / 512;
        let per_arena = per_pool * POOLS_PER_ARENA as usize;
        let blocks: Vec<_> = (0..2 * per_arena).map(|_| p.alloc(512).unwrap()).collect();
        let arena_of = |p: &PoolAllocator, b: NonNull<u8>| p.locate_block(b).unwrap().0;
        let a0 = arena_of(&p, blocks[0]);
        let a1 = arena_of(&p, blocks[per_arena]);
        assert_ne!(a0, a1);
        // Empty 10 pools in arena 0 and 2 pools in arena 1.
        for (arena_start, npools) in [(0, 10), (per_arena, 2)] {
            for b in &blocks[arena_start..arena_start + npools * per_pool] {
                // SAFETY: live 512-byte blocks, freed once.
                unsafe { p.free(*b, 512) };
            }
        }
        p.check().unwrap();
        // A new pool (of another class) comes from arena 1, the fuller one.
        let x = p.alloc(16).unwrap();
        assert_eq!(arena_of(&p, x), a1);
        p.check().unwrap();
        // SAFETY: freeing what remains, each once.
        unsafe {
            p.free(x, 16);
            for (i, b) in blocks.iter().enumerate() {
                let freed = i < 10 * per_pool || (per_arena..per_arena + 2 * per_pool).contains(&i);
                if !freed {
                    p.free(*b, 512);
                }
            }
        }
        p.check().unwrap();
        assert_eq!(p.bytes_in_use(), 0);
    }

    #[test]
    fn realloc_keeps_contents_across_classes_and_to_large() {
        let mut p = a();
        let b = p.alloc(20).unwrap();
        // SAFETY: 20 live bytes.
        unsafe { ptr::copy_nonoverlapping(b"abcdefghijklmnopqrst".as_ptr(), b.as_ptr(), 20) };
        // SAFETY: the block is live with the stated sizes at each step.
        unsafe {
            let same = p.realloc(b, 20, 30).unwrap();
            assert_eq!(same, b, "same class: in place");
            let bigger = p.realloc(same, 30, 200).unwrap();
            let large = p.realloc(bigger, 200, 2000).unwrap();
            let larger = p.realloc(large, 2000, 9000).unwrap();
            let back = p.realloc(larger, 9000, 20).unwrap();
            assert_eq!(std::slice::from_raw_parts(back.as_ptr(), 20), b"abcdefghijklmnopqrst");
            p.check().unwrap();
            p.free(back, 20);
        }
        p.check().unwrap();
        assert_eq!(p.bytes_in_use(), 0);
        assert!(p.stats().large_allocs >= 2);
    }

    #[test]
    fn reused_pool_of_another_class_is_recarved() {
        let mut p = a();
        let xs: Vec<_> = (0..10).map(|_| p.alloc(64).unwrap()).collect();
        for x in &xs {
            // SAFETY: live 64-byte blocks.
            unsafe { p.free(*x, 64) };
        }
        // The pool is empty and on the arena's free list; a 128-byte
        // request takes it and carves it for its own class.
        let y = p.alloc(128).unwrap();
        assert_eq!(y.as_ptr() as usize & !(POOL_SIZE - 1), xs[0].as_ptr() as usize & !(POOL_SIZE - 1));
        let z = p.alloc(128).unwrap();
        assert_eq!(z.as_ptr() as usize - y.as_ptr() as usize, 128);
        p.check().unwrap();
        // SAFETY: live 128-byte blocks.
        unsafe {
            p.free(y, 128);
            p.free(z, 128);
        }
        // Reused for 64 again: the old free list is not trusted across
        // classes, but a same-class reuse keeps it.
        let w = p.alloc(64).unwrap();
        p.check().unwrap();
        // SAFETY: live.
        unsafe { p.free(w, 64) };
        p.check().unwrap();
    }

    #[test]
    fn random_workload_against_a_model() {
        // A small xorshift so the test is deterministic and Miri-friendly.
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mut p = a();
        let mut live: Vec<(NonNull<u8>, usize, u8)> = Vec::new();
        let rounds = if cfg!(miri) { 600 } else { 20_000 };
        for i in 0..rounds {
            let r = next();
            if live.is_empty() || r % 3 != 0 {
                let size = match r % 10 {
                    0 => 513 + (r >> 8) as usize % 3000,
                    _ => 1 + (r >> 8) as usize % 512,
                };
                let b = p.alloc(size).unwrap();
                assert_eq!(b.as_ptr() as usize % ALIGN, 0);
                let tag = i as u8;
                // SAFETY: fresh block of `size` bytes.
                unsafe { ptr::write_bytes(b.as_ptr(), tag, size) };
                live.push((b, size, tag));
            } else {
                let k = (r >> 16) as usize % live.len();
                let (b, size, tag) = live.swap_remove(k);
                // SAFETY: live block of `size` bytes.
                let s = unsafe { std::slice::from_raw_parts(b.as_ptr(), size) };
                assert!(s.iter().all(|&x| x == tag), "contents kept");
                // SAFETY: freed once, with its size.
                unsafe { p.free(b, size) };
            }
            if i % 97 == 0 {
                p.check().unwrap();
            }
        }
        // No two live blocks overlap.
        let mut spans: Vec<_> = live.iter().map(|(b, s, _)| (b.as_ptr() as usize, *s)).collect();
        spans.sort();
        for w in spans.windows(2) {
            assert!(w[0].0 + w[0].1 <= w[1].0, "overlap");
        }
        for (b, size, _) in live {
            // SAFETY: freed once, with its size.
            unsafe { p.free(b, size) };
        }
        p.check().unwrap();
        assert_eq!(p.bytes_in_use(), 0);
        assert!(p.arenas_live() <= 1);
    }
}
