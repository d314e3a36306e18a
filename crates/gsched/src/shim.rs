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

/// A cell whose accesses loom tracks under its cfg; outside it, a plain `UnsafeCell`.
pub(crate) struct UnsafeCell<T>(
    #[cfg(goroutines_loom)] loom::cell::UnsafeCell<T>,
    #[cfg(not(goroutines_loom))] std::cell::UnsafeCell<T>,
);

impl<T> UnsafeCell<T> {
    #[cfg(goroutines_loom)]
    pub(crate) fn new(value: T) -> Self {
        UnsafeCell(loom::cell::UnsafeCell::new(value))
    }

    #[cfg(not(goroutines_loom))]
    pub(crate) const fn new(value: T) -> Self {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a mutable pointer to the contents.
    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        #[cfg(goroutines_loom)]
        return self.0.with_mut(f);
        #[cfg(not(goroutines_loom))]
        return f(self.0.get());
    }

    pub(crate) fn get_mut(&mut self) -> &mut T {
        #[cfg(goroutines_loom)]
        // SAFETY: `&mut self` excludes every other access.
        return self.0.with_mut(|contents| unsafe { &mut *contents });
        #[cfg(not(goroutines_loom))]
        return self.0.get_mut();
    }
}
