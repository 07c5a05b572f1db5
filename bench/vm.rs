//! Criterion benchmarks of whole programs run through the library, the way
//! the `rcvm run` binary does it (`rcvm::load`, `Heap::new`, `Vm::new`,
//! `Vm::run`), so interpreter and heap changes can be measured precisely.
//! Assembling happens once, outside the timed loop; each iteration builds a
//! fresh heap and VM and runs the program to the end.
//!
//! - `vm/fib20`: recursive fib(20) (21,891 calls): call/return dispatch.
//! - `vm/loop1m`: a 1,000,000-iteration counting loop: arithmetic dispatch.
//! - `vm/churn100k/{pool,system}`: 100,000 short-lived 4-slot records,
//!   each freed by refcounting when the next replaces it.
//! - `vm/cycles10k/{pool,system}`: 10,000 dropped two-record cycles, left
//!   to the automatic cycle collector.
//!
//! Run with `cargo bench --bench vm`.

use criterion::{criterion_group, criterion_main, Criterion};
use rcvm::bytecode::Program;
use rcvm::mem::alloc::{Allocator, PoolAllocator, SystemAllocator};
use rcvm::mem::Heap;
use rcvm::vm::{Limits, Vm};
use std::hint::black_box;
use std::time::Duration;

const FIB20: &str = r#"
    li r0, 20
    call r1, fib, r0
    print r1                ; 6765

.func fib 1
    lt r1, r0, 2
    jz r1, recurse
    ret r0
recurse:
    sub r1, r0, 1
    call r1, fib, r1
    sub r2, r0, 2
    call r2, fib, r2
    add r1, r1, r2
    ret r1
.end
"#;

const LOOP1M: &str = r#"
    li r0, 0
    li r1, 0
top:
    add r1, r1, r0
    add r0, r0, 1
    lt r2, r0, 1_000_000
    jnz r2, top
    print r1                ; 499999500000
"#;

const CHURN100K: &str = r#"
    li r0, 0
top:
    new r1, 4
    store r1, 0, r0
    store r1, 1, r0
    store r1, 2, r0
    store r1, 3, r0
    add r0, r0, 1
    lt r2, r0, 100_000
    jnz r2, top
    load r3, r1, 3
    print r3                ; 99999
"#;

const CYCLES10K: &str = r#"
    li r0, 0
top:
    new r1, 1
    new r2, 1
    store r1, 0, r2
    store r2, 0, r1
    del r1
    del r2
    add r0, r0, 1
    lt r3, r0, 10_000
    jnz r3, top
    print r0                ; 10000
"#;

fn load(name: &str, src: &str) -> Program {
    match rcvm::load(name, src.as_bytes()) {
        Ok(l) => l.program,
        Err(e) => panic!("{name} does not assemble: {e:?}"),
    }
}

/// Runs `prog` to the end on a fresh heap over `alloc`; returns its output.
fn run<A: Allocator>(prog: &Program, alloc: A, out: &mut Vec<u8>) {
    out.clear();
    let heap = Heap::new(alloc, usize::MAX);
    let mut vm = Vm::new(prog, heap, Limits::default());
    vm.run(out).expect("runtime error");
}

/// Checks the program once, so a broken benchmark fails loudly.
fn check(prog: &Program, expect: &str) {
    let mut out = Vec::new();
    run(prog, PoolAllocator::new(), &mut out);
    assert_eq!(String::from_utf8_lossy(&out), expect);
}

fn bench_vm(c: &mut Criterion) {
    let fib = load("fib20.asm", FIB20);
    let lp = load("loop1m.asm", LOOP1M);
    let churn = load("churn100k.asm", CHURN100K);
    let cycles = load("cycles10k.asm", CYCLES10K);
    check(&fib, "6765\n");
    check(&lp, "499999500000\n");
    check(&churn, "99999\n");
    check(&cycles, "10000\n");

    let mut g = c.benchmark_group("vm");
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    let mut out = Vec::with_capacity(64);
    g.bench_function("fib20", |b| b.iter(|| run(black_box(&fib), PoolAllocator::new(), &mut out)));
    g.bench_function("loop1m", |b| b.iter(|| run(black_box(&lp), PoolAllocator::new(), &mut out)));
    g.bench_function("churn100k/pool", |b| b.iter(|| run(black_box(&churn), PoolAllocator::new(), &mut out)));
    g.bench_function("churn100k/system", |b| b.iter(|| run(black_box(&churn), SystemAllocator::new(), &mut out)));
    g.bench_function("cycles10k/pool", |b| b.iter(|| run(black_box(&cycles), PoolAllocator::new(), &mut out)));
    g.bench_function("cycles10k/system", |b| b.iter(|| run(black_box(&cycles), SystemAllocator::new(), &mut out)));
    g.finish();
}

criterion_group!(benches, bench_vm);
criterion_main!(benches);
