//! Links the `rcvm` binary with the functions ordinary runs execute placed
//! first in its code (the list is `bench/hot-symbols.txt`, made by
//! `bench/hot-symbols`). The kernel maps the 64 KiB around every page of
//! code a process touches, so with the executed code scattered nearly the
//! whole binary is resident in every run; packed together, about 500 KB
//! less is.
//!
//! Only where the linker is known to be LLD, which takes the list
//! (`--symbol-ordering-file`): x86_64 Linux from Rust 1.90 on, with no
//! linker chosen by the user. Elsewhere the binary links as usual. A stale
//! list (its names carry hashes that change with the toolchain or the
//! dependencies) costs nothing but the gain: LLD skips names it does not
//! find.

use std::env;
use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=bench/hot-symbols.txt");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    if env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu") {
        return;
    }
    if env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_some() {
        return;
    }
    // `-C linker=...`, `-C linker-features=...` or `-fuse-ld=...` in the
    // flags: another linker may not take the option.
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if flags.contains("linker") || flags.contains("fuse-ld") {
        return;
    }
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc).arg("-V").output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    let minor = version.ok().and_then(|v| {
        v.split_whitespace().nth(1).and_then(|n| n.split('.').nth(1)).and_then(|m| m.parse::<u32>().ok())
    });
    if minor.is_none_or(|m| m < 90) {
        return;
    }
    let dir = env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let list = Path::new(&dir).join("bench").join("hot-symbols.txt");
    if !list.is_file() {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}", list.display());
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
}
