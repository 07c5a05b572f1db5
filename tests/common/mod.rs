//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};

/// Output of one run of the `rcvm` binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The whole run as one snapshot text.
    pub fn snapshot(&self) -> String {
        format!("exit: {}\n--- stdout ---\n{}--- stderr ---\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Runs the `rcvm` binary with `args`, from the crate root so that paths in
/// diagnostics are relative.
pub fn rcvm(args: &[&str]) -> Run {
    rcvm_stdin(args, None)
}

pub fn rcvm_stdin(args: &[&str], stdin: Option<&[u8]>) -> Run {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_rcvm"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rcvm");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let out = child.wait_with_output().expect("wait for rcvm");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Path of `p` relative to the crate root, with forward slashes.
pub fn rel(p: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    p.strip_prefix(root).unwrap_or(p).to_string_lossy().replace('\\', "/")
}

/// Extra `rcvm run` arguments: one list per `; args: ...` line among the
/// first comment lines of a program (each line is one run), or a single
/// empty list when there is none.
pub fn header_args(src: &str) -> Vec<Vec<String>> {
    let mut runs = Vec::new();
    for line in src.lines().take_while(|l| l.trim_start().starts_with(';') || l.trim().is_empty()) {
        if let Some(rest) = line.trim_start().trim_start_matches(';').trim_start().strip_prefix("args:") {
            runs.push(rest.split_whitespace().map(str::to_string).collect());
        }
    }
    if runs.is_empty() {
        runs.push(Vec::new());
    }
    runs
}
