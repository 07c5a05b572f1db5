//! The memory subsystem: allocators (layer 1), the object heap with its
//! refcounts (layer 2) and the cycle collector (layer 3).
pub mod alloc;
