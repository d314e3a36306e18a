//! Which of a timer and the goroutine's own wake-up retires a timed park.
//!
//! A goroutine parked with a deadline has an entry in its worker's timer heap and its sequence
//! number in `Task::timer`. Two parties race to retire it: the timer, when the deadline passes
//! (`fire`), and the goroutine, when its park returns for any other reason (`cancel`). Each is a
//! single read-modify-write of the one word, so exactly one of them wins: the winner accounts
//! for the timer (the runtime's count of pending timers), and a timer that loses is stale, left
//! in the heap for the worker to drop lazily (see `WorkerLocal::add_timer`). A goroutine that
//! parks again arms a new number, so a stale entry can never fire for a later park.

use crate::shim::{AtomicU64, Ordering};

pub(crate) struct TimerWord(AtomicU64);

impl TimerWord {
    pub(crate) fn new() -> Self {
        TimerWord(AtomicU64::new(0))
    }

    /// The goroutine is about to park with timer `seq` (never 0); true if this replaced a
    /// timer that still stood (its park never returned normally), which is then retired.
    #[inline]
    pub(crate) fn arm(&self, seq: u64) -> bool {
        debug_assert_ne!(seq, 0);
        self.0.swap(seq, Ordering::AcqRel) != 0
    }

    /// The goroutine's park returned: true if this retired a timer that had not fired. A park
    /// without a deadline armed nothing, and the look first spares it a read-modify-write.
    #[inline]
    pub(crate) fn cancel(&self) -> bool {
        self.0.load(Ordering::Relaxed) != 0 && self.0.swap(0, Ordering::AcqRel) != 0
    }

    /// Timer `seq` is due: true if it still stands, and it is now retired by this call (the
    /// caller then wakes the goroutine).
    #[inline]
    pub(crate) fn fire(&self, seq: u64) -> bool {
        self.0
            .compare_exchange(seq, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Whether timer `seq` still stands (neither fired nor cancelled).
    #[inline]
    pub(crate) fn is_armed(&self, seq: u64) -> bool {
        self.0.load(Ordering::Relaxed) == seq
    }
}
