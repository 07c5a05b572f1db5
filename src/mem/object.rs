//! Object layout: headers and payloads inside allocator blocks, and the
//! object table that maps handles to them.
//!
//! This module and `mem::alloc` are where the `unsafe` code is (the
//! collector in `mem::gc` only calls the unchecked accessors below for
//! slots on its lists). The rest of the surface is safe: every access goes
//! through a slot of the object table, and a slot holds a pointer only
//! while its block is live.
//!
//! Layout (every block comes from the pluggable [`Allocator`], so `--stats`
//! counts real bytes):
//!
//! ```text
//! header (16 bytes, every object)
//!   rc: u32        the reference count
//!   kind: u8       record, list, dict or string
//!   bits: u8       generation (low 2 bits; 3 = untracked) and flags
//!   len16: u16     record: number of slots
//!   gc_prev: u32   generation list links, as slot indexes (the collector
//!   gc_next: u32   also borrows gc_prev for its gc_refs, as CPython does)
//! record:  header, then `len16` values (16 bytes each) inline
//! list:    header, len: u32, cap: u32, buf: pointer to `cap` values in a
//!          second block from the same allocator (grown like CPython's list)
//! dict:    header, pointer to an `IndexMap` on the Rust heap; its
//!          estimated size is charged to the heap's accounting
//! string:  header, len: u64, then the UTF-8 bytes inline
//! ```

use super::alloc::Allocator;
use super::heap::SlotIndex;
use super::value::{Handle, Value};
use indexmap::IndexMap;
use std::hash::{Hash, Hasher};
use std::ptr::NonNull;

/// "No slot" in generation lists and the free-slot list.
pub const NO_SLOT: u32 = u32::MAX;

/// Generation value of objects the collector does not track.
pub const UNTRACKED: u8 = 3;

/// Flag: the object's count was lowered by `decref` at some point, so
/// dangling references to it may exist; its free site is remembered.
pub const F_TAINTED: u8 = 1 << 2;
/// Flag: the object is being printed (cycle detection).
pub const F_PRINTING: u8 = 1 << 3;
/// Flag: collector scratch (reachable / seen).
pub const F_MARK: u8 = 1 << 4;
/// Flag: the object is in a running collection's unreachable set; such
/// objects are freed by the collector alone (see `Heap::drain_children`).
pub const F_UNREACH: u8 = 1 << 5;

/// Flag: a traversal met a reference to a freed object in this object. A
/// hint (cleared when the object is finished as a survivor, and set again
/// by the same walk if it still holds one); `Objects::first_dangling`
/// tells for sure.
pub const F_DANGLING: u8 = 1 << 6;

/// The type of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum ObjKind {
    Record = 0,
    List = 1,
    Dict = 2,
    Str = 3,
}

impl ObjKind {
    pub fn name(self) -> &'static str {
        match self {
            ObjKind::Record => "record",
            ObjKind::List => "list",
            ObjKind::Dict => "dict",
            ObjKind::Str => "string",
        }
    }
    /// Containers are tracked by the cycle collector; strings are not.
    pub fn is_container(self) -> bool {
        !matches!(self, ObjKind::Str)
    }
}

/// The header at the start of every object block.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Header {
    pub rc: u32,
    kind: ObjKind,
    bits: u8,
    len16: u16,
    pub gc_prev: u32,
    pub gc_next: u32,
}

impl Header {
    pub fn kind(&self) -> ObjKind {
        self.kind
    }
    pub fn gen(&self) -> u8 {
        self.bits & 3
    }
    pub fn set_gen(&mut self, g: u8) {
        self.bits = (self.bits & !3) | (g & 3);
    }
    pub fn flag(&self, f: u8) -> bool {
        self.bits & f != 0
    }
    pub fn set_flag(&mut self, f: u8, on: bool) {
        if on {
            self.bits |= f
        } else {
            self.bits &= !f
        }
    }
}

const HDR: usize = std::mem::size_of::<Header>();
const VAL: usize = std::mem::size_of::<Value>();
const _: () = assert!(HDR == 16);
// `new_record` fills small records with `[u64; 2]` per slot.
const _: () = assert!(VAL == 16);

#[repr(C)]
struct ListBody {
    len: u32,
    cap: u32,
    buf: *mut Value,
}

#[repr(C)]
struct DictBody {
    map: *mut DictMap,
    charged: u64,
}

#[repr(C)]
struct StrBody {
    len: u64,
}

/// Bytes of a record's block with `n` slots.
#[inline(always)]
pub(crate) const fn record_block_size(n: u16) -> usize {
    HDR + n as usize * VAL
}

/// Bytes of a list's block (its buffer is a block of its own).
#[inline(always)]
pub(crate) const fn list_block_size() -> usize {
    HDR + std::mem::size_of::<ListBody>()
}

/// Bytes of a dict's block (its table is on the Rust heap).
#[inline(always)]
pub(crate) const fn dict_block_size() -> usize {
    HDR + std::mem::size_of::<DictBody>()
}

/// Bytes of the block of a string of `len` bytes.
#[inline(always)]
pub(crate) const fn str_block_size(len: usize) -> usize {
    HDR + std::mem::size_of::<StrBody>() + len
}

/// A dict key: an int or a string, compared by value. Keys are copies, not
/// references: only dict values own counts (SPEC §1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DictKey {
    Int(i64),
    Str(Box<str>),
}

/// A borrowed dict key, for lookups without copying a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRef<'a> {
    Int(i64),
    Str(&'a str),
}

impl Hash for DictKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        match self {
            DictKey::Int(i) => KeyRef::Int(*i).hash(h),
            DictKey::Str(s) => KeyRef::Str(s).hash(h),
        }
    }
}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        match self {
            KeyRef::Int(i) => {
                0u8.hash(h);
                i.hash(h)
            }
            KeyRef::Str(s) => {
                1u8.hash(h);
                s.hash(h)
            }
        }
    }
}

impl indexmap::Equivalent<DictKey> for KeyRef<'_> {
    fn equivalent(&self, key: &DictKey) -> bool {
        match (self, key) {
            (KeyRef::Int(a), DictKey::Int(b)) => a == b,
            (KeyRef::Str(a), DictKey::Str(b)) => *a == &**b,
            _ => false,
        }
    }
}

impl DictKey {
    pub fn as_ref(&self) -> KeyRef<'_> {
        match self {
            DictKey::Int(i) => KeyRef::Int(*i),
            DictKey::Str(s) => KeyRef::Str(s),
        }
    }
}

impl KeyRef<'_> {
    pub fn to_owned(self) -> DictKey {
        match self {
            KeyRef::Int(i) => DictKey::Int(i),
            KeyRef::Str(s) => DictKey::Str(s.into()),
        }
    }
}

/// A dict's table: an `IndexMap` from key to value and insertion number.
///
/// Deleting is `swap_remove`, O(1): the last entry moves into the hole.
/// (`shift_remove` keeps the order but costs O(n) per deletion, so that
/// deleting n keys from the front of a dict would take O(n²) time: a
/// program could hang the VM with a few instructions.) The insertion
/// numbers put the entries back in insertion order, as CPython keeps
/// them, when something needs that order (printing), and only if a
/// deletion has moved an entry since the last time.
#[derive(Debug, Default)]
pub struct DictMap {
    map: IndexMap<DictKey, (Value, u64)>,
    next: u64,
    /// No deletion has moved an entry since the table was last in order.
    moved: bool,
}

impl DictMap {
    pub fn new() -> Self {
        DictMap::default()
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    pub fn capacity(&self) -> usize {
        self.map.capacity()
    }
    pub fn get(&self, k: &KeyRef<'_>) -> Option<&Value> {
        self.map.get(k).map(|e| &e.0)
    }
    pub fn contains_key(&self, k: &KeyRef<'_>) -> bool {
        self.map.contains_key(k)
    }
    /// Sets `k` to `v`: a new key goes last, an existing one keeps its
    /// place (as in CPython). Returns the value replaced.
    pub fn insert(&mut self, k: DictKey, v: Value) -> Option<Value> {
        if let Some(e) = self.map.get_mut(&k.as_ref()) {
            return Some(std::mem::replace(&mut e.0, v));
        }
        self.map.insert(k, (v, self.next));
        self.next += 1;
        None
    }
    /// Removes `k` in O(1); returns its value.
    pub fn remove(&mut self, k: &KeyRef<'_>) -> Option<Value> {
        let (i, _, (v, _)) = self.map.swap_remove_full(k)?;
        if i != self.map.len() {
            self.moved = true;
        }
        Some(v)
    }
    /// The values, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &Value> {
        self.map.values().map(|e| &e.0)
    }
    /// The keys, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &DictKey> {
        self.map.keys()
    }
    /// The last entry's value, if any.
    pub fn last_value(&self) -> Option<&Value> {
        self.map.last().map(|(_, e)| &e.0)
    }
    /// Removes the last entry of the table; returns its value.
    pub fn pop(&mut self) -> Option<Value> {
        self.map.pop().map(|(_, e)| e.0)
    }
    /// Entry `i` in insertion order, its key copied; call after
    /// `restore_order`, with no change between.
    pub fn entry_in_order(&self, i: usize) -> Option<(DictKey, Value)> {
        debug_assert!(!self.moved);
        self.map.get_index(i).map(|(k, e)| (k.clone(), e.0))
    }

    /// The entries in insertion order (restored first if a deletion moved
    /// an entry: O(n log n) once, then O(n)).
    pub fn iter_in_order(&mut self) -> impl DoubleEndedIterator<Item = (&DictKey, &Value)> + ExactSizeIterator {
        self.restore_order();
        self.map.iter().map(|(k, e)| (k, &e.0))
    }

    /// Puts the entries back in insertion order if a deletion moved one.
    pub fn restore_order(&mut self) {
        if self.moved {
            self.map.sort_by(|_, a, _, b| a.1.cmp(&b.1));
            self.moved = false;
        }
    }
}

/// Bytes charged for a dict's table at capacity `cap`: entries (hash, key,
/// value, insertion number) plus the index table. A dict's charge is this
/// plus the bytes of its string keys.
fn dict_table_bytes(cap: usize) -> u64 {
    let entry = std::mem::size_of::<(u64, DictKey, (Value, u64))>() + std::mem::size_of::<usize>() + 1;
    (cap * entry) as u64
}

/// One entry of the object table: 12 bytes (packed to 4-byte alignment),
/// so a million live objects cost 12 MB of table, not 16. Fields are only
/// ever read and written by value (never borrowed), as packing requires.
///
/// A free slot has id 0, which no object has (ids start at 1), and every
/// handle is made for a live object: so `id == handle.id` alone says the
/// handle's object is live and `ptr` is its header, one compare per
/// look-up.
#[derive(Clone, Copy, Debug)]
#[repr(C, packed(4))]
struct Slot {
    /// Live: the object's header. Free: the next free slot, as an address
    /// without provenance (never dereferenced).
    ptr: *mut Header,
    /// Live: the object's id (1 or more). Free: 0.
    id: u32,
}

/// `id` of a free slot.
const FREE: u32 = 0;

/// Initial capacity of the object table, in slots (192 KiB of address
/// space). Big enough that the system allocator maps the table on its own
/// from the start (glibc does so above 128 KiB): pages are touched only as
/// slots are used, and growth moves the mapping (`mremap`) instead of
/// copying through the small-object heap, which would leave the copies it
/// grew out of resident there (about 100 KiB for a million objects).
const TABLE_START: usize = 16 << 10;

/// Allocation site of a slot whose object was allocated while sites were
/// not being recorded.
const NO_SITE: u32 = u32::MAX;

/// Why an allocation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocError {
    /// The allocator or `--max-heap` refused.
    OutOfMemory,
    /// More than 2³² − 1 objects were allocated in one run.
    IdsExhausted,
}

/// The object table plus the allocator: every object lives here.
pub struct Objects<A: Allocator> {
    slots: Vec<Slot>,
    /// Allocation site per slot, kept only while `record_sites` is on (see
    /// [`Objects::set_record_sites`]); empty otherwise.
    sites: Vec<u32>,
    record_sites: bool,
    free_slot: u32,
    next_id: u32,
    alloc: A,
    /// Limit on `bytes_in_use()`: `--max-heap` less what is reserved
    /// outside the heap (see `reserve_outside`).
    max_bytes: usize,
    /// `--max-heap`.
    limit: usize,
    /// What the last `reserve_outside` asked for, if it was refused (0
    /// after one that fitted).
    refused_outside: usize,
    /// Bytes charged for dict tables (not from the allocator).
    dict_bytes: u64,
    dict_bytes_peak: u64,
    live: u64,
    /// Buffers and tables of freed lists and dicts whose references are
    /// still being handed out (see `free`); the top one ends in a reference.
    pending: Vec<Pending>,
    /// A traversal met a reference to a freed object (and set its holder's
    /// F_DANGLING) since the last `take_dangling_seen`.
    dangling_seen: bool,
}

/// A freed list's buffer (`len` values still to go) or a freed dict's
/// table (with the bytes charged for it), kept until its references are
/// handed out.
enum Pending {
    Buf { buf: NonNull<Value>, len: u32, cap: u32 },
    Map(Box<DictMap>, u64),
}

impl<A: Allocator> Objects<A> {
    pub fn new(alloc: A, max_bytes: usize) -> Self {
        Objects {
            slots: Vec::with_capacity(TABLE_START),
            sites: Vec::new(),
            record_sites: false,
            free_slot: NO_SLOT,
            next_id: 1,
            alloc,
            max_bytes,
            limit: max_bytes,
            refused_outside: 0,
            dict_bytes: 0,
            dict_bytes_peak: 0,
            live: 0,
            pending: Vec::new(),
            dangling_seen: false,
        }
    }

    pub fn allocator(&self) -> &A {
        &self.alloc
    }

    /// Charges `bytes` of memory held outside the heap (the VM's register
    /// stack and frames) to `--max-heap`, replacing the previous charge:
    /// false, and nothing changes, when that would not fit beside the
    /// bytes in use.
    pub fn reserve_outside(&mut self, bytes: usize) -> bool {
        match self.limit.checked_sub(bytes) {
            Some(max) if self.bytes_in_use() <= max => {
                self.max_bytes = max;
                self.refused_outside = 0;
                true
            }
            _ => {
                self.refused_outside = bytes.max(1);
                false
            }
        }
    }

    /// `--max-heap`, and the bytes charged outside the heap now (see
    /// [`Objects::reserve_outside`]).
    pub fn limit_and_outside(&self) -> (usize, usize) {
        (self.limit, self.limit - self.max_bytes)
    }

    /// What the last [`Objects::reserve_outside`] asked for, if it was
    /// refused (the one before any out-of-memory error it caused).
    pub fn refused_outside(&self) -> Option<usize> {
        (self.refused_outside != 0).then_some(self.refused_outside)
    }

    /// Bytes in use: allocator blocks plus charged dict tables.
    pub fn bytes_in_use(&self) -> usize {
        self.alloc.bytes_in_use() + self.dict_bytes as usize
    }

    pub fn dict_bytes(&self) -> (u64, u64) {
        (self.dict_bytes, self.dict_bytes_peak)
    }

    /// Bytes of the object table in use: every slot ever taken (the table
    /// never shrinks; freed slots are reused), and sites when recorded. The
    /// capacity reserved beyond that is address space whose pages are not
    /// touched until used, so it is not counted.
    pub fn table_bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<Slot>() + self.sites.len() * 4
    }

    /// Records each object's allocation site from now on (for leak
    /// reports), at 4 bytes per table slot; off by default, like CPython's
    /// `tracemalloc`. Objects allocated while it was off have no site.
    pub fn set_record_sites(&mut self, on: bool) {
        self.record_sites = on;
        if on {
            self.sites.resize(self.slots.len(), NO_SITE);
        } else {
            self.sites = Vec::new();
        }
    }

    /// Number of live objects.
    pub fn live(&self) -> u64 {
        self.live
    }

    /// Ids handed out so far.
    pub fn allocated(&self) -> u64 {
        self.next_id as u64 - 1
    }

    #[inline(always)]
    fn raw_alloc(&mut self, size: usize) -> Result<NonNull<u8>, AllocError> {
        // What the allocator says this allocation can add (its rounding,
        // say), so that no allocator passes the limit.
        self.alloc.alloc_within(size, self.dict_bytes as usize, self.max_bytes).ok_or(AllocError::OutOfMemory)
    }

    /// Allocates and initialises an object block; returns its handle.
    /// `gc_prev` presets the header's generation-list link: the collector
    /// passes its young tail, so tracking the new container does not look
    /// its header up again (`NO_SLOT` otherwise).
    #[inline(always)]
    fn new_object(
        &mut self,
        kind: ObjKind,
        size: usize,
        len16: u16,
        site: u32,
        gc_prev: u32,
    ) -> Result<(Handle, NonNull<u8>), AllocError> {
        // Every slot was first taken by an allocation, so the table never
        // has more slots than ids handed out: with ids left, a new slot's
        // index stays below NO_SLOT.
        if self.next_id == u32::MAX {
            return Err(AllocError::IdsExhausted);
        }
        debug_assert!(self.slots.len() < NO_SLOT as usize);
        let block = self.raw_alloc(size)?;
        let hdr = block.cast::<Header>();
        let gen = if kind.is_container() { 0 } else { UNTRACKED };
        // SAFETY: the block is at least `size >= HDR` bytes, 16-aligned and
        // exclusively ours (Allocator contract).
        unsafe { hdr.as_ptr().write(Header { rc: 1, kind, bits: gen, len16, gc_prev, gc_next: NO_SLOT }) };
        let id = self.next_id;
        self.next_id += 1;
        let slot = if self.free_slot != NO_SLOT {
            let s = self.free_slot;
            debug_assert!((s as usize) < self.slots.len() && self.slots[s as usize].id == FREE);
            // SAFETY: the free-slot list holds only indexes of slots in the
            // table (freed ones: `free_impl` pushes them), which never
            // shrinks.
            let e = unsafe { self.slots.get_unchecked_mut(s as usize) };
            self.free_slot = { e.ptr }.addr() as u32;
            *e = Slot { ptr: hdr.as_ptr(), id };
            s
        } else {
            self.slots.push(Slot { ptr: hdr.as_ptr(), id });
            (self.slots.len() - 1) as u32
        };
        if self.record_sites {
            self.record_site(slot, site);
        }
        self.live += 1;
        Ok((Handle { slot, id }, block))
    }

    /// A new record of `n` nil slots, with refcount 1 (`gc_prev`: see
    /// `new_object`).
    #[inline(always)]
    pub fn new_record(&mut self, n: u16, site: u32, gc_prev: u32) -> Result<Handle, AllocError> {
        let size = record_block_size(n);
        let (h, block) = self.new_object(ObjKind::Record, size, n, site, gc_prev)?;
        // SAFETY: the block has room for `n` values after the header, and
        // 16-byte alignment suits `Value` (align 8). All-zero bytes are
        // `Value::Nil` (tag 0; a test pins it). One fill of the slots: a
        // loop writing each tag alone was vectorised into masked stores
        // that cost ~35 instructions for a one-slot record (volatile
        // writes, one per slot, cost more on 2- and 4-slot records).
        //
        // Records of up to four slots (the common sizes) are filled with
        // stores of a known length instead: `write_bytes` of a length known
        // only at run time is a call to the C library's `memset`, about 20
        // instructions for a one-slot record. A slot is 16 bytes (asserted
        // next to `HDR`), two `u64`s; the body is 16-aligned (the block is,
        // and `HDR == 16`), more than `u64` needs.
        unsafe {
            let body = block.as_ptr().add(HDR);
            match n {
                0 => {}
                1 => body.cast::<[u64; 2]>().write([0; 2]),
                2 => body.cast::<[u64; 4]>().write([0; 4]),
                3 => body.cast::<[u64; 6]>().write([0; 6]),
                4 => body.cast::<[u64; 8]>().write([0; 8]),
                _ => body.write_bytes(0, n as usize * VAL),
            }
        }
        Ok(h)
    }

    /// A new empty list, refcount 1.
    pub fn new_list(&mut self, site: u32, gc_prev: u32) -> Result<Handle, AllocError> {
        let (h, block) = self.new_object(ObjKind::List, list_block_size(), 0, site, gc_prev)?;
        // SAFETY: the block has room for the body after the header.
        unsafe {
            block.as_ptr().add(HDR).cast::<ListBody>().write(ListBody { len: 0, cap: 0, buf: std::ptr::null_mut() })
        };
        Ok(h)
    }

    /// A new empty dict, refcount 1.
    pub fn new_dict(&mut self, site: u32, gc_prev: u32) -> Result<Handle, AllocError> {
        let (h, block) = self.new_object(ObjKind::Dict, dict_block_size(), 0, site, gc_prev)?;
        let map = Box::into_raw(Box::new(DictMap::new()));
        // SAFETY: the block has room for the body after the header.
        unsafe { block.as_ptr().add(HDR).cast::<DictBody>().write(DictBody { map, charged: 0 }) };
        Ok(h)
    }

    /// A new string, refcount 1.
    pub fn new_str(&mut self, s: &str, site: u32) -> Result<Handle, AllocError> {
        let size = str_block_size(s.len());
        let (h, block) = self.new_object(ObjKind::Str, size, 0, site, NO_SLOT)?;
        // SAFETY: the block has room for the length and `s.len()` bytes.
        unsafe {
            let body = block.as_ptr().add(HDR);
            body.cast::<StrBody>().write(StrBody { len: s.len() as u64 });
            std::ptr::copy_nonoverlapping(s.as_ptr(), body.add(std::mem::size_of::<StrBody>()), s.len());
        }
        Ok(h)
    }

    /// Is `h` a reference to the live object it was made for?
    #[inline(always)]
    pub fn is_live(&self, h: Handle) -> bool {
        // SAFETY: handles are made only here, for live objects, whose ids
        // start at 1 (`handle` refuses a free slot): no handle has id FREE.
        // Knowing it, the compiler drops the FREE test of a `hdr` that
        // follows a successful `is_live`.
        unsafe { std::hint::assert_unchecked(h.id != FREE) };
        match self.slots.get(h.slot as usize) {
            Some(s) => s.id == h.id,
            None => false,
        }
    }

    #[inline(always)]
    fn ptr(&self, slot: u32) -> NonNull<Header> {
        let s = self.slots[slot as usize];
        if s.id == FREE {
            panic!("object slot {slot} is free");
        }
        // SAFETY: the slot is live, so `ptr` is its block's header.
        unsafe { NonNull::new_unchecked(s.ptr) }
    }

    /// The header of the live object in `slot`.
    #[inline(always)]
    pub fn hdr(&self, slot: u32) -> &Header {
        // SAFETY: a slot holds a pointer only while its block is live, and
        // the block starts with an initialised header. The borrow of `self`
        // keeps the block from being freed while the reference lives.
        unsafe { self.ptr(slot).as_ref() }
    }

    /// The header of the live object in `slot`, mutably.
    #[inline(always)]
    pub fn hdr_mut(&mut self, slot: u32) -> &mut Header {
        // SAFETY: as in `hdr`; `&mut self` makes the access exclusive.
        unsafe { self.ptr(slot).as_mut() }
    }

    /// The header of the object in `slot`, without the checks of
    /// [`Objects::hdr_mut`] (index in range, slot not free): for the
    /// collector's list work, whose slots come from list links.
    ///
    /// # Safety
    /// `slot` holds a live object. Every slot on a generation list or on
    /// a collection's unreachable list does: an object is taken off its
    /// list when it is freed (`Heap::gc_untrack_freed`, or by
    /// `free_garbage`, which takes the unreachable list whole), and
    /// `Heap::gc_verify` checks the lists in the tests.
    #[inline(always)]
    pub unsafe fn tracked_mut(&mut self, slot: u32) -> &mut Header {
        // SAFETY: per the caller, `slot` holds a live object, whose block
        // starts with its header; `&mut self` makes the access exclusive.
        unsafe { self.tracked_ptr(slot).as_mut() }
    }

    /// The pointer to the block of the live object in `slot` (with the
    /// whole block's provenance, unlike a `&mut Header`), unchecked.
    ///
    /// # Safety
    /// As for [`Objects::tracked_mut`].
    #[inline(always)]
    unsafe fn tracked_ptr(&self, slot: u32) -> NonNull<Header> {
        debug_assert!(self.occupied(slot), "a list holds free slot {slot}");
        // SAFETY: per the caller, `slot` is in range and holds a live
        // object, so its pointer is the block's, not null.
        unsafe { NonNull::new_unchecked(self.slots.get_unchecked(slot as usize).ptr) }
    }

    #[cold]
    fn record_site(&mut self, slot: u32, site: u32) {
        let i = slot as usize;
        if i >= self.sites.len() {
            self.sites.resize(i + 1, NO_SITE);
        }
        self.sites[i] = site;
    }

    /// Id and allocation site of the live object in `slot`; the site is
    /// `None` unless sites were being recorded when it was allocated.
    pub fn id_site(&self, slot: u32) -> (u32, Option<u32>) {
        let site = self.sites.get(slot as usize).copied().filter(|&s| s != NO_SITE);
        (self.slots[slot as usize].id, site)
    }

    /// Whether `slot` holds a live object.
    pub fn occupied(&self, slot: u32) -> bool {
        self.slots.get(slot as usize).is_some_and(|s| s.id != FREE)
    }

    /// The handle of the live object in `slot`.
    pub fn handle(&self, slot: u32) -> Handle {
        let id = self.slots[slot as usize].id;
        assert_ne!(id, FREE, "object slot {slot} is free");
        Handle { slot, id }
    }

    /// Every live object's slot, in slot order.
    pub fn live_slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots.iter().enumerate().filter(|(_, s)| s.id != FREE).map(|(i, _)| i as u32)
    }

    fn body(&self, slot: u32) -> *mut u8 {
        // SAFETY: the header is followed by the body inside the same block.
        unsafe { self.ptr(slot).as_ptr().cast::<u8>().add(HDR) }
    }

    /// A view of the object for reading and writing values.
    pub fn view(&mut self, slot: u32) -> ObjMut<'_> {
        let kind = self.hdr(slot).kind;
        let body = self.body(slot);
        match kind {
            ObjKind::Record => {
                let n = self.hdr(slot).len16 as usize;
                // SAFETY: a record block holds `len16` initialised values
                // after the header; `&mut self` makes the borrow exclusive.
                ObjMut::Record(unsafe { std::slice::from_raw_parts_mut(body.cast::<Value>(), n) })
            }
            ObjKind::List => {
                // SAFETY: a list block holds an initialised ListBody whose
                // `buf` has `len` initialised values (or is null with len 0).
                let items = unsafe {
                    let lb = &*body.cast::<ListBody>();
                    if lb.len == 0 {
                        &mut [][..]
                    } else {
                        std::slice::from_raw_parts_mut(lb.buf, lb.len as usize)
                    }
                };
                ObjMut::List(items)
            }
            // SAFETY: a dict block holds a DictBody whose `map` came from
            // `Box::into_raw` and is freed only with the object.
            ObjKind::Dict => ObjMut::Dict(unsafe { &mut *(*body.cast::<DictBody>()).map }),
            ObjKind::Str => ObjMut::Str(self.str_at(slot)),
        }
    }

    /// The values of the record or list in `slot`; `None` for dicts and
    /// strings. The fast path of `load` and `store`.
    #[inline(always)]
    pub fn seq_items(&mut self, slot: u32) -> Option<&mut [Value]> {
        let hdr = self.hdr(slot);
        let (kind, n) = (hdr.kind, hdr.len16 as usize);
        let body = self.body(slot);
        match kind {
            // SAFETY: a record block holds `len16` initialised values after
            // the header; `&mut self` makes the borrow exclusive.
            ObjKind::Record => Some(unsafe { std::slice::from_raw_parts_mut(body.cast::<Value>(), n) }),
            // SAFETY: a list body's `buf` holds `len` initialised values.
            ObjKind::List => Some(unsafe {
                let lb = &*body.cast::<ListBody>();
                if lb.len == 0 {
                    &mut [][..]
                } else {
                    std::slice::from_raw_parts_mut(lb.buf, lb.len as usize)
                }
            }),
            _ => None,
        }
    }

    /// The `store` fast path: `v` into item `i` of the live record or list
    /// `h` when that item holds no reference (nothing to release), and
    /// `v`'s count raised by one if it is a reference. False, and nothing
    /// changed, unless `v` is a live object's reference (or no reference)
    /// whose count can grow, and `h` is live, a record or list, with item
    /// `i`, which holds no reference. The count is written after the item,
    /// through the header pointer found before, so that nothing is looked
    /// up twice.
    #[inline(always)]
    pub fn store_empty(&mut self, h: Handle, i: impl SlotIndex, v: Value) -> bool {
        let counted = match v {
            Value::Ref(x) => {
                if !self.is_live(x) {
                    return false;
                }
                let p = self.ptr(x.slot);
                // SAFETY: `x` is live, so `p` is its header.
                if unsafe { (*p.as_ptr()).rc } == u32::MAX {
                    return false;
                }
                Some(p)
            }
            _ => None,
        };
        if !self.is_live(h) {
            return false;
        }
        let Some(items) = self.seq_items(h.slot) else { return false };
        let Some(item) = i.resolve(items.len()).and_then(|k| items.get_mut(k)) else { return false };
        if let Value::Ref(_) = item {
            return false;
        }
        *item = v;
        if let Some(p) = counted {
            // SAFETY: `p` is the header of `x`, which is still live
            // (nothing was freed since it was checked); the borrow of the
            // items has ended (they lie outside the header anyway).
            unsafe { (*p.as_ptr()).rc += 1 };
        }
        true
    }

    /// The values of the record or list in `slot` (empty for others).
    pub fn items(&mut self, slot: u32) -> &mut [Value] {
        match self.view(slot) {
            ObjMut::Record(v) | ObjMut::List(v) => v,
            _ => &mut [],
        }
    }

    /// The text of the string in `slot`.
    pub fn str_at(&self, slot: u32) -> &str {
        debug_assert_eq!(self.hdr(slot).kind, ObjKind::Str);
        let body = self.body(slot);
        // SAFETY: a string block holds its length then that many bytes,
        // copied from a `&str`, so they are valid UTF-8.
        unsafe {
            let len = (*body.cast::<StrBody>()).len as usize;
            let bytes = std::slice::from_raw_parts(body.add(std::mem::size_of::<StrBody>()), len);
            std::str::from_utf8_unchecked(bytes)
        }
    }

    /// Calls `f` with every reference the object holds (not dict keys:
    /// they are copies).
    pub fn for_each_ref(&mut self, slot: u32, mut f: impl FnMut(Handle)) {
        match self.view(slot) {
            ObjMut::Record(v) | ObjMut::List(v) => {
                for x in v.iter() {
                    if let Value::Ref(h) = x {
                        f(*h)
                    }
                }
            }
            ObjMut::Dict(m) => {
                for x in m.values() {
                    if let Value::Ref(h) = x {
                        f(*h)
                    }
                }
            }
            ObjMut::Str(_) => {}
        }
    }

    /// One look-up of `slot` for a collector step: `own` sees the object's
    /// own header and returns a result and whether to go on; if it says so,
    /// `f` is then called with the header and slot of every live object
    /// this one refers to (the collector's `tp_traverse`, with no
    /// intermediate buffer). `own`'s borrow ends before `f` runs, so an
    /// object that refers to itself is fine. Returns `own`'s result.
    ///
    /// `f` may change a child's header (the collector's `gc_refs`, links
    /// and flags) but nothing else; it must not free or allocate.
    #[inline(always)]
    pub fn inspect<R>(
        &mut self,
        slot: u32,
        own: impl FnOnce(&mut Header) -> (R, bool),
        f: impl FnMut(&mut Header, u32),
    ) -> R {
        let p = self.ptr(slot);
        self.inspect_at(p, own, f)
    }

    /// [`Objects::inspect`] of an object on a collector list, without the
    /// checks of its slot (see [`Objects::tracked_mut`]).
    ///
    /// # Safety
    /// `slot` holds a live object.
    #[inline(always)]
    pub unsafe fn inspect_tracked<R>(
        &mut self,
        slot: u32,
        own: impl FnOnce(&mut Header) -> (R, bool),
        f: impl FnMut(&mut Header, u32),
    ) -> R {
        // SAFETY: per the caller, `slot` holds a live object.
        let p = unsafe { self.tracked_ptr(slot) };
        self.inspect_at(p, own, f)
    }

    /// `inspect` of the live object whose header is at `p`.
    #[inline(always)]
    fn inspect_at<R>(
        &mut self,
        p: NonNull<Header>,
        own: impl FnOnce(&mut Header) -> (R, bool),
        f: impl FnMut(&mut Header, u32),
    ) -> R {
        // SAFETY: `p` is a live object's header (the callers took it from
        // its slot); `&mut self` makes the access exclusive, and the borrow
        // ends when `own` returns.
        let (r, go) = own(unsafe { &mut *p.as_ptr() });
        if go {
            self.traverse_at(p, f);
        }
        r
    }

    /// Whether a traversal met a reference to a freed object since the
    /// last call (see `F_DANGLING`); resets it.
    pub fn take_dangling_seen(&mut self) -> bool {
        std::mem::take(&mut self.dangling_seen)
    }

    /// The first reference to a freed object that the live object in
    /// `slot` holds, if any.
    pub fn first_dangling(&mut self, slot: u32) -> Option<Handle> {
        let as_ref = |v: &Value| if let Value::Ref(h) = *v { Some(h) } else { None };
        let refs: Vec<Handle> = match self.view(slot) {
            ObjMut::Record(v) | ObjMut::List(v) => v.iter().filter_map(as_ref).collect(),
            ObjMut::Dict(m) => m.values().filter_map(as_ref).collect(),
            ObjMut::Str(_) => Vec::new(),
        };
        refs.into_iter().find(|&h| !self.is_live(h))
    }

    /// The referents of the live object whose header is at `p` (see
    /// [`Objects::inspect`]).
    #[inline(always)]
    fn traverse_at(&mut self, p: NonNull<Header>, mut f: impl FnMut(&mut Header, u32)) {
        // A slice, not the Vec: its address and length stay in registers
        // while `f` writes headers through raw pointers (the Vec's fields
        // would be read again after every write).
        let slots: &[Slot] = self.slots.as_slice();
        let seen = &mut self.dangling_seen;
        let mut visit = |v: &Value| {
            if let Value::Ref(h) = *v {
                if let Some(s) = slots.get(h.slot as usize) {
                    if s.id == h.id {
                        // SAFETY: the ids match and a handle's is never
                        // FREE, so the slot holds a live object, whose block
                        // starts with its header. `f` writes only header
                        // fields, never the values being iterated (they lie
                        // after the header or in a separate buffer), and no
                        // other reference to that header is alive.
                        f(unsafe { &mut *{ s.ptr } }, h.slot);
                        return;
                    }
                }
                // A reference to a freed object: noted in the holder's
                // header (see F_DANGLING).
                // SAFETY: `p` is the live holder's header; no reference to
                // it is alive here (`f`'s ended with its call), and only
                // its flag bits are written, never the values iterated.
                unsafe { (*p.as_ptr()).bits |= F_DANGLING };
                *seen = true;
            }
        };
        // SAFETY: `p` is the header of a live object (callers got it from
        // its slot under `&mut self`): a record holds `len16` initialised
        // values after its header, a list body's `buf` holds `len` of them,
        // a dict body's `map` is its live boxed table. The header is read
        // once, before any visit; values are read one at a time through
        // raw pointers while `visit` writes only headers.
        unsafe {
            let (kind, n) = ((*p.as_ptr()).kind, (*p.as_ptr()).len16 as usize);
            let body = p.as_ptr().cast::<u8>().add(HDR);
            match kind {
                ObjKind::Record => {
                    let vals = body.cast::<Value>();
                    for i in 0..n {
                        visit(&*vals.add(i));
                    }
                }
                ObjKind::List => {
                    // Read once: `visit` writes through raw pointers.
                    let ListBody { len, buf, .. } = body.cast::<ListBody>().read();
                    for i in 0..len as usize {
                        visit(&*buf.add(i));
                    }
                }
                ObjKind::Dict => (*(*body.cast::<DictBody>()).map).values().for_each(visit),
                ObjKind::Str => {}
            }
        }
    }

    /// Appends to the list in `slot`, growing its buffer like CPython's
    /// `list_resize`. The value's count is the caller's business.
    pub fn list_push(&mut self, slot: u32, v: Value) -> Result<(), AllocError> {
        let body = self.body(slot).cast::<ListBody>();
        // SAFETY: `slot` is a live list (callers check the kind), so its
        // body is an initialised ListBody exclusively borrowed via `self`.
        let (len, cap, buf) = unsafe { ((*body).len, (*body).cap, (*body).buf) };
        if len == u32::MAX {
            return Err(AllocError::OutOfMemory);
        }
        if len == cap {
            let newsize = len as usize + 1;
            let new_cap = (newsize + (newsize >> 3) + 6) & !3;
            let new_cap = new_cap.min(u32::MAX as usize);
            let new_bytes = new_cap * VAL;
            // What growing adds, as the allocator counts it (bump keeps
            // the old block; a pool move holds both for a moment).
            let grown = match NonNull::new(buf) {
                None => self.alloc.alloc_charge(new_bytes),
                Some(old) => self.alloc.realloc_charge(old.cast(), cap as usize * VAL, new_bytes),
            };
            if self.bytes_in_use().saturating_add(grown) > self.max_bytes {
                return Err(AllocError::OutOfMemory);
            }
            let nb = match NonNull::new(buf) {
                None => self.alloc.alloc(new_bytes),
                // SAFETY: `buf` came from this allocator with `cap * VAL`
                // bytes and is live (owned by this list).
                Some(old) => unsafe { self.alloc.realloc(old.cast(), cap as usize * VAL, new_bytes) },
            }
            .ok_or(AllocError::OutOfMemory)?;
            // SAFETY: as above; the body is still the same live ListBody.
            unsafe {
                (*body).buf = nb.as_ptr().cast();
                (*body).cap = new_cap as u32;
            }
        }
        // SAFETY: `len < cap` now, so slot `len` of the buffer is in bounds.
        unsafe {
            (*body).buf.add(len as usize).write(v);
            (*body).len = len + 1;
        }
        Ok(())
    }

    /// Removes element `i` of the list in `slot` (the rest shift down) and
    /// returns it; the count it held passes to the caller.
    pub fn list_remove(&mut self, slot: u32, i: usize) -> Value {
        let body = self.body(slot).cast::<ListBody>();
        // SAFETY: live list body; callers guarantee `i < len`, so the
        // shifted range lies inside the initialised part of the buffer.
        unsafe {
            let len = (*body).len as usize;
            assert!(i < len);
            let buf = (*body).buf;
            let v = buf.add(i).read();
            std::ptr::copy(buf.add(i + 1), buf.add(i), len - i - 1);
            (*body).len = (len - 1) as u32;
            v
        }
    }

    /// Updates a dict's charge after its table changed: `cap_before` is the
    /// table's capacity before the change, `key_bytes` the string-key bytes
    /// it gained (negative: lost). O(1), so that building a dict of n keys
    /// costs O(n), not O(n²).
    pub fn dict_recharge(&mut self, slot: u32, cap_before: usize, key_bytes: i64) {
        let body = self.body(slot).cast::<DictBody>();
        // SAFETY: live dict body with a valid map pointer.
        let (new, old) = unsafe {
            let old = (*body).charged;
            let cap = (*(*body).map).capacity();
            let new =
                (old as i64 - dict_table_bytes(cap_before) as i64 + dict_table_bytes(cap) as i64 + key_bytes) as u64;
            (new, old)
        };
        // SAFETY: as above.
        unsafe { (*body).charged = new };
        self.dict_bytes = self.dict_bytes - old + new;
        self.dict_bytes_peak = self.dict_bytes_peak.max(self.dict_bytes);
    }

    /// Heap verifier's part: each dict's charge is its table at its
    /// capacity plus its string keys' bytes, the charges sum to
    /// `dict_bytes`, and no freed container is still handing out references.
    pub fn verify_dict_charges(&self) -> Result<(), String> {
        if !self.pending.is_empty() {
            return Err(format!("{} freed containers still hold references", self.pending.len()));
        }
        let mut sum = 0;
        for slot in self.live_slots() {
            if self.hdr(slot).kind != ObjKind::Dict {
                continue;
            }
            // SAFETY: a live dict's body holds a valid map pointer; `&self`
            // keeps it from changing while we read.
            let (m, charged) = unsafe {
                let body = self.body(slot).cast::<DictBody>();
                (&*(*body).map, (*body).charged)
            };
            let keys: u64 = m.keys().map(|k| if let DictKey::Str(s) = k { s.len() as u64 } else { 0 }).sum();
            let want = dict_table_bytes(m.capacity()) + keys;
            if charged != want {
                return Err(format!(
                    "dict #{} is charged {charged} bytes, its table needs {want}",
                    self.slots[slot as usize].id
                ));
            }
            sum += charged;
        }
        if sum != self.dict_bytes {
            return Err(format!(
                "dict tables charged {} bytes in all, the dicts' charges sum to {sum}",
                self.dict_bytes
            ));
        }
        Ok(())
    }

    /// Would growing a dict by one entry stay within `--max-heap`?
    pub fn dict_can_grow(&mut self, slot: u32) -> bool {
        let ObjMut::Dict(m) = self.view(slot) else { return true };
        let extra = if m.len() == m.capacity() { dict_table_bytes(m.capacity().max(4)) as usize } else { 0 };
        self.bytes_in_use().saturating_add(extra) <= self.max_bytes
    }

    /// Frees the object in `slot`: releases its blocks and marks the slot
    /// free; returns the id it had. The references it held pass to the
    /// caller (their counts with them): a record's go into `children`; a
    /// list's buffer or a dict's table is kept back, still charged, and
    /// hands its references out one at a time through [`Objects::take_child`],
    /// so freeing a container of a million references needs no second
    /// array of a million values.
    #[inline(always)]
    pub fn free(&mut self, slot: u32, children: &mut Vec<Value>) -> u32 {
        self.free_hdr(slot, children).0
    }

    /// [`Objects::free`], also returning a copy of the header as it was
    /// (its flags and generation links), so that the caller need not look
    /// the object up before freeing it.
    #[inline(always)]
    pub fn free_hdr(&mut self, slot: u32, children: &mut Vec<Value>) -> (u32, Header) {
        let (id, copy, _) = self.free_impl::<false>(slot, children);
        (id, copy)
    }

    /// [`Objects::free_hdr`] for a member of the collector's garbage: a
    /// record's references to other members (live objects flagged
    /// [`F_UNREACH`]) or to objects already freed are dropped here rather
    /// than handed out in `children`, where the collector would look each
    /// up only to skip it. A list's or dict's references are handed out as
    /// by `free_hdr`.
    ///
    /// # Safety
    /// `slot` holds a live object (as every slot on the unreachable list
    /// does: see [`Objects::tracked_mut`]); its slot is not checked.
    #[inline(always)]
    pub unsafe fn free_member(&mut self, slot: u32, children: &mut Vec<Value>) -> (u32, Header, bool) {
        self.free_impl::<true>(slot, children)
    }

    /// Does `h` refer to a live object outside the unreachable set?
    #[inline(always)]
    fn outside_garbage(&self, h: Handle) -> bool {
        self.is_live(h) && !self.hdr(h.slot).flag(F_UNREACH)
    }

    #[inline(always)]
    fn free_impl<const MEMBER: bool>(&mut self, slot: u32, children: &mut Vec<Value>) -> (u32, Header, bool) {
        let p = if MEMBER {
            // SAFETY: `free_member`'s caller promises a live object.
            unsafe { self.tracked_ptr(slot) }
        } else {
            self.ptr(slot)
        };
        // SAFETY: `slot` is in range: `ptr` checked it, or the caller of
        // `free_member` promised a live object there.
        let s = unsafe { self.slots.get_unchecked_mut(slot as usize) };
        // Whether anything was handed out: references into `children`, or
        // a list's buffer or dict's table into `pending`.
        let mut handed = false;
        let id = s.id;
        *s = Slot { ptr: std::ptr::without_provenance_mut(self.free_slot as usize), id: FREE };
        self.free_slot = slot;
        self.live -= 1;
        // SAFETY: the slot held `p`, so the object is live (the slot is now
        // cleared, so nothing else can reach it): we read its header and
        // body, move its values out (a list buffer or dict table moves, whole,
        // to `pending`) and give the object's block back to the allocator
        // with the size it was allocated with.
        let copy = unsafe {
            let hdr = p.as_ptr();
            let copy = *hdr;
            let (kind, n) = (copy.kind, copy.len16 as usize);
            let body = hdr.cast::<u8>().add(HDR);
            let size = if kind == ObjKind::Record {
                for v in std::slice::from_raw_parts(body.cast::<Value>(), n) {
                    if let Value::Ref(h) = *v {
                        if MEMBER && !self.outside_garbage(h) {
                            continue;
                        }
                        children.push(*v);
                        handed = true;
                    }
                }
                HDR + n * VAL
            } else {
                handed = true;
                self.free_body(kind, body)
            };
            self.alloc.free(p.cast(), size);
            copy
        };
        (id, copy, handed)
    }

    /// The part of [`Objects::free`] for lists, dicts and strings: keeps a
    /// list's buffer or a dict's table back in `pending`; returns the size
    /// of the object's block.
    ///
    /// # Safety
    /// `body` is the body of a live object of kind `kind` (not a record)
    /// whose slot has just been cleared.
    #[inline(never)]
    unsafe fn free_body(&mut self, kind: ObjKind, body: *mut u8) -> usize {
        // SAFETY: per the caller, `body` holds the initialised body of a
        // live object of this kind, which nothing else can reach any more.
        unsafe {
            match kind {
                ObjKind::Record => unreachable!("records are freed inline"),
                ObjKind::List => {
                    let lb = body.cast::<ListBody>().read();
                    if let Some(buf) = NonNull::new(lb.buf) {
                        self.pending.push(Pending::Buf { buf, len: lb.len, cap: lb.cap });
                        self.settle_pending();
                    }
                    HDR + std::mem::size_of::<ListBody>()
                }
                ObjKind::Dict => {
                    let db = body.cast::<DictBody>().read();
                    self.pending.push(Pending::Map(Box::from_raw(db.map), db.charged));
                    self.settle_pending();
                    HDR + std::mem::size_of::<DictBody>()
                }
                ObjKind::Str => HDR + std::mem::size_of::<StrBody>() + (*body.cast::<StrBody>()).len as usize,
            }
        }
    }

    /// Whether freed lists or dicts still have references to hand out
    /// (see [`Objects::take_child`]).
    #[inline(always)]
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The next reference held by a freed list or dict (see [`Objects::free`]),
    /// its count passing to the caller; `None` when none is left.
    #[inline]
    pub fn take_child(&mut self) -> Option<Value> {
        if self.pending.is_empty() {
            return None;
        }
        self.take_pending()
    }

    fn take_pending(&mut self) -> Option<Value> {
        let v = match self.pending.last_mut()? {
            Pending::Buf { buf, len, .. } => {
                // `settle_pending` left a reference on top.
                *len -= 1;
                // SAFETY: the buffer is live (kept back by `free`) and holds
                // `len` initialised values; we read the one at the end.
                unsafe { buf.as_ptr().add(*len as usize).read() }
            }
            Pending::Map(m, _) => m.pop().unwrap_or(Value::Nil),
        };
        self.settle_pending();
        Some(v)
    }

    /// Drops from the top of `pending` what holds no reference (trailing
    /// atoms, then the buffer or table itself once empty), so that the top
    /// entry, if any, ends in a reference. An entry stays only while it
    /// still owes a reference: a chain of lists freed one inside the other
    /// keeps one entry, not one per link.
    fn settle_pending(&mut self) {
        while let Some(top) = self.pending.last_mut() {
            match top {
                Pending::Buf { buf, len, cap } => {
                    // SAFETY: as in `take_pending`.
                    while *len > 0 && !matches!(unsafe { *buf.as_ptr().add(*len as usize - 1) }, Value::Ref(_)) {
                        *len -= 1;
                    }
                    if *len > 0 {
                        return;
                    }
                    let (buf, cap) = (*buf, *cap);
                    self.pending.pop();
                    // SAFETY: the buffer was allocated with `cap` values by
                    // this allocator, and its values are all moved out.
                    unsafe { self.alloc.free(buf.cast(), cap as usize * VAL) };
                }
                Pending::Map(m, charged) => {
                    while m.last_value().is_some_and(|v| !matches!(v, Value::Ref(_))) {
                        m.pop();
                    }
                    if !m.is_empty() {
                        return;
                    }
                    self.dict_bytes -= *charged;
                    self.pending.pop();
                }
            }
        }
    }

    /// Gives back every kept-back buffer and table without handing out
    /// their references (the whole heap is going).
    fn drop_pending(&mut self) {
        while let Some(p) = self.pending.pop() {
            match p {
                // SAFETY: as in `settle_pending`; the values are dropped
                // uncounted, as `Drop` does with every object.
                Pending::Buf { buf, cap, .. } => unsafe { self.alloc.free(buf.cast(), cap as usize * VAL) },
                Pending::Map(_, charged) => self.dict_bytes -= charged,
            }
        }
    }
}

impl<A: Allocator> Drop for Objects<A> {
    fn drop(&mut self) {
        // Give every block back; references between objects no longer
        // matter, so children are dropped without counting.
        let mut sink = Vec::new();
        for slot in 0..self.slots.len() as u32 {
            if self.slots[slot as usize].id != FREE {
                self.free(slot, &mut sink);
                sink.clear();
                self.drop_pending();
            }
        }
    }
}

/// A typed, mutable view of an object's contents.
pub enum ObjMut<'a> {
    Record(&'a mut [Value]),
    List(&'a mut [Value]),
    Dict(&'a mut DictMap),
    Str(&'a str),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::alloc::{PoolAllocator, SystemAllocator};

    fn objects() -> Objects<PoolAllocator> {
        Objects::new(PoolAllocator::new(), usize::MAX)
    }

    #[test]
    fn a_table_slot_is_twelve_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 12);
    }

    #[test]
    fn sites_are_recorded_only_when_asked() {
        let mut o = objects();
        let a = o.new_record(1, 5, NO_SLOT).unwrap();
        assert_eq!(o.id_site(a.slot), (1, None));
        assert_eq!(o.table_bytes(), 12, "one slot in use; reserved capacity is not counted");
        o.set_record_sites(true);
        let b = o.new_record(1, 6, NO_SLOT).unwrap();
        assert_eq!(o.table_bytes(), 2 * (12 + 4), "sites add 4 bytes a slot");
        assert_eq!(o.id_site(a.slot), (1, None), "allocated before recording began");
        assert_eq!(o.id_site(b.slot), (2, Some(6)));
        // A freed slot is reused with the new object's site.
        let mut kids = Vec::new();
        o.free(b.slot, &mut kids);
        let c = o.new_record(1, 9, NO_SLOT).unwrap();
        assert_eq!(c.slot, b.slot);
        assert_eq!(o.id_site(c.slot), (3, Some(9)));
        o.set_record_sites(false);
        assert_eq!(o.id_site(c.slot), (3, None));
    }

    #[test]
    fn a_free_slot_has_id_zero_and_keeps_its_free_link_in_the_address() {
        // A free slot's id is FREE (0), which no handle has; its `ptr`
        // field holds the next free slot. Handles of freed objects are
        // refused even when a link equals their id.
        let mut o = objects();
        let a = o.new_record(0, 0, NO_SLOT).unwrap(); // id 1, slot 0
        let b = o.new_record(0, 0, NO_SLOT).unwrap(); // id 2, slot 1
        let mut kids = Vec::new();
        o.free(b.slot, &mut kids); // free list: 1
        o.free(a.slot, &mut kids); // free list: 0 -> 1; slot 0's link is 1 == a.id
        assert_eq!(({ o.slots[a.slot as usize].id }, { o.slots[a.slot as usize].ptr }.addr()), (FREE, 1));
        assert!(!o.is_live(a));
        assert!(!o.is_live(b));
        assert!(!o.occupied(a.slot) && !o.occupied(b.slot));
        // The free list is followed: slot 0, then slot 1, then a new slot.
        let c = o.new_record(0, 0, NO_SLOT).unwrap();
        let d = o.new_record(0, 0, NO_SLOT).unwrap();
        let e = o.new_record(0, 0, NO_SLOT).unwrap();
        assert_eq!((c.slot, d.slot, e.slot), (0, 1, 2));
        assert_eq!((c.id, d.id, e.id), (3, 4, 5));
        assert!(o.occupied(c.slot) && o.is_live(c) && !o.is_live(a));
        assert!(!o.occupied(99), "past the table");
    }

    /// A new record's slots are nil whatever its block held before (the
    /// pool hands back the block just freed), for the sizes filled by
    /// fixed stores (1-4 slots) and by `write_bytes` (the rest).
    #[test]
    fn a_new_record_is_all_nil_in_a_used_block() {
        let mut o = objects();
        let mut kids = Vec::new();
        for n in [0u16, 1, 2, 3, 4, 5, 7, 31] {
            let r = o.new_record(n, 0, NO_SLOT).unwrap();
            for v in o.items(r.slot) {
                *v = Value::Int(-1);
            }
            o.free(r.slot, &mut kids);
            let r = o.new_record(n, 0, NO_SLOT).unwrap();
            let items = o.items(r.slot);
            assert_eq!(items.len(), n as usize);
            assert!(items.iter().all(|v| *v == Value::Nil), "{n} slots: {items:?}");
            o.free(r.slot, &mut kids);
        }
    }

    #[test]
    fn records_lists_dicts_strings_round_trip() {
        let mut o = objects();
        let r = o.new_record(3, 7, NO_SLOT).unwrap();
        let s = o.new_str("héllo", 8).unwrap();
        let l = o.new_list(9, NO_SLOT).unwrap();
        let d = o.new_dict(10, NO_SLOT).unwrap();
        assert_eq!((r.id, s.id, l.id, d.id), (1, 2, 3, 4));
        if let ObjMut::Record(v) = o.view(r.slot) {
            assert_eq!(v, &[Value::Nil; 3]);
            v[1] = Value::Ref(s);
        } else {
            panic!("not a record")
        }
        assert_eq!(o.str_at(s.slot), "héllo");
        for i in 0..100 {
            o.list_push(l.slot, Value::Int(i)).unwrap();
        }
        let ObjMut::List(items) = o.view(l.slot) else { panic!() };
        assert_eq!(items.len(), 100);
        assert_eq!(items[99], Value::Int(99));
        assert_eq!(o.list_remove(l.slot, 0), Value::Int(0));
        let ObjMut::List(items) = o.view(l.slot) else { panic!() };
        assert_eq!(items[0], Value::Int(1));
        if let ObjMut::Dict(m) = o.view(d.slot) {
            m.insert(DictKey::Str("k".into()), Value::Ref(r));
            assert!(m.get(&KeyRef::Str("k")).is_some());
        }
        o.dict_recharge(d.slot, 0, 1);
        let ObjMut::Dict(m) = o.view(d.slot) else { panic!() };
        let want = dict_table_bytes(m.capacity()) + 1;
        assert_eq!(o.dict_bytes().0, want);
        o.verify_dict_charges().unwrap();
        let mut kids = Vec::new();
        assert_eq!(o.free(d.slot, &mut kids), 4);
        // A dict's references come out one at a time; its table stays
        // charged until the last has.
        assert!(kids.is_empty());
        assert!(o.dict_bytes().0 > 0);
        assert_eq!(o.take_child(), Some(Value::Ref(r)));
        assert_eq!(o.take_child(), None);
        assert_eq!(o.dict_bytes().0, 0);
        kids.clear();
        o.free(r.slot, &mut kids);
        assert_eq!(kids, vec![Value::Ref(s)]);
        assert!(!o.is_live(r));
        assert!(o.is_live(s));
        // The freed slot is reused with a new id; the old handle stays dead.
        let r2 = o.new_record(0, 0, NO_SLOT).unwrap();
        assert_eq!(r2.slot, r.slot);
        assert!(!o.is_live(r) && o.is_live(r2));
        assert_eq!(o.live(), 3);
    }

    #[test]
    fn a_freed_list_hands_out_its_references_one_at_a_time() {
        let mut o = objects();
        let a = o.new_record(0, 0, NO_SLOT).unwrap();
        let b = o.new_record(0, 0, NO_SLOT).unwrap();
        let l = o.new_list(0, NO_SLOT).unwrap();
        for v in [Value::Int(1), Value::Ref(a), Value::Nil, Value::Ref(b), Value::Int(2)] {
            o.list_push(l.slot, v).unwrap();
        }
        let before = o.bytes_in_use();
        let mut kids = Vec::new();
        o.free(l.slot, &mut kids);
        assert!(kids.is_empty());
        // The buffer is still held (and charged) while references remain.
        // (the list's own block, header and body, is 32 bytes)
        assert_eq!(o.bytes_in_use(), before - 32);
        assert_eq!(o.take_child(), Some(Value::Ref(b)));
        assert_eq!(o.bytes_in_use(), before - 32);
        // The last reference out gives the buffer back at once.
        assert_eq!(o.take_child(), Some(Value::Ref(a)));
        assert!(o.pending.is_empty());
        assert_eq!(o.bytes_in_use(), 2 * 16);
        assert_eq!(o.take_child(), None);
        o.free(a.slot, &mut kids);
        o.free(b.slot, &mut kids);
        assert_eq!(o.bytes_in_use(), 0);
    }

    #[test]
    fn a_chain_of_lists_keeps_one_pending_buffer() {
        // Each list holds [1, next, 2]: freeing the head and taking each
        // child in turn must not stack up one buffer per link.
        let mut o = objects();
        let mut next = Value::Nil;
        for _ in 0..100 {
            let l = o.new_list(0, NO_SLOT).unwrap();
            for v in [Value::Int(1), next, Value::Int(2)] {
                o.list_push(l.slot, v).unwrap();
            }
            next = Value::Ref(l);
        }
        let mut kids = Vec::new();
        let mut h = next;
        let mut freed = 0;
        while let Value::Ref(x) = h {
            o.free(x.slot, &mut kids);
            freed += 1;
            assert!(o.pending.len() <= 1);
            h = o.take_child().unwrap_or(Value::Nil);
        }
        assert_eq!(freed, 100);
        assert_eq!(o.bytes_in_use(), 0);
        assert_eq!(o.live(), 0);
    }

    #[test]
    fn dropping_the_table_gives_back_pending_buffers() {
        let mut o = objects();
        let a = o.new_record(0, 0, NO_SLOT).unwrap();
        let l = o.new_list(0, NO_SLOT).unwrap();
        o.list_push(l.slot, Value::Ref(a)).unwrap();
        let mut kids = Vec::new();
        o.free(l.slot, &mut kids);
        assert_eq!(o.pending.len(), 1);
        drop(o); // Miri would report the buffer, were it leaked
    }

    #[test]
    fn dict_keeps_insertion_order_across_deletions() {
        // The same operations on a plain list of pairs (the model: O(n)
        // deletion that shifts) and on DictMap (O(1) deletion that swaps).
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rand = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let rounds = if cfg!(miri) { 200 } else { 20_000 };
        let mut m = DictMap::new();
        let mut model: Vec<(DictKey, Value)> = Vec::new();
        for round in 0..rounds {
            let k = if rand(4) == 0 {
                DictKey::Str(format!("s{}", rand(20)).into())
            } else {
                DictKey::Int(rand(40) as i64)
            };
            if rand(3) == 0 {
                let got = m.remove(&k.as_ref());
                let want = model.iter().position(|e| e.0 == k).map(|i| model.remove(i).1);
                assert_eq!(got, want);
            } else {
                let v = Value::Int(round);
                let got = m.insert(k.clone(), v);
                let want = match model.iter_mut().find(|e| e.0 == k) {
                    Some(e) => Some(std::mem::replace(&mut e.1, v)),
                    None => {
                        model.push((k, v));
                        None
                    }
                };
                assert_eq!(got, want);
            }
            assert_eq!(m.len(), model.len());
            if round % 50 == 0 {
                let order: Vec<(DictKey, Value)> = m.iter_in_order().map(|(k, v)| (k.clone(), *v)).collect();
                assert_eq!(order, model, "round {round}");
            }
        }
    }

    #[test]
    fn max_heap_is_enforced() {
        let mut o = Objects::new(SystemAllocator::new(), 200);
        assert!(o.new_record(4, 0, NO_SLOT).is_ok()); // 80 bytes
        assert_eq!(o.new_record(20, 0, NO_SLOT), Err(AllocError::OutOfMemory));
        let l = o.new_list(0, NO_SLOT).unwrap();
        let mut pushed = 0;
        while o.list_push(l.slot, Value::Int(1)).is_ok() {
            pushed += 1;
        }
        assert!(pushed > 0 && o.bytes_in_use() <= 200);
    }
}
