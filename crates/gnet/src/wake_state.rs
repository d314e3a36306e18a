//! The wake-up word of one worker's poller: whether the worker waits in `epoll_wait` now, so
//! that a waker writes to its eventfd only then.
//!
//! The worker swaps in `WAITING` before it waits; a waker swaps in `NOTIFIED` and writes to
//! the eventfd only if it took `WAITING` out. Both swaps are on one word, so either the worker's
//! swap sees the notification (and does not wait), or the waker's swap sees the worker waiting
//! (and the eventfd ends the wait). The eventfd keeps its count until read, so a write that
//! lands before the worker reaches `epoll_wait` still ends it.

use crate::shim::{AtomicU8, Ordering};

const RUNNING: u8 = 0;
const WAITING: u8 = 1;
const NOTIFIED: u8 = 2;

pub(crate) struct WakeState(AtomicU8);

impl WakeState {
    pub(crate) fn new() -> WakeState {
        WakeState(AtomicU8::new(RUNNING))
    }

    /// The worker is about to wait: false if a wake-up came since its last wait, and it must
    /// look for work again instead.
    pub(crate) fn begin_wait(&self) -> bool {
        if self.0.swap(WAITING, Ordering::SeqCst) == NOTIFIED {
            self.0.store(RUNNING, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// The wait is over. A notification that came during it is dropped: the worker looks for
    /// work next, and finds what the notifier published before notifying.
    pub(crate) fn end_wait(&self) {
        self.0.store(RUNNING, Ordering::SeqCst);
    }

    /// Whether a wake-up came since the worker began to wait (read once it holds the poll
    /// lock: a passing poll may have taken that wake-up's eventfd event).
    pub(crate) fn notified(&self) -> bool {
        self.0.load(Ordering::SeqCst) == NOTIFIED
    }

    /// A waker's side: true if the worker waits now and must be woken through the eventfd.
    pub(crate) fn notify(&self) -> bool {
        self.0.swap(NOTIFIED, Ordering::SeqCst) == WAITING
    }
}
