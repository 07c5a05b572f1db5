//! Layer 2: the object heap and its reference counts.
//!
//! [`Heap`] implements the ownership rules of SPEC §1 over [`Objects`]:
//! every register, record slot, list element and dict value that holds a
//! reference owns one count; a count reaching zero frees the object at once
//! and releases what it held, with an explicit work list, so freeing a chain
//! of any length never grows the host stack.
//!
//! Freed objects are detected through their handles (slot + id), never by
//! reading freed memory. A dangling reference can only arise through
//! `decref` (every other count is owned), so objects whose count `decref`
//! lowered are marked *tainted*, and when a tainted object is freed while
//! owners may still hold it (more `decref`s than `incref`s) its id and the
//! site of the free go to a small graveyard that error messages consult.
//!
//! A heap tells its [`RefcountHooks`] (none by default: [`NoHooks`]) of
//! every object's creation and free; see [`super::refcount`].

use super::alloc::Allocator;
use super::gc::GcState;
use super::object::{
    dict_block_size, list_block_size, record_block_size, str_block_size, AllocError, DictKey, KeyRef, ObjKind, ObjMut,
    Objects, F_PRINTING, F_TAINTED, F_UNREACH,
};
use super::refcount::{FreeCause, NoHooks, RefcountHooks};
use super::value::{Handle, Value};
use std::collections::HashMap;

/// Where something happened: a global instruction index (see
/// `vm::Vm::site`), translated to a source position by the VM.
pub type Site = u32;

/// The site of frees that no instruction makes: those of the leak check's
/// collection at exit ([`crate::stats::leak_report`]). No program has
/// that many instructions.
pub const EXIT_SITE: Site = Site::MAX;

/// Appends `s` to `out`, handing `out` to `spill` each time it would pass
/// `chunk` bytes (see [`Heap::format_value_with`]): a long string, too,
/// goes out (or is cut short) in pieces.
fn push_spilling(
    out: &mut String,
    mut s: &str,
    chunk: usize,
    spill: &mut dyn FnMut(&mut String) -> Result<(), Fault>,
) -> Result<(), Fault> {
    while out.len().saturating_add(s.len()) > chunk && !s.is_empty() {
        let mut cut = (chunk + 1).saturating_sub(out.len()).clamp(1, s.len());
        while !s.is_char_boundary(cut) {
            cut += 1;
        }
        out.push_str(&s[..cut]);
        s = &s[cut..];
        spill(out)?;
    }
    out.push_str(s);
    Ok(())
}

/// An index into a record's or a list's items, as the fast paths of
/// `load` and `store` take it: an `i64` counts negative indexes from the
/// end (Python's rule); a `usize` is a non-negative index known as such
/// before the run (the executor's `LoadRU`/`StoreRU`), so no test of its
/// sign is made.
pub trait SlotIndex: Copy {
    /// The position in items of length `n`, or `None` when there is none
    /// (the caller still checks it against `n`).
    fn resolve(self, n: usize) -> Option<usize>;
}

impl SlotIndex for i64 {
    #[inline(always)]
    fn resolve(self, n: usize) -> Option<usize> {
        usize::try_from(if self < 0 { self + n as i64 } else { self }).ok()
    }
}

impl SlotIndex for usize {
    #[inline(always)]
    fn resolve(self, _: usize) -> Option<usize> {
        Some(self)
    }
}

/// A runtime fault raised by the heap; the VM adds the location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Use of a freed object; `site` is where it was freed, if known.
    Freed {
        id: u32,
        site: Option<Site>,
    },
    OutOfMemory,
    IdsExhausted,
    /// Any other error, with its message.
    Msg(String),
}

impl From<AllocError> for Fault {
    fn from(e: AllocError) -> Self {
        match e {
            AllocError::OutOfMemory => Fault::OutOfMemory,
            AllocError::IdsExhausted => Fault::IdsExhausted,
        }
    }
}

#[cold]
#[inline(never)]
fn refcount_overflow() -> Fault {
    Fault::Msg("reference count overflow".into())
}

fn msg<T>(s: impl Into<String>) -> Result<T, Fault> {
    Err(Fault::Msg(s.into()))
}

/// Object counters for `--stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ObjectStats {
    pub allocated: u64,
    pub freed_by_refcount: u64,
    pub freed_by_gc: u64,
    pub alive: u64,
    pub peak_alive: u64,
    /// Allocations per type: records, lists, dicts, strings.
    pub by_type: TypeCounts,
}

/// Per-type counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TypeCounts {
    pub record: u64,
    pub list: u64,
    pub dict: u64,
    pub string: u64,
}

/// The refcounted object heap over allocator `A`, telling hooks `H` of
/// its objects' lives (see [`RefcountHooks`]; by default none).
pub struct Heap<A: Allocator, H: RefcountHooks = NoHooks> {
    pub(crate) objs: Objects<A>,
    /// Reused work list for freeing (no recursion, no per-free allocation).
    pub(crate) work: Vec<Value>,
    /// Tainted objects that were freed: id -> site of the free.
    graveyard: HashMap<u32, Site>,
    /// Net manual count adjustments (`incref` minus `decref`) per live
    /// object id; the heap verifier allows for them.
    manual: HashMap<u32, i64>,
    pub(crate) stats: ObjectStats,
    pub(crate) gc: GcState,
    /// Site given to the frees of teardown and unwinding (`release_quiet`).
    pub(crate) site: Site,
    /// Collector scratch lists, reused across collections.
    pub(crate) gc_kids: Vec<u32>,
    /// Told of every creation and free (zero-sized by default).
    hooks: H,
}

impl<A: Allocator> Heap<A> {
    /// A heap over `alloc`, refusing to grow past `max_bytes`, with no
    /// hooks.
    pub fn new(alloc: A, max_bytes: usize) -> Self {
        Heap::with_hooks(alloc, max_bytes, NoHooks)
    }
}

impl<A: Allocator, H: RefcountHooks> Heap<A, H> {
    /// A heap over `alloc`, refusing to grow past `max_bytes`, that tells
    /// `hooks` of every object's creation and free (see [`RefcountHooks`]).
    pub fn with_hooks(alloc: A, max_bytes: usize, hooks: H) -> Self {
        Heap {
            objs: Objects::new(alloc, max_bytes),
            work: Vec::new(),
            graveyard: HashMap::new(),
            manual: HashMap::new(),
            stats: ObjectStats::default(),
            gc: GcState::default(),
            site: 0,
            gc_kids: Vec::new(),
            hooks,
        }
    }

    /// The hooks (to read what they gathered).
    pub fn hooks(&self) -> &H {
        &self.hooks
    }

    pub fn hooks_mut(&mut self) -> &mut H {
        &mut self.hooks
    }

    /// The hooks, the heap dropped (its objects still alive are given
    /// back without being reported).
    pub fn into_hooks(self) -> H {
        self.hooks
    }

    pub fn allocator(&self) -> &A {
        self.objs.allocator()
    }

    /// Object statistics, with `alive` as of now.
    pub fn object_stats(&self) -> ObjectStats {
        let mut s = self.stats.clone();
        s.alive = self.objs.live();
        s
    }

    /// Charges `bytes` held outside the heap (the VM's register stack and
    /// frames) to `--max-heap`, replacing the previous charge; out of
    /// memory when that does not fit beside the bytes in use.
    pub fn reserve_outside(&mut self, bytes: usize) -> Result<(), Fault> {
        if self.objs.reserve_outside(bytes) {
            Ok(())
        } else {
            Err(Fault::OutOfMemory)
        }
    }

    pub fn bytes_in_use(&self) -> usize {
        self.objs.bytes_in_use()
    }

    pub fn objects(&self) -> &Objects<A> {
        &self.objs
    }

    /// Records where each object is allocated from now on, for leak reports
    /// (`--check-leaks` turns it on). Off by default, like CPython's
    /// `tracemalloc`: it costs 4 bytes per object-table slot.
    pub fn set_record_sites(&mut self, on: bool) {
        self.objs.set_record_sites(on);
    }

    /// Checks that `h` still refers to a live object.
    #[inline(always)]
    pub fn check(&self, h: Handle) -> Result<(), Fault> {
        if self.objs.is_live(h) {
            Ok(())
        } else {
            Err(self.freed(h))
        }
    }

    /// Whether object `id` was freed while something still referred to it
    /// (its free site is remembered).
    pub(crate) fn in_graveyard(&self, id: u32) -> bool {
        self.graveyard.contains_key(&id)
    }

    /// Whether no object was freed while something still referred to it:
    /// then no reference dangles.
    pub(crate) fn graveyard_is_empty(&self) -> bool {
        self.graveyard.is_empty()
    }

    #[cold]
    pub(crate) fn freed(&self, h: Handle) -> Fault {
        Fault::Freed { id: h.id, site: self.graveyard.get(&h.id).copied() }
    }

    /// Adds one owned count for a new owner of `v`.
    #[inline(always)]
    pub fn retain(&mut self, v: Value) -> Result<(), Fault> {
        if let Value::Ref(h) = v {
            if !self.retain_live(h) {
                // Dangling, or the count is full.
                self.check(h)?;
                return Err(refcount_overflow());
            }
        }
        Ok(())
    }

    /// Removes one owned count, freeing the object (and, iteratively,
    /// whatever only it kept alive) when the count reaches zero.
    #[inline(always)]
    pub fn release(&mut self, v: Value, site: Site) -> Result<(), Fault> {
        if let Value::Ref(h) = v {
            self.check(h)?;
            let hdr = self.objs.hdr_mut(h.slot);
            hdr.rc -= 1;
            if hdr.rc == 0 {
                return self.free_cascade(h.slot, site);
            }
        }
        Ok(())
    }

    /// [`Heap::retain`] of a live handle whose count has room: one count
    /// more, and true; otherwise nothing changes and false (then
    /// `retain` gives the fault).
    #[inline(always)]
    pub fn retain_live(&mut self, h: Handle) -> bool {
        if self.objs.is_live(h) {
            let hdr = self.objs.hdr_mut(h.slot);
            if let Some(rc) = hdr.rc.checked_add(1) {
                hdr.rc = rc;
                return true;
            }
        }
        false
    }

    /// The common release that frees nothing: when `h` is live and has
    /// more than one count, takes one off and returns true; otherwise
    /// changes nothing and returns false (then [`Heap::release`] does the
    /// rest: the fault for a dangling handle, or the free).
    #[inline(always)]
    pub fn release_shared(&mut self, h: Handle) -> bool {
        if self.objs.is_live(h) {
            let hdr = self.objs.hdr_mut(h.slot);
            if hdr.rc > 1 {
                hdr.rc -= 1;
                return true;
            }
        }
        false
    }

    /// Frees the object in `slot` (count already 0) and everything whose
    /// count drops to 0 as a result, with an explicit work list. Finishes
    /// even if a dangling child is met, then reports the first such fault.
    /// The common case, an object that held no references (a record of
    /// atoms, a string), returns right after the one free.
    #[inline(never)]
    fn free_cascade(&mut self, slot: u32, site: Site) -> Result<(), Fault> {
        self.free_one(slot, site, FreeCause::Refcount);
        if self.work.is_empty() && !self.objs.has_pending() {
            return Ok(());
        }
        match self.free_children(site) {
            Some(h) => Err(self.freed(h)),
            None => Ok(()),
        }
    }

    /// The rest of a cascade, out of the common free's way (see
    /// [`Heap::drain`]).
    #[inline(never)]
    fn free_children(&mut self, site: Site) -> Option<Handle> {
        self.drain::<false>(site, FreeCause::Refcount)
    }

    /// [`Heap::drain`] for the collector's freeing loop, which runs it once
    /// per member of the garbage: what it frees, only the garbage held
    /// ([`FreeCause::HeldByGarbage`]).
    #[inline(always)]
    pub(crate) fn drain_children<const GC: bool>(&mut self, site: Site) -> Option<Handle> {
        self.drain::<GC>(site, FreeCause::HeldByGarbage)
    }

    /// Releases the references freed objects held. A record's wait in
    /// `work`; a list's or dict's come one at a time from the allocator's
    /// kept-back buffer (`take_child`). Members of a running collection's
    /// unreachable set (`F_UNREACH`) are skipped: the collector frees them
    /// itself, without their counts. Returns the first dangling reference
    /// met, if any (the rest are still released). `cause` is what the
    /// hooks are told of the objects it frees (a constant wherever this is
    /// inlined). Inlined into the collector's freeing loop, which runs it
    /// once per member; there a reference to a freed object may be to a
    /// member freed before, and with `GC` each goes to the collector to
    /// judge (`gc_released_freed`) and none is returned.
    #[inline(always)]
    fn drain<const GC: bool>(&mut self, site: Site, cause: FreeCause) -> Option<Handle> {
        let mut dangling = None;
        while let Some(v) = self.work.pop().or_else(|| self.objs.take_child()) {
            let Value::Ref(h) = v else { continue };
            if !self.objs.is_live(h) {
                if GC {
                    self.gc_released_freed(h);
                } else {
                    dangling.get_or_insert(h);
                }
                continue;
            }
            let hdr = self.objs.hdr_mut(h.slot);
            if hdr.flag(F_UNREACH) {
                continue;
            }
            hdr.rc -= 1;
            if hdr.rc == 0 {
                self.free_one(h.slot, site, cause);
            }
        }
        dangling
    }

    /// Frees one object whose count is 0; the references it held go to
    /// `work` (a record's) or stay with `Objects` (a list's or dict's).
    #[inline(always)]
    fn free_one(&mut self, slot: u32, site: Site, cause: FreeCause) {
        // One look-up: the header comes back from the free, and the
        // object leaves its generation list afterwards.
        let (id, hdr) = self.objs.free_hdr(slot, &mut self.work);
        self.gc_untrack_freed(&hdr);
        self.note_freed(id, hdr.flag(F_TAINTED), site);
        self.hooks.on_free(id, hdr.kind(), cause, site);
    }

    /// Tells the hooks the collector freed object `id` of kind `kind`, a
    /// member of the garbage (see `free_garbage`).
    #[inline(always)]
    pub(crate) fn note_collected(&mut self, id: u32, kind: ObjKind, site: Site) {
        self.hooks.on_free(id, kind, FreeCause::Collector, site);
    }

    /// The bookkeeping of a free: statistics, the graveyard and the manual
    /// counts.
    #[inline(always)]
    pub(crate) fn note_freed(&mut self, id: u32, tainted: bool, site: Site) {
        self.stats.freed_by_refcount += 1;
        if tainted {
            self.note_tainted_freed(id, site);
        }
    }

    /// A tainted object is freed. Its count was `owners + net manual
    /// adjustment`, so at 0 some owners still hold (dangling) references
    /// exactly when `decref` outnumbered `incref`: only then does the
    /// graveyard remember it, so the graveyard stays as small as the
    /// dangling references can be many (a balanced `incref`/`decref` in a
    /// loop adds nothing).
    #[cold]
    #[inline(never)]
    pub(crate) fn note_tainted_freed(&mut self, id: u32, site: Site) {
        if self.manual.remove(&id).is_some_and(|n| n < 0) {
            self.graveyard.insert(id, site);
        }
    }

    /// `note_tainted_freed` for a member of the garbage the collector
    /// frees, whose count was `rc` and to which the garbage's members held
    /// `internal` references. Its owners were `rc` minus its net manual
    /// adjustment; those outside the garbage still refer to it after the
    /// collection, and only if there are any does it go to the graveyard.
    /// Returns whether it did.
    pub(crate) fn note_tainted_member(&mut self, id: u32, rc: u32, internal: u32, site: Site) -> bool {
        match self.manual.remove(&id) {
            Some(n) if n < 0 && rc as i64 - n - internal as i64 > 0 => {
                self.graveyard.insert(id, site);
                true
            }
            _ => false,
        }
    }

    /// Entries in the graveyard (tests: it must not grow with balanced
    /// programs).
    #[cfg(test)]
    pub(crate) fn graveyard_len(&self) -> usize {
        self.graveyard.len()
    }

    /// The bookkeeping of a new object, `size` bytes made at `site`.
    #[inline(always)]
    fn created(&mut self, h: Handle, kind: ObjKind, size: usize, site: Site) -> Result<Value, Fault> {
        self.hooks.on_create(h.id, kind, size, site);
        self.stats.allocated += 1;
        let c = &mut self.stats.by_type;
        match kind {
            ObjKind::Record => c.record += 1,
            ObjKind::List => c.list += 1,
            ObjKind::Dict => c.dict += 1,
            ObjKind::Str => c.string += 1,
        }
        let live = self.objs.live();
        if live > self.stats.peak_alive {
            self.stats.peak_alive = live;
        }
        if kind.is_container() {
            if let Err(f) = self.gc_track_new(h.slot, site) {
                return Err(self.unmade(h, f, site));
            }
        }
        Ok(Value::Ref(h))
    }

    /// A new object whose allocation ran a collection that met an error:
    /// the object is given back (freed) and the error goes on.
    #[cold]
    #[inline(never)]
    fn unmade(&mut self, h: Handle, f: Fault, site: Site) -> Fault {
        let _ = self.release(Value::Ref(h), site);
        f
    }

    /// A new record of `n` nil slots; the caller owns its one count.
    #[inline(never)]
    pub fn new_record(&mut self, n: u16, site: Site) -> Result<Value, Fault> {
        self.new_record_inline(n, site)
    }

    /// The `new` instruction: [`Heap::new_record`] into register `dst`,
    /// then the reference `dst` held before, if any, released (after the
    /// allocation, which may collect while it holds). The value makes no
    /// trip through a result. False on an error, which
    /// [`Heap::take_gc_fault`] then returns: `dst` is unchanged if the
    /// allocation failed, and holds the new record if the release did.
    #[inline(always)]
    pub fn new_record_into(&mut self, n: u16, site: Site, dst: &mut Value) -> bool {
        let r = match self.new_record_inline(n, site) {
            Ok(v) => match std::mem::replace(dst, v) {
                Value::Ref(h) => self.release(Value::Ref(h), site),
                _ => return true,
            },
            Err(f) => Err(f),
        };
        match r {
            Ok(()) => true,
            Err(f) => {
                self.set_gc_fault(f);
                false
            }
        }
    }

    #[inline(always)]
    fn new_record_inline(&mut self, n: u16, site: Site) -> Result<Value, Fault> {
        let h = self.objs.new_record(n, site, self.gc_young_tail())?;
        self.created(h, ObjKind::Record, record_block_size(n), site)
    }

    #[inline(never)]
    pub fn new_list(&mut self, site: Site) -> Result<Value, Fault> {
        let h = self.objs.new_list(site, self.gc_young_tail())?;
        self.created(h, ObjKind::List, list_block_size(), site)
    }

    #[inline(never)]
    pub fn new_dict(&mut self, site: Site) -> Result<Value, Fault> {
        let h = self.objs.new_dict(site, self.gc_young_tail())?;
        self.created(h, ObjKind::Dict, dict_block_size(), site)
    }

    #[inline(never)]
    pub fn new_str(&mut self, s: &str, site: Site) -> Result<Value, Fault> {
        let h = self.objs.new_str(s, site)?;
        self.created(h, ObjKind::Str, str_block_size(s.len()), site)
    }

    /// The kind of a live object.
    pub fn kind(&self, h: Handle) -> Result<ObjKind, Fault> {
        self.check(h)?;
        Ok(self.objs.hdr(h.slot).kind())
    }

    /// The type name of a value, for messages.
    pub fn type_name(&self, v: Value) -> &'static str {
        match v {
            Value::Nil => "nil",
            Value::Int(_) => "int",
            Value::Ref(h) if self.objs.is_live(h) => self.objs.hdr(h.slot).kind().name(),
            Value::Ref(_) => "freed object",
        }
    }

    /// The text of a string value, if it is one.
    pub fn as_str(&self, v: Value) -> Result<Option<&str>, Fault> {
        match v {
            Value::Ref(h) => {
                self.check(h)?;
                Ok((self.objs.hdr(h.slot).kind() == ObjKind::Str).then(|| self.objs.str_at(h.slot)))
            }
            _ => Ok(None),
        }
    }

    /// `add` of two strings: a new string.
    #[inline(never)]
    pub fn concat(&mut self, a: Value, b: Value, site: Site) -> Result<Option<Value>, Fault> {
        let (Some(x), Some(y)) = (self.as_str(a)?, self.as_str(b)?) else { return Ok(None) };
        let mut s = String::with_capacity(x.len() + y.len());
        s.push_str(x);
        s.push_str(y);
        self.new_str(&s, site).map(Some)
    }

    /// `eq`: ints and strings by value, nil equals nil, other objects by
    /// identity. Flat: never recurses.
    #[inline(never)]
    pub fn equal(&self, a: Value, b: Value) -> Result<bool, Fault> {
        Ok(match (a, b) {
            (Value::Nil, Value::Nil) => true,
            (Value::Int(x), Value::Int(y)) => x == y,
            (Value::Ref(x), Value::Ref(y)) => {
                self.check(x)?;
                self.check(y)?;
                x == y || matches!((self.as_str(a)?, self.as_str(b)?), (Some(p), Some(q)) if p == q)
            }
            (Value::Ref(x), _) | (_, Value::Ref(x)) => {
                self.check(x)?;
                false
            }
            _ => false,
        })
    }

    fn key(&self, k: Value) -> Result<KeyRef<'_>, Fault> {
        match k {
            Value::Int(i) => Ok(KeyRef::Int(i)),
            Value::Ref(_) => match self.as_str(k)? {
                Some(s) => Ok(KeyRef::Str(s)),
                None => msg(format!("dict keys must be ints or strings, not {}", self.type_name(k))),
            },
            Value::Nil => msg("dict keys must be ints or strings, not nil"),
        }
    }

    fn container(&self, o: Value, what: &str) -> Result<(Handle, ObjKind), Fault> {
        match o {
            Value::Ref(h) => {
                self.check(h)?;
                Ok((h, self.objs.hdr(h.slot).kind()))
            }
            _ => msg(format!("cannot {what} {}", self.type_name(o))),
        }
    }

    fn index(i: Value, len: usize, kind: ObjKind) -> Result<usize, Fault> {
        let Value::Int(i) = i else {
            return msg(format!("{} indexes must be ints", kind.name()));
        };
        let j = if i < 0 { i + len as i64 } else { i };
        if j < 0 || j >= len as i64 {
            let what = if kind == ObjKind::Record { "slots" } else { "elements" };
            return msg(format!("index {i} out of range for a {} of {len} {what}", kind.name()));
        }
        Ok(j as usize)
    }

    fn missing_key(&self, k: KeyRef) -> Fault {
        Fault::Msg(match k {
            KeyRef::Int(i) => format!("key {i} not found in dict"),
            KeyRef::Str(s) => {
                let mut q = String::new();
                crate::asm::lexer::quote(s, &mut q);
                format!("key {q} not found in dict")
            }
        })
    }

    /// `load`: `o[k]`, retained for its new owner.
    #[inline]
    pub fn load(&mut self, o: Value, k: Value) -> Result<Value, Fault> {
        if let Value::Int(i) = k {
            if let Some(v) = self.load_item(&o, i) {
                return v;
            }
        }
        self.load_slow(o, k)
    }

    /// The fast path of `load`: item `i` of a live record or list, `i` in
    /// range (an `i64` counts negative indexes from the end; a `usize` is
    /// the executor's non-negative immediate). `None` when it does not
    /// apply; then nothing changed and [`Heap::load`] does the rest.
    #[inline(always)]
    pub fn load_item(&mut self, o: &Value, i: impl SlotIndex) -> Option<Result<Value, Fault>> {
        let Value::Ref(h) = *o else { return None };
        if !self.objs.is_live(h) {
            return None;
        }
        let items = self.objs.seq_items(h.slot)?;
        let v = *items.get(i.resolve(items.len())?)?;
        if let Value::Ref(_) = v {
            if let Err(e) = self.retain(v) {
                return Some(Err(e));
            }
        }
        Some(Ok(v))
    }

    #[inline(never)]
    pub(crate) fn load_slow(&mut self, o: Value, k: Value) -> Result<Value, Fault> {
        let (h, kind) = self.container(o, "index")?;
        let v = match kind {
            ObjKind::Record | ObjKind::List => {
                let items = self.objs.items(h.slot);
                let len = items.len();
                let i = Self::index(k, len, kind)?;
                let items = self.objs.items(h.slot);
                items[i]
            }
            ObjKind::Dict => {
                let key = self.key(k)?.to_owned();
                let ObjMut::Dict(m) = self.objs.view(h.slot) else { unreachable!() };
                match m.get(&key.as_ref()) {
                    Some(v) => *v,
                    None => return Err(self.missing_key(key.as_ref())),
                }
            }
            ObjKind::Str => return msg("cannot index a string"),
        };
        self.retain(v)?;
        Ok(v)
    }

    /// `store`: `o[k] = v`, retaining `v` and releasing what was there.
    #[inline]
    pub fn store(&mut self, o: Value, k: Value, v: Value, site: Site) -> Result<(), Fault> {
        if let Value::Int(i) = k {
            if self.store_fast(&o, i, &v) {
                return Ok(());
            }
        }
        self.store_slow(o, k, v, site)
    }

    /// The fast path of `store`: into slot `i` of a live record or list
    /// when that slot holds no reference (nothing to release), the value
    /// retained if it is a reference (see [`Objects::store_empty`]).
    /// Returns whether it stored; when it did not, nothing changed and
    /// [`Heap::store_slow`] does the rest. Takes its operands by reference
    /// so that the caller's registers are read in place.
    #[inline(always)]
    pub fn store_fast(&mut self, o: &Value, i: impl SlotIndex, v: &Value) -> bool {
        match *o {
            Value::Ref(h) => self.objs.store_empty(h, i, *v),
            _ => false,
        }
    }

    /// Every `store` that [`Heap::store_fast`] did not take.
    #[inline(never)]
    pub(crate) fn store_slow(&mut self, o: Value, k: Value, v: Value, site: Site) -> Result<(), Fault> {
        let (h, kind) = self.container(o, "store into")?;
        let old = match kind {
            ObjKind::Record | ObjKind::List => {
                let items = self.objs.items(h.slot);
                let i = Self::index(k, items.len(), kind)?;
                self.retain(v)?;
                let items = self.objs.items(h.slot);
                std::mem::replace(&mut items[i], v)
            }
            ObjKind::Dict => {
                let key = self.key(k)?.to_owned();
                if let Value::Ref(x) = v {
                    self.check(x)?;
                }
                let ObjMut::Dict(m) = self.objs.view(h.slot) else { unreachable!() };
                let exists = m.contains_key(&key.as_ref());
                if !exists && !self.objs.dict_can_grow(h.slot) {
                    return Err(Fault::OutOfMemory);
                }
                self.retain(v)?;
                let ObjMut::Dict(m) = self.objs.view(h.slot) else { unreachable!() };
                let (cap, key_bytes) = (m.capacity(), key_bytes(&key));
                let old = m.insert(key, v).unwrap_or(Value::Nil);
                if !exists {
                    self.objs.dict_recharge(h.slot, cap, key_bytes);
                }
                old
            }
            ObjKind::Str => return msg("cannot store into a string: strings are immutable"),
        };
        self.release(old, site)
    }

    /// `push`: append `v` (retained) to list `l`.
    #[inline(never)]
    pub fn push(&mut self, l: Value, v: Value) -> Result<(), Fault> {
        let (h, kind) = self.container(l, "push onto")?;
        if kind != ObjKind::List {
            return msg(format!("cannot push onto a {}: push needs a list", kind.name()));
        }
        if let Value::Ref(x) = v {
            self.check(x)?;
        }
        self.objs.list_push(h.slot, v)?;
        self.retain(v)
    }

    /// `pop`: remove the last element of list `l`; its count passes to the
    /// caller.
    #[inline(never)]
    pub fn pop(&mut self, l: Value) -> Result<Value, Fault> {
        let (h, kind) = self.container(l, "pop from")?;
        if kind != ObjKind::List {
            return msg(format!("cannot pop from a {}: pop needs a list", kind.name()));
        }
        let ObjMut::List(items) = self.objs.view(h.slot) else { unreachable!() };
        if items.is_empty() {
            return msg("pop from an empty list");
        }
        let last = items.len() - 1;
        // Popping reads the element: a freed one is an error, and the list
        // keeps it.
        if let Value::Ref(x) = items[last] {
            self.check(x)?;
        }
        Ok(self.objs.list_remove(h.slot, last))
    }

    /// `len`.
    #[inline(never)]
    pub fn len(&mut self, o: Value) -> Result<i64, Fault> {
        let (h, _) = self.container(o, "take the length of")?;
        Ok(match self.objs.view(h.slot) {
            ObjMut::Record(v) | ObjMut::List(v) => v.len() as i64,
            ObjMut::Dict(m) => m.len() as i64,
            ObjMut::Str(s) => s.len() as i64,
        })
    }

    /// `has`: is `k` a key of dict `o`?
    #[inline(never)]
    pub fn has(&mut self, o: Value, k: Value) -> Result<bool, Fault> {
        let (h, kind) = self.container(o, "look up a key in")?;
        if kind != ObjKind::Dict {
            return msg(format!("`has` needs a dict, not a {}", kind.name()));
        }
        let key = self.key(k)?.to_owned();
        let ObjMut::Dict(m) = self.objs.view(h.slot) else { unreachable!() };
        Ok(m.contains_key(&key.as_ref()))
    }

    /// `delitem`: remove a dict key or a list element.
    #[inline(never)]
    pub fn delitem(&mut self, o: Value, k: Value, site: Site) -> Result<(), Fault> {
        let (h, kind) = self.container(o, "delete an item of")?;
        let old = match kind {
            ObjKind::List => {
                let ObjMut::List(items) = self.objs.view(h.slot) else { unreachable!() };
                let i = Self::index(k, items.len(), kind)?;
                self.objs.list_remove(h.slot, i)
            }
            ObjKind::Dict => {
                let key = self.key(k)?.to_owned();
                let ObjMut::Dict(m) = self.objs.view(h.slot) else { unreachable!() };
                let cap = m.capacity();
                match m.remove(&key.as_ref()) {
                    Some(v) => {
                        self.objs.dict_recharge(h.slot, cap, -key_bytes(&key));
                        v
                    }
                    None => return Err(self.missing_key(key.as_ref())),
                }
            }
            _ => return msg(format!("cannot delete an item of a {}", kind.name())),
        };
        self.release(old, site)
    }

    /// `refcount`.
    #[inline(never)]
    pub fn refcount(&self, v: Value) -> Result<i64, Fault> {
        match v {
            Value::Ref(h) => {
                self.check(h)?;
                Ok(self.objs.hdr(h.slot).rc as i64)
            }
            _ => msg(format!("refcount needs an object, not {}", self.type_name(v))),
        }
    }

    /// `incref`: one more count, with no new owner.
    #[inline(never)]
    pub fn incref(&mut self, v: Value) -> Result<(), Fault> {
        let Value::Ref(h) = v else {
            return msg(format!("incref needs an object, not {}", self.type_name(v)));
        };
        self.retain(v)?;
        self.hooks.on_incref(h.id, self.objs.hdr(h.slot).rc);
        *self.manual.entry(h.id).or_insert(0) += 1;
        Ok(())
    }

    /// `decref`: one count less, freeing the object at zero even if owners
    /// still hold it (they now hold dangling references, which are caught).
    #[inline(never)]
    pub fn decref(&mut self, v: Value, site: Site) -> Result<(), Fault> {
        let Value::Ref(h) = v else {
            return msg(format!("decref needs an object, not {}", self.type_name(v)));
        };
        self.check(h)?;
        let hdr = self.objs.hdr_mut(h.slot);
        hdr.set_flag(F_TAINTED, true);
        // A live object's count is at least 1.
        let count = hdr.rc - 1;
        self.hooks.on_decref(h.id, count, site);
        self.gc.may_dangle = true;
        *self.manual.entry(h.id).or_insert(0) -= 1;
        self.release(v, site)
    }

    /// Appends the printed form of `v` to `out`. Strings print raw at top
    /// level and quoted inside containers; a container met again while it
    /// is being printed prints as `(...)`, `[...]` or `{...}`. Iterative:
    /// nesting depth never grows the host stack.
    pub fn format_value(&mut self, v: Value, out: &mut String) -> Result<(), Fault> {
        self.format_value_with(v, out, usize::MAX, &mut |_| Ok(()))
    }

    /// [`Heap::format_value`] in pieces: whenever `out` holds more than
    /// `chunk` bytes, `spill` gets it (to write it out and clear it, or to
    /// stop the printing with an error). The printed form of a shared
    /// structure can be exponentially larger than the structure, so
    /// `print` streams it and `--trace` cuts it short; the memory used is
    /// the depth of nesting, never the size of the text.
    #[inline(never)]
    pub fn format_value_with(
        &mut self,
        v: Value,
        out: &mut String,
        chunk: usize,
        spill: &mut dyn FnMut(&mut String) -> Result<(), Fault>,
    ) -> Result<(), Fault> {
        enum Task {
            Val(Value),
            Text(&'static str),
            Key(DictKey),
            Unmark(u32),
            /// The items of the record or list in the slot, from the index
            /// on (one at a time: a long one takes no memory up front).
            Items(u32, usize),
            /// The entries of the dict in the slot, from the index on.
            Entries(u32, usize),
        }
        if let Some(s) = self.as_str(v)? {
            return push_spilling(out, s, chunk, spill);
        }
        let mut tasks = vec![Task::Val(v)];
        let mut result = Ok(());
        while let Some(t) = tasks.pop() {
            if out.len() > chunk {
                if let Err(e) = spill(out) {
                    tasks.push(t);
                    result = Err(e);
                    break;
                }
            }
            match t {
                Task::Text(s) => out.push_str(s),
                Task::Unmark(slot) => self.objs.hdr_mut(slot).set_flag(F_PRINTING, false),
                Task::Key(DictKey::Int(i)) => out.push_str(&i.to_string()),
                Task::Key(DictKey::Str(s)) => crate::asm::lexer::quote(&s, out),
                Task::Val(Value::Nil) => out.push_str("nil"),
                Task::Val(Value::Int(i)) => out.push_str(&i.to_string()),
                Task::Val(Value::Ref(h)) => {
                    if let Err(e) = self.check(h) {
                        result = Err(e);
                        break;
                    }
                    let hdr = self.objs.hdr(h.slot);
                    let kind = hdr.kind();
                    let (open, close, again) = match kind {
                        ObjKind::Record => ("(", ")", "(...)"),
                        ObjKind::List => ("[", "]", "[...]"),
                        ObjKind::Dict => ("{", "}", "{...}"),
                        ObjKind::Str => {
                            let mut q = String::new();
                            crate::asm::lexer::quote(self.objs.str_at(h.slot), &mut q);
                            if let Err(e) = push_spilling(out, &q, chunk, spill) {
                                result = Err(e);
                                break;
                            }
                            continue;
                        }
                    };
                    if hdr.flag(F_PRINTING) {
                        out.push_str(again);
                        continue;
                    }
                    self.objs.hdr_mut(h.slot).set_flag(F_PRINTING, true);
                    out.push_str(open);
                    tasks.push(Task::Unmark(h.slot));
                    tasks.push(Task::Text(close));
                    match self.objs.view(h.slot) {
                        ObjMut::Record(_) | ObjMut::List(_) => tasks.push(Task::Items(h.slot, 0)),
                        ObjMut::Dict(m) => {
                            m.restore_order();
                            tasks.push(Task::Entries(h.slot, 0));
                        }
                        ObjMut::Str(_) => {}
                    }
                }
                Task::Items(slot, i) => {
                    if let Some(&x) = self.objs.items(slot).get(i) {
                        tasks.push(Task::Items(slot, i + 1));
                        tasks.push(Task::Val(x));
                        if i > 0 {
                            tasks.push(Task::Text(", "));
                        }
                    }
                }
                Task::Entries(slot, i) => {
                    let ObjMut::Dict(m) = self.objs.view(slot) else { continue };
                    if let Some((k, x)) = m.entry_in_order(i) {
                        tasks.push(Task::Entries(slot, i + 1));
                        tasks.push(Task::Val(x));
                        tasks.push(Task::Text(": "));
                        tasks.push(Task::Key(k));
                        if i > 0 {
                            tasks.push(Task::Text(", "));
                        }
                    }
                }
            }
        }
        // On error, clear the marks left by unfinished containers: each
        // still has its Unmark task (the containers being printed are
        // live: a freed one is never opened).
        for t in tasks {
            if let Task::Unmark(slot) = t {
                self.objs.hdr_mut(slot).set_flag(F_PRINTING, false);
            }
        }
        result
    }

    /// Checks the heap's invariants given every root (register) value:
    /// each live object's count equals its owners (roots plus references
    /// from live objects) plus its net manual adjustment; every handle held
    /// by a live object or root is live; the generation lists hold exactly
    /// the live containers; the statistics agree with the table.
    pub fn verify(&mut self, roots: impl IntoIterator<Item = Value>) -> Result<(), String> {
        let mut owners: HashMap<u32, i64> = HashMap::new();
        let mut count = |v: Value, from: &str, objs: &Objects<A>| -> Result<(), String> {
            if let Value::Ref(h) = v {
                if !objs.is_live(h) {
                    // Dangling references are legal only to tainted objects.
                    if self.graveyard.contains_key(&h.id) {
                        return Ok(());
                    }
                    return Err(format!("{from} holds a reference to freed object #{}", h.id));
                }
                *owners.entry(h.slot).or_insert(0) += 1;
            }
            Ok(())
        };
        for v in roots {
            count(v, "a register", &self.objs)?;
        }
        let slots: Vec<u32> = self.objs.live_slots().collect();
        for &s in &slots {
            let mut kids = Vec::new();
            self.objs.for_each_ref(s, |h| kids.push(Value::Ref(h)));
            let id = self.objs.handle(s).id;
            for k in kids {
                count(k, &format!("object #{id}"), &self.objs)?;
            }
        }
        for &s in &slots {
            let (id, _) = self.objs.id_site(s);
            let hdr = self.objs.hdr(s);
            let expect = owners.get(&s).copied().unwrap_or(0) + self.manual.get(&id).copied().unwrap_or(0);
            // A tainted object may have fewer counts than owners: some of
            // its owners' references will dangle once it is freed.
            if hdr.rc as i64 != expect || hdr.rc == 0 {
                return Err(format!(
                    "object #{id} ({}) has refcount {} but {} owners and manual balance {}",
                    hdr.kind().name(),
                    hdr.rc,
                    owners.get(&s).copied().unwrap_or(0),
                    self.manual.get(&id).copied().unwrap_or(0)
                ));
            }
            if hdr.flag(F_PRINTING) {
                return Err(format!("object #{id} is still marked as being printed"));
            }
        }
        if self.objs.live() != slots.len() as u64 {
            return Err(format!("live count {} but {} live slots", self.objs.live(), slots.len()));
        }
        let s = &self.stats;
        if s.allocated != s.freed_by_refcount + s.freed_by_gc + self.objs.live() {
            return Err(format!(
                "stats: allocated {} != freed {} + {} + alive {}",
                s.allocated,
                s.freed_by_refcount,
                s.freed_by_gc,
                self.objs.live()
            ));
        }
        self.gc_verify()?;
        self.objs.verify_dict_charges()?;
        self.objs.allocator().check()?;
        Ok(())
    }

    /// Releases `v` during teardown or unwinding, ignoring dangling
    /// references (they were already reported, or are being unwound).
    pub fn release_quiet(&mut self, v: Value) {
        if let Value::Ref(h) = v {
            if self.objs.is_live(h) {
                let _ = self.release(v, self.site);
            }
        }
    }

    /// Every live object, as (id, kind, allocation site), in id order. The
    /// site is `None` unless sites were recorded ([`Heap::set_record_sites`]).
    pub fn live_objects(&self) -> Vec<(u32, ObjKind, Option<Site>)> {
        let mut v: Vec<_> = self
            .objs
            .live_slots()
            .map(|s| {
                let (id, site) = self.objs.id_site(s);
                (id, self.objs.hdr(s).kind(), site)
            })
            .collect();
        v.sort_by_key(|x| x.0);
        v
    }

    /// Ids of live objects whose count exceeds the references other live
    /// objects hold to them: what unowned counts keep alive.
    pub fn leak_roots(&mut self) -> Vec<u32> {
        let mut inner: HashMap<u32, i64> = HashMap::new();
        let slots: Vec<u32> = self.objs.live_slots().collect();
        for &s in &slots {
            self.objs.for_each_ref(s, |h| *inner.entry(h.slot).or_insert(0) += 1);
        }
        let mut out: Vec<u32> = slots
            .iter()
            .filter(|&&s| self.objs.hdr(s).rc as i64 > inner.get(&s).copied().unwrap_or(0))
            .map(|&s| self.objs.handle(s).id)
            .collect();
        out.sort_unstable();
        out
    }
}

/// Bytes a dict key's string adds to the dict's charge (0 for an int).
fn key_bytes(k: &DictKey) -> i64 {
    match k {
        DictKey::Str(s) => s.len() as i64,
        DictKey::Int(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::alloc::PoolAllocator;

    /// Small under Miri, large enough elsewhere to overflow a recursive
    /// implementation.
    const DEEP: usize = if cfg!(miri) { 300 } else { 200_000 };

    fn heap() -> Heap<PoolAllocator> {
        Heap::new(PoolAllocator::new(), usize::MAX)
    }

    #[test]
    fn a_list_stored_into_itself_is_counted_and_freed() {
        let mut h = heap();
        let l = h.new_list(0).unwrap();
        h.push(l, Value::Nil).unwrap();
        h.push(l, Value::Int(3)).unwrap();
        h.store(l, Value::Int(0), l, 0).unwrap();
        h.store(l, Value::Int(-1), l, 0).unwrap();
        let Value::Ref(lh) = l else { unreachable!() };
        assert_eq!(h.objs.hdr(lh.slot).rc, 3);
        h.store(l, Value::Int(0), Value::Nil, 0).unwrap();
        h.store(l, Value::Int(1), Value::Nil, 0).unwrap();
        assert_eq!(h.objs.hdr(lh.slot).rc, 1);
        h.release(l, 0).unwrap();
        assert_eq!(h.object_stats().alive, 0);
        h.verify([]).unwrap();
    }

    #[test]
    fn a_store_counts_its_reference_or_changes_nothing() {
        let mut h = heap();
        let rec = h.new_record(2, 0).unwrap();
        let x = h.new_record(0, 0).unwrap();
        let (Value::Ref(rh), Value::Ref(xh)) = (rec, x) else { unreachable!() };
        // A record holding itself and another: one count more each.
        h.store(rec, Value::Int(0), rec, 0).unwrap();
        h.store(rec, Value::Int(-1), x, 0).unwrap();
        assert_eq!((h.objs.hdr(rh.slot).rc, h.objs.hdr(xh.slot).rc), (2, 2));
        assert_eq!(h.objs.items(rh.slot), &[rec, x]);
        // A count that cannot grow: the error, and nothing changed.
        h.store(rec, Value::Int(1), Value::Nil, 0).unwrap();
        assert_eq!(h.objs.hdr(xh.slot).rc, 1);
        h.objs.hdr_mut(xh.slot).rc = u32::MAX;
        assert_eq!(h.store(rec, Value::Int(1), x, 0), Err(refcount_overflow()));
        assert_eq!(h.objs.hdr(xh.slot).rc, u32::MAX);
        assert_eq!(h.objs.items(rh.slot), &[rec, Value::Nil]);
        h.objs.hdr_mut(xh.slot).rc = 1;
        // Out of range: an error, and the count is left alone.
        assert!(h.store(rec, Value::Int(2), x, 0).is_err());
        assert_eq!(h.objs.hdr(xh.slot).rc, 1);
        // A freed reference is not stored.
        h.release(x, 0).unwrap();
        assert!(matches!(h.store(rec, Value::Int(1), x, 0), Err(Fault::Freed { .. })));
        assert_eq!(h.objs.items(rh.slot), &[rec, Value::Nil]);
        h.store(rec, Value::Int(0), Value::Nil, 0).unwrap();
        h.release(rec, 0).unwrap();
        assert_eq!(h.object_stats().alive, 0);
        h.verify([]).unwrap();
    }

    #[test]
    fn freeing_a_long_chain_does_not_recurse() {
        let mut h = heap();
        let mut head = Value::Nil;
        for i in 0..DEEP {
            let node = h.new_record(2, 0).unwrap();
            h.store(node, Value::Int(0), Value::Int(i as i64), 0).unwrap();
            h.store(node, Value::Int(1), head, 0).unwrap();
            h.release(head, 0).unwrap();
            head = node;
        }
        assert_eq!(h.object_stats().alive, DEEP as u64);
        h.verify([head]).unwrap();
        h.release(head, 0).unwrap();
        assert_eq!(h.object_stats().alive, 0);
        assert_eq!(h.object_stats().freed_by_refcount, DEEP as u64);
        assert_eq!(h.allocator().bytes_in_use(), 0);
        h.verify([]).unwrap();
    }

    #[test]
    fn freeing_big_containers_needs_no_copy_of_their_references() {
        // A list and a dict of many records, freed by refcounting and by
        // the collector (in a cycle): the references come out one at a
        // time, so the work list never grows with the container's size.
        let mut h = heap();
        let list = h.new_list(0).unwrap();
        let dict = h.new_dict(0).unwrap();
        for i in 0..DEEP {
            let r = h.new_record(1, 0).unwrap();
            h.push(list, r).unwrap();
            h.store(dict, Value::Int(i as i64), r, 0).unwrap();
            h.release(r, 0).unwrap();
        }
        h.release(list, 0).unwrap();
        // Each record is still held by the dict.
        assert_eq!(h.object_stats().alive, DEEP as u64 + 1);
        assert!(h.work.capacity() <= 64, "work list grew to {}", h.work.capacity());
        h.verify([dict]).unwrap();
        // Now a cycle through the dict: only the collector can free it.
        let keep = h.new_list(0).unwrap();
        h.store(dict, Value::Int(-1), keep, 0).unwrap();
        h.push(keep, dict).unwrap();
        h.release(dict, 0).unwrap();
        h.release(keep, 0).unwrap();
        // The dict, the list and every record are unreachable containers.
        assert_eq!(h.collect(2, 0), DEEP as u64 + 2);
        assert_eq!(h.object_stats().alive, 0);
        assert!(h.work.capacity() <= 64, "work list grew to {}", h.work.capacity());
        assert_eq!(h.bytes_in_use(), 0);
        h.verify([]).unwrap();
    }

    #[test]
    fn printing_deep_nesting_does_not_recurse() {
        let mut h = heap();
        let outer = h.new_list(0).unwrap();
        let mut cur = outer;
        h.retain(cur).unwrap();
        for _ in 0..DEEP {
            let l = h.new_list(0).unwrap();
            h.push(cur, l).unwrap();
            h.release(cur, 0).unwrap();
            cur = l;
        }
        let mut s = String::new();
        h.format_value(outer, &mut s).unwrap();
        assert_eq!(s.len(), 2 * (DEEP + 1));
        assert!(s.starts_with("[[[") && s.ends_with("]]]"));
        h.release(cur, 0).unwrap();
        h.release(outer, 0).unwrap();
        assert_eq!(h.object_stats().alive, 0);
    }

    /// A shared structure prints in pieces, each no bigger than the chunk
    /// plus one item's text, adding up to the whole; a stop part-way
    /// leaves no container marked as being printed.
    #[test]
    fn printing_streams_and_stops_cleanly() {
        let mut h = heap();
        // A DAG: level k is a list holding level k-1 twice (and a dict and
        // a record on the way), 2^16 leaves.
        // Smaller under Miri, which runs this some thousand times slower.
        let (levels, chunk) = if cfg!(miri) { (8, 32) } else { (16, 4096) };
        let mut cur = Value::Int(7);
        for k in 0..levels {
            let l = h.new_list(0).unwrap();
            h.push(l, cur).unwrap();
            let holder = if k % 3 == 0 {
                let d = h.new_dict(0).unwrap();
                h.store(d, Value::Int(k), cur, 0).unwrap();
                d
            } else {
                let r = h.new_record(1, 0).unwrap();
                h.store(r, Value::Int(0), cur, 0).unwrap();
                r
            };
            h.push(l, holder).unwrap();
            h.release(holder, 0).unwrap();
            h.release(cur, 0).unwrap();
            cur = l;
        }
        let mut whole = String::new();
        h.format_value(cur, &mut whole).unwrap();
        assert!(whole.len() > chunk * 30, "{}", whole.len());
        let (mut pieces, mut n) = (String::new(), 0);
        let mut text = String::new();
        h.format_value_with(cur, &mut text, chunk, &mut |t| {
            assert!(t.len() <= chunk + 64, "{}", t.len());
            pieces.push_str(t);
            t.clear();
            n += 1;
            Ok(())
        })
        .unwrap();
        pieces.push_str(&text);
        assert_eq!(pieces, whole);
        assert!(n > 30);
        // Stopped after the first piece: the next print is whole again.
        let mut text = String::new();
        let stop = h.format_value_with(cur, &mut text, 1000, &mut |_| Err(Fault::Msg("stop".into())));
        assert_eq!(stop, Err(Fault::Msg("stop".into())));
        let mut again = String::new();
        h.format_value(cur, &mut again).unwrap();
        assert_eq!(again, whole);
        h.release(cur, 0).unwrap();
        h.verify([]).unwrap();
    }

    #[test]
    fn decref_leaves_detectable_dangling_references() {
        let mut h = heap();
        let r = h.new_record(1, 0).unwrap();
        h.retain(r).unwrap(); // a second owner
        h.decref(r, 7).unwrap();
        h.decref(r, 9).unwrap(); // count 0: freed
        let Value::Ref(handle) = r else { panic!() };
        assert_eq!(h.check(handle), Err(Fault::Freed { id: 1, site: Some(9) }));
        assert_eq!(h.release(r, 0), Err(Fault::Freed { id: 1, site: Some(9) }));
        let mut s = String::new();
        assert!(h.format_value(r, &mut s).is_err());
        // The freed slot is reused, and the stale handle stays dead.
        let again = h.new_record(0, 0).unwrap();
        assert!(h.check(handle).is_err());
        h.verify([again]).unwrap();
        h.release(again, 0).unwrap();
    }

    /// The graveyard remembers only frees that leave dangling references
    /// (more `decref`s than `incref`s): a balanced pair in a loop leaves it
    /// empty, however many objects it frees.
    #[test]
    fn balanced_manual_counts_leave_no_graveyard_entry() {
        let mut h = heap();
        let rounds = if cfg!(miri) { 20 } else { 1000 };
        for _ in 0..rounds {
            let r = h.new_record(0, 0).unwrap();
            h.incref(r).unwrap();
            h.decref(r, 3).unwrap();
            h.release(r, 4).unwrap(); // the owner's release frees it
        }
        assert!(h.graveyard.is_empty());
        assert_eq!(h.manual.len(), 0);
        // Unbalanced: the owner is left holding a dangling reference.
        let r = h.new_record(0, 0).unwrap();
        h.incref(r).unwrap();
        h.decref(r, 5).unwrap();
        h.decref(r, 6).unwrap();
        let Value::Ref(handle) = r else { panic!() };
        assert_eq!(h.check(handle), Err(Fault::Freed { id: rounds + 1, site: Some(6) }));
        assert_eq!(h.graveyard.len(), 1);
    }

    #[test]
    fn errors_leave_the_heap_consistent() {
        let mut h = heap();
        let l = h.new_list(0).unwrap();
        let d = h.new_dict(0).unwrap();
        let r = h.new_record(2, 0).unwrap();
        assert!(h.pop(l).is_err());
        assert!(h.load(r, Value::Int(2)).is_err());
        assert!(h.load(d, Value::Int(1)).is_err());
        assert!(h.store(d, Value::Nil, r, 0).is_err());
        assert!(h.store(r, Value::Int(-3), r, 0).is_err());
        assert!(h.push(r, l).is_err());
        assert!(h.delitem(r, Value::Int(0), 0).is_err());
        assert!(h.len(Value::Int(3)).is_err());
        h.verify([l, d, r]).unwrap();
        for v in [l, d, r] {
            h.release(v, 0).unwrap();
        }
        assert_eq!(h.object_stats().alive, 0);
        h.verify([]).unwrap();
    }

    #[test]
    fn out_of_memory_leaves_the_heap_consistent() {
        let mut h = Heap::new(PoolAllocator::new(), 4096);
        let l = h.new_list(0).unwrap();
        let mut kept = 0;
        loop {
            match h.new_record(4, 0) {
                Ok(r) => match h.push(l, r) {
                    Ok(()) => {
                        h.release(r, 0).unwrap();
                        kept += 1;
                    }
                    Err(Fault::OutOfMemory) => {
                        h.release(r, 0).unwrap();
                        break;
                    }
                    Err(e) => panic!("{e:?}"),
                },
                Err(Fault::OutOfMemory) => break,
                Err(e) => panic!("{e:?}"),
            }
        }
        assert!(kept > 10);
        assert!(h.bytes_in_use() <= 4096);
        h.verify([l]).unwrap();
        h.release(l, 0).unwrap();
        assert_eq!(h.object_stats().alive, 0);
    }
}
