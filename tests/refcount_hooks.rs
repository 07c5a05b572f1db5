//! Refcount hooks through the library, as a user installs them: programs
//! run on a `Heap::with_hooks`, and what the hooks are told is checked
//! against the program and against `--stats`' counters. Every program in
//! `asm/` runs the same with hooks as without.

use rcvm::mem::alloc::PoolAllocator;
use rcvm::mem::heap::Site;
use rcvm::mem::object::ObjKind;
use rcvm::mem::{FreeCause, Heap, RefcountHooks};
use rcvm::vm::{Limits, RuntimeError, Vm};

/// An event; `at` is the site, turned into its source line after the run.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Create { id: u32, kind: ObjKind, at: u32 },
    Free { id: u32, kind: ObjKind, cause: FreeCause, at: u32 },
    Incref { id: u32, count: u32 },
    Decref { id: u32, count: u32 },
}

/// Records every event.
#[derive(Default)]
struct Log(Vec<Ev>);

impl RefcountHooks for Log {
    fn on_create(&mut self, id: u32, kind: ObjKind, _size: usize, site: Site) {
        self.0.push(Ev::Create { id, kind, at: site });
    }
    fn on_free(&mut self, id: u32, kind: ObjKind, cause: FreeCause, site: Site) {
        self.0.push(Ev::Free { id, kind, cause, at: site });
    }
    fn on_incref(&mut self, id: u32, count: u32) {
        self.0.push(Ev::Incref { id, count });
    }
    fn on_decref(&mut self, id: u32, count: u32, _site: Site) {
        self.0.push(Ev::Decref { id, count });
    }
}

struct Ran {
    result: Result<(), RuntimeError>,
    out: String,
    /// The events, with source lines for sites.
    events: Vec<Ev>,
    stats: rcvm::mem::heap::ObjectStats,
}

/// Runs `src` with a `Log`; `verify` runs the heap verifier after every
/// instruction.
fn run(src: &str, verify: bool) -> Ran {
    let loaded = rcvm::load("t.asm", src.as_bytes()).expect("assembles");
    let heap = Heap::with_hooks(PoolAllocator::new(), 64 << 20, Log::default());
    let mut vm = Vm::new(&loaded.program, heap, Limits { max_steps: Some(10_000_000), ..Limits::default() });
    vm.set_verify_each_step(verify);
    let mut out = Vec::new();
    let result = vm.run(&mut out).map(|_| ());
    let line = |site: Site| vm.site_pos(site).1.line;
    let events = vm
        .heap()
        .hooks()
        .0
        .iter()
        .map(|e| match *e {
            Ev::Create { id, kind, at } => Ev::Create { id, kind, at: line(at) },
            Ev::Free { id, kind, cause, at } => Ev::Free { id, kind, cause, at: line(at) },
            ref other => other.clone(),
        })
        .collect();
    let stats = vm.heap().object_stats();
    Ran { result, out: String::from_utf8(out).unwrap(), events, stats }
}

/// The hooks' counts agree with the heap's statistics.
fn agrees_with_stats(r: &Ran) {
    let creates = r.events.iter().filter(|e| matches!(e, Ev::Create { .. })).count() as u64;
    let freed = |gc: bool| {
        r.events.iter().filter(|e| matches!(e, Ev::Free { cause, .. } if cause.by_collection() == gc)).count() as u64
    };
    assert_eq!(creates, r.stats.allocated);
    assert_eq!((freed(false), freed(true)), (r.stats.freed_by_refcount, r.stats.freed_by_gc));
    assert_eq!(creates - freed(false) - freed(true), r.stats.alive);
}

#[test]
fn a_loop_allocating_n_records_is_n_creations_and_n_frees_by_refcount() {
    let r = run(
        "
    li r0, 0
top:
    new r1, 4               ; line 4: frees the previous record
    store r1, 0, r0
    add r0, r0, 1
    lt r2, r0, 1000
    jnz r2, top
",
        true,
    );
    r.result.as_ref().unwrap();
    // Each record is freed by the `new` that overwrites it, once the new
    // record exists; the last by main's return, at the end.
    let record = ObjKind::Record;
    let mut want = vec![Ev::Create { id: 1, kind: record, at: 4 }];
    for id in 2..=1000 {
        want.push(Ev::Create { id, kind: record, at: 4 });
        want.push(Ev::Free { id: id - 1, kind: record, cause: FreeCause::Refcount, at: 4 });
    }
    let Some(Ev::Free { at: end, .. }) = r.events.last() else { panic!("{:?}", r.events.last()) };
    want.push(Ev::Free { id: 1000, kind: record, cause: FreeCause::Refcount, at: *end });
    assert_eq!(r.events, want);
    agrees_with_stats(&r);
}

#[test]
fn a_cycle_freed_by_gc_is_freed_by_the_collector_at_the_gc_instruction() {
    let r = run(
        r#"
    gcdisable
    li r0, 0
top:
    new r1, 2
    new r2, 1
    store r1, 0, r2
    store r2, 0, r1
    str r3, "held by the cycle alone"
    store r1, 1, r3
    del r1
    del r2
    del r3
    add r0, r0, 1
    lt r4, r0, 10
    jnz r4, top
    gc r5                   ; line 17
    print r5
"#,
        true,
    );
    r.result.as_ref().unwrap();
    assert_eq!(r.out, "20\n");
    let frees: Vec<&Ev> = r.events.iter().filter(|e| matches!(e, Ev::Free { .. })).collect();
    assert_eq!(frees.len(), 30);
    for f in &frees {
        let Ev::Free { kind, cause, at, .. } = f else { unreachable!() };
        assert_eq!(*at, 17);
        let want = if *kind == ObjKind::Str { FreeCause::HeldByGarbage } else { FreeCause::Collector };
        assert_eq!(*cause, want, "{f:?}");
    }
    assert_eq!(r.stats.freed_by_gc, 30);
    agrees_with_stats(&r);
}

#[test]
fn a_decref_that_frees_is_told_then_the_dangling_release_fails_as_before() {
    let r = run(
        "
    list r1
    incref r1
    decref r1
    decref r1               ; line 5: count 0, freed; r1 dangles
    del r1                  ; use of freed object #1
",
        true,
    );
    let err = r.result.as_ref().unwrap_err();
    assert_eq!(err.message, "use of freed object #1");
    assert_eq!(
        r.events,
        [
            Ev::Create { id: 1, kind: ObjKind::List, at: 2 },
            Ev::Incref { id: 1, count: 2 },
            Ev::Decref { id: 1, count: 1 },
            Ev::Decref { id: 1, count: 0 },
            Ev::Free { id: 1, kind: ObjKind::List, cause: FreeCause::Refcount, at: 5 },
        ]
    );
    agrees_with_stats(&r);
}

/// Every example program gives the same output, error and statistics
/// with hooks as without, and the hooks' counts agree with the statistics.
/// A runtime error unwinds the frames: what that frees, it frees at the
/// failing instruction (the callee's and the caller's registers alike),
/// not at the program's first instruction; and `main`'s return value is
/// freed at its `ret`.
#[test]
fn frees_of_unwinding_are_at_the_failing_instruction_and_mains_value_at_its_ret() {
    let r = run(
        "
    new r1, 0               ; line 2
    call r2, f
.func f 0
    list r0                 ; line 5
    li r1, 1
    div r1, r1, 0           ; line 7
.end
",
        true,
    );
    assert_eq!(r.result.as_ref().unwrap_err().message, "division by zero");
    let frees: Vec<&Ev> = r.events.iter().filter(|e| matches!(e, Ev::Free { .. })).collect();
    let cause = FreeCause::Refcount;
    assert_eq!(
        frees,
        [
            &Ev::Free { id: 1, kind: ObjKind::Record, cause, at: 7 },
            &Ev::Free { id: 2, kind: ObjKind::List, cause, at: 7 },
        ]
    );
    agrees_with_stats(&r);
    let r = run("li r0, 1\nlist r1\nli r0, 2\nret r1     ; line 4\n", true);
    r.result.as_ref().unwrap();
    assert_eq!(r.events.last(), Some(&Ev::Free { id: 1, kind: ObjKind::List, cause: FreeCause::Refcount, at: 4 }));
}

#[test]
fn every_example_program_runs_the_same_with_hooks() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/asm");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "asm") {
            continue;
        }
        let src = std::fs::read_to_string(&path).unwrap();
        let loaded = rcvm::load("t.asm", src.as_bytes()).unwrap();
        let limits = Limits { max_steps: Some(10_000_000), ..Limits::default() };
        let mut plain = Vm::new(&loaded.program, Heap::new(PoolAllocator::new(), 64 << 20), limits);
        let mut out = Vec::new();
        let result = plain.run(&mut out).map(|_| ());
        let hooked = run(&src, false);
        let name = path.display();
        assert_eq!(hooked.result, result, "{name}");
        assert_eq!(hooked.out.as_bytes(), out, "{name}");
        assert_eq!(hooked.stats, plain.heap().object_stats(), "{name}");
        agrees_with_stats(&hooked);
        n += 1;
    }
    assert!(n >= 20, "only {n} programs in asm/");
}
