//! The allocator model check shared by the `alloc` fuzz target, the
//! property tests and a unit test: random sequences of alloc, free
//! and realloc against a model of the live blocks. It lives here, beside
//! the allocators, because checking blocks means reading and writing them
//! through raw pointers.

use super::{Allocator, ALIGN};
use arbitrary::{Result, Unstructured};

/// Oracle for an allocator: a sequence of alloc, free and realloc of random
/// sizes, checked against a model. Live blocks are aligned, never overlap
/// and keep their contents; `bytes_in_use` never falls below the requested
/// bytes and returns to its starting value when everything is freed
/// (unless `frees_are_noops`); no alloc or realloc raises `bytes_in_use`
/// or the peak by more than its `alloc_charge`/`realloc_charge` said;
/// `check()` holds throughout.
pub fn check_alloc_ops<A: Allocator>(
    a: &mut A,
    u: &mut Unstructured,
    frees_are_noops: bool,
) -> std::result::Result<(), String> {
    struct Block {
        ptr: std::ptr::NonNull<u8>,
        size: usize,
        tag: u8,
    }
    fn fill(b: &Block) {
        // SAFETY: `b.ptr` is a live block of `b.size` bytes owned by the
        // test, by the allocator's contract.
        unsafe { std::ptr::write_bytes(b.ptr.as_ptr(), b.tag, b.size) }
    }
    fn intact(b: &Block, upto: usize) -> bool {
        // SAFETY: as in `fill`; `upto <= b.size`.
        let s = unsafe { std::slice::from_raw_parts(b.ptr.as_ptr(), upto) };
        s.iter().all(|&x| x == b.tag)
    }
    /// `bytes_in_use` and the peak after a call rose by at most `charge`
    /// from `before` (both taken before the call).
    fn charged<A: Allocator>(
        a: &A,
        before: (usize, u64),
        charge: usize,
        what: &str,
    ) -> std::result::Result<(), String> {
        let limit = before.0.saturating_add(charge);
        let (now, peak) = (a.bytes_in_use(), a.stats().bytes_peak);
        if now > limit || peak > before.1.max(limit as u64) {
            return Err(format!(
                "{what} was charged {charge} bytes, but bytes_in_use went {} -> {now}, the peak {} -> {peak}",
                before.0, before.1
            ));
        }
        Ok(())
    }
    let start = a.bytes_in_use();
    let mut live: Vec<Block> = Vec::new();
    let mut tag = 0u8;
    let size = |u: &mut Unstructured| -> Result<usize> {
        Ok(match u.int_in_range(0..=9)? {
            0 => u.int_in_range(513..=5000)?,
            1 => 512,
            2 => 1,
            _ => u.int_in_range(1..=512)?,
        })
    };
    let steps = u.int_in_range(0..=400).map_err(|e| e.to_string())?;
    for step in 0..steps {
        let op = u.int_in_range(0..=10u8).map_err(|e| e.to_string())?;
        if op == 10 {
            // A burst of same-sized blocks, enough to fill several pools
            // and spill into a second arena, so that arena ordering and
            // release are exercised too.
            let n = u.int_in_range(256..=512usize).map_err(|e| e.to_string())?;
            let k = u.int_in_range(1..=2600usize).map_err(|e| e.to_string())?;
            for _ in 0..k {
                let (before, charge) = ((a.bytes_in_use(), a.stats().bytes_peak), a.alloc_charge(n));
                let Some(ptr) = a.alloc(n) else { return Err(format!("alloc({n}) failed")) };
                charged(a, before, charge, &format!("alloc({n})"))?;
                tag = tag.wrapping_add(1);
                let b = Block { ptr, size: n, tag };
                fill(&b);
                live.push(b);
            }
        } else if op < 5 || live.is_empty() {
            let n = size(u).map_err(|e| e.to_string())?;
            let (before, charge) = ((a.bytes_in_use(), a.stats().bytes_peak), a.alloc_charge(n));
            let Some(ptr) = a.alloc(n) else { return Err(format!("alloc({n}) failed")) };
            charged(a, before, charge, &format!("alloc({n})"))?;
            if !(ptr.as_ptr() as usize).is_multiple_of(ALIGN) {
                return Err(format!("alloc({n}) returned a misaligned block"));
            }
            tag = tag.wrapping_add(1);
            let b = Block { ptr, size: n, tag };
            fill(&b);
            live.push(b);
        } else if op < 8 {
            let i = u.int_in_range(0..=live.len() - 1).map_err(|e| e.to_string())?;
            let b = live.swap_remove(i);
            if !intact(&b, b.size) {
                return Err(format!("a block of {} bytes was overwritten", b.size));
            }
            // SAFETY: `b` came from `a` with this size and is freed once.
            unsafe { a.free(b.ptr, b.size) };
        } else {
            let i = u.int_in_range(0..=live.len() - 1).map_err(|e| e.to_string())?;
            let n = size(u).map_err(|e| e.to_string())?;
            let old = &live[i];
            if !intact(old, old.size) {
                return Err("a block was overwritten before realloc".into());
            }
            let (before, charge) = ((a.bytes_in_use(), a.stats().bytes_peak), a.realloc_charge(old.ptr, old.size, n));
            // SAFETY: `old` came from `a` with this size and is live.
            let Some(ptr) = (unsafe { a.realloc(old.ptr, old.size, n) }) else {
                return Err(format!("realloc to {n} failed"));
            };
            charged(a, before, charge, &format!("realloc({} -> {n})", old.size))?;
            let keep = old.size.min(n);
            let nb = Block { ptr, size: n, tag: old.tag };
            if !intact(&nb, keep) {
                return Err(format!("realloc {} -> {n} lost contents", old.size));
            }
            if !(ptr.as_ptr() as usize).is_multiple_of(ALIGN) {
                return Err("realloc returned a misaligned block".into());
            }
            fill(&nb);
            live[i] = nb;
        }
        // The whole-state checks cost O(live blocks): every step while the
        // state is small, every 32nd step once bursts have made it large.
        if live.len() > 256 && step % 32 != 0 {
            continue;
        }
        // No two live blocks overlap.
        let mut spans: Vec<(usize, usize)> =
            live.iter().map(|b| (b.ptr.as_ptr() as usize, b.ptr.as_ptr() as usize + b.size)).collect();
        spans.sort_unstable();
        if spans.windows(2).any(|w| w[0].1 > w[1].0) {
            return Err("two live blocks overlap".into());
        }
        let requested: usize = live.iter().map(|b| b.size).sum();
        if a.bytes_in_use() < start + requested {
            return Err(format!("bytes_in_use {} below the {requested} bytes requested", a.bytes_in_use()));
        }
        a.check()?;
    }
    for b in live.drain(..) {
        if !intact(&b, b.size) {
            return Err("a block was overwritten".into());
        }
        // SAFETY: as above.
        unsafe { a.free(b.ptr, b.size) };
    }
    a.check()?;
    if !frees_are_noops && a.bytes_in_use() != start {
        return Err(format!("bytes_in_use is {} after freeing everything, was {start}", a.bytes_in_use()));
    }
    let s = a.stats();
    if s.size_classes.iter().any(|c| c.blocks_in_use != 0) && !frees_are_noops {
        return Err("blocks still counted in use after freeing everything".into());
    }
    // Empty arenas go back to the system; at most one spare is kept.
    if start == 0 && s.arenas_allocated - s.arenas_freed > 1 {
        return Err(format!(
            "{} arenas still held after freeing everything ({} allocated, {} freed)",
            s.arenas_allocated - s.arenas_freed,
            s.arenas_allocated,
            s.arenas_freed
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::alloc::{BumpAllocator, PoolAllocator, SystemAllocator};

    /// A fixed pseudo-random input through the model, for every allocator.
    /// Not under Miri: the model's bursts fill and re-read megabytes, hours
    /// there; the pool's own randomized test (`pool::tests`) is Miri's.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn every_allocator_matches_the_model() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let n = 4096;
        let bytes: Vec<u8> = (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as u8
            })
            .collect();
        check_alloc_ops(&mut PoolAllocator::new(), &mut Unstructured::new(&bytes), false).unwrap();
        check_alloc_ops(&mut SystemAllocator::new(), &mut Unstructured::new(&bytes), false).unwrap();
        check_alloc_ops(&mut BumpAllocator::new(), &mut Unstructured::new(&bytes), true).unwrap();
    }
}
