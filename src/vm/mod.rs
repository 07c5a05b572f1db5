//! The register VM.
//!
//! Frames live on the VM's own value stack (never the host's), so an rcvm
//! program's recursion depth is limited only by `--max-depth`. Each frame
//! sees a window of 256 registers starting at its base; since the verifier
//! proved every register operand lies inside the frame, the interpreter
//! indexes the window with `u8` operands and the compiler drops the bounds
//! checks, with no `unsafe` in this module.
//!
//! The hot loop is `exec::<false>`; `exec::<true>` adds `--trace` output and
//! the heap verifier after every instruction (for tests), at no cost to the
//! fast path.

mod error;

pub use error::{FrameInfo, RuntimeError};

use crate::bytecode::disasm::instr_text;
use crate::bytecode::format::Pos;
use crate::bytecode::isa::Instr;
use crate::bytecode::verify::Program;
use crate::mem::alloc::Allocator;
use crate::mem::heap::{Fault, Heap, Site};
use crate::mem::refcount::{NoHooks, RefcountHooks};
use crate::mem::value::Value;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Registers visible to one frame.
const WINDOW: usize = 256;

/// With an interrupt flag set (see [`Vm::set_interrupt`]), the VM looks at
/// it at least once every this many instructions (or every program-length
/// many, for a program longer than that).
pub const INTERRUPT_CHECK_STEPS: u64 = 1 << 16;

/// The longest stretch of fuel handed out at once: small enough that the
/// fast loop's `slack` (fuel plus a pc) never overflows.
const MAX_STRETCH: u64 = 1 << 62;

/// See [`Vm::set_verify_each_step`].
pub const VERIFY_BYTES_PER_STEP: usize = 1024;

/// Limits on a run (`--max-steps`, `--max-depth`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Instructions that may execute; `None` for no limit.
    pub max_steps: Option<u64>,
    /// Deepest call nesting (`main` is depth 1).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_steps: None, max_depth: 10_000 }
    }
}

#[derive(Clone, Copy, Debug)]
struct Frame {
    func: u16,
    /// Its register count (the function's frame size).
    size: u16,
    /// Saved program counter (an index into the flat code): the next
    /// instruction for callers, the failing one after an error.
    pc: u32,
    base: u32,
    /// Register of the caller that receives the return value.
    dst: u8,
}

/// How a run ended without error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// `main` returned (or fell off its end).
    Returned,
    /// `halt`.
    Halted,
}

/// A virtual machine running one program over one heap (whose hooks `H`
/// are told of every object's creation and free; none by default).
pub struct Vm<'p, A: Allocator, H: RefcountHooks = NoHooks> {
    prog: &'p Program,
    heap: Heap<A, H>,
    stack: Vec<Value>,
    /// Calls may push frames without a look at the depth limit or the
    /// frames' capacity while fewer than this many are on: the smaller of
    /// the two (see `room_for_a_frame`).
    depth_room: usize,
    /// Values of register stack charged to `--max-heap` (its length).
    stack_charged: usize,
    frames: Vec<Frame>,
    limits: Limits,
    steps: u64,
    trace: Option<Box<dyn Write + 'p>>,
    verify_each_step: bool,
    /// Set from outside (a Ctrl-C handler) to stop the run with an error
    /// at the current instruction; see [`Vm::set_interrupt`].
    interrupt: Option<Arc<AtomicBool>>,
    interrupted: bool,
    /// Every function's code in one array, superinstructions fused in
    /// (see [`fuse`]) and jump targets made absolute (see [`flatten`]): the
    /// fast loop runs this. A pc indexes it, and is the instruction's site.
    fused: Vec<Instr>,
    /// The same without the fusion, for the slow loop.
    plain: Vec<Instr>,
    /// What a call needs about each function.
    fns: Vec<FnRt>,
    /// The fuel the current stretch started with (see `exec`).
    stretch: i64,
}

/// A function as calls and error locations see it.
struct FnRt {
    /// Where its code starts in the flat code array: also its first global
    /// site number (see [`Vm::site_pos`]).
    start: u32,
    frame_size: u16,
}

/// What the trace printer needs to know about the instruction that ran.
#[derive(Clone, Copy)]
struct Traced {
    func: u16,
    pc: u32,
    base: u32,
    ins: Instr,
    /// A return arriving in the caller: shows the call's destination.
    returned: bool,
}

impl<'p, A: Allocator, H: RefcountHooks> Vm<'p, A, H> {
    /// A VM ready to run `prog` from `main`.
    pub fn new(prog: &'p Program, heap: Heap<A, H>, limits: Limits) -> Self {
        let mut n = 0u32;
        let fns = prog
            .funcs
            .iter()
            .map(|f| {
                let start = n;
                n = n.saturating_add(f.code.len() as u32);
                FnRt { start, frame_size: f.frame_size }
            })
            .collect();
        Vm {
            prog,
            heap,
            stack: Vec::new(),
            depth_room: 0,
            stack_charged: 0,
            frames: Vec::new(),
            limits,
            steps: 0,
            trace: None,
            verify_each_step: false,
            interrupt: None,
            interrupted: false,
            fused: flatten(prog.funcs.iter().map(|f| fuse(&f.code, prog))),
            plain: flatten(prog.funcs.iter().map(|f| f.code.clone())),
            fns,
            stretch: 0,
        }
    }

    /// Writes one line per executed instruction to `w` (`--trace`).
    pub fn set_trace(&mut self, w: Box<dyn Write + 'p>) {
        self.trace = Some(w);
    }

    /// Runs the heap verifier after every instruction (slow; for tests and
    /// fuzzing). While the heap holds under [`VERIFY_BYTES_PER_STEP`] bytes
    /// that is every instruction; on a larger heap, one instruction in
    /// every `bytes / VERIFY_BYTES_PER_STEP`, so that a long run over a big
    /// heap stays linear instead of quadratic.
    pub fn set_verify_each_step(&mut self, on: bool) {
        self.verify_each_step = on;
    }

    /// Lets another thread stop the run: when `flag` becomes true, the VM
    /// ends within [`INTERRUPT_CHECK_STEPS`] instructions with the runtime
    /// error "interrupted", located at the instruction it stopped before,
    /// with every frame released as after any error (the flag is reset).
    /// `rcvm run` sets it from its Ctrl-C handler, like CPython's
    /// `KeyboardInterrupt`. The check rides on the `--max-steps` counter,
    /// so it costs the fast path nothing.
    pub fn set_interrupt(&mut self, flag: Arc<AtomicBool>) {
        self.interrupt = Some(flag);
    }

    /// Whether the last run ended because of the interrupt flag.
    pub fn was_interrupted(&self) -> bool {
        self.interrupted
    }

    pub fn heap(&self) -> &Heap<A, H> {
        &self.heap
    }

    pub fn heap_mut(&mut self) -> &mut Heap<A, H> {
        &mut self.heap
    }

    pub fn into_heap(self) -> Heap<A, H> {
        self.heap
    }

    /// The name of the source file the program's line table refers to.
    pub fn source_name(&self) -> &'p str {
        &self.prog.source_name
    }

    /// Instructions executed so far.
    pub fn instructions(&self) -> u64 {
        self.steps
    }

    /// The function and source position of a site.
    pub fn site_pos(&self, site: Site) -> (&'p str, Pos) {
        let prog = self.prog;
        let f = self.fns.partition_point(|r| r.start <= site).saturating_sub(1);
        let func = &prog.funcs[f];
        let pc = (site - self.fns[f].start) as usize;
        (&func.name, func.lines.get(pc).copied().unwrap_or_default())
    }

    /// Where object `id`, met freed, was freed (`site`, if the graveyard
    /// kept it): the note of a `use of freed object` error.
    #[inline(never)]
    pub fn freed_note(&self, id: u32, site: Option<Site>) -> String {
        match site {
            Some(crate::mem::heap::EXIT_SITE) => format!(
                "object #{id} was freed by that collection too: the garbage held more \
                 references to it than `decref` had left it counts"
            ),
            Some(s) => {
                let (f, p) = self.site_pos(s);
                format!("object #{id} was freed at {}:{}:{} (in `{f}`)", self.prog.source_name, p.line, p.col)
            }
            None => format!("object #{id} was freed earlier"),
        }
    }

    /// Runs the heap verifier with the live registers as roots.
    pub fn verify_heap(&mut self) -> Result<(), String> {
        let roots: Vec<Value> = self.stack.iter().copied().filter(|v| matches!(v, Value::Ref(_))).collect();
        self.heap.verify(roots)
    }

    /// Runs the program to completion. Whatever happens, every frame is
    /// released before this returns, so the heap holds only what unowned
    /// counts (or uncollected cycles) keep alive.
    pub fn run(&mut self, out: &mut dyn Write) -> Result<Exit, RuntimeError> {
        let main = self.prog.main;
        self.stack.clear();
        self.stack.resize(WINDOW, Value::Nil);
        self.frames.clear();
        self.depth_room = 0;
        self.stack_charged = self.stack.len();
        let size = self.prog.funcs[main as usize].frame_size;
        self.frames.push(Frame { func: main, size, pc: self.fns[main as usize].start, base: 0, dst: 0 });
        let plain = std::mem::take(&mut self.plain);
        let r = if self.trace.is_some() || self.verify_each_step {
            self.exec::<true>(out, &plain)
        } else {
            let fused = std::mem::take(&mut self.fused);
            let r = self.exec::<false>(out, &fused);
            self.fused = fused;
            // The fast loop hands the last stretch of a budget to the slow
            // one, which counts instruction by instruction.
            match r {
                Ok(None) => self.exec::<true>(out, &plain),
                r => r,
            }
        };
        self.plain = plain;
        let r = r.map(|e| e.unwrap_or_else(|| unreachable!("the slow loop runs to the end")));
        let _ = out.flush();
        match r {
            Ok(e) => Ok(e),
            Err(fault) => {
                let err = self.error(fault);
                self.unwind();
                Err(err)
            }
        }
    }

    /// Releases every register of every frame, ignoring dangling
    /// references (after an error, or at exit).
    fn unwind(&mut self) {
        // What this frees, it frees at the failing instruction (the
        // innermost frame's pc): the site hooks are told.
        self.heap.site = self.frames.last().map_or(0, |f| f.pc);
        // In place: the stack can be as big as --max-heap allowed.
        for i in 0..self.stack.len() {
            let v = std::mem::take(&mut self.stack[i]);
            self.heap.release_quiet(v);
        }
        self.frames.clear();
    }

    #[cold]
    #[inline(never)]
    fn error(&mut self, fault: Fault) -> RuntimeError {
        let prog = self.prog;
        let mut notes = Vec::new();
        let message = match fault {
            Fault::Freed { id, site } => {
                notes.push(self.freed_note(id, site));
                format!("use of freed object #{id}")
            }
            Fault::OutOfMemory => {
                // What is charged to --max-heap: objects, and the register
                // stack and frames (or what they asked for, if that failed).
                let objects = self.heap.bytes_in_use();
                let (limit, stack) = self.heap.objects().limit_and_outside();
                notes.push(match self.heap.objects().refused_outside() {
                    Some(need) => format!(
                        "the VM stack needs {need} bytes and objects use {objects}, limit {limit} \
                         (a call needs room for {WINDOW} registers, {} bytes)",
                        WINDOW * std::mem::size_of::<Value>()
                    ),
                    None => format!("{objects} bytes of objects and {stack} bytes of VM stack in use, limit {limit}"),
                });
                "out of memory (--max-heap)".to_string()
            }
            Fault::IdsExhausted => "object ids exhausted (2^32 - 1 allocations)".to_string(),
            Fault::Msg(m) => m,
        };
        // The innermost frame's pc is the failing instruction; a caller's
        // is its return address, one past the `call` that is still running.
        // Only the frames the report shows are described (see
        // `RuntimeError::frames`).
        let depth = self.frames.len();
        let half = error::SHOWN_FRAMES / 2;
        let frames = self
            .frames
            .iter()
            .rev()
            .enumerate()
            .filter(|&(i, _)| depth <= error::SHOWN_FRAMES || i < half || i >= depth - half)
            .map(|(i, fr)| {
                let f = &prog.funcs[fr.func as usize];
                let pc = if i == 0 { fr.pc } else { fr.pc.saturating_sub(1) };
                let pc = pc.saturating_sub(self.fns[fr.func as usize].start);
                FrameInfo { func: f.name.clone(), pos: f.lines.get(pc as usize).copied().unwrap_or_default() }
            })
            .collect();
        RuntimeError { message, notes, frames, depth, source_name: prog.source_name.clone() }
    }

    fn trace_line(&mut self, t: Traced) {
        // The slow loop also runs without a trace: per-step verification,
        // or the last stretch of a budget handed over by the fast loop.
        if self.trace.is_none() {
            return;
        }
        let prog = self.prog;
        let f = &prog.funcs[t.func as usize];
        let line = f.lines[(t.pc - self.fns[t.func as usize].start) as usize].line;
        let text = if t.returned { "<- return".to_string() } else { instr_text(prog, &t.ins) };
        let mut s = format!("[trace] {}:{:<5} {:<32}", f.name, line, text);
        if let (Some(d), false) = (t.ins.dest(), matches!(t.ins, Instr::Call { .. }) && !t.returned) {
            let v = self.stack.get(t.base as usize + d as usize).copied().unwrap_or_default();
            // At most about TRACE_VALUE bytes of the value: a big
            // structure written at every step would make the trace
            // quadratic (or worse, for a shared one).
            let mut text = String::new();
            let mut cut = false;
            let mut stop = |_: &mut String| {
                cut = true;
                Err(Fault::Msg(String::new()))
            };
            if self.heap.format_value_with(v, &mut text, TRACE_VALUE, &mut stop).is_err() && !cut {
                text = "<freed>".into();
            }
            if cut {
                text.push_str(" ...");
            }
            if let Value::Ref(h) = v {
                text = format!("#{} {}", h.id(), text);
            }
            s.push_str(&format!(" r{d} = {text}"));
        }
        if let Some(w) = &mut self.trace {
            let _ = writeln!(w, "{}", s.trim_end());
        }
    }

    #[inline(always)]
    fn exec<const SLOW: bool>(&mut self, out: &mut dyn Write, code: &[Instr]) -> Result<Option<Exit>, Fault> {
        let top = *self.frames.last().unwrap_or_else(|| unreachable!("a run has a frame"));
        // Start where the top frame stands: `main`'s first instruction, or
        // where the fast loop handed over to the slow one.
        let mut pc: usize = top.pc as usize;
        // Fuel: instructions the budget still allows. In the slow loop, an
        // instruction that finds none left does not run; the error points
        // at it, and exactly `--max-steps` instructions have run.
        // With an interrupt flag, the fuel comes in chunks, and running out
        // of a chunk (`refuel`) is where the flag is looked at.
        self.interrupted = false;
        let mut fuel: i64 = fuel_chunk(self.steps, self.interrupt.is_some(), self.limits.max_steps.unwrap_or(u64::MAX));
        self.stretch = fuel;
        // The fast loop does not count single instructions: between
        // transfers of control the pc itself counts them. Let the mark be
        // the pc at which the stretch's fuel would run out if execution
        // went straight on: the stretch has used `self.stretch + pc - mark`
        // instructions, and a taken jump, a call or a return from position
        // `end - 1` to `t` moves the mark by `t - end`. A straight run only
        // starts while the mark lies at or beyond the end of the code (no
        // run can go further), so no instruction has to test the fuel.
        // `slack` is how far beyond (mark - code.len()), so the test is its
        // sign. When the budget has less left than a run may need, the run
        // goes on in the slow loop, which counts one by one (`Ok(None)`).
        let len = code.len() as i64;
        let mut slack: i64 = fuel + pc as i64 - len;
        let mut pending: Option<Traced> = None;
        let mut verify_skip: usize = 0;
        let mut line = String::new();

        // The registers of the frame whose window starts at `$base`.
        macro_rules! window {
            ($base:expr) => {{
                let base = $base as usize;
                <&mut [Value; WINDOW]>::try_from(&mut self.stack[base..base + WINDOW])
                    .unwrap_or_else(|_| unreachable!("the stack always has a full window"))
            }};
        }
        macro_rules! top {
            () => {
                self.frames.last().unwrap_or_else(|| unreachable!("a run has a frame"))
            };
        }
        let mut regs: &mut [Value; WINDOW] = window!(top.base);
        // Instructions the stretch has used so far.
        macro_rules! used {
            () => {
                if SLOW {
                    self.stretch - fuel
                } else {
                    self.stretch + pc as i64 - slack - len
                }
            };
        }
        // A new straight run starts at `pc` (fast loop only): make sure
        // the fuel covers the rest of the code, or refill it (the interrupt
        // check), or hand over to the slow loop. `$fail` leaves with the
        // fault `$f`.
        macro_rules! enter {
            ($f:ident => $fail:expr) => {
                if !SLOW && slack < 0 {
                    match refill(
                        &mut self.steps,
                        &self.interrupt,
                        &mut self.interrupted,
                        self.limits.max_steps.unwrap_or(u64::MAX),
                        used!(),
                        code.len() - pc,
                    ) {
                        Ok(f) => {
                            self.stretch = f;
                            slack = f + pc as i64 - len;
                        }
                        Err(Some($f)) => {
                            // `refill` counted the stretch: from here on
                            // `used!()` reads 0.
                            self.stretch = slack + len - pc as i64;
                            // Located at the instruction it stopped before
                            // (`used!()` does not change: the mark moves
                            // with the pc).
                            pc += 1;
                            slack += 1;
                            $fail
                        }
                        Err(None) => {
                            self.frames.last_mut().unwrap_or_else(|| unreachable!()).pc = pc as u32;
                            return finished(None);
                        }
                    }
                }
            };
        }
        // Stopped before the first instruction: the frame's saved pc is
        // already the location (the macro's pc and slack updates are moot).
        #[allow(unused_assignments)]
        {
            enter!(f => return Err(f));
        }

        let fault: Fault = 'run: loop {
            if SLOW {
                if let Some(t) = pending.take() {
                    self.trace_line(t);
                }
                if self.verify_each_step {
                    if verify_skip == 0 {
                        if let Err(e) = self.verify_heap() {
                            break 'run Fault::Msg(format!("heap verifier: {e}"));
                        }
                        // A verification costs time proportional to the
                        // heap: on a large heap, space them out in
                        // proportion, so a long run stays linear.
                        verify_skip = self.heap.bytes_in_use() / VERIFY_BYTES_PER_STEP;
                    } else {
                        verify_skip -= 1;
                    }
                }
                regs = window!(top!().base);
            }
            // Verified code never runs off its end; should it, the fetch
            // yields `Trap`. A cold branch that stays in the loop: were it
            // an exit, the compiler would rotate the loop and make this
            // check a latch block every handler jumps through.
            let ins: &Instr = match code.get(pc) {
                Some(ins) => ins,
                None => {
                    std::hint::cold_path();
                    &Instr::Trap {}
                }
            };
            pc += 1;
            if SLOW {
                if fuel <= 0 {
                    match refuel(
                        &mut self.steps,
                        &self.interrupt,
                        &mut self.interrupted,
                        self.limits.max_steps.unwrap_or(u64::MAX),
                        self.stretch - fuel,
                    ) {
                        Ok(f) => {
                            fuel = f;
                            self.stretch = f;
                        }
                        Err(f) => {
                            fuel = 0;
                            self.stretch = 0;
                            break 'run f;
                        }
                    }
                }
                fuel -= 1;
                let t = top!();
                pending = Some(Traced { func: t.func, pc: pc as u32 - 1, base: t.base, ins: *ins, returned: false });
            }
            macro_rules! site {
                () => {
                    pc as u32 - 1
                };
            }
            // Control leaves the straight run just before position `$end`
            // for position `$t` (of the same or another function).
            macro_rules! transfer {
                ($end:expr, $t:expr) => {
                    if !SLOW {
                        slack -= $end as i64 - $t as i64;
                    }
                };
            }
            // A taken jump whose run ends before `$end`, to `$t`.
            macro_rules! jump {
                ($end:expr, $t:expr) => {{
                    let t = $t as usize;
                    transfer!($end, t);
                    pc = t;
                    enter!(f => break 'run f);
                }};
            }
            macro_rules! tri {
                ($e:expr) => {
                    match $e {
                        Ok(v) => v,
                        Err(f) => break 'run f,
                    }
                };
            }
            macro_rules! set {
                ($r:expr, $v:expr) => {{
                    let new = $v;
                    let slot = &mut regs[$r as usize];
                    // Only a reference needs releasing: test the tag in
                    // place instead of copying the old value out.
                    if let Value::Ref(_) = *slot {
                        // Out of the straight line: the common write
                        // falls through.
                        std::hint::cold_path();
                        let old = std::mem::replace(slot, new);
                        tri!(release_ref(&mut self.heap, old, site!()));
                    } else {
                        *slot = new;
                    }
                }};
            }
            // An int into rD: when rD already holds an int (the usual case
            // in arithmetic), only the payload changes; anything else goes
            // through `set!` (releasing a reference, writing the tag).
            macro_rules! set_int {
                ($r:expr, $v:expr) => {{
                    let new: i64 = $v;
                    if let Value::Int(p) = &mut regs[$r as usize] {
                        *p = new;
                    } else {
                        set!($r, Value::Int(new));
                    }
                }};
            }
            // Compare-and-branch fusion: a compare followed by `jz`/`jnz` on
            // the register it wrote takes the branch here, saving a dispatch.
            // Both still count as executed instructions; the slow path
            // (trace, per-step verification) runs them one by one.
            macro_rules! fuse_branch {
                ($r:expr, $d:expr) => {
                    if !SLOW {
                        match code[pc] {
                            Instr::Jnz { s, t } if s == $d => {
                                if $r {
                                    jump!(pc + 1, t);
                                } else {
                                    pc += 1;
                                }
                            }
                            Instr::Jz { s, t } if s == $d => {
                                if !$r {
                                    jump!(pc + 1, t);
                                } else {
                                    pc += 1;
                                }
                            }
                            _ => {}
                        }
                    }
                };
            }
            // Binary operations, specialised by the kind of the second
            // operand so the fast path reads tags in place and builds
            // nothing on the stack: `reg r` reads a register, `imm e` an
            // immediate.
            macro_rules! operand {
                (reg $b:expr) => {
                    regs[$b as usize]
                };
                (imm $b:expr) => {
                    Value::Int($b)
                };
            }
            macro_rules! int_of {
                (reg $b:expr) => {
                    if let Value::Int(y) = regs[$b as usize] {
                        Some(y)
                    } else {
                        None
                    }
                };
                (imm $b:expr) => {
                    Some($b)
                };
            }
            macro_rules! arith {
                ($d:expr, $a:expr, $kind:ident $b:expr, $name:literal, $f:expr) => {{
                    if let (Value::Int(x), Some(y)) = (regs[$a as usize], int_of!($kind $b)) {
                        match $f(x, y) {
                            Some(r) => set_int!($d, r),
                            None => break 'run arith_fault($name, x, y),
                        }
                    } else {
                        break 'run type_error(&self.heap, $name, regs[$a as usize], operand!($kind $b));
                    }
                }};
            }
            // A compare writes rD, then `$then!(result, ...)` branches:
            // `fuse_branch` when a `jz`/`jnz` may follow, `branch_on` in a
            // fused compare-and-branch.
            macro_rules! compare {
                ($d:expr, $a:expr, $kind:ident $b:expr, $name:literal, $op:tt; $then:ident($($t:expr),*)) => {{
                    if let (Value::Int(x), Some(y)) = (regs[$a as usize], int_of!($kind $b)) {
                        let r = x $op y;
                        set_int!($d, r as i64);
                        $then!(r, $($t),*);
                    } else {
                        break 'run type_error(&self.heap, $name, regs[$a as usize], operand!($kind $b));
                    }
                }};
            }
            // A fused compare and `jz`/`jnz` (see `fuse`): the compare
            // writes rD as it would alone, then the branch is taken or the
            // `jz`/`jnz` (still in place) is stepped over; either way both
            // count. `$z` is 1 for `jz`, `$off` the signed distance from the
            // compare to the target.
            macro_rules! branch_on {
                ($r:expr, $off:expr, $z:expr) => {
                    if $r != ($z != 0) {
                        jump!(pc + 1, (pc - 1).wrapping_add($off as i8 as isize as usize));
                    } else {
                        pc += 1;
                    }
                };
            }
            macro_rules! add {
                ($d:expr, $a:expr, $kind:ident $b:expr) => {{
                    if let (Value::Int(x), Some(y)) = (regs[$a as usize], int_of!($kind $b)) {
                        match x.checked_add(y) {
                            Some(r) => set_int!($d, r),
                            None => break 'run arith_fault("add", x, y),
                        }
                    } else {
                        let (a, b) = (regs[$a as usize], operand!($kind $b));
                        match tri!(self.heap.concat(a, b, site!())) {
                            Some(v) => set!($d, v),
                            None => break 'run type_error(&self.heap, "add", a, b),
                        }
                    }
                }};
            }
            macro_rules! equal {
                ($d:expr, $a:expr, $kind:ident $b:expr, $want:expr; $then:ident($($t:expr),*)) => {{
                    let r = if let (Value::Int(x), Some(y)) = (regs[$a as usize], int_of!($kind $b)) {
                        x == y
                    } else {
                        tri!(self.heap.equal(regs[$a as usize], operand!($kind $b)))
                    };
                    let r = r == $want;
                    set_int!($d, r as i64);
                    $then!(r, $($t),*);
                }};
            }

            // A call: check the depth, make room for the callee's window,
            // copy the arguments, push the frame and switch to the callee.
            // One or two arguments travel in locals: read, retained, then
            // written into the callee's window. More come from a list in
            // the constant pool and are copied between the two windows.
            macro_rules! call {
                ($d:expr, $f:expr, inline [$($a:expr),*]) => {{
                    let (d, f) = ($d, $f);
                    call!(@depth);
                    let args = [$(regs[$a as usize]),*];
                    // Room first: it can fail (out of memory), and nothing
                    // is retained yet then.
                    let new_base = call!(@room);
                    // Retained one by one; should one fail, the ones before
                    // it are released again (they are in no register yet).
                    for k in 0..args.len() {
                        if let v @ Value::Ref(_) = args[k] {
                            if let Err(f) = retain_ref(&mut self.heap, v) {
                                break 'run unretain(&mut self.heap, &args[..k], f);
                            }
                        }
                    }
                    regs = window!(new_base);
                    regs[..args.len()].copy_from_slice(&args);
                    call!(@switch d, f, new_base);
                }};
                // Arguments known to be ints: nothing to retain, and each
                // travels as its payload, not as a 16-byte load of a
                // register just written (see `set_int!`).
                ($d:expr, $f:expr, ints [$($v:expr),*]) => {{
                    let (d, f, v) = ($d, $f, [$($v),*]);
                    call!(@depth);
                    let new_base = call!(@room);
                    regs = window!(new_base);
                    for (r, v) in regs.iter_mut().zip(v) {
                        *r = Value::Int(v);
                    }
                    call!(@switch d, f, new_base);
                }};
                ($d:expr, $f:expr, list $args:expr) => {{
                    let (d, f) = ($d, $f);
                    call!(@depth);
                    let base = top!().base as usize;
                    let new_base = call!(@room);
                    // From the caller's registers into the callee's first
                    // ones (disjoint halves of the stack).
                    let (cur, next) = self.stack.split_at_mut(new_base);
                    let cur = &cur[base..];
                    for (dst, &r) in next.iter_mut().zip($args.iter()) {
                        let v = cur[r as usize];
                        if let Value::Ref(_) = v {
                            tri!(self.heap.retain(v));
                        }
                        *dst = v;
                    }
                    regs = window!(new_base);
                    call!(@switch d, f, new_base);
                }};
                (@depth) => {
                    if self.frames.len() >= self.depth_room {
                        let max_depth = self.limits.max_depth;
                        let stack = self.stack_charged;
                        if let Err(f) =
                            room_for_a_frame(&mut self.frames, &mut self.depth_room, max_depth, stack, &mut self.heap)
                        {
                            break 'run f;
                        }
                    }
                };
                // Saves the return address, makes sure the stack holds the
                // callee's window, and gives its base.
                (@room) => {{
                    let caller = self.frames.last_mut().unwrap_or_else(|| unreachable!());
                    caller.pc = pc as u32;
                    let new_base = caller.base as usize + caller.size as usize;
                    if self.stack.len() < new_base + WINDOW {
                        let frames = self.frames.capacity();
                        if let Err(f) = grow_stack(&mut self.stack, new_base + WINDOW, frames, &mut self.heap) {
                            break 'run f;
                        }
                        self.stack_charged = self.stack.len();
                    }
                    new_base
                }};
                (@switch $d:expr, $f:expr, $new_base:expr) => {{
                    let (d, f, new_base) = ($d, $f, $new_base);
                    let callee = &self.fns[f as usize];
                    self.frames.push(Frame { func: f, size: callee.frame_size, pc: 0, base: new_base as u32, dst: d });
                    transfer!(pc, callee.start);
                    pc = callee.start as usize;
                    enter!(f => break 'run f);
                }};
            }
            // `add`/`sub rX, rA, I` and the one-argument call of rX after
            // it (see `fuse`); `$alone` is the `add`/`sub` by itself, for
            // anything but an int result.
            macro_rules! arith_call {
                ($x:expr, $a:expr, $i:expr, $d:expr, $f:expr, $op:expr, $alone:expr) => {
                    match regs[$a as usize] {
                        Value::Int(av) if $op(av, $i as i8 as i64).is_some() => {
                            let v = $op(av, $i as i8 as i64).unwrap_or_default();
                            set_int!($x, v);
                            pc += 1;
                            call!($d, $f, ints[v]);
                        }
                        _ => {
                            std::hint::cold_path();
                            $alone
                        }
                    }
                };
            }
            // A return of `$v`: release the frame's registers, pop it, and
            // in the caller run `$write` with `$d` bound to the register
            // that receives the value.
            macro_rules! ret {
                ($v:expr, $d:ident => $write:expr) => {{
                    let v: Value = $v;
                    // Scope exit: release the frame's registers.
                    // (Only a reference is read out; anything else is just
                    // overwritten with nil.)
                    let n = (top!().size as usize).min(WINDOW);
                    for r in &mut regs[..n] {
                        if let Value::Ref(_) = *r {
                            let old = std::mem::take(r);
                            if let Err(f) = self.heap.release(old, pc as u32 - 1) {
                                // The error is this one: a dangling `v`
                                // was met already, or is being unwound.
                                let _ = release_ref(&mut self.heap, v, pc as u32 - 1);
                                break 'run f;
                            }
                        } else {
                            *r = Value::Nil;
                        }
                    }
                    if SLOW {
                        if let Some(t) = pending.take() {
                            self.trace_line(t);
                        }
                    }
                    let [.., caller, done] = *self.frames.as_slice() else {
                        // `main`'s value goes nowhere: released here, at
                        // its `ret`, and a freed object it releases (one it
                        // held twice, `decref` having left one count) is
                        // this `ret`'s error, as for any other release.
                        if let Err(f) = release_ref(&mut self.heap, v, pc as u32 - 1) {
                            break 'run f;
                        }
                        self.frames.clear();
                        self.steps += used!() as u64;
                        if SLOW {
                            if let Some(t) = pending.take() {
                                self.trace_line(t);
                            }
                        }
                        return finished(Some(Exit::Returned));
                    };
                    self.frames.truncate(self.frames.len() - 1);
                    transfer!(pc, caller.pc);
                    pc = caller.pc as usize;
                    let (func, base) = (caller.func, caller.base);
                    regs = window!(base);
                    if SLOW {
                        pending = Some(Traced { func, pc: pc as u32 - 1, base, ins: code[pc - 1], returned: true });
                    }
                    let $d = done.dst;
                    $write;
                    enter!(f => break 'run f);
                }};
            }
            match *ins {
                Instr::LiI { d, i } => set_int!(d, i as i64),
                Instr::LiW { d, w } => set_int!(d, self.prog.ints[w as usize]),
                Instr::Mov { d, s } => match regs[s as usize] {
                    // By payload (see `Ret`).
                    Value::Int(i) => set_int!(d, i),
                    // A reference: one count more and the old value released,
                    // both inline in the usual case (a live handle; an old
                    // reference that keeps other counts).
                    v @ Value::Ref(x) => {
                        if !self.heap.retain_live(x) {
                            tri!(retain_ref(&mut self.heap, v));
                        }
                        match regs[d as usize] {
                            Value::Ref(o) if self.heap.release_shared(o) => regs[d as usize] = v,
                            _ => set!(d, v),
                        }
                    }
                    v => set!(d, v),
                },
                Instr::Del { d } => match regs[d as usize] {
                    // Dropping one of several counts, inline: no call.
                    Value::Ref(h) if self.heap.release_shared(h) => regs[d as usize] = Value::Nil,
                    _ => set!(d, Value::Nil),
                },

                Instr::AddRR { d, a, b } => add!(d, a, reg b),
                Instr::AddRI { d, a, i } => add!(d, a, imm i as i64),
                Instr::AddRW { d, a, w } => add!(d, a, imm self.prog.ints[w as usize]),
                Instr::SubRR { d, a, b } => arith!(d, a, reg b, "sub", i64::checked_sub),
                Instr::SubRI { d, a, i } => arith!(d, a, imm i as i64, "sub", i64::checked_sub),
                Instr::SubRW { d, a, w } => arith!(d, a, imm self.prog.ints[w as usize], "sub", i64::checked_sub),
                Instr::MulRR { d, a, b } => arith!(d, a, reg b, "mul", i64::checked_mul),
                Instr::MulRI { d, a, i } => arith!(d, a, imm i as i64, "mul", i64::checked_mul),
                Instr::MulRW { d, a, w } => arith!(d, a, imm self.prog.ints[w as usize], "mul", i64::checked_mul),
                Instr::DivRR { d, a, b } => arith!(d, a, reg b, "div", floor_div),
                Instr::DivRI { d, a, i } => arith!(d, a, imm i as i64, "div", floor_div),
                Instr::DivRW { d, a, w } => arith!(d, a, imm self.prog.ints[w as usize], "div", floor_div),
                Instr::ModRR { d, a, b } => arith!(d, a, reg b, "mod", floor_mod),
                Instr::ModRI { d, a, i } => arith!(d, a, imm i as i64, "mod", floor_mod),
                Instr::ModRW { d, a, w } => arith!(d, a, imm self.prog.ints[w as usize], "mod", floor_mod),

                Instr::EqRR { d, a, b } => equal!(d, a, reg b, true; fuse_branch(d)),
                Instr::EqRI { d, a, i } => equal!(d, a, imm i as i64, true; fuse_branch(d)),
                Instr::EqRW { d, a, w } => equal!(d, a, imm self.prog.ints[w as usize], true; fuse_branch(d)),
                Instr::NeRR { d, a, b } => equal!(d, a, reg b, false; fuse_branch(d)),
                Instr::NeRI { d, a, i } => equal!(d, a, imm i as i64, false; fuse_branch(d)),
                Instr::NeRW { d, a, w } => equal!(d, a, imm self.prog.ints[w as usize], false; fuse_branch(d)),
                Instr::LtRR { d, a, b } => compare!(d, a, reg b, "lt", <; fuse_branch(d)),
                Instr::LtRI { d, a, i } => compare!(d, a, imm i as i64, "lt", <; fuse_branch(d)),
                Instr::LtRW { d, a, w } => compare!(d, a, imm self.prog.ints[w as usize], "lt", <; fuse_branch(d)),
                Instr::LeRR { d, a, b } => compare!(d, a, reg b, "le", <=; fuse_branch(d)),
                Instr::LeRI { d, a, i } => compare!(d, a, imm i as i64, "le", <=; fuse_branch(d)),
                Instr::LeRW { d, a, w } => compare!(d, a, imm self.prog.ints[w as usize], "le", <=; fuse_branch(d)),
                Instr::GtRR { d, a, b } => compare!(d, a, reg b, "gt", >; fuse_branch(d)),
                Instr::GtRI { d, a, i } => compare!(d, a, imm i as i64, "gt", >; fuse_branch(d)),
                Instr::GtRW { d, a, w } => compare!(d, a, imm self.prog.ints[w as usize], "gt", >; fuse_branch(d)),
                Instr::GeRR { d, a, b } => compare!(d, a, reg b, "ge", >=; fuse_branch(d)),
                Instr::GeRI { d, a, i } => compare!(d, a, imm i as i64, "ge", >=; fuse_branch(d)),
                Instr::GeRW { d, a, w } => compare!(d, a, imm self.prog.ints[w as usize], "ge", >=; fuse_branch(d)),
                Instr::Not { d, s } => {
                    let v = regs[s as usize];
                    if let Value::Ref(h) = v {
                        tri!(self.heap.check(h));
                    }
                    set_int!(d, v.is_falsy() as i64)
                }

                Instr::Jmp { t } => jump!(pc, t),
                Instr::Jz { s, t } => {
                    let v = regs[s as usize];
                    if v.is_falsy() {
                        jump!(pc, t)
                    } else if let Value::Ref(h) = v {
                        tri!(self.heap.check(h));
                    }
                }
                Instr::Jnz { s, t } => {
                    let v = regs[s as usize];
                    if !v.is_falsy() {
                        if let Value::Ref(h) = v {
                            tri!(self.heap.check(h));
                        }
                        jump!(pc, t)
                    }
                }
                Instr::Call { d, f, args } => call!(d, f, list self.prog.reglist(args)),
                Instr::Call1 { d, f, a } => match regs[a as usize] {
                    Value::Int(i) => call!(d, f, ints[i]),
                    _ => call!(d, f, inline[a]),
                },
                // `add`/`sub` of a small immediate feeding a one-argument
                // call's argument, in one dispatch. Anything unusual (not
                // an int, overflow) runs the `add`/`sub` alone; the `call`
                // after it, still in place, runs next.
                Instr::AddICall { x, a, i, d, f } => {
                    arith_call!(x, a, i, d, f, i64::checked_add, add!(x, a, imm i as i8 as i64))
                }
                Instr::SubICall { x, a, i, d, f } => arith_call!(
                    x,
                    a,
                    i,
                    d,
                    f,
                    i64::checked_sub,
                    arith!(x, a, imm i as i8 as i64, "sub", i64::checked_sub)
                ),
                Instr::Call2 { d, f, a, b } => match (regs[a as usize], regs[b as usize]) {
                    (Value::Int(i), Value::Int(j)) => call!(d, f, ints[i, j]),
                    _ => call!(d, f, inline[a, b]),
                },
                Instr::Ret0 {} => ret!(Value::Nil, d => set!(d, Value::Nil)),
                // An int travels as its payload: the register was likely
                // just written that way, and a load of the whole value would
                // wait for that store (see `set_int!`).
                Instr::Ret { s } => match regs[s as usize] {
                    Value::Int(i) => ret!(Value::Int(i), d => set_int!(d, i)),
                    _ => {
                        // Returning a reference passes it on: a freed one
                        // is an error here, at the `ret`.
                        if let Value::Ref(h) = regs[s as usize] {
                            tri!(self.heap.check(h));
                        }
                        let v = std::mem::take(&mut regs[s as usize]);
                        ret!(v, d => set!(d, v))
                    }
                },
                Instr::Halt {} => {
                    if SLOW {
                        if let Some(t) = pending.take() {
                            self.trace_line(t);
                        }
                    }
                    // Release every frame, innermost first, as if each
                    // returned: a dangling reference met on the way is the
                    // error, reported once everything else is released.
                    if let Err(f) = self.release_all(site!()) {
                        break 'run f;
                    }
                    self.steps += used!() as u64;
                    return finished(Some(Exit::Halted));
                }
                Instr::Print { args } => {
                    line.clear();
                    // A long text goes out in pieces as it is made (see
                    // `format_value_with`), each time with a look at the
                    // interrupt flag: printing a shared structure can take
                    // longer than any loop.
                    let (interrupt, interrupted) = (&self.interrupt, &mut self.interrupted);
                    let mut spill = |text: &mut String| {
                        write_out(out, text)?;
                        text.clear();
                        end_stretch(&mut 0, interrupt, interrupted, 0)
                    };
                    // A freed object among the operands is found before
                    // anything goes out (one nested in a long text may
                    // still be met after a piece was written).
                    for &r in self.prog.reglist(args) {
                        if let Value::Ref(h) = regs[r as usize] {
                            tri!(self.heap.check(h));
                        }
                    }
                    for (i, &r) in self.prog.reglist(args).iter().enumerate() {
                        if i > 0 {
                            line.push(' ');
                        }
                        let v = regs[r as usize];
                        tri!(self.heap.format_value_with(v, &mut line, PRINT_CHUNK, &mut spill));
                    }
                    line.push('\n');
                    tri!(write_out(out, &line));
                }

                Instr::New { d, n } => {
                    if !self.heap.new_record_into(n, site!(), &mut regs[d as usize]) {
                        tri!(self.heap.take_gc_fault());
                    }
                }
                Instr::List { d } => {
                    let v = tri!(self.heap.new_list(site!()));
                    set!(d, v)
                }
                Instr::Dict { d } => {
                    let v = tri!(self.heap.new_dict(site!()));
                    set!(d, v)
                }
                Instr::Str { d, s } => {
                    let v = tri!(self.heap.new_str(&self.prog.strings[s as usize], site!()));
                    set!(d, v)
                }
                Instr::LoadRR { d, o, k } => {
                    let v = tri!(self.heap.load(regs[o as usize], regs[k as usize]));
                    set!(d, v)
                }
                Instr::LoadRI { d, o, i } => {
                    let v = tri!(self.heap.load(regs[o as usize], Value::Int(i as i64)));
                    set!(d, v)
                }
                Instr::LoadRU { d, o, i } => {
                    let v = match self.heap.load_item(&regs[o as usize], i as usize) {
                        Some(r) => tri!(r),
                        None => tri!(self.heap.load_slow(regs[o as usize], Value::Int(i as i64))),
                    };
                    set!(d, v)
                }
                Instr::LoadRW { d, o, w } => {
                    let v = tri!(self.heap.load(regs[o as usize], Value::Int(self.prog.ints[w as usize])));
                    set!(d, v)
                }
                Instr::StoreRR { o, k, s } => {
                    tri!(self.heap.store(regs[o as usize], regs[k as usize], regs[s as usize], site!()))
                }
                Instr::StoreRI { o, i, s } => {
                    // The common stores (an atom, or a reference, into an
                    // empty slot) read the registers in place; anything
                    // else takes the general path.
                    if !self.heap.store_fast(&regs[o as usize], i as i64, &regs[s as usize]) {
                        tri!(self.heap.store_slow(regs[o as usize], Value::Int(i as i64), regs[s as usize], site!()))
                    }
                }
                Instr::StoreRU { o, i, s } => {
                    // As StoreRI, the index known to be non-negative.
                    if !self.heap.store_fast(&regs[o as usize], i as usize, &regs[s as usize]) {
                        tri!(self.heap.store_slow(regs[o as usize], Value::Int(i as i64), regs[s as usize], site!()))
                    }
                }
                Instr::StoreRW { o, w, s } => {
                    tri!(self.heap.store(
                        regs[o as usize],
                        Value::Int(self.prog.ints[w as usize]),
                        regs[s as usize],
                        site!()
                    ))
                }
                Instr::Push { l, s } => tri!(self.heap.push(regs[l as usize], regs[s as usize])),
                Instr::Pop { d, l } => {
                    let v = tri!(self.heap.pop(regs[l as usize]));
                    set!(d, v)
                }
                Instr::Len { d, o } => {
                    let n = tri!(self.heap.len(regs[o as usize]));
                    set_int!(d, n)
                }
                Instr::HasRR { d, o, k } => {
                    let b = tri!(self.heap.has(regs[o as usize], regs[k as usize]));
                    set_int!(d, b as i64)
                }
                Instr::HasRI { d, o, i } => {
                    let b = tri!(self.heap.has(regs[o as usize], Value::Int(i as i64)));
                    set_int!(d, b as i64)
                }
                Instr::HasRW { d, o, w } => {
                    let b = tri!(self.heap.has(regs[o as usize], Value::Int(self.prog.ints[w as usize])));
                    set_int!(d, b as i64)
                }
                Instr::DelItemRR { o, k } => tri!(self.heap.delitem(regs[o as usize], regs[k as usize], site!())),
                Instr::DelItemRI { o, i } => {
                    tri!(self.heap.delitem(regs[o as usize], Value::Int(i as i64), site!()))
                }
                Instr::DelItemRW { o, w } => {
                    tri!(self.heap.delitem(regs[o as usize], Value::Int(self.prog.ints[w as usize]), site!()))
                }
                Instr::Incref { s } => tri!(self.heap.incref(regs[s as usize])),
                Instr::Decref { s } => tri!(self.heap.decref(regs[s as usize], site!())),
                Instr::Refcount { d, s } => {
                    let n = tri!(self.heap.refcount(regs[s as usize]));
                    set_int!(d, n)
                }

                Instr::Gc { d, g } => {
                    let n = tri!(self.heap.collect_checked(g as usize, site!()));
                    set_int!(d, n as i64)
                }
                Instr::GcEnable {} => self.heap.gc_set_enabled(true),
                Instr::GcDisable {} => self.heap.gc_set_enabled(false),
                Instr::GcThreshold { t0, t1, t2 } => self.heap.gc_set_thresholds([
                    self.prog.ints[t0 as usize] as u64,
                    self.prog.ints[t1 as usize] as u64,
                    self.prog.ints[t2 as usize] as u64,
                ]),
                Instr::GcCount { d, g } => {
                    let n = self.heap.gc_count(g as usize);
                    set_int!(d, n as i64)
                }

                Instr::Trap {} => {
                    std::hint::cold_path();
                    break 'run Fault::Msg(format!("internal error: no instruction at {}", pc - 1));
                }
                Instr::LtRRJ { d, a, b, off, z } => compare!(d, a, reg b, "lt", <; branch_on(off, z)),
                Instr::LtRIJ { d, a, i, off, z } => compare!(d, a, imm i as i16 as i64, "lt", <; branch_on(off, z)),
                Instr::LeRRJ { d, a, b, off, z } => compare!(d, a, reg b, "le", <=; branch_on(off, z)),
                Instr::LeRIJ { d, a, i, off, z } => compare!(d, a, imm i as i16 as i64, "le", <=; branch_on(off, z)),
                Instr::GtRRJ { d, a, b, off, z } => compare!(d, a, reg b, "gt", >; branch_on(off, z)),
                Instr::GtRIJ { d, a, i, off, z } => compare!(d, a, imm i as i16 as i64, "gt", >; branch_on(off, z)),
                Instr::GeRRJ { d, a, b, off, z } => compare!(d, a, reg b, "ge", >=; branch_on(off, z)),
                Instr::GeRIJ { d, a, i, off, z } => compare!(d, a, imm i as i16 as i64, "ge", >=; branch_on(off, z)),
                Instr::EqRRJ { d, a, b, off, z } => equal!(d, a, reg b, true; branch_on(off, z)),
                Instr::EqRIJ { d, a, i, off, z } => equal!(d, a, imm i as i16 as i64, true; branch_on(off, z)),
                Instr::NeRRJ { d, a, b, off, z } => equal!(d, a, reg b, false; branch_on(off, z)),
                Instr::NeRIJ { d, a, i, off, z } => equal!(d, a, imm i as i16 as i64, false; branch_on(off, z)),

                // `add rX, rX, 1; lt rY, rX, L; jnz rY, T` in one dispatch
                // (see `fuse`), all operands inline. Anything unusual (not
                // an int, overflow, rY holding a reference) runs the `add`
                // alone and lets the `lt` and `jnz`, still in place after
                // it, execute normally.
                Instr::IncLtJnz { d: x, y, span, last } => 'fast: {
                    // One compare decides the usual round: below LAST (L -
                    // 1), adding 1 cannot overflow and the `lt` holds. With
                    // rY already an int (from the previous round), only
                    // payloads change (`fuse` makes sure rY is not rX).
                    if let Value::Int(xv) = regs[x as usize] {
                        if let Value::Int(_) = regs[y as usize] {
                            let last = last as i64;
                            if xv < last {
                                if let Value::Int(p) = &mut regs[x as usize] {
                                    *p = xv + 1;
                                }
                                if let Value::Int(py) = &mut regs[y as usize] {
                                    *py = 1;
                                }
                                jump!(pc + 2, pc + 2 - span as usize);
                                break 'fast;
                            }
                            // The last round: rX passes LAST, the `lt` fails.
                            if xv == last {
                                if let Value::Int(p) = &mut regs[x as usize] {
                                    *p = last + 1;
                                }
                                if let Value::Int(py) = &mut regs[y as usize] {
                                    *py = 0;
                                }
                                pc = loop_exit(pc);
                                break 'fast;
                            }
                        }
                    }
                    std::hint::cold_path();
                    add!(x, x, imm 1)
                }
            }
        };
        // An error: remember where each frame stood.
        self.steps += used!() as u64;
        let top = self.frames.len() - 1;
        self.frames[top].pc = (pc.max(1) - 1) as u32;
        if SLOW {
            pending = None;
            let _ = pending;
        }
        Err(fault)
    }

    /// `halt`: release every register of every frame, innermost first;
    /// the first use of a freed object met is returned after the rest are
    /// released (the frames stay, for the error's call stack).
    fn release_all(&mut self, site: Site) -> Result<(), Fault> {
        let mut first = None;
        for i in (0..self.stack.len()).rev() {
            let v = std::mem::take(&mut self.stack[i]);
            if let Value::Ref(_) = v {
                if let Err(f) = self.heap.release(v, site) {
                    first.get_or_insert(f);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}

#[cold]
fn type_error<A: Allocator, H: RefcountHooks>(heap: &Heap<A, H>, op: &str, a: Value, b: Value) -> Fault {
    if let Value::Ref(h) = a {
        if let Err(f) = heap.check(h) {
            return f;
        }
    }
    if let Value::Ref(h) = b {
        if let Err(f) = heap.check(h) {
            return f;
        }
    }
    let what = if op == "add" { "ints or two strings" } else { "ints" };
    Fault::Msg(format!("`{op}` needs {what}, not {} and {}", heap.type_name(a), heap.type_name(b)))
}

/// The reference path of a register write, kept out of the dispatch loop.
#[inline(never)]
fn release_ref<A: Allocator, H: RefcountHooks>(heap: &mut Heap<A, H>, v: Value, site: Site) -> Result<(), Fault> {
    heap.release(v, site)
}

/// A call whose argument at `args.len()` could not be retained: release
/// the arguments before it again and pass the fault on.
#[cold]
#[inline(never)]
fn unretain<A: Allocator, H: RefcountHooks>(heap: &mut Heap<A, H>, args: &[Value], fault: Fault) -> Fault {
    for &v in args {
        heap.release_quiet(v);
    }
    fault
}

#[inline(never)]
fn retain_ref<A: Allocator, H: RefcountHooks>(heap: &mut Heap<A, H>, v: Value) -> Result<(), Fault> {
    heap.retain(v)
}

/// Concatenates the functions' code into one array, jump targets made
/// absolute, so that a pc indexes it directly (and is the global site
/// number: function f starts at `fns[f].start`). Verified code never falls
/// off a function's end, so runs never cross into the next.
fn flatten(funcs: impl Iterator<Item = Vec<Instr>>) -> Vec<Instr> {
    let mut out: Vec<Instr> = Vec::new();
    for code in funcs {
        let start = out.len() as u32;
        out.extend(code.into_iter().map(|ins| match ins {
            Instr::Jmp { t } => Instr::Jmp { t: t + start },
            Instr::Jz { s, t } => Instr::Jz { s, t: t + start },
            Instr::Jnz { s, t } => Instr::Jnz { s, t: t + start },
            other => other,
        }));
    }
    out
}

/// Builds the execution copy of a function's code:
/// - calls with one or two arguments become `Call1`/`Call2`, their
///   registers inline;
/// - `load`/`store` at an immediate index in 0..=65535 become
///   `LoadRU`/`StoreRU` (no sign test);
/// - `add`/`sub rX, rA, I` (I a signed byte) before `call rD, F, rX`
///   becomes `AddICall`/`SubICall`;
/// - a compare (RR, or RI with IMM in 16 bits) before a `jz`/`jnz` on its
///   result, the target within a signed byte, becomes `LtRRJ` ... `NeRIJ`;
/// - the counted-loop tail `add rX, rX, 1; lt rY, rX, L; jnz rY, T`
///   (Lua's `FORLOOP`), with Y not X, L an inline immediate and T at most 252
///   instructions back, becomes `IncLtJnz` at the `add`, carrying Y, L - 1
///   (the last value of X that goes round; one compare decides the usual
///   round) and the round's length in instructions (T's distance + 3: the
///   taken branch's fuel and target each cost one subtraction).
///
/// The replaced instructions stay in place after the fused one, so jumps
/// into the middle still land on real instructions. Instruction counts,
/// `--max-steps` and errors (message and location) are as if they ran one
/// by one.
pub(crate) fn fuse(code: &[Instr], prog: &Program) -> Vec<Instr> {
    let mut out = code.to_vec();
    for ins in out.iter_mut() {
        if let Instr::Call { d, f, args } = *ins {
            match *prog.reglist(args) {
                [a] => *ins = Instr::Call1 { d, f, a },
                [a, b] => *ins = Instr::Call2 { d, f, a, b },
                _ => {}
            }
        }
    }
    // A `load`/`store` at a non-negative immediate index: no test of its
    // sign at run time.
    for ins in out.iter_mut() {
        let u16_of = |i: i32| u16::try_from(i).ok();
        *ins = match *ins {
            Instr::LoadRI { d, o, i } => u16_of(i).map_or(*ins, |i| Instr::LoadRU { d, o, i }),
            Instr::StoreRI { o, i, s } => u16_of(i).map_or(*ins, |i| Instr::StoreRU { o, i, s }),
            other => other,
        };
    }
    // A small `add`/`sub` immediate into the only argument of the call
    // after it.
    for pc in 0..out.len().saturating_sub(1) {
        if let Instr::Call1 { d, f, a: arg } = out[pc + 1] {
            let small = |i: i32| i8::try_from(i).ok().map(|i| i as u8);
            out[pc] = match out[pc] {
                Instr::AddRI { d: x, a, i } if x == arg => {
                    small(i).map_or(out[pc], |i| Instr::AddICall { x, a, i, d, f })
                }
                Instr::SubRI { d: x, a, i } if x == arg => {
                    small(i).map_or(out[pc], |i| Instr::SubICall { x, a, i, d, f })
                }
                other => other,
            };
        }
    }
    // Compare and branch: `CMP rD, rA, rB|IMM; jz|jnz rD, T` with IMM in
    // 16 bits and T within a signed byte of the compare.
    for (pc, w) in code.windows(2).enumerate() {
        let (s, t, z) = match w[1] {
            Instr::Jz { s, t } => (s, t, 1),
            Instr::Jnz { s, t } => (s, t, 0),
            _ => continue,
        };
        let Ok(off) = i8::try_from(t as i64 - pc as i64) else { continue };
        let off = off as u8;
        let i16_of = |i: i32| i16::try_from(i).ok().map(|i| i as u16);
        let fused = match w[0] {
            Instr::LtRR { d, a, b } if d == s => Some(Instr::LtRRJ { d, a, b, off, z }),
            Instr::LeRR { d, a, b } if d == s => Some(Instr::LeRRJ { d, a, b, off, z }),
            Instr::GtRR { d, a, b } if d == s => Some(Instr::GtRRJ { d, a, b, off, z }),
            Instr::GeRR { d, a, b } if d == s => Some(Instr::GeRRJ { d, a, b, off, z }),
            Instr::EqRR { d, a, b } if d == s => Some(Instr::EqRRJ { d, a, b, off, z }),
            Instr::NeRR { d, a, b } if d == s => Some(Instr::NeRRJ { d, a, b, off, z }),
            Instr::LtRI { d, a, i } if d == s => i16_of(i).map(|i| Instr::LtRIJ { d, a, i, off, z }),
            Instr::LeRI { d, a, i } if d == s => i16_of(i).map(|i| Instr::LeRIJ { d, a, i, off, z }),
            Instr::GtRI { d, a, i } if d == s => i16_of(i).map(|i| Instr::GtRIJ { d, a, i, off, z }),
            Instr::GeRI { d, a, i } if d == s => i16_of(i).map(|i| Instr::GeRIJ { d, a, i, off, z }),
            Instr::EqRI { d, a, i } if d == s => i16_of(i).map(|i| Instr::EqRIJ { d, a, i, off, z }),
            Instr::NeRI { d, a, i } if d == s => i16_of(i).map(|i| Instr::NeRIJ { d, a, i, off, z }),
            _ => None,
        };
        if let Some(f) = fused {
            out[pc] = f;
        }
    }
    for (pc, w) in code.windows(3).enumerate() {
        if let [Instr::AddRI { d, a, i: 1 }, Instr::LtRI { d: y, a: x, i: lim }, Instr::Jnz { s, t }] = *w {
            if d == a && x == d && s == y && y != d && (t as usize) <= pc {
                if let (Ok(span), Some(last)) = (u8::try_from(pc + 3 - t as usize), lim.checked_sub(1)) {
                    out[pc] = Instr::IncLtJnz { d, y, span, last };
                }
            }
        }
    }
    out
}

/// A call found `depth_room` frames on: the depth error, or more room
/// for frames (charged to `--max-heap` with the register stack of
/// `stack` values).
#[cold]
#[inline(never)]
fn room_for_a_frame<A: Allocator, H: RefcountHooks>(
    frames: &mut Vec<Frame>,
    depth_room: &mut usize,
    max_depth: usize,
    stack: usize,
    heap: &mut Heap<A, H>,
) -> Result<(), Fault> {
    if frames.len() >= max_depth {
        return Err(Fault::Msg(format!("call depth exceeds {max_depth} (--max-depth): runaway recursion?")));
    }
    if frames.len() == frames.capacity() {
        let more = frames.len().max(4).min(max_depth - frames.len());
        charge_outside(heap, stack, frames.len() + more)?;
        frames.try_reserve_exact(more).map_err(|_| Fault::OutOfMemory)?;
    }
    *depth_room = frames.capacity().min(max_depth);
    Ok(())
}

/// Makes the register stack at least `need` values long (doubling when
/// that fits), charged to `--max-heap` with room for `frames` frames; out
/// of memory when it cannot grow.
#[cold]
#[inline(never)]
fn grow_stack<A: Allocator, H: RefcountHooks>(
    stack: &mut Vec<Value>,
    need: usize,
    frames: usize,
    heap: &mut Heap<A, H>,
) -> Result<(), Fault> {
    let doubled = need.max(stack.len().saturating_mul(2));
    let want = if charge_outside(heap, doubled, frames).is_ok() { doubled } else { need };
    charge_outside(heap, want, frames)?;
    stack.try_reserve_exact(want - stack.len()).map_err(|_| Fault::OutOfMemory)?;
    stack.resize(want, Value::Nil);
    Ok(())
}

/// Charges a register stack of `values` and room for `frames` frames to
/// `--max-heap`.
fn charge_outside<A: Allocator, H: RefcountHooks>(
    heap: &mut Heap<A, H>,
    values: usize,
    frames: usize,
) -> Result<(), Fault> {
    let bytes = values
        .checked_mul(std::mem::size_of::<Value>())
        .and_then(|v| frames.checked_mul(std::mem::size_of::<Frame>()).and_then(|f| v.checked_add(f)))
        .ok_or(Fault::OutOfMemory)?;
    heap.reserve_outside(bytes)
}

/// The result of a run that ends without a fault (or hands over to the
/// slow loop). Out of line: as a constant in `exec`, the compiler keeps the
/// result's encoding in a register and reloads it on every dispatch.
#[cold]
#[inline(never)]
fn finished(e: Option<Exit>) -> Result<Option<Exit>, Fault> {
    Ok(e)
}

/// The fall-through of a fused loop tail (past the `lt` and `jnz`); cold,
/// so that the compiler branches instead of selecting.
#[cold]
#[inline(never)]
fn loop_exit(pc: usize) -> usize {
    pc + 2
}

/// The fuel for the next stretch after `steps` instructions: what the
/// budget still allows, at most [`INTERRUPT_CHECK_STEPS`] when an interrupt
/// flag is set.
fn fuel_chunk(steps: u64, interruptible: bool, budget: u64) -> i64 {
    let left = budget.saturating_sub(steps);
    let chunk = if interruptible { left.min(INTERRUPT_CHECK_STEPS) } else { left };
    chunk.min(MAX_STRETCH) as i64
}

/// How much of a printed text `print` holds before writing it out.
const PRINT_CHUNK: usize = 1 << 16;

/// How much of a register's value a `--trace` line shows.
const TRACE_VALUE: usize = 200;

/// Writes printed text to the program's output.
fn write_out(out: &mut dyn Write, text: &str) -> Result<(), Fault> {
    out.write_all(text.as_bytes()).map_err(|e| Fault::Msg(format!("cannot write to standard output: {e}")))
}

/// The end of a stretch: count its `used` instructions, then look at the
/// interrupt flag (resetting it).
fn end_stretch(
    steps: &mut u64,
    interrupt: &Option<Arc<AtomicBool>>,
    interrupted: &mut bool,
    used: i64,
) -> Result<(), Fault> {
    *steps += used as u64;
    if let Some(flag) = interrupt {
        if flag.swap(false, Ordering::Relaxed) {
            *interrupted = true;
            return Err(Fault::Msg("interrupted (Ctrl-C)".into()));
        }
    }
    Ok(())
}

/// Out of fuel (slow loop): end the stretch, then stop for the exhausted
/// budget or hand out the next stretch.
#[cold]
#[inline(never)]
fn refuel(
    steps: &mut u64,
    interrupt: &Option<Arc<AtomicBool>>,
    interrupted: &mut bool,
    budget: u64,
    used: i64,
) -> Result<i64, Fault> {
    end_stretch(steps, interrupt, interrupted, used)?;
    match fuel_chunk(*steps, interrupt.is_some(), budget) {
        0 => Err(budget_exhausted(budget)),
        f => Ok(f),
    }
}

/// The fast loop's refuel, at the start of a straight run that may need
/// `need` instructions: end the stretch (`Err(Some)` for an interrupt),
/// hand over to the slow loop when the budget has fewer than `need` left
/// (`Err(None)`), or hand out the next stretch.
#[cold]
#[inline(never)]
fn refill(
    steps: &mut u64,
    interrupt: &Option<Arc<AtomicBool>>,
    interrupted: &mut bool,
    budget: u64,
    used: i64,
    need: usize,
) -> Result<i64, Option<Fault>> {
    end_stretch(steps, interrupt, interrupted, used).map_err(Some)?;
    let left = budget.saturating_sub(*steps);
    if left < need as u64 {
        return Err(None);
    }
    let chunk = if interrupt.is_some() { left.min(INTERRUPT_CHECK_STEPS.max(need as u64)) } else { left };
    Ok(chunk.min(MAX_STRETCH) as i64)
}

#[cold]
#[inline(never)]
fn budget_exhausted(budget: u64) -> Fault {
    Fault::Msg(format!("instruction budget of {budget} exhausted (--max-steps)"))
}

/// Why an integer operation had no result: division by zero or overflow.
#[cold]
#[inline(never)]
fn arith_fault(op: &str, a: i64, b: i64) -> Fault {
    Fault::Msg(match op {
        "div" if b == 0 => "division by zero".to_string(),
        "mod" if b == 0 => "modulo by zero".to_string(),
        _ => format!("integer overflow in `{op}` ({a}, {b})"),
    })
}

/// Python's `//`: the quotient rounded towards negative infinity; `None`
/// for division by zero or overflow (`i64::MIN // -1`).
pub fn floor_div(a: i64, b: i64) -> Option<i64> {
    let q = a.checked_div(b)?;
    Some(if (a % b != 0) && ((a < 0) != (b < 0)) { q - 1 } else { q })
}

/// Python's `%`: the remainder takes the divisor's sign; `None` for a zero
/// divisor.
pub fn floor_mod(a: i64, b: i64) -> Option<i64> {
    if b == 0 {
        return None;
    }
    if b == -1 {
        return Some(0);
    }
    let r = a % b;
    Some(if r != 0 && ((r < 0) != (b < 0)) { r + b } else { r })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loop tails are fused, and every way the fused instruction can go
    /// (taken, not taken, a reference or nil in the flag register, a string counter, overflow, a jump into the
    /// middle of the group, the step budget running out) behaves exactly
    /// as the three instructions run one by one.
    #[test]
    fn fused_loop_tails_behave_like_the_instructions_they_replace() {
        let cases = [
            "li r0, 0\nli r1, 0\ntop: add r1, r1, r0\nadd r0, r0, 1\nlt r2, r0, 100\njnz r2, top\nprint r0, r1, r2",
            "li r0, 0\nlist r2\ntop: add r0, r0, 1\nlt r2, r0, 3\njnz r2, top\nprint r0, r2",
            "str r0, \"a\"\nli r2, 0\ntop: add r0, r0, 1\nlt r2, r0, 3\njnz r2, top\nprint r0",
            "li r0, 9223372036854775806\ntop: add r0, r0, 1\nlt r2, r0, 3\njnz r2, top\nprint r0",
            "li r0, 0\njmp mid\ntop: add r0, r0, 1\nmid: lt r2, r0, 5\njnz r2, top\nprint r0",
            "li r0, 0\ntop: add r0, r0, 1\nlt r2, r0, 1000000\njnz r2, top\nprint r0",
            // Entered at the last round, or already past the limit.
            "li r0, 2\nli r2, 7\ntop: add r0, r0, 1\nlt r2, r0, 3\njnz r2, top\nprint r0, r2",
            "li r0, 50\nli r2, 7\ntop: add r0, r0, 1\nlt r2, r0, 3\njnz r2, top\nprint r0, r2",
            "li r0, -9\ntop: add r0, r0, 1\nlt r2, r0, -2\njnz r2, top\nprint r0, r2",
            "li r0, 2147483640\ntop: add r0, r0, 1\nlt r2, r0, 2147483647\njnz r2, top\nprint r0, r2",
        ];
        // The farthest target that fuses: 252 instructions back.
        let farthest =
            format!("li r0, 0\ntop: {}add r0, r0, 1\nlt r2, r0, 3\njnz r2, top\nprint r0", "li r1, 1\n".repeat(252));
        for text in cases.iter().copied().chain([farthest.as_str()]) {
            let loaded = crate::load("t.asm", text.as_bytes()).unwrap();
            let fused = fuse(&loaded.program.funcs[loaded.program.main as usize].code, &loaded.program);
            assert!(fused.iter().any(|i| matches!(i, Instr::IncLtJnz { .. })), "not fused:\n{text}");
            crate::fuzzing::check_execute(text, false).unwrap_or_else(|e| panic!("{e}\n{text}"));
        }
        // A wide limit, a step other than 1, the flag in the counter's
        // register, a forward or distant target or a different register
        // breaks the pattern.
        let far = format!("li r0, 0\ntop: {}add r0, r0, 1\nlt r2, r0, 9\njnz r2, top", "li r1, 1\n".repeat(253));
        for text in [
            "li r0, 0\ntop: add r0, r0, 2\nlt r2, r0, 9\njnz r2, top",
            "li r0, 0\ntop: add r0, r0, 1\nlt r0, r0, 7\njnz r0, top\nprint r0",
            "li r0, 0\nadd r0, r0, 1\nlt r2, r0, 9\njnz r2, end\nend: print r0",
            far.as_str(),
            "li r0, 0\ntop: add r0, r0, 1\nlt r2, r0, 10000000000\njnz r2, top",
            // The fused form carries LIM - 1, which must fit too.
            "li r0, 0\ntop: add r0, r0, 1\nlt r2, r0, -2147483648\njnz r2, top\nprint r0",
            "top: add r0, r1, 1\nlt r2, r0, 1\njnz r2, top",
        ] {
            let loaded = crate::load("t.asm", text.as_bytes()).unwrap();
            let code = &loaded.program.funcs[loaded.program.main as usize].code;
            let fused = fuse(code, &loaded.program);
            assert!(!fused.iter().any(|i| matches!(i, Instr::IncLtJnz { .. })), "fused:\n{text}");
            crate::fuzzing::check_execute(text, false).unwrap_or_else(|e| panic!("{e}\n{text}"));
        }
    }

    /// Every compare fuses with a `jz`/`jnz` on its register, forward or
    /// back, and behaves as the pair run one by one (the checked run):
    /// both outcomes, type errors, equality of objects, a reference in rD
    /// released by the write, and an immediate or target out of range left
    /// unfused.
    #[test]
    fn fused_compare_and_branch_behave_like_the_pair() {
        let mut fused_ops = std::collections::BTreeSet::new();
        for op in ["lt", "le", "gt", "ge", "eq", "ne"] {
            for b in ["r1", "3", "-3", "40000"] {
                for br in ["jz", "jnz"] {
                    for a in ["li r0, 2", "li r0, 3", "li r0, -3", "str r0, \"x\"", "list r0"] {
                        for d in ["li r2, 0", "list r2"] {
                            let text = format!(
                                "{a}\nli r1, 3\n{d}\nli r3, 0\ntop: add r3, r3, 1\n{op} r2, r0, {b}\n{br} r2, out\n\
                                 gt r4, r3, 2\njz r4, top\nout: print r2, r3"
                            );
                            let loaded = crate::load("t.asm", text.as_bytes()).unwrap();
                            let code = &loaded.program.funcs[loaded.program.main as usize].code;
                            let fused = fuse(code, &loaded.program);
                            let at = code.iter().position(|i| i.info().mnemonic == op).unwrap();
                            assert_eq!(fused[at].info().is_internal(), b != "40000", "{text}");
                            fused_ops.insert(fused[at].info().name);
                            crate::fuzzing::check_execute(&text, false).unwrap_or_else(|e| panic!("{e}\n{text}"));
                        }
                    }
                }
            }
        }
        assert_eq!(fused_ops.len(), 12 + 6, "{fused_ops:?}");
        // A target more than a signed byte away stays a plain pair.
        let far = format!("li r0, 0\nlt r1, r0, 1\njnz r1, end\n{}end: print r0", "li r2, 1\n".repeat(130));
        let loaded = crate::load("t.asm", far.as_bytes()).unwrap();
        let code = &loaded.program.funcs[loaded.program.main as usize].code;
        assert_eq!(&fuse(code, &loaded.program), code);
        crate::fuzzing::check_execute(&far, false).unwrap();
    }

    /// One- and two-argument calls carry them inline in the execution
    /// copy; with a reference argument, a depth error or a use of a freed
    /// object they behave as the plain call (the checked run).
    #[test]
    fn calls_with_inline_arguments_behave_like_calls() {
        let cases = [
            "li r0, 5\ncall r1, f, r0\nprint r1\n.func f 1\nadd r0, r0, 1\nret r0\n.end",
            "new r0, 1\ncall r1, f, r0\nrefcount r2, r0\nprint r1, r2\n.func f 1\nrefcount r1, r0\nret r1\n.end",
            "li r0, 1\ncall r1, f, r0\n.func f 1\ncall r0, f, r0\nret r0\n.end",
            "new r0, 1\ndecref r0\ncall r1, f, r0\n.func f 1\nret r0\n.end",
            "li r0, 1\nli r1, 2\ncall r2, g, r0, r1\nprint r2\n.func g 2\nadd r0, r0, r1\nret r0\n.end",
            // The second argument dangles: the count taken on the first is
            // given back (the checked run frees the record; so must this).
            "list r0\nnew r1, 1\ndecref r0\ncall r2, g, r1, r0\n.func g 2\nret r0\n.end",
            "li r0, 1\nli r1, 2\nli r2, 3\ncall r3, h, r0, r1, r2\nprint r3\n.func h 3\nadd r0, r0, r2\nret r0\n.end",
            "call r3, z\nprint r3\n.func z 0\nli r0, 7\nret r0\n.end",
        ];
        for (i, text) in cases.iter().enumerate() {
            let loaded = crate::load("t.asm", text.as_bytes()).unwrap();
            let fused = fuse(&loaded.program.funcs[loaded.program.main as usize].code, &loaded.program);
            let inline = fused.iter().any(|i| matches!(i, Instr::Call1 { .. } | Instr::Call2 { .. }));
            assert_eq!(inline, i < 6, "{text}");
            crate::fuzzing::check_execute(text, true).unwrap_or_else(|e| panic!("{e}\n{text}"));
        }
    }

    /// `load`/`store` at an immediate index in 0..=65535 run as
    /// `LoadRU`/`StoreRU` and behave as the plain instructions (the checked
    /// run): records and lists, atoms and references, a slot that holds a
    /// reference already, the index past the end, a dict's int key, a
    /// string, a freed object, an int. Negative and wider indexes are not
    /// fused.
    #[test]
    fn indexed_loads_and_stores_behave_like_the_plain_ones() {
        let mut fused_any = 0;
        for setup in [
            "new r0, 4",
            "list r0\npush r0, r9\npush r0, r9\npush r0, r9\npush r0, r9",
            "dict r0",
            "str r0, \"abcd\"",
            "new r0, 4\ndecref r0",
            "li r0, 4",
        ] {
            for i in ["0", "3", "4", "-1", "-5", "65535", "65536"] {
                for v in ["li r1, 7", "new r1, 2", "str r1, \"x\""] {
                    for twice in [false, true] {
                        let store = format!("store r0, {i}, r1");
                        let again = if twice { format!("\n{store}") } else { String::new() };
                        let text = format!("li r9, 1\n{setup}\n{v}\n{store}{again}\nload r2, r0, {i}\nprint r2\nload r3, r0, {i}\nprint r3");
                        let loaded = crate::load("t.asm", text.as_bytes()).unwrap();
                        let fused = fuse(&loaded.program.funcs[loaded.program.main as usize].code, &loaded.program);
                        let n =
                            fused.iter().filter(|i| matches!(i, Instr::LoadRU { .. } | Instr::StoreRU { .. })).count();
                        let expect = if i.starts_with('-') || i == "65536" { 0 } else { 3 + twice as usize };
                        assert_eq!(n, expect, "{text}");
                        fused_any += n;
                        let manual = setup.contains("decref");
                        crate::fuzzing::check_execute(&text, manual).unwrap_or_else(|e| panic!("{e}\n{text}"));
                    }
                }
            }
        }
        assert!(fused_any > 0);
    }

    /// `add`/`sub` of a small immediate into a one-argument call fuses,
    /// and behaves as the pair: ints, the argument register also the
    /// operand, overflow, a string or a list operand, a reference in the
    /// argument register before, the depth limit at the call.
    #[test]
    fn fused_arith_and_call_behave_like_the_pair() {
        let f = ".func f 1\nret r0\n.end";
        let mut fused_any = 0;
        for setup in
            ["li r0, 5", "li r0, 9223372036854775807", "li r0, -9223372036854775808", "str r0, \"s\"", "list r0"]
        {
            for op in ["add r1, r0, 1", "sub r1, r0, 1", "add r0, r0, -128", "sub r0, r0, 127", "add r1, r0, 200"] {
                for before in ["", "new r1, 1\n"] {
                    let arg = if op.contains("r1,") { "r1" } else { "r0" };
                    let text = format!("{before}{setup}\n{op}\ncall r2, f, {arg}\nprint r2\n{f}");
                    let loaded = crate::load("t.asm", text.as_bytes()).unwrap();
                    let code = &loaded.program.funcs[loaded.program.main as usize].code;
                    let fused = fuse(code, &loaded.program);
                    let fusing = fused.iter().any(|i| matches!(i, Instr::AddICall { .. } | Instr::SubICall { .. }));
                    assert_eq!(fusing, !op.ends_with("200"), "{text}");
                    fused_any += fusing as usize;
                    crate::fuzzing::check_execute(&text, false).unwrap_or_else(|e| panic!("{e}\n{text}"));
                }
            }
        }
        assert_eq!(fused_any, 5 * 4 * 2);
        // Recursion into the depth limit: the error is at the call.
        let deep = "li r0, 0\ncall r1, g, r0\n.func g 1\nadd r0, r0, 1\ncall r0, g, r0\nret r0\n.end";
        crate::fuzzing::check_execute(deep, false).unwrap();
    }

    fn spin_vm(prog: &Program, max_steps: Option<u64>) -> Vm<'_, crate::mem::alloc::PoolAllocator> {
        let heap = Heap::new(crate::mem::alloc::PoolAllocator::new(), usize::MAX);
        Vm::new(prog, heap, Limits { max_steps, max_depth: 100 })
    }

    /// A raised interrupt flag stops the run within one check interval with
    /// a located error, resets the flag, releases the frames; a budget
    /// larger than the interval stays exact when the flag is installed.
    #[test]
    fn interrupt_flag_stops_the_run_and_budgets_stay_exact() {
        let text = "list r0\ncall r1, spin, r0\n.func spin 1\nli r1, 0\ntop: add r1, r1, 1\njmp top\n.end";
        let loaded = crate::load("t.asm", text.as_bytes()).unwrap();
        let flag = Arc::new(AtomicBool::new(true));
        let mut vm = spin_vm(&loaded.program, None);
        vm.set_interrupt(Arc::clone(&flag));
        let err = vm.run(&mut Vec::new()).unwrap_err();
        assert_eq!(err.message, "interrupted (Ctrl-C)");
        assert!(vm.was_interrupted() && !flag.load(Ordering::Relaxed));
        // The flag is read where a straight run starts and the stretch has
        // less left than the rest of the code (at most its length).
        let n = vm.instructions();
        let len = vm.fused.len() as u64;
        assert!((INTERRUPT_CHECK_STEPS - len..=INTERRUPT_CHECK_STEPS).contains(&n), "{n}");
        assert_eq!(err.frames.len(), 2, "spin and main");
        assert_eq!(vm.heap().objects().live(), 0, "frames released");
        // Not raised: the budget ends the run after exactly max_steps,
        // across several check intervals.
        for steps in [3 * INTERRUPT_CHECK_STEPS + 7, INTERRUPT_CHECK_STEPS, 5] {
            let mut vm = spin_vm(&loaded.program, Some(steps));
            vm.set_interrupt(Arc::new(AtomicBool::new(false)));
            let err = vm.run(&mut Vec::new()).unwrap_err();
            assert!(err.message.contains("--max-steps"), "{}", err.message);
            assert!(!vm.was_interrupted());
            assert_eq!(vm.instructions(), steps);
        }
    }

    /// Passing on or reading a reference to a freed object is the error
    /// at that instruction, in both runs: `ret` (from `main` and from a
    /// callee, whose caller must not go on) and `pop` (the list keeps the
    /// element). Nothing is left alive afterwards.
    #[test]
    fn returning_or_popping_a_freed_object_is_an_error_there() {
        let cases = [
            ("new r0, 0\ndecref r0\nret r0", 3),
            ("call r1, f\nli r2, 5\nprint r2\n.func f\nnew r0, 0\ndecref r0\nret r0\n.end", 7),
            ("new r0, 0\nlist r1\npush r1, r0\ndecref r0\ndecref r0\npop r2, r1\nli r7, 7\nprint r7", 6),
        ];
        for (text, line) in cases {
            let loaded = crate::load("t.asm", text.as_bytes()).unwrap();
            for slow in [false, true] {
                let mut vm = spin_vm(&loaded.program, if slow { Some(1000) } else { None });
                let mut out = Vec::new();
                let err = vm.run(&mut out).unwrap_err();
                assert_eq!(err.message, "use of freed object #1", "{text}");
                assert_eq!(err.frames[0].pos.line, line, "{text}");
                assert!(out.is_empty(), "{text}: ran on after the error");
                assert_eq!(vm.heap().objects().live(), 0, "{text}");
            }
            crate::fuzzing::check_execute(text, true).unwrap_or_else(|e| panic!("{e}\n{text}"));
        }
    }

    /// A collection that frees a container holding a reference to an
    /// object freed before it releases that reference: the error of a
    /// release of a dangling reference, at the instruction that ran the
    /// collection (`gc`, or the allocation that triggered it), which does
    /// not complete; the garbage is freed all the same and nothing is left
    /// alive. A survivor holding one, and cycles freed together, are not
    /// errors.
    #[test]
    fn a_collection_releasing_a_dangling_reference_is_an_error_there() {
        let garbage = "list r1\nlist r0\npush r0, r1\npush r0, r0\ndecref r1\ndecref r1\ndel r0\n";
        let cases = [
            (format!("{garbage}gc r3\nprint r3"), Some(8)),
            // Count 0 is 1 (r0); the allocation makes it pass threshold 1.
            (format!("{garbage}gcthreshold 1, 10, 10\nnew r4, 1\nprint r4"), Some(9)),
            (format!("{garbage}gcthreshold 1, 10, 10\nlist r4\nprint r4"), Some(9)),
            (format!("{garbage}gcthreshold 1, 10, 10\ndict r4\nprint r4"), Some(9)),
            // The holder survives (r0 keeps it): no error until it is
            // released, at the end of `main` (after the print).
            ("list r1\nlist r0\npush r0, r1\ndecref r1\ndecref r1\ngc r3\nprint r3".to_string(), Some(0)),
            // Cycles whose members are freed one after the other.
            (
                "new r0, 1\nnew r1, 1\nstore r0, 0, r1\nstore r1, 0, r0\ndel r0\ndel r1\ngc r2\nprint r2".to_string(),
                None,
            ),
        ];
        for (text, line) in &cases {
            let loaded = crate::load("t.asm", text.as_bytes()).unwrap();
            let mut vm = spin_vm(&loaded.program, None);
            let mut out = Vec::new();
            match (vm.run(&mut out), line) {
                (Err(err), Some(0)) => {
                    assert_eq!(err.message, "use of freed object #1", "{text}");
                    assert_eq!(out, b"0\n", "{text}");
                }
                (Err(err), Some(line)) => {
                    assert_eq!(err.message, "use of freed object #1", "{text}");
                    assert_eq!(err.frames[0].pos.line, *line, "{text}");
                    assert_eq!(err.notes[0], "object #1 was freed at t.asm:6:1 (in `main`)", "{text}");
                    assert!(out.is_empty(), "{text}: ran on after the error");
                }
                (Ok(_), None) => {}
                (r, _) => panic!("{text}: {r:?}"),
            }
            assert_eq!(vm.heap().objects().live(), 0, "{text}");
            crate::fuzzing::check_execute(text, true).unwrap_or_else(|e| panic!("{e}\n{text}"));
        }
    }

    /// An object outside the collected set (older, or a string) whose
    /// count `decref` lowered to the two garbage members that hold it:
    /// freeing the first frees it, and the second's release is the error
    /// of the instruction that ran the collection (`gc`, or an allocation
    /// that triggered it), with the object's free site there; nothing is
    /// left alive. A full collection takes the old list in too: the three
    /// are garbage together, and that is no error.
    #[test]
    fn a_collection_releasing_what_it_freed_itself_is_an_error_there() {
        let lists = "list r5\ngc r9, 0\nlist r1\nlist r2\npush r1, r2\npush r2, r1\npush r1, r5\npush r2, r5\n";
        let records = "str r5, \"x\"\nli r9, 0\nnew r1, 2\nnew r2, 2\nstore r1, 0, r2\nstore r2, 0, r1\nstore r1, 1, r5\nstore r2, 1, r5\n";
        for (garbage, full) in [(lists, None), (records, Some(13))] {
            let garbage = format!("{garbage}decref r5\ndel r5\ndel r1\ndel r2\n");
            for (tail, line) in [
                ("gc r3\nprint r3", full),
                ("gc r3, 0\nprint r3", Some(13)),
                // Count 0 is 2 (r1, r2): the allocation passes threshold 1.
                ("gcthreshold 1, 10, 10\nnew r4, 1\nprint r4", Some(14)),
                ("gcthreshold 1, 10, 10\nlist r4\nprint r4", Some(14)),
                ("gcthreshold 1, 10, 10\ndict r4\nprint r4", Some(14)),
            ] {
                let text = format!("{garbage}{tail}");
                let loaded = crate::load("t.asm", text.as_bytes()).unwrap();
                let mut vm = spin_vm(&loaded.program, None);
                let mut out = Vec::new();
                match (vm.run(&mut out), line) {
                    (Err(err), Some(line)) => {
                        assert_eq!(err.message, "use of freed object #1", "{text}");
                        assert_eq!(err.frames[0].pos.line, line, "{text}");
                        assert_eq!(
                            err.notes[0],
                            format!("object #1 was freed at t.asm:{line}:1 (in `main`)"),
                            "{text}"
                        );
                        assert!(out.is_empty(), "{text}: ran on after the error");
                    }
                    (Ok(_), None) => assert_eq!(out, b"3\n", "{text}"),
                    (r, _) => panic!("{text}: {r:?}"),
                }
                assert_eq!(vm.heap().objects().live(), 0, "{text}");
                vm.verify_heap().unwrap_or_else(|e| panic!("{text}: {e}"));
                crate::fuzzing::check_execute(&text, true).unwrap_or_else(|e| panic!("{e}\n{text}"));
            }
        }
    }

    /// `main`'s return value is released at its `ret`: a freed object that
    /// release meets (the list held its record twice, `decref` left the
    /// record one count) is that `ret`'s error, as when the list is
    /// dropped with `del`, or returned from a function to `main`; it used
    /// to be ignored (exit 0), and what it freed was said to be freed at
    /// the program's first instruction, which the leak check's report of
    /// its garbage holding the returned object then named.
    #[test]
    fn mains_return_value_is_released_at_its_ret_with_its_errors() {
        let text = "new r1, 0\nlist r5\npush r5, r1\npush r5, r1\ndecref r1\ndel r1\nret r5";
        let loaded = crate::load("t.asm", text.as_bytes()).unwrap();
        let mut vm = spin_vm(&loaded.program, None);
        let err = vm.run(&mut Vec::new()).unwrap_err();
        assert_eq!(err.message, "use of freed object #1");
        assert_eq!(err.frames[0].pos.line, 7);
        assert_eq!(err.notes[0], "object #1 was freed at t.asm:7:1 (in `main`)");
        assert_eq!(vm.heap().objects().live(), 0);
        crate::fuzzing::check_execute(text, true).unwrap_or_else(|e| panic!("{e}\n{text}"));
        // The returned list, its count lowered to the cycle's reference,
        // is freed at the `ret`; the leak check's collection then releases
        // it again (the error), with that free site.
        let text = "li r0, 0\nlist r5\ngc r9\nnew r1, 2\nnew r2, 2\nstore r1, 0, r2\nstore r2, 0, r1\n\
                    store r1, 1, r5\ndecref r5\ndel r1\ndel r2\nret r5";
        let loaded = crate::load("t.asm", text.as_bytes()).unwrap();
        let mut vm = spin_vm(&loaded.program, None);
        vm.run(&mut Vec::new()).unwrap();
        let report = crate::stats::leak_report(&mut vm).unwrap_err();
        assert!(report.contains("object #1 was freed at t.asm:12:1 (in `main`)"), "{report}");
        assert_eq!(vm.heap().objects().live(), 0);
    }

    /// A collection that an allocation triggers frees its garbage at that
    /// instruction: a dangling reference to a member (`decref` made it
    /// look unreachable while an old list still held it) names it as the
    /// free site when it is used.
    #[test]
    fn an_automatic_collection_frees_at_the_allocating_instruction() {
        let text = "list r0\ngc r9, 0\nnew r1, 1\nnew r2, 1\nstore r1, 0, r2\nstore r2, 0, r1\npush r0, r2\n\
                    decref r2\ndel r1\ndel r2\ngcthreshold 1, 10, 10\nlist r4\ndel r0\nprint r4";
        let loaded = crate::load("t.asm", text.as_bytes()).unwrap();
        let mut vm = spin_vm(&loaded.program, None);
        let err = vm.run(&mut Vec::new()).unwrap_err();
        assert_eq!(err.message, "use of freed object #3");
        assert_eq!(err.frames[0].pos.line, 13);
        assert_eq!(err.notes[0], "object #3 was freed at t.asm:12:1 (in `main`)");
        assert_eq!(vm.heap().objects().live(), 0);
        crate::fuzzing::check_execute(text, true).unwrap_or_else(|e| panic!("{e}\n{text}"));
    }

    /// The register stack and the frames count against `--max-heap`: deep
    /// recursion under a generous depth limit ends with a located out of
    /// memory error once they would pass it (1 MiB: about 250 frames of
    /// 256 registers, or some 30,000 of one), not by growing the host's
    /// memory; every frame is released after.
    #[test]
    fn deep_recursion_is_charged_to_the_heap_limit() {
        for (text, most, line) in [
            ("list r0\ncall r0, f\n.func f\nli r255, 1\ncall r0, f\nret r0\n.end", 300, 5),
            ("list r0\ncall r0, f\n.func f\ncall r0, f\nret r0\n.end", 70_000, 4),
            // Reference arguments, inline (one and two): none is left
            // counted when the room for the callee cannot be had.
            ("list r0\ncall r1, f, r0\n.func f 1\nli r255, 1\ncall r0, f, r0\nret r0\n.end", 300, 5),
            (
                "list r0\nstr r1, \"s\"\ncall r2, g, r0, r1\n.func g 2\nli r255, 1\ncall r0, g, r0, r1\nret r0\n.end",
                300,
                6,
            ),
        ] {
            let loaded = crate::load("t.asm", text.as_bytes()).unwrap();
            let heap = Heap::new(crate::mem::alloc::PoolAllocator::new(), 1 << 20);
            let mut vm = Vm::new(&loaded.program, heap, Limits { max_steps: None, max_depth: usize::MAX });
            let err = vm.run(&mut Vec::new()).unwrap_err();
            assert_eq!(err.message, "out of memory (--max-heap)", "{text}");
            // The stack could not grow: the note says so, not "0 bytes".
            let note = &err.notes[0];
            assert!(note.starts_with("the VM stack needs "), "{note}");
            assert!(note.ends_with(", limit 1048576 (a call needs room for 256 registers, 4096 bytes)"), "{note}");
            assert!(err.depth > 10 && err.depth < most, "{} frames: {text}", err.depth);
            assert_eq!(err.frames.len(), 20);
            assert_eq!(err.frames[0].pos.line, line, "{text}");
            assert_eq!(vm.heap().objects().live(), 0, "{text}");
        }
        // Small depth limits: the frames' room never passes them.
        let loaded = crate::load("t.asm", b"call r0, f\n.func f\ncall r0, f\nret r0\n.end").unwrap();
        for max_depth in 1..=9 {
            let heap = Heap::new(crate::mem::alloc::PoolAllocator::new(), usize::MAX);
            let mut vm = Vm::new(&loaded.program, heap, Limits { max_steps: None, max_depth });
            let err = vm.run(&mut Vec::new()).unwrap_err();
            assert!(err.message.starts_with(&format!("call depth exceeds {max_depth} ")), "{}", err.message);
            assert_eq!((err.frames.len(), err.depth), (max_depth, max_depth));
        }
    }

    /// Runs `prog` (which must not end by itself) until another thread
    /// raises the interrupt flag 20 ms in; the VM and its error.
    fn interrupted_by_another_thread(prog: &Program) -> (Vm<'_, crate::mem::alloc::PoolAllocator>, RuntimeError) {
        let flag = Arc::new(AtomicBool::new(false));
        let mut vm = spin_vm(prog, None);
        vm.set_interrupt(Arc::clone(&flag));
        let raiser = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            flag.store(true, Ordering::Relaxed);
        });
        let err = vm.run(&mut Vec::new()).unwrap_err();
        raiser.join().unwrap();
        assert_eq!(err.message, "interrupted (Ctrl-C)");
        (vm, err)
    }

    /// Printing a structure whose text is exponentially large (a list
    /// holding the one before twice, 40 deep: 2^40 leaves) streams it and
    /// stops at an interrupt, located at the `print`, every frame released.
    #[test]
    fn an_endless_print_streams_and_stops_at_an_interrupt() {
        let text = "li r1, 0\nli r0, 7\nloop: list r2\npush r2, r0\npush r2, r0\nmov r0, r2\nadd r1, r1, 1\nlt r3, r1, 40\njnz r3, loop\nprint r0";
        let loaded = crate::load("t.asm", text.as_bytes()).unwrap();
        let (vm, err) = interrupted_by_another_thread(&loaded.program);
        assert_eq!(err.frames[0].pos.line, 10);
        assert_eq!(vm.heap().objects().live(), 0);
    }

    /// `--trace` shows at most about 200 bytes of a written value, so
    /// tracing the building of a long chain stays linear.
    #[test]
    fn trace_lines_cut_long_values_short() {
        #[derive(Clone, Default)]
        struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.borrow_mut().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        // The trace of a run of `text`.
        let traced = |text: &str| {
            let loaded = crate::load("t.asm", text.as_bytes()).unwrap();
            let mut vm = spin_vm(&loaded.program, None);
            let trace = Shared::default();
            vm.set_trace(Box::new(trace.clone()));
            vm.run(&mut Vec::new()).unwrap();
            let out = String::from_utf8(trace.0.borrow().clone()).unwrap();
            out
        };
        let out = traced("li r0, 0\nb: new r3, 2\nstore r3, 0, r0\nstore r3, 1, r2\nmov r2, r3\nadd r0, r0, 1\nlt r4, r0, 3000\njnz r4, b");
        let longest = out.lines().map(str::len).max().unwrap();
        assert!(longest < 320, "{longest}");
        let last_mov = out.lines().rfind(|l| l.contains("mov r2, r3")).unwrap();
        assert!(last_mov.contains("r2 = #3000 (2999, (2998, (2997, (") && last_mov.ends_with(" ..."), "{last_mov}");
        // A long string, alone and inside a list, is cut short too.
        let out = traced("str r0, \"ab\"\nli r1, 0\nl: add r0, r0, r0\nadd r1, r1, 1\nlt r2, r1, 16\njnz r2, l\nlist r3\npush r3, r0\nmov r4, r3");
        assert!(out.lines().all(|l| l.len() < 320), "{}", out.lines().map(str::len).max().unwrap());
        assert!(out.lines().any(|l| l.contains("r4 = #") && l.contains("[\"abab") && l.ends_with(" ...")));
    }

    /// An interrupt raised by another thread while a loop spins stops the
    /// run inside the loop, located at the instruction it stopped before
    /// (not the one before a jump's target).
    #[test]
    fn an_interrupt_is_located_inside_the_loop() {
        let text = "list r0\ncall r1, spin, r0\n.func spin 1\nli r1, 0\ntop: add r1, r1, 1\njmp top\n.end";
        let loaded = crate::load("t.asm", text.as_bytes()).unwrap();
        let (vm, err) = interrupted_by_another_thread(&loaded.program);
        assert_eq!(err.frames.len(), 2, "spin and main");
        // Stopped where a stretch ends: after the loop's jump, at its
        // target (line 5).
        assert_eq!(err.frames[0].pos.line, 5);
        assert_eq!(vm.heap().objects().live(), 0, "frames released");
    }

    /// An interrupted run has counted exactly the instructions it ran: a
    /// budget of that many stops at the same instruction, in a jump loop,
    /// a call loop and a fused loop tail alike.
    #[test]
    fn an_interrupted_count_is_exact() {
        let programs = [
            "list r0\ncall r1, spin, r0\n.func spin 1\nli r1, 0\ntop: add r1, r1, 1\njmp top\n.end",
            "li r0, 0\ntop: call r1, f, r0\njmp top\n.func f 1\nadd r0, r0, 1\nret r0\n.end",
            "li r0, 0\ntop: li r1, 3\nli r0, 0\ninner: add r0, r0, 1\nlt r2, r0, 1000\njnz r2, inner\njmp top",
        ];
        for text in programs {
            let loaded = crate::load("t.asm", text.as_bytes()).unwrap();
            let (vm, err) = interrupted_by_another_thread(&loaded.program);
            let n = vm.instructions();
            let mut budget = spin_vm(&loaded.program, Some(n));
            let b = budget.run(&mut Vec::new()).unwrap_err();
            assert!(b.message.contains("--max-steps"), "{}", b.message);
            assert_eq!(budget.instructions(), n);
            let at = |e: &RuntimeError| e.frames.iter().map(|f| (f.func.clone(), f.pos.line)).collect::<Vec<_>>();
            assert_eq!(at(&err), at(&b), "{text}");
        }
    }

    /// The fast loop counts straight runs, not instructions, and hands the
    /// end of a budget to the slow loop: for every budget, with and without
    /// an interrupt flag (shorter stretches), it must stop at the same
    /// instruction, with the same output and count, as the slow loop that
    /// counts one by one.
    #[test]
    fn every_budget_stops_the_fast_loop_where_the_slow_one_stops() {
        let text =
            "li r0, 0\nli r1, 0\ntop: add r1, r1, r0\ncall r2, f, r0\nadd r0, r0, 1\nlt r3, r0, 6\njnz r3, top\n\
                    new r4, 2\nstore r4, 0, r1\nprint r1, r4\nlt r5, r1, 0\njz r5, end\nprint r5\nend: halt\n\
                    .func f 1\nlt r1, r0, 3\njz r1, big\nret r0\nbig: sub r0, r0, 1\ncall r0, f, r0\nret r0\n.end";
        let loaded = crate::load("t.asm", text.as_bytes()).unwrap();
        let run = |steps: u64, slow: bool, interrupt: bool| {
            let mut vm = spin_vm(&loaded.program, Some(steps));
            vm.set_verify_each_step(slow);
            if interrupt {
                vm.set_interrupt(Arc::new(AtomicBool::new(false)));
            }
            let mut out = Vec::new();
            let err =
                vm.run(&mut out).err().map(|e| (e.message, e.frames.iter().map(|f| f.pos.line).collect::<Vec<_>>()));
            (String::from_utf8(out).unwrap(), err, vm.instructions(), vm.heap().objects().live())
        };
        let total = run(u64::MAX, true, false).2;
        assert!(total > 60, "{total}");
        for steps in 1..=total + 1 {
            let slow = run(steps, true, false);
            assert_eq!(slow.2, steps.min(total), "the slow loop's count");
            assert_eq!(run(steps, false, false), slow, "--max-steps {steps}");
            assert_eq!(run(steps, false, true), slow, "--max-steps {steps} with an interrupt flag");
        }
    }

    /// A program longer than the interrupt interval: stretches grow to the
    /// code's length, and budgets stay exact with and without the flag.
    #[test]
    fn budgets_stay_exact_in_a_program_longer_than_the_interrupt_interval() {
        let text = format!("li r0, 0\n{}top: add r0, r0, 1\njmp top", "li r1, 1\n".repeat(70_000));
        let loaded = crate::load("t.asm", text.as_bytes()).unwrap();
        for steps in [69_000, 70_002, 250_000] {
            for interrupt in [false, true] {
                let mut vm = spin_vm(&loaded.program, Some(steps));
                if interrupt {
                    vm.set_interrupt(Arc::new(AtomicBool::new(false)));
                }
                let err = vm.run(&mut Vec::new()).unwrap_err();
                assert!(err.message.contains("--max-steps"), "{}", err.message);
                assert_eq!(vm.instructions(), steps, "interrupt flag: {interrupt}");
            }
        }
    }

    /// Running off the end of the code (impossible for verified code) is a
    /// runtime error, not a panic: the fetch yields `Trap`.
    #[test]
    fn a_pc_past_the_code_is_an_error() {
        let loaded = crate::load("t.asm", b"li r0, 1\nret r0").unwrap();
        let mut vm = spin_vm(&loaded.program, None);
        let last = vm.fused.len() - 1;
        vm.fused[last] = Instr::LiI { d: 1, i: 2 };
        let err = vm.run(&mut Vec::new()).unwrap_err();
        assert_eq!(err.message, format!("internal error: no instruction at {}", last + 1));
        assert_eq!(vm.instructions(), 3, "two instructions and the failing fetch");
    }

    #[test]
    fn floor_division_matches_python() {
        for (a, b, q, r) in [
            (7, 2, 3, 1),
            (-7, 2, -4, 1),
            (7, -2, -4, -1),
            (-7, -2, 3, -1),
            (6, 3, 2, 0),
            (-6, 3, -2, 0),
            (i64::MIN, -1, 0, 0),
        ] {
            if a == i64::MIN {
                assert!(floor_div(a, b).is_none());
            } else {
                assert_eq!(floor_div(a, b), Some(q), "{a} // {b}");
            }
            assert_eq!(floor_mod(a, b), Some(r), "{a} % {b}");
        }
        assert_eq!(floor_mod(i64::MIN, 7), Some(((i64::MIN as i128).rem_euclid(7)) as i64));
        assert!(floor_div(1, 0).is_none() && floor_mod(1, 0).is_none());
    }
}
