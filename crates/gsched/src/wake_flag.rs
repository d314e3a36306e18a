//! The flag between a future's waker and the goroutine polling it (see `block_on_future`):
//! the waker sets it and then unparks the poller; the poller takes it, and parks only when it
//! was not set. An unpark that comes before the park is kept as the parker's token, so a wake
//! between the poll and the park is not lost (the loom model
//! `a_wake_between_poll_and_park_is_not_lost` checks this).

use crate::shim::{AtomicBool, Ordering};

pub(crate) struct WakeFlag(AtomicBool);

impl WakeFlag {
    pub(crate) fn new() -> Self {
        WakeFlag(AtomicBool::new(false))
    }

    /// The waker's half, before it unparks the poller: publishes what it wrote before.
    pub(crate) fn set(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// The poller's half: whether a wake came since it last took the flag. A compare-exchange
    /// rather than a swap: it writes only when there is something to take, and the loom model
    /// runs this exact code (with a swap, loom 0.7 reported a lost wake-up that the memory
    /// model does not allow; the compare-exchange is correct under both readings).
    pub(crate) fn take(&self) -> bool {
        self.0
            .compare_exchange(true, false, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }
}
