//! Replays every input in `tests/fuzz_regressions/<target>/` through the
//! same oracle as the cargo-fuzz target of that name, on stable. A crash
//! found by fuzzing becomes a file here (see README, "Fuzzing").

use arbitrary::Unstructured;
use rcvm::fuzzing::*;
use rcvm::mem::alloc::{BumpAllocator, PoolAllocator, SystemAllocator};
use std::path::Path;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions").join(target);
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    v.sort();
    v.into_iter()
        .filter(|p| p.extension().is_none_or(|e| e != "md"))
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn assemble() {
    for (name, data) in inputs("assemble") {
        if let Ok(text) = std::str::from_utf8(&data) {
            check_assemble(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        } else {
            let _ = rcvm::load("fuzz.asm", &data);
        }
    }
}

#[test]
fn load() {
    for (name, data) in inputs("load") {
        let input = load_target_input(&data);
        check_load(&input);
        if let Ok(l) = rcvm::load("fuzz.rcb", &input) {
            rcvm::bytecode::disasm::check_round_trip(&l.program).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

#[test]
fn execute() {
    for (name, data) in inputs("execute") {
        let mut u = Unstructured::new(&data);
        let manual = u.arbitrary::<bool>().unwrap_or(false);
        let o = GenOptions { manual_counts: manual, ..GenOptions::default() };
        let Ok(text) = gen_program(&mut u, &o, 40) else { continue };
        check_execute(&text, manual).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
    }
}

#[test]
fn alloc() {
    for (name, data) in inputs("alloc") {
        let (which, rest) = data.split_first().unwrap_or((&0, &[]));
        let mut u = Unstructured::new(rest);
        let r = match which % 3 {
            0 => check_alloc_ops(&mut PoolAllocator::new(), &mut u, false),
            1 => check_alloc_ops(&mut SystemAllocator::new(), &mut u, false),
            _ => check_alloc_ops(&mut BumpAllocator::new(), &mut u, true),
        };
        r.unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn gc_oracle() {
    for (name, data) in inputs("gc_oracle") {
        check_gc_oracle(&mut Unstructured::new(&data)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
