//! Links the `rcvm` binary with the functions ordinary runs execute placed
//! first in its code (the list is `bench/hot-symbols.txt`, made by
//! `bench/hot-symbols`). The kernel maps the 64 KiB around every page of
//! code a process touches, so with the executed code scattered nearly the
//! whole binary is resident in every run; packed together, about 500 KB
//! less is.
//!
//! Only where the linker takes the list (`--symbol-ordering-file`, an LLD
//! option; rustc links with LLD on x86_64 Linux from Rust 1.90 on): a tiny
//! program is linked first with the same compiler, target, flags and
//! linker, and the option is used only if that works. Elsewhere the binary
//! links as usual (with a `cargo:warning`). A stale list (its names carry
//! hashes that change with the toolchain or the dependencies) costs
//! nothing but the gain: LLD skips names it does not find.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=bench/hot-symbols.txt");
    let dir = env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let list = Path::new(&dir).join("bench").join("hot-symbols.txt");
    if !list.is_file() {
        return;
    }
    // `-Wl,` splits its argument at commas.
    let path = list.display().to_string();
    if path.contains(',') {
        println!("cargo:warning=code layout skipped: the path {path} has a comma");
        return;
    }
    let args = [format!("-Wl,--symbol-ordering-file={path}"), "-Wl,--no-warn-symbol-ordering".to_string()];
    if links_with(&args) {
        for a in &args {
            println!("cargo:rustc-link-arg-bins={a}");
        }
    } else if env::var("PROFILE").as_deref() == Ok("release") {
        println!("cargo:warning=code layout skipped: the linker does not take --symbol-ordering-file (not LLD?)");
    }
}

/// Whether a tiny program links with `args` added, with the compiler,
/// target, flags and linker this build uses.
fn links_with(args: &[String]) -> bool {
    let Some(out) = env::var_os("OUT_DIR").map(PathBuf::from) else { return false };
    let src = out.join("layout_probe.rs");
    if std::fs::write(&src, "fn main() {}\n").is_err() {
        return false;
    }
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let mut cmd = Command::new(rustc);
    cmd.arg(&src).arg("-o").arg(out.join("layout_probe")).arg("--crate-type=bin");
    if let Ok(target) = env::var("TARGET") {
        cmd.arg("--target").arg(target);
    }
    if let Ok(linker) = env::var("RUSTC_LINKER") {
        cmd.arg("-C").arg(format!("linker={linker}"));
    }
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    cmd.args(flags.split('\x1f').filter(|f| !f.is_empty()));
    for a in args {
        cmd.arg("-C").arg(format!("link-arg={a}"));
    }
    cmd.output().map(|o| o.status.success()).unwrap_or(false)
}
