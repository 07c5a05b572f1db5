//! Run statistics (`--stats`, `--stats-json`) and the leak report
//! (`--check-leaks`).

use crate::mem::alloc::{AllocStats, Allocator};
use crate::mem::gc::GcStats;
use crate::mem::heap::{Fault, ObjectStats, EXIT_SITE};
use crate::mem::refcount::RefcountHooks;
use crate::vm::Vm;
use serde::Serialize;
use std::fmt::Write;

/// Bytes the heap uses beyond allocator blocks.
#[derive(Clone, Debug, Serialize)]
pub struct HeapExtra {
    /// Dict tables (kept in `IndexMap`s on the Rust heap), charged at
    /// capacity; counted against `--max-heap`.
    pub dict_table_bytes: u64,
    pub dict_table_bytes_peak: u64,
    /// The object table: one 12-byte slot per object ever live at once,
    /// plus 4 bytes of allocation site per slot under `--check-leaks`.
    pub object_table_bytes: u64,
}

/// Everything `--stats` reports. The field names follow SPEC §3.
#[derive(Clone, Debug, Serialize)]
pub struct Stats {
    pub instructions: u64,
    pub elapsed_ms: f64,
    pub allocator: AllocStats,
    pub objects: ObjectStats,
    pub gc: GcStats,
    pub heap: HeapExtra,
}

impl Stats {
    /// Reads the statistics off a VM after its run.
    pub fn collect<A: Allocator, H: RefcountHooks>(vm: &Vm<'_, A, H>, elapsed: std::time::Duration) -> Stats {
        let heap = vm.heap();
        let (d, dp) = heap.objects().dict_bytes();
        Stats {
            instructions: vm.instructions(),
            elapsed_ms: elapsed.as_secs_f64() * 1e3,
            allocator: heap.allocator().stats(),
            objects: heap.object_stats(),
            gc: heap.gc_stats(),
            heap: HeapExtra {
                dict_table_bytes: d,
                dict_table_bytes_peak: dp,
                object_table_bytes: heap.objects().table_bytes() as u64,
            },
        }
    }

    /// The readable report.
    pub fn report(&self) -> String {
        let mut s = String::new();
        let a = &self.allocator;
        let o = &self.objects;
        let g = &self.gc;
        let _ = writeln!(s, "== rcvm statistics ==");
        let _ = writeln!(s, "instructions      {}", self.instructions);
        let _ = writeln!(s, "allocator         {}", a.kind);
        let _ = writeln!(s, "  bytes in use    {}", a.bytes_in_use);
        let _ = writeln!(s, "  bytes peak      {}", a.bytes_peak);
        let _ = writeln!(s, "  bytes reserved  {} (from the system)", a.bytes_reserved);
        let _ = writeln!(s, "  arenas          {} allocated, {} freed", a.arenas_allocated, a.arenas_freed);
        let _ = writeln!(s, "  large allocs    {}", a.large_allocs);
        let used: Vec<_> = a.size_classes.iter().filter(|c| c.allocs > 0).collect();
        if !used.is_empty() {
            let _ = writeln!(s, "  size class   pools  in use     allocs      frees");
            for c in used {
                let _ = writeln!(
                    s,
                    "  {:>10}  {:>5}  {:>6}  {:>9}  {:>9}",
                    c.size, c.pools, c.blocks_in_use, c.allocs, c.frees
                );
            }
        }
        let _ = writeln!(s, "objects");
        let _ = writeln!(
            s,
            "  allocated       {} (records {}, lists {}, dicts {}, strings {})",
            o.allocated, o.by_type.record, o.by_type.list, o.by_type.dict, o.by_type.string
        );
        let _ = writeln!(s, "  freed by rc     {}", o.freed_by_refcount);
        let _ = writeln!(s, "  freed by gc     {}", o.freed_by_gc);
        let _ = writeln!(s, "  alive at exit   {}", o.alive);
        let _ = writeln!(s, "  peak alive      {}", o.peak_alive);
        let _ = writeln!(
            s,
            "  dict tables     {} bytes (peak {})",
            self.heap.dict_table_bytes, self.heap.dict_table_bytes_peak
        );
        // The handle table lives outside the allocator: 12 bytes a slot.
        let _ = writeln!(s, "  object table    {} bytes", self.heap.object_table_bytes);
        let _ = writeln!(
            s,
            "gc                {} (policy {}), thresholds {:?}",
            if g.enabled { "enabled" } else { "disabled" },
            g.policy,
            g.thresholds
        );
        for i in 0..3 {
            let _ = writeln!(
                s,
                "  generation {i}    {} collections, {} examined, {} collected, {:.3} ms",
                g.collections[i],
                g.examined[i],
                g.collected[i],
                g.time_us[i] as f64 / 1e3
            );
        }
        s
    }
}

/// After a successful run (every frame released): collects cycles, which
/// are garbage rather than leaks, then lists what is still alive. Each
/// object is shown with where it was allocated; the ones held by counts no
/// owner accounts for (an `incref` never undone) are marked as roots.
/// Returns an empty string when nothing leaked.
///
/// Garbage can hold a reference to an object `decref` freed: releasing it
/// is an error like any other release of a freed object (SPEC section 1),
/// and this collection is where it happens. Then the error's text (a
/// runtime error, exit 1) is returned instead, and no leak report.
///
/// The collection frees at [`EXIT_SITE`] (what hooks are told): an object
/// it freed itself, then released again (garbage held more references to
/// it than `decref` had left it counts), is said to be freed by it, not at
/// an instruction of the program.
pub fn leak_report<A: Allocator, H: RefcountHooks>(vm: &mut Vm<'_, A, H>) -> Result<String, String> {
    if let Err(f) = vm.heap_mut().collect_checked(2, EXIT_SITE) {
        let mut s = String::new();
        match f {
            Fault::Freed { id, site } => {
                let _ = writeln!(s, "error: use of freed object #{id}");
                let _ = writeln!(s, "  = note: the leak check's collection freed garbage that still referred to it");
                let _ = writeln!(s, "  = note: {}", vm.freed_note(id, site));
            }
            other => {
                let _ = writeln!(s, "error: the leak check's collection failed: {other:?}");
            }
        }
        return Err(s);
    }
    let live = vm.heap().live_objects();
    if live.is_empty() {
        return Ok(String::new());
    }
    let roots = vm.heap_mut().leak_roots();
    let mut s = format!(
        "error: {} object{} leaked: still alive after every frame was released and cycles were collected\n",
        live.len(),
        if live.len() == 1 { "" } else { "s" }
    );
    for (id, kind, site) in live {
        let why = if roots.binary_search(&id).is_ok() {
            "held by a count no owner accounts for (incref without decref)"
        } else {
            "reachable from a leaked object"
        };
        let at = match site {
            Some(site) => {
                let (func, pos) = vm.site_pos(site);
                format!("allocated at {}:{}:{} (in `{func}`)", vm.source_name(), pos.line, pos.col)
            }
            None => "allocation site not recorded (see Heap::set_record_sites)".to_string(),
        };
        let _ = writeln!(s, "  #{id} {} {at}: {why}", kind.name());
    }
    Ok(s)
}
