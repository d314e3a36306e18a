//! The one place that picks std's or loom's synchronization types: with
//! `--cfg goroutines_loom`, the modeled algorithms run on loom's.

#[cfg(goroutines_loom)]
pub(crate) use loom::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering, fence,
};
#[cfg(not(goroutines_loom))]
pub(crate) use std::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering, fence,
};
