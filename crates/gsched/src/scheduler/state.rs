//! A goroutine's scheduling state machine.
//!
//! # States
//!
//! The state holds a phase and a notification bit:
//!
//! | phase | meaning | who moves it on |
//! | --- | --- | --- |
//! | `SCHEDULED` | in exactly one run queue, or about to be pushed to one | the worker that pops it: to `RUNNING` |
//! | `RUNNING` | a worker is running it | the worker, when it switches out: to `SCHEDULED` (yield), `PARKED` (park) or `DONE` |
//! | `PARKED` | in no queue; waits for `unpark` | `unpark`: to `SCHEDULED`, then pushes it |
//! | `DONE` | finished | nobody |
//!
//! `NOTIFIED` is set by an `unpark` that finds the goroutine not parked, and consumed by its next
//! `park`, which then returns at once.
//!
//! `QUEUED` goes with `SCHEDULED` when the goroutine has a queue entry, or is about to get one
//! from whoever moved it there: every move into `SCHEDULED` sets it but one, the shutdown's park
//! of a goroutine that scoped goroutines still borrow. The entry's popper clears it as it wins
//! `try_start_run`. Shutdown claims only goroutines without it, so no entry is ever left behind
//! stale, and a goroutine has at most one queue entry at a time: what lets a worker's inbox
//! thread its entries through a link in each (see `inbox.rs`).
//!
//! # Why no wake-up is lost
//!
//! A goroutine parks in two steps: it switches out with "park", then its worker moves
//! `RUNNING -> PARKED` in one read-modify-write that requires `NOTIFIED` clear, and otherwise
//! consumes the notification and schedules the goroutine again. An `unpark` between the two
//! steps finds `RUNNING` and sets `NOTIFIED`; an `unpark` after the second step finds `PARKED`
//! and schedules it. Every transition, including an `unpark` that finds the bit already set, is
//! a read-modify-write of the one state word: they are totally ordered, and whoever consumes a
//! notification acquires everything its notifier wrote before it. The loom models in
//! `loom_models/state.rs` check this, including a ping-pong in which an early-return `unpark`
//! (no write when the bit was already set) lost wake-ups.

use crate::shim::{AtomicU8, Ordering};

pub(crate) const SCHEDULED: u8 = 0;
pub(crate) const RUNNING: u8 = 1;
pub(crate) const PARKED: u8 = 2;
pub(crate) const DONE: u8 = 3;
const PHASE: u8 = 0b11;
pub(crate) const NOTIFIED: u8 = 0b100;
pub(crate) const QUEUED: u8 = 0b1000;

/// A goroutine's phase and notification bit (see the module docs).
pub(crate) struct TaskState {
    state: AtomicU8,
}

impl TaskState {
    /// A new goroutine is `SCHEDULED` and `QUEUED`: it is about to be queued.
    pub(crate) fn new() -> Self {
        TaskState {
            state: AtomicU8::new(SCHEDULED | QUEUED),
        }
    }

    /// `SCHEDULED -> RUNNING`, by the popper of its queue entry; false for an entry that is
    /// stale: none is (see the module docs), but the entry of a goroutine that shutdown leaked,
    /// which is `DONE` and never freed.
    #[inline]
    pub(crate) fn try_start_run(&self) -> bool {
        self.state
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |state| {
                (state & PHASE == SCHEDULED).then_some((state & !(PHASE | QUEUED)) | RUNNING)
            })
            .is_ok()
    }

    /// Shutdown takes a goroutine that is not running and has no queue entry: `PARKED`, or
    /// `SCHEDULED` without `QUEUED`, -> `RUNNING`, keeping a notification.
    pub(crate) fn try_claim(&self) -> bool {
        self.state
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |state| {
                Self::claimable(state).then_some((state & !PHASE) | RUNNING)
            })
            .is_ok()
    }

    /// Whether `try_claim` would succeed now.
    pub(crate) fn is_claimable(&self) -> bool {
        Self::claimable(self.state.load(Ordering::Acquire))
    }

    fn claimable(state: u8) -> bool {
        match state & PHASE {
            PARKED => true,
            SCHEDULED => state & QUEUED == 0,
            _ => false,
        }
    }

    /// The phase now (`SCHEDULED`, `RUNNING`, `PARKED` or `DONE`), for the goroutine dump.
    pub(crate) fn phase(&self) -> u8 {
        self.state.load(Ordering::Acquire) & PHASE
    }

    #[inline]
    pub(crate) fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) & PHASE == DONE
    }

    /// The goroutine's own `park`: consumes a notification if there is one.
    #[inline]
    pub(crate) fn take_notification(&self) -> bool {
        self.state.fetch_and(!NOTIFIED, Ordering::Acquire) & NOTIFIED != 0
    }

    /// After a "park" switch-out: `RUNNING -> PARKED`, unless a notification arrived, which is
    /// then consumed and the goroutine must be queued again (`false`: `SCHEDULED`, `QUEUED`).
    #[inline]
    pub(crate) fn finish_park(&self) -> bool {
        self.park_or_schedule(SCHEDULED | QUEUED)
    }

    /// As `finish_park`, for a goroutine that is not queued again if a notification arrived:
    /// `SCHEDULED` without `QUEUED`, for shutdown to claim later.
    pub(crate) fn finish_park_unqueued(&self) -> bool {
        self.park_or_schedule(SCHEDULED)
    }

    #[inline]
    fn park_or_schedule(&self, scheduled: u8) -> bool {
        let previous = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                Some(if state == RUNNING { PARKED } else { scheduled })
            })
            .unwrap_or_else(|state| state);
        previous == RUNNING
    }

    /// After a "yield" switch-out: `RUNNING -> SCHEDULED`, `QUEUED` (the caller queues it),
    /// keeping a notification.
    #[inline]
    pub(crate) fn finish_yield(&self) {
        // One exchange of bits: the runner's goroutine is `RUNNING` without `QUEUED` (nobody
        // else moves a running goroutine's phase, and `notify` only adds `NOTIFIED`).
        let previous = self.state.fetch_xor(RUNNING | QUEUED, Ordering::Release);
        debug_assert_eq!(previous & (PHASE | QUEUED), RUNNING);
    }

    pub(crate) fn finish_done(&self) {
        self.state.store(DONE, Ordering::Release);
    }

    /// Wakes the goroutine; true when the caller must now enqueue it (it was parked).
    #[inline]
    pub(crate) fn notify(&self) -> bool {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            // Even when the bit is already set, the notification is written again: the
            // read-modify-write publishes what this notifier stored before calling (the flag the
            // goroutine will check) to the goroutine's next acquire of the state. Returning early
            // without a write lost wake-ups: the goroutine could consume an older notification,
            // miss this notifier's flag, and park for good (found by the ping-pong loom model).
            let next = match state & PHASE {
                PARKED => SCHEDULED | QUEUED,
                DONE => return false,
                _ => state | NOTIFIED,
            };
            match self
                .state
                .compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return next == SCHEDULED | QUEUED,
                Err(current) => state = current,
            }
        }
    }
}
