//! Snapshot tests over directories: a new case is a new file.
//!
//! - every program in `asm/`: its exit code, stdout and stderr when run
//!   (extra flags come from a `; args:` header line);
//! - every malformed file in `tests/asm-errors/`: the whole diagnostic of
//!   `rcvm check`, which must exit 2;
//! - the disassembly of every `asm/` program, which must reassemble to
//!   byte-identical bytecode.
//!
//! Update snapshots with `cargo insta review`.

mod common;
use common::{header_args, rcvm, rel};

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_prepend_module_to_snapshot(false);
    // Durations vary from run to run.
    s.add_filter(r"\d+\.\d{3} ms", "[time] ms");
    s.add_filter(r#""elapsed_ms": [0-9.e-]+"#, r#""elapsed_ms": "[time]""#);
    s.add_filter(r#""time_us": \[[^\]]*\]"#, r#""time_us": "[time]""#);
    s
}

#[test]
fn programs() {
    settings().bind(|| {
        insta::glob!("../asm", "*.asm", |path| {
            let src = std::fs::read_to_string(path).unwrap();
            let file = rel(path);
            let mut snap = String::new();
            for extra in header_args(&src) {
                let mut args: Vec<String> = vec!["run".into()];
                args.extend(extra);
                args.push(file.clone());
                let argv: Vec<&str> = args.iter().map(String::as_str).collect();
                let run = rcvm(&argv);
                assert!(
                    run.code == 0 || run.code == 1 || run.code == 3,
                    "{file}: unexpected exit {}:\n{}",
                    run.code,
                    run.stderr
                );
                assert!(!run.stderr.contains("panicked"), "{file} panicked");
                snap.push_str(&format!("$ rcvm {}\n{}\n", args.join(" "), run.snapshot()));
            }
            insta::assert_snapshot!(snap);
        });
    });
}

#[test]
fn assembly_errors() {
    settings().bind(|| {
        insta::glob!("asm-errors", "*.asm", |path| {
            let file = rel(path);
            let run = rcvm(&["check", &file]);
            assert_eq!(run.code, 2, "{file} must be rejected with exit 2:\n{}", run.stderr);
            assert!(run.stderr.contains(file.as_str()), "{file}: the diagnostic names the file");
            assert!(!run.stderr.contains("panicked"), "{file} panicked");
            insta::assert_snapshot!(run.stderr);
        });
    });
}

#[test]
fn disassembly_round_trips() {
    settings().bind(|| {
        insta::glob!("../asm", "*.asm", |path| {
            let src = std::fs::read_to_string(path).unwrap();
            let file = rel(path);
            let first = rcvm::load(&file, src.as_bytes()).unwrap_or_else(|_| panic!("{file} loads"));
            let listing = rcvm::bytecode::disasm::disassemble(&first.program);
            let again = rcvm::load("listing.asm", listing.as_bytes())
                .unwrap_or_else(|_| panic!("the disassembly of {file} reassembles"));
            assert_eq!(
                first.program.to_bytes(),
                again.program.to_bytes(),
                "{file}: disassembly must reassemble to identical bytecode"
            );
            insta::assert_snapshot!(listing);
        });
    });
}
