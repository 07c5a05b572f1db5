use arbitrary::Unstructured;
use rcvm::fuzzing::*;
fn main() {
    let mut seed = 0x1234_5678_u64;
    let (mut tot, mut errs, mut n) = (0u64, 0, 0);
    let mut msgs = std::collections::BTreeMap::new();
    for _ in 0..300 {
        let bytes: Vec<u8> = (0..3000)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let text = gen_program(&mut Unstructured::new(&bytes), &GenOptions::default(), 25).unwrap();
        let l = rcvm::load("g", text.as_bytes()).unwrap();
        let heap = rcvm::mem::Heap::new(rcvm::mem::alloc::PoolAllocator::new(), 1 << 24);
        let mut vm = rcvm::vm::Vm::new(&l.program, heap, fuzz_limits());
        let mut out = Vec::new();
        if let Err(e) = vm.run(&mut out) {
            errs += 1;
            *msgs.entry(e.message.split(' ').take(3).collect::<Vec<_>>().join(" ")).or_insert(0) += 1;
        }
        tot += vm.instructions();
        n += 1;
    }
    println!("avg instrs {} errors {}/{}", tot / n, errs, n);
    for (m, c) in msgs {
        println!("{c:5} {m}");
    }
}
