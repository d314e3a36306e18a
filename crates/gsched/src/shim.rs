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

/// The time the monitor goes by: the real clock, or in tests a clock they move by hand.
#[cfg(not(goroutines_loom))]
#[derive(Clone, Debug)]
pub(crate) enum Clock {
    Real,
    #[cfg(test)]
    Manual(std::sync::Arc<std::sync::Mutex<std::time::Instant>>),
}

#[cfg(not(goroutines_loom))]
impl Clock {
    pub(crate) fn now(&self) -> std::time::Instant {
        match self {
            Clock::Real => std::time::Instant::now(),
            #[cfg(test)]
            Clock::Manual(now) => *now.lock().unwrap(),
        }
    }
}
