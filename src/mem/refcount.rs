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
    /// instruction at `site`: for the collector, the `gc` instruction, or
    /// the allocation that started the collection (the one
    /// [`RefcountHooks::on_create`] was told of last); for the leak check's
    /// collection at exit ([`crate::stats::leak_report`]), no instruction's
    /// but [`EXIT_SITE`](super::heap::EXIT_SITE). An object is reported
    /// before the objects its free goes on to free.
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

/// Hooks behind a box or a borrow forward to what they point at.
macro_rules! forward_hooks {
    ($($ptr:ty),*) => {$(
        impl<H: RefcountHooks + ?Sized> RefcountHooks for $ptr {
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
    )*};
}

forward_hooks!(Box<H>, &mut H);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::alloc::{Allocator, PoolAllocator, SystemAllocator};
    use crate::mem::heap::{Fault, Heap};
    use crate::mem::value::Value;

    /// What the hooks were told, in order.
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Ev {
        Create(u32, ObjKind, usize, Site),
        Free(u32, ObjKind, FreeCause, Site),
        Incref(u32, u32),
        Decref(u32, u32, Site),
    }

    #[derive(Default)]
    struct Log(Vec<Ev>);

    impl RefcountHooks for Log {
        fn on_create(&mut self, id: u32, kind: ObjKind, size: usize, site: Site) {
            self.0.push(Ev::Create(id, kind, size, site));
        }
        fn on_free(&mut self, id: u32, kind: ObjKind, cause: FreeCause, site: Site) {
            self.0.push(Ev::Free(id, kind, cause, site));
        }
        fn on_incref(&mut self, id: u32, count: u32) {
            self.0.push(Ev::Incref(id, count));
        }
        fn on_decref(&mut self, id: u32, count: u32, site: Site) {
            self.0.push(Ev::Decref(id, count, site));
        }
    }

    fn heap() -> Heap<PoolAllocator, Log> {
        let mut h = Heap::with_hooks(PoolAllocator::new(), usize::MAX, Log::default());
        h.gc_set_enabled(false);
        h
    }

    fn id(v: Value) -> u32 {
        match v {
            Value::Ref(h) => h.id,
            _ => panic!("not a reference"),
        }
    }

    /// Boxed (as `dyn`) and borrowed hooks forward every event to what
    /// they point at.
    #[test]
    fn boxed_and_borrowed_hooks_forward_every_event() {
        fn run(h: &mut impl RefcountHooks) {
            h.on_create(1, ObjKind::List, 32, 2);
            h.on_incref(1, 2);
            h.on_decref(1, 1, 3);
            h.on_free(1, ObjKind::List, FreeCause::Refcount, 4);
        }
        let want = [
            Ev::Create(1, ObjKind::List, 32, 2),
            Ev::Incref(1, 2),
            Ev::Decref(1, 1, 3),
            Ev::Free(1, ObjKind::List, FreeCause::Refcount, 4),
        ];
        let mut log = Log::default();
        run(&mut &mut log);
        assert_eq!(log.0, want);
        // A heap over a boxed `dyn` hook, handed back with what it saw.
        let boxed: Box<dyn RefcountHooks> = Box::new(Log::default());
        let mut h = Heap::with_hooks(PoolAllocator::new(), usize::MAX, boxed);
        let r = h.new_list(2).unwrap();
        h.release(r, 4).unwrap();
        assert_eq!(h.object_stats().allocated, 1);
        let mut log = Log::default();
        run(&mut Box::new(&mut log));
        assert_eq!(log.0, want);
    }

    /// The frees by refcount and by collection the hooks saw agree with
    /// the heap's statistics, and every object seen created was seen
    /// freed or is still alive.
    fn agrees_with_stats(h: &Heap<PoolAllocator, Log>) {
        let log = &h.hooks().0;
        let creates = log.iter().filter(|e| matches!(e, Ev::Create(..))).count() as u64;
        let by = |gc: bool| {
            log.iter().filter(|e| matches!(e, Ev::Free(_, _, c, _) if c.by_collection() == gc)).count() as u64
        };
        let st = h.object_stats();
        assert_eq!(creates, st.allocated);
        assert_eq!((by(false), by(true)), (st.freed_by_refcount, st.freed_by_gc));
        assert_eq!(creates - by(false) - by(true), st.alive);
    }

    #[test]
    fn a_loop_of_records_is_n_creations_then_n_frees_by_refcount() {
        let mut h = heap();
        let n = if cfg!(miri) { 20 } else { 1000 };
        for i in 0..n {
            let r = h.new_record(2, 10).unwrap();
            assert_eq!(id(r), i + 1);
            h.release(r, 11).unwrap();
        }
        let want: Vec<Ev> = (1..=n)
            .flat_map(|i| {
                [Ev::Create(i, ObjKind::Record, 48, 10), Ev::Free(i, ObjKind::Record, FreeCause::Refcount, 11)]
            })
            .collect();
        assert_eq!(h.hooks().0, want);
        agrees_with_stats(&h);
        h.verify([]).unwrap();
    }

    #[test]
    fn every_kind_is_created_with_its_block_size_and_a_cascade_is_reported_parent_first() {
        let mut h = heap();
        let s = h.new_str("hello", 1).unwrap();
        let l = h.new_list(2).unwrap();
        let d = h.new_dict(3).unwrap();
        let r = h.new_record(3, 4).unwrap();
        h.store(r, Value::Int(0), l, 5).unwrap();
        h.push(l, d).unwrap();
        h.store(d, Value::Int(1), s, 5).unwrap();
        for v in [s, l, d] {
            h.release(v, 6).unwrap();
        }
        h.hooks_mut().0.clear();
        // Freeing r frees the chain it alone holds: r, l, d, s.
        h.release(r, 7).unwrap();
        let cause = FreeCause::Refcount;
        assert_eq!(
            h.hooks().0,
            [
                Ev::Free(4, ObjKind::Record, cause, 7),
                Ev::Free(2, ObjKind::List, cause, 7),
                Ev::Free(3, ObjKind::Dict, cause, 7),
                Ev::Free(1, ObjKind::Str, cause, 7),
            ]
        );
        // The system allocator counts exactly the bytes asked for.
        let mut h = Heap::with_hooks(SystemAllocator::new(), usize::MAX, Log::default());
        h.new_str("hello", 1).unwrap();
        h.new_list(2).unwrap();
        h.new_dict(3).unwrap();
        h.new_record(3, 4).unwrap();
        assert_eq!(
            h.hooks().0,
            [
                Ev::Create(1, ObjKind::Str, 16 + 8 + 5, 1),
                Ev::Create(2, ObjKind::List, 32, 2),
                Ev::Create(3, ObjKind::Dict, 32, 3),
                Ev::Create(4, ObjKind::Record, 16 + 3 * 16, 4),
            ]
        );
        // The sizes told are the bytes the allocator was asked for.
        assert_eq!(h.allocator().bytes_in_use(), 29 + 32 + 32 + 64);
    }

    #[test]
    fn a_collected_cycle_is_freed_by_the_collector_and_what_only_it_held_by_garbage() {
        let mut h = heap();
        let a = h.new_record(2, 0).unwrap();
        let b = h.new_list(0).unwrap();
        let s = h.new_str("only the cycle holds me", 0).unwrap();
        h.store(a, Value::Int(0), b, 0).unwrap();
        h.store(a, Value::Int(1), s, 0).unwrap();
        h.push(b, a).unwrap();
        for v in [a, b, s] {
            h.release(v, 1).unwrap();
        }
        assert!(!h.hooks().0.iter().any(|e| matches!(e, Ev::Free(..))), "refcounting frees nothing");
        assert_eq!(h.collect_checked(2, 9), Ok(2));
        let frees: Vec<&Ev> = h.hooks().0.iter().filter(|e| matches!(e, Ev::Free(..))).collect();
        assert_eq!(
            frees,
            [
                &Ev::Free(1, ObjKind::Record, FreeCause::Collector, 9),
                &Ev::Free(3, ObjKind::Str, FreeCause::HeldByGarbage, 9),
                &Ev::Free(2, ObjKind::List, FreeCause::Collector, 9),
            ]
        );
        agrees_with_stats(&h);
        h.verify([]).unwrap();
    }

    #[test]
    fn incref_and_a_decref_that_frees_are_seen() {
        let mut h = heap();
        let r = h.new_record(0, 0).unwrap();
        h.incref(r).unwrap();
        h.decref(r, 3).unwrap();
        h.decref(r, 4).unwrap(); // count 0: freed, and r dangles
        assert_eq!(
            h.hooks().0,
            [
                Ev::Create(1, ObjKind::Record, 16, 0),
                Ev::Incref(1, 2),
                Ev::Decref(1, 1, 3),
                Ev::Decref(1, 0, 4),
                Ev::Free(1, ObjKind::Record, FreeCause::Refcount, 4),
            ]
        );
        // The dangling reference is caught as before; nothing more is told.
        assert_eq!(h.decref(r, 5), Err(Fault::Freed { id: 1, site: Some(4) }));
        assert_eq!(h.incref(r), Err(Fault::Freed { id: 1, site: Some(4) }));
        assert_eq!(h.hooks().0.len(), 5);
        agrees_with_stats(&h);
    }

    /// An allocation whose automatic collection meets an error gives its
    /// new object back: it is reported created, then freed, in that order.
    #[test]
    fn an_object_given_back_by_a_failed_allocation_is_created_then_freed() {
        let mut h = heap();
        let a = h.new_record(2, 0).unwrap();
        let b = h.new_record(1, 0).unwrap();
        let x = h.new_record(0, 0).unwrap();
        h.store(a, Value::Int(0), b, 0).unwrap();
        h.store(b, Value::Int(0), a, 0).unwrap();
        h.store(a, Value::Int(1), x, 0).unwrap();
        h.decref(x, 1).unwrap();
        h.decref(x, 1).unwrap(); // frees x, which a still holds
        h.release(x, 2).unwrap_err(); // the register's reference dangles
        h.release(a, 2).unwrap();
        h.release(b, 2).unwrap();
        h.gc_set_thresholds([2, 10, 10]);
        h.gc_set_enabled(true);
        // Count 0 (a and b) passes 2 with the new list: the collection
        // frees a and b, and meets a's reference to x.
        assert_eq!(h.new_list(8), Err(Fault::Freed { id: 3, site: Some(1) }));
        let log = &h.hooks().0;
        let tail: Vec<&Ev> = log.iter().skip_while(|e| !matches!(e, Ev::Create(4, ..))).collect();
        assert_eq!(
            tail,
            [
                &Ev::Create(4, ObjKind::List, 32, 8),
                // Every free at the allocating instruction's site.
                &Ev::Free(1, ObjKind::Record, FreeCause::Collector, 8),
                &Ev::Free(2, ObjKind::Record, FreeCause::Collector, 8),
                &Ev::Free(4, ObjKind::List, FreeCause::Refcount, 8),
            ]
        );
        agrees_with_stats(&h);
        assert_eq!(h.object_stats().alive, 0);
    }

    /// The same operations with and without hooks leave the heap in the
    /// same state; no hooks cost no room.
    #[test]
    fn hooks_change_nothing() {
        fn work<H: RefcountHooks>(h: &mut Heap<PoolAllocator, H>) -> Vec<String> {
            let mut seen = Vec::new();
            let l = h.new_list(0).unwrap();
            for i in 0..50 {
                let r = h.new_record(2, 0).unwrap();
                h.store(r, Value::Int(0), Value::Int(i), 0).unwrap();
                h.store(r, Value::Int(1), r, 0).unwrap(); // a cycle of one
                if i % 3 == 0 {
                    h.push(l, r).unwrap();
                }
                h.release(r, 0).unwrap();
            }
            h.incref(l).unwrap();
            seen.push(format!("{:?}", h.refcount(l)));
            h.decref(l, 0).unwrap();
            seen.push(format!("{:?}", h.collect_checked(0, 0)));
            let mut s = String::new();
            h.format_value(l, &mut s).unwrap();
            seen.push(s);
            h.release(l, 0).unwrap();
            seen.push(format!("{:?}", h.collect_checked(2, 0)));
            seen.push(format!("{:?}", h.object_stats()));
            let mut g = h.gc_stats();
            g.time_us = [0; 3];
            seen.push(format!("{g:?}"));
            seen.push(format!("{:?}", h.allocator().stats()));
            h.verify([]).unwrap();
            seen
        }
        let mut plain = Heap::new(PoolAllocator::new(), usize::MAX);
        let mut hooked = heap();
        hooked.gc_set_enabled(true);
        assert_eq!(work(&mut plain), work(&mut hooked));
        agrees_with_stats(&hooked);
        assert_eq!(std::mem::size_of::<NoHooks>(), 0);
    }
}
