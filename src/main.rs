//! The `rcvm` command line. Exit codes: 0 success; 1 runtime error; 2 the
//! program, bytecode file or command line was rejected; 3 `--check-leaks`
//! found leaks; 130 interrupted by Ctrl-C (the error names the instruction).
//!
//! Nothing here prints with `print!`/`eprintln!`, which panic when the write
//! fails: standard output goes through `write_all` and its errors are
//! handled (`stdout_failed`), and a failed write to standard error is
//! ignored, as there is nowhere left to report it.

use clap::{Parser, Subcommand, ValueEnum};
use rcvm::bytecode::disasm::disassemble;
use rcvm::bytecode::Program;
use rcvm::diag::render;
use rcvm::mem::alloc::{Allocator, BumpAllocator, PoolAllocator, Selected, SystemAllocator};
use rcvm::mem::Heap;
use rcvm::vm::{Limits, Vm};
use rcvm::LoadError;
use std::fmt::Display;
use std::io::{self, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "rcvm", version, about = "A register VM with a CPython-style memory subsystem")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Assemble (or load, for a bytecode file) and run.
    Run(RunArgs),
    /// Write the binary bytecode file.
    Asm {
        /// `.asm` text, `.rcb` bytecode, or `-` for standard input.
        file: String,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Print assembly that reassembles to the same bytecode.
    Disasm {
        /// `.asm` text, `.rcb` bytecode, or `-` for standard input.
        file: String,
    },
    /// Assemble and verify only.
    Check {
        /// `.asm` text, `.rcb` bytecode, or `-` for standard input.
        file: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum AllocKind {
    /// CPython obmalloc-style pools and arenas (default).
    Pool,
    /// The Rust global allocator.
    System,
    /// bumpalo: frees are no-ops until exit.
    Bump,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(clap::Args)]
struct RunArgs {
    /// `.asm` text, `.rcb` bytecode, or `-` for standard input.
    file: String,
    /// Allocator for object memory.
    #[arg(long, value_enum, default_value = "pool")]
    alloc: AllocKind,
    /// Put the pool allocator's arenas on transparent huge pages where the
    /// system offers them (fewer page faults; 2 MiB resident at the first
    /// object).
    #[arg(long, value_enum, default_value = "on")]
    huge_pages: OnOff,
    /// Automatic cycle collection.
    #[arg(long, value_enum, default_value = "on")]
    gc: OnOff,
    /// Collector thresholds T0,T1,T2 (T0 = 0 turns automatic collection off).
    #[arg(long, value_name = "T0,T1,T2", value_parser = parse_thresholds)]
    gc_threshold: Option<[u64; 3]>,
    /// One line per collection on stderr (generation, examined, collected, time).
    #[arg(long)]
    gc_log: bool,
    /// Heap limit in bytes: digits, then optionally K, M or G (or KiB/MiB/GiB,
    /// KB/MB/GB; any case; powers of 1024). Default: half the physical
    /// memory, so a runaway program gets "out of memory" with a location
    /// rather than the system's OOM killer.
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    max_heap: Option<usize>,
    /// Instruction budget.
    #[arg(long, value_name = "N")]
    max_steps: Option<u64>,
    /// Deepest call nesting.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    max_depth: u32,
    /// Print a statistics report to stderr after the run.
    #[arg(long)]
    stats: bool,
    /// Write the statistics as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    stats_json: Option<PathBuf>,
    /// Report objects kept alive only by unowned counts (exit 3).
    #[arg(long)]
    check_leaks: bool,
    /// Print each executed instruction to stderr.
    #[arg(long)]
    trace: bool,
}

fn parse_thresholds(s: &str) -> Result<[u64; 3], String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    if parts.len() != 3 {
        return Err("expected three thresholds, T0,T1,T2".into());
    }
    let mut t = [0u64; 3];
    for (i, p) in parts.iter().enumerate() {
        t[i] = p.parse().map_err(|_| format!("`{p}` is not a non-negative integer"))?;
    }
    Ok(t)
}

/// A `--max-heap` value: digits (`_` allowed between them), then at most
/// one suffix, in any case: `K`/`KiB`/`KB`, `M`/`MiB`/`MB` or
/// `G`/`GiB`/`GB`, all powers of 1024. Anything else is turned down.
fn parse_bytes(s: &str) -> Result<usize, String> {
    let bad = || {
        format!(
            "`{s}` is not a byte count: expected digits and an optional suffix K, M or G \
             (or KiB/MiB/GiB, KB/MB/GB; any case; powers of 1024), e.g. 1000000, 64K, 16MiB, 1G"
        )
    };
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '_').unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let shift = match suffix.to_ascii_uppercase().as_str() {
        "" => 0,
        "K" | "KIB" | "KB" => 10,
        "M" | "MIB" | "MB" => 20,
        "G" | "GIB" | "GB" => 30,
        _ => return Err(bad()),
    };
    if !num.starts_with(|c: char| c.is_ascii_digit()) || num.ends_with('_') {
        return Err(bad());
    }
    let too_large = || format!("`{s}` is too large: at most {} bytes", usize::MAX);
    let n: usize = num.replace('_', "").parse().map_err(|_| too_large())?;
    n.checked_mul(1 << shift).ok_or_else(too_large)
}

/// The largest input `run`, `asm`, `disasm` and `check` accept: 256 MiB.
/// A program that large is far beyond any written or generated by hand
/// (the examples are a few KiB), yet assembling it already takes several
/// times its size in memory; without a cap, `rcvm run /dev/zero` or an
/// endless pipe would read until memory runs out.
const MAX_INPUT: u64 = 256 << 20;

/// Reads all of `r`, but never more than [`MAX_INPUT`] bytes: the read
/// stops one byte past the limit, and then the input is an error.
fn read_capped(r: impl Read, capacity: u64) -> io::Result<Vec<u8>> {
    let mut b = Vec::with_capacity(capacity.min(MAX_INPUT + 1) as usize);
    r.take(MAX_INPUT + 1).read_to_end(&mut b)?;
    if b.len() as u64 > MAX_INPUT {
        return Err(too_large());
    }
    Ok(b)
}

fn too_large() -> io::Error {
    io::Error::other(format!("input larger than {} MiB", MAX_INPUT >> 20))
}

/// Input: its display name and bytes.
fn read_input(file: &str) -> Result<(String, Vec<u8>), String> {
    if file == "-" {
        let b = read_capped(std::io::stdin().lock(), 0).map_err(|e| format!("cannot read standard input: {e}"))?;
        Ok(("<stdin>".into(), b))
    } else {
        let read = || {
            let f = std::fs::File::open(file)?;
            // The size of a regular file, to read it into one buffer; 0
            // (grow as it comes) for a device or a pipe.
            let size = f.metadata().map(|m| m.len()).unwrap_or(0);
            if size > MAX_INPUT {
                return Err(too_large());
            }
            read_capped(f, size)
        };
        read().map(|b| (file.to_string(), b)).map_err(|e| format!("cannot read `{file}`: {e}"))
    }
}

/// Writes `s` to stderr; a failure is ignored (there is nowhere left to
/// report it), never a panic.
fn eprint_block(s: &str) {
    let mut e = io::stderr().lock();
    let _ = e.write_all(s.as_bytes());
}

/// Standard error behind one 64 KiB buffer, shared by `--trace` and
/// `--gc-log` (write failures are the caller's to ignore).
#[derive(Clone)]
struct SharedErr(std::rc::Rc<std::cell::RefCell<io::BufWriter<io::Stderr>>>);

impl Default for SharedErr {
    fn default() -> Self {
        SharedErr(std::rc::Rc::new(std::cell::RefCell::new(io::BufWriter::with_capacity(1 << 16, io::stderr()))))
    }
}

impl Write for SharedErr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.borrow_mut().flush()
    }
}

/// `error: MSG` on stderr.
fn report(msg: impl Display) {
    eprint_block(&format!("error: {msg}\n"));
}

/// The exit code after a failed write to standard output. A reader that
/// went away (a broken pipe: `rcvm disasm big.asm | head`) ends the process
/// quietly with exit 0, as ripgrep does (C tools die of SIGPIPE, which Rust
/// ignores); any other failure (a full disk, say) is an error with `code`.
fn stdout_failed(e: &io::Error, code: u8) -> ExitCode {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return ExitCode::SUCCESS;
    }
    report(format_args!("cannot write to standard output: {e}"));
    ExitCode::from(code)
}

/// Writes all of `s` to standard output and flushes it.
fn print_all(s: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(s.as_bytes())?;
    out.flush()
}

/// The program's standard output, remembering the kind of the first error
/// a write met. Only `print` writes, and a failed one is the runtime error
/// that stops the program: this tells `run` whether the error was that,
/// and whether it was a reader that went away. Flushes are not watched:
/// the VM ignores the result of its own at the end of a run, and `run`
/// flushes again and looks at that result.
struct Watched<W: Write> {
    inner: W,
    write_failed: Option<io::ErrorKind>,
}

impl<W: Write> Write for Watched<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = self.inner.write(buf);
        if let Err(e) = &r {
            // `write_all` retries an interrupted write: not a failure.
            if e.kind() != io::ErrorKind::Interrupted && self.write_failed.is_none() {
                self.write_failed = Some(e.kind());
            }
        }
        r
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The largest source file read for a runtime error's snippet; a larger
/// one gets the error without a snippet.
const MAX_SNIPPET_SOURCE: u64 = 64 << 20;

/// The text of the source file that a bytecode file's debug section names
/// (`.source`), for a runtime error's snippet. The name comes from the
/// file, not the user, so only a regular file of at most
/// `MAX_SNIPPET_SOURCE` bytes is read: a FIFO, terminal or device could
/// block or never end (`/dev/stdin`, `/dev/zero`). `None` when it is
/// anything else or unreadable.
fn read_named_source(path: &str) -> Option<String> {
    let regular = |m: &std::fs::Metadata| m.is_file() && m.len() <= MAX_SNIPPET_SOURCE;
    if !regular(&std::fs::metadata(path).ok()?) {
        return None;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    // Should the path have become a FIFO since the check, opening it
    // does not wait for a writer (the check below then turns it down);
    // reads of a regular file ignore the flag.
    #[cfg(target_os = "linux")]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut opts, libc::O_NONBLOCK);
    let file = opts.open(path).ok()?;
    if !regular(&file.metadata().ok()?) {
        return None;
    }
    // A file that grew past the cap since is turned down too.
    let mut text = String::new();
    file.take(MAX_SNIPPET_SOURCE + 1).read_to_string(&mut text).ok()?;
    (text.len() as u64 <= MAX_SNIPPET_SOURCE).then_some(text)
}

/// The default `--max-heap`: half of `MemTotal` from `/proc/meminfo`, or
/// 4 GiB where that cannot be read.
fn default_max_heap() -> usize {
    let total_kib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
        line.split_whitespace().nth(1)?.parse::<usize>().ok()
    });
    match total_kib {
        Some(kib) if kib > 0 => kib.saturating_mul(1024) / 2,
        _ => 4 << 30,
    }
}

/// Loads and verifies; on failure prints the diagnostics and gives exit 2.
fn load(file: &str) -> Result<(Program, Option<String>), ExitCode> {
    let (name, bytes) = read_input(file).map_err(|m| {
        report(m);
        ExitCode::from(2)
    })?;
    match rcvm::load(&name, &bytes) {
        Ok(l) => {
            let src = if rcvm::is_bytecode(&bytes) { None } else { String::from_utf8(bytes).ok() };
            if !l.warnings.is_empty() {
                eprint_block(&render(&name, src.as_deref().unwrap_or(""), &l.warnings));
            }
            Ok((l.program, src))
        }
        Err(LoadError::Asm(diags)) => {
            let src = String::from_utf8_lossy(&bytes);
            let mut out = render(&name, &src, &diags);
            let n = diags.len();
            let capped = if n >= rcvm::asm::MAX_ERRORS { " (stopped after this many)" } else { "" };
            out.push_str(&format!(
                "error: could not assemble `{name}` due to {n} error{}{capped}\n",
                if n == 1 { "" } else { "s" }
            ));
            eprint_block(&out);
            Err(ExitCode::from(2))
        }
        Err(LoadError::Bytecode(m)) => {
            report(format_args!("`{name}` is not a valid rcvm bytecode file: {m}\n  --> {name}"));
            Err(ExitCode::from(2))
        }
        Err(LoadError::NotText(d)) => {
            // Control characters would print as nothing and shift the
            // caret: show each as `.` (one byte for one, so offsets hold).
            let shown: String = String::from_utf8_lossy(&bytes)
                .chars()
                .map(|c| if c.is_ascii_control() && c != '\n' && c != '\t' { '.' } else { c })
                .collect();
            eprint_block(&render(&name, &shown, &[d]));
            Err(ExitCode::from(2))
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // `--help` and `--version` go to stdout, usage errors to stderr.
            let printed = e.print();
            if e.use_stderr() {
                return ExitCode::from(2);
            }
            return match printed {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => stdout_failed(&e, 2),
            };
        }
    };
    match cli.cmd {
        Cmd::Check { file } => match load(&file) {
            Ok(_) => ExitCode::SUCCESS,
            Err(c) => c,
        },
        Cmd::Disasm { file } => match load(&file) {
            Ok((p, _)) => match print_all(&disassemble(&p)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => stdout_failed(&e, 2),
            },
            Err(c) => c,
        },
        Cmd::Asm { file, output } => match load(&file) {
            Ok((p, _)) => match std::fs::write(&output, p.to_bytes()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    report(format_args!("cannot write `{}`: {e}", output.display()));
                    ExitCode::from(2)
                }
            },
            Err(c) => c,
        },
        Cmd::Run(args) => {
            let (prog, src) = match load(&args.file) {
                Ok(x) => x,
                Err(c) => return c,
            };
            let max = args.max_heap.unwrap_or_else(default_max_heap);
            let huge = args.huge_pages == OnOff::On;
            // One interpreter for all three (see `Selected`): a second
            // copy would add its pages to every run's resident set.
            let alloc = match args.alloc {
                AllocKind::Pool => Selected::Pool(PoolAllocator::with_huge_pages(huge)),
                AllocKind::System => Selected::Other(Box::new(SystemAllocator::new())),
                AllocKind::Bump => Selected::Other(Box::new(BumpAllocator::new())),
            };
            run(&prog, src.as_deref(), &args, Heap::new(alloc, max))
        }
    }
}

fn run<A: Allocator>(prog: &Program, src: Option<&str>, args: &RunArgs, mut heap: Heap<A>) -> ExitCode {
    // The leak report names where each leaked object was allocated.
    heap.set_record_sites(args.check_leaks);
    heap.gc_set_enabled(args.gc == OnOff::On);
    if let Some(t) = args.gc_threshold {
        heap.gc_set_thresholds(t);
    }
    // `--trace` and `--gc-log` lines share one buffer, so they come out
    // in the order they happen; it is flushed when the run ends.
    let diag = SharedErr::default();
    if args.gc_log {
        let mut w = diag.clone();
        heap.gc_enable_log(Box::new(move |e| {
            let _ = writeln!(
                w,
                "gc: generation {}: {} examined, {} unreachable, {:.3} ms",
                e.generation,
                e.examined,
                e.collected,
                e.duration.as_secs_f64() * 1e3
            );
        }));
    }
    let limits = Limits { max_steps: args.max_steps, max_depth: args.max_depth as usize };
    let mut vm = Vm::new(prog, heap, limits);
    if args.trace {
        vm.set_trace(Box::new(diag.clone()));
    }
    // Ctrl-C stops the program with a located runtime error (exit 130,
    // like CPython's KeyboardInterrupt); a second Ctrl-C, if the VM has
    // not got there yet (a long collection, say), leaves at once. The
    // handler only sets the flag (no thread waits for the signal: one
    // would add its stack and the C library's thread start-up, about
    // 150 KB, to every run's resident set).
    let interrupt = Arc::new(AtomicBool::new(false));
    let _ = signal_hook::flag::register_conditional_shutdown(signal_hook::consts::SIGINT, 130, Arc::clone(&interrupt));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&interrupt));
    vm.set_interrupt(interrupt);
    let stdout = io::stdout();
    let inner: Box<dyn Write> = if stdout.is_terminal() {
        Box::new(io::LineWriter::new(stdout.lock()))
    } else {
        Box::new(io::BufWriter::with_capacity(1 << 16, stdout.lock()))
    };
    let mut out = Watched { inner, write_failed: None };
    let start = std::time::Instant::now();
    let result = vm.run(&mut out);
    // What the VM's own flush could not write, this one retries, and
    // reports.
    let flushed = out.flush();
    let write_failed = out.write_failed;
    drop(out);
    let elapsed = start.elapsed();
    // A failed write failed a `print`: that is the runtime error. If it
    // met a broken pipe, the reader went away, and the run ends quietly
    // (see `stdout_failed`).
    let print_failed = result.is_err() && write_failed.is_some();
    let reader_left = print_failed && write_failed == Some(io::ErrorKind::BrokenPipe);
    let _ = diag.clone().flush();
    let mut code = match &result {
        Ok(_) => ExitCode::SUCCESS,
        Err(_) if reader_left => ExitCode::SUCCESS,
        Err(e) => {
            // The snippet's source: the text we ran, or else the file the
            // bytecode's line table names, read only now that an error
            // needs it.
            let file_src = if src.is_none() { read_named_source(&prog.source_name) } else { None };
            eprint_block(&e.render(src.or(file_src.as_deref())));
            ExitCode::from(if vm.was_interrupted() { 130 } else { 1 })
        }
    };
    // Output that could not be written at the end fails the run as a
    // failed `print` does (exit 1, no leak check), unless the reader went
    // away; a runtime error keeps its exit code (1, or 130).
    let output_lost = match &flushed {
        Err(e) if !print_failed && e.kind() != io::ErrorKind::BrokenPipe => {
            let c = stdout_failed(e, 1);
            if result.is_ok() {
                code = c;
            }
            true
        }
        _ => false,
    };
    if args.stats || args.stats_json.is_some() {
        let stats = rcvm::stats::Stats::collect(&vm, elapsed);
        if args.stats {
            eprint_block(&stats.report());
        }
        if let Some(path) = &args.stats_json {
            let json = serde_json::to_string_pretty(&stats).unwrap_or_default();
            if let Err(e) = std::fs::write(path, json + "\n") {
                report(format_args!("cannot write `{}`: {e}", path.display()));
                code = ExitCode::from(2);
            }
        }
    }
    if args.check_leaks && result.is_ok() && !output_lost {
        let report = rcvm::stats::leak_report(&mut vm);
        // The leak check's collection logs its line (`--gc-log`) into the
        // buffer: out before the report.
        let _ = diag.clone().flush();
        match report {
            Ok(r) if r.is_empty() => {}
            Ok(r) => {
                eprint_block(&r);
                code = ExitCode::from(3);
            }
            // Its collection released a freed object: a runtime error.
            Err(e) => {
                eprint_block(&e);
                code = ExitCode::from(1);
            }
        }
    }
    code
}
