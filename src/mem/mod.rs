//! The memory subsystem, in three layers, each pluggable:
//!
//! 1. [`alloc`]: raw blocks from an [`alloc::Allocator`] (pool, system,
//!    bump, or your own);
//! 2. [`heap`]: objects laid out in those blocks ([`object`]) with
//!    reference counts and the ownership rules of SPEC §1, telling
//!    [`refcount::RefcountHooks`] of every object's creation and free;
//! 3. [`gc`]: the generational cycle collector, with a replaceable
//!    trigger [`gc::GcPolicy`].
pub mod alloc;
pub mod gc;
pub mod heap;
pub mod object;
pub mod refcount;
pub mod value;

pub use heap::Heap;
pub use refcount::{FreeCause, NoHooks, RefcountHooks};
pub use value::{Handle, Value};
