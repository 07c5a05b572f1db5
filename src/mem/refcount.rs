//! Layer 2's plug-in point: [`RefcountHooks`], told of every object's
//! creation and free, and of every count changed by hand.
//!
//! The counting rules themselves are not replaceable: SPEC §1 fixes them
//! (every owner holds one count, a count reaching zero frees at once), and
//! `refcount`, `--check-leaks`, the use-after-free checks and the heap
//! verifier depend on them. What a library user plugs into this layer is
//! what CPython 3.13 offers with `PyRefTracer_SetTracer`: an observer of
//! the objects' lives, for tracers, lifetime histograms, per-kind tallies
//! and the like.
//!
//! The heap is generic over its hooks, as it is over its allocator:
//! `Heap<A, H = NoHooks>`. [`NoHooks`] is a zero-sized type whose methods
//! are empty, so a heap without hooks compiles to the same code as before
//! the hooks existed (no field, no test, no call); a heap with hooks calls
//! them directly, inlined. A heap whose hooks are chosen at run time takes
//! a `Box<dyn RefcountHooks>` (a boxed hook is a hook), at the price of a
//! virtual call per event.

use super::heap::Site;
use super::object::ObjKind;

/// Why an object was freed (see [`RefcountHooks::on_free`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FreeCause {
    /// Its count reached zero outside a collection: its last owner let go
    /// of it (a register overwritten, `del`, a frame's end, an element
    /// removed), `decref` took its last count, or its holder was freed.
    Refcount,
    /// The cycle collector found it unreachable and freed it (its count
    /// never reached zero: every reference to it came from other garbage).
    Collector,
    /// Its count reached zero during a collection, because garbage the
    /// collector freed was all that held it (a string only a dead cycle
    /// referred to, say).
    HeldByGarbage,
}

impl FreeCause {
    /// Whether a collection freed the object ([`FreeCause::Collector`] or
    /// [`FreeCause::HeldByGarbage`]): what `--stats` counts as
    /// `freed_by_gc` (the rest are `freed_by_refcount`).
    pub fn by_collection(self) -> bool {
        !matches!(self, FreeCause::Refcount)
    }
}

/// Hooks told of the reference-count layer's events: the creation and the
/// free of every object, and every count changed by `incref` or `decref`.
/// Every method has an empty default; implement those you need and give
/// the hooks to the heap with [`Heap::with_hooks`](super::Heap::with_hooks).
///
/// The hooks are told, not asked: they get plain values (ids, kinds,
/// sites), never the heap, so they cannot change a count or free an
/// object, and a program runs exactly as it would without them. Ids are
/// allocation numbers (1, 2, 3, … in creation order; never reused), so
/// `latest id created - id` is an object's age in allocations. A site is
/// the global index of the instruction that made or freed the object;
/// [`Vm::site_pos`](crate::vm::Vm::site_pos) turns it into a source
/// position.
///
/// Every object a hook sees created and that is freed while the heap lives
/// is reported freed exactly once, after its creation. Objects still
/// alive when the heap is dropped (leaks: cycles never collected, counts
/// `incref` never gave back) are not reported: the heap gives their memory
/// back without freeing them one by one.
///
/// Owned counts (a register or slot taking or dropping a reference) are
/// not reported: they change on nearly every instruction, and a hook there
/// would cost every program on the interpreter's fastest paths.
pub trait RefcountHooks {
    /// Object `id` of kind `kind` was made by the instruction at `site`,
    /// with a count of 1; `size` is the bytes its block takes from the
    /// allocator (header and inline payload; a list's buffer and a dict's
    /// table are not included).
    ///
    /// Called as soon as the object exists, before the collection its
    /// allocation may start.
    fn on_create(&mut self, id: u32, kind: ObjKind, size: usize, site: Site) {
        let _ = (id, kind, size, site);
    }

    /// Object `id` of kind `kind` was freed, for `cause`, by the
    /// instruction at `site`: for the collector, the `gc` instruction; a
    /// collection an allocation started passes 0 (the allocation is the
    /// one [`RefcountHooks::on_create`] was told of last). An object is
    /// reported before the objects its free goes on to free.
    fn on_free(&mut self, id: u32, kind: ObjKind, cause: FreeCause, site: Site) {
        let _ = (id, kind, cause, site);
    }

    /// `incref` raised object `id`'s count to `count`.
    fn on_incref(&mut self, id: u32, count: u32) {
        let _ = (id, count);
    }

    /// `decref`, at `site`, lowered object `id`'s count to `count`. At 0 the
    /// object is freed next ([`RefcountHooks::on_free`] with
    /// [`FreeCause::Refcount`]).
    fn on_decref(&mut self, id: u32, count: u32, site: Site) {
        let _ = (id, count, site);
    }
}

/// No hooks: the default. Zero-sized, with the empty methods, so a heap
/// without hooks pays nothing for them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoHooks;

impl RefcountHooks for NoHooks {}

impl<H: RefcountHooks + ?Sized> RefcountHooks for Box<H> {
    #[inline]
    fn on_create(&mut self, id: u32, kind: ObjKind, size: usize, site: Site) {
        (**self).on_create(id, kind, size, site)
    }
    #[inline]
    fn on_free(&mut self, id: u32, kind: ObjKind, cause: FreeCause, site: Site) {
        (**self).on_free(id, kind, cause, site)
    }
    #[inline]
    fn on_incref(&mut self, id: u32, count: u32) {
        (**self).on_incref(id, count)
    }
    #[inline]
    fn on_decref(&mut self, id: u32, count: u32, site: Site) {
        (**self).on_decref(id, count, site)
    }
}

impl<H: RefcountHooks + ?Sized> RefcountHooks for &mut H {
    #[inline]
    fn on_create(&mut self, id: u32, kind: ObjKind, size: usize, site: Site) {
        (**self).on_create(id, kind, size, site)
    }
    #[inline]
    fn on_free(&mut self, id: u32, kind: ObjKind, cause: FreeCause, site: Site) {
        (**self).on_free(id, kind, cause, site)
    }
    #[inline]
    fn on_incref(&mut self, id: u32, count: u32) {
        (**self).on_incref(id, count)
    }
    #[inline]
    fn on_decref(&mut self, id: u32, count: u32, site: Site) {
        (**self).on_decref(id, count, site)
    }
}
