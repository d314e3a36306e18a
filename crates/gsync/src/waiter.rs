//! A blocked goroutine or thread, as the primitives queue it.
//!
//! A `Waiter` lives on the blocked party's own stack (a goroutine's stack stays put while it is
//! parked) and the primitive's queue holds a pointer to it. Whoever takes the pointer out of the
//! queue, under the queue's lock, owns the right to wake it, exactly once, with an outcome.

use std::collections::VecDeque;
use std::ptr::NonNull;
use std::time::Instant;

use crate::raw_lock::LockCell;
use crate::shim::{self, AtomicBool, AtomicUsize, Ordering, Unparker};

/// The outcome of a waiter that nobody has woken yet.
const WAITING: usize = 0;

#[derive(Debug)]
pub(crate) struct Waiter {
    outcome: AtomicUsize,
    /// Set by the waker once it no longer touches the waiter: its frame may go after this.
    released: AtomicBool,
    unparker: Unparker,
}

/// A queued waiter. Only the queue's lock holder touches it, and only while the waiter is queued
/// or between dequeueing and waking it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WaiterRef(NonNull<Waiter>);

// SAFETY: a `WaiterRef` is used under its queue's lock while the waiter waits; `Waiter` itself
// is `Sync` (an atomic and an unparker).
unsafe impl Send for WaiterRef {}

impl Waiter {
    pub(crate) fn new() -> Self {
        Waiter {
            outcome: AtomicUsize::new(WAITING),
            released: AtomicBool::new(false),
            unparker: Unparker::current(),
        }
    }

    pub(crate) fn as_ref(&self) -> WaiterRef {
        WaiterRef(NonNull::from(self))
    }

    /// Blocks until woken and returns the outcome given (never zero).
    ///
    /// A parked goroutine can be unwound without being woken, when its runtime shuts down. The
    /// waiter must then leave its queue before its stack frame goes: `cancel` runs in that case,
    /// and must take the waiter out of its queue, or, finding it gone, settle the outcome it was
    /// given (see [`Waiter::outcome_after_dequeue`]).
    pub(crate) fn wait(&self, reason: &'static str, cancel: impl FnOnce(&Waiter)) -> usize {
        let mut on_unwind = CancelOnUnwind {
            waiter: self,
            cancel: Some(cancel),
        };
        loop {
            let outcome = self.outcome.load(Ordering::Acquire);
            if outcome != WAITING {
                on_unwind.cancel = None;
                self.wait_released();
                return outcome;
            }
            shim::park(None, reason);
        }
    }

    /// Waits until the waker is done with this waiter (it is between giving the outcome and
    /// returning from `unpark`, a few instructions).
    fn wait_released(&self) {
        while !self.released.load(Ordering::Acquire) {
            shim::wait_briefly();
        }
    }

    /// The unwinding path of a waiter in a plain queue, with nothing to give back: leaves the
    /// queue, or if a waker already took it out, waits until the waker is done with it.
    pub(crate) fn leave(&self, queue: &LockCell<VecDeque<WaiterRef>>) {
        let removed = queue.with(|waiters| {
            let before = waiters.len();
            waiters.retain(|queued| !queued.is(self));
            waiters.len() != before
        });
        if !removed {
            self.outcome_after_dequeue();
        }
    }

    /// The outcome of a waiter its waker has already taken out of the queue: the waker may not
    /// have stored it yet, but is about to.
    pub(crate) fn outcome_after_dequeue(&self) -> usize {
        loop {
            let outcome = self.outcome.load(Ordering::Acquire);
            if outcome != WAITING {
                self.wait_released();
                return outcome;
            }
            shim::wait_briefly();
        }
    }
}

impl WaiterRef {
    /// Whether this is `waiter`.
    pub(crate) fn is(self, waiter: &Waiter) -> bool {
        self.0 == NonNull::from(waiter)
    }

    /// Wakes the waiter with `outcome` (not zero).
    ///
    /// # Safety
    ///
    /// The caller took this reference out of its queue (so nobody else wakes it) and the waiter
    /// has not been woken: it is still blocked, so its frame is alive.
    pub(crate) unsafe fn wake(self, outcome: usize) {
        debug_assert_ne!(outcome, WAITING);
        // SAFETY: the waiter does not return before `released` is set below (it waits for it
        // after seeing the outcome), so it is alive throughout.
        let waiter = unsafe { self.0.as_ref() };
        waiter.outcome.store(outcome, Ordering::Release);
        waiter.unparker.unpark();
        waiter.released.store(true, Ordering::Release);
    }
}

struct CancelOnUnwind<'a, F: FnOnce(&Waiter)> {
    waiter: &'a Waiter,
    cancel: Option<F>,
}

impl<F: FnOnce(&Waiter)> Drop for CancelOnUnwind<'_, F> {
    fn drop(&mut self) {
        if let Some(cancel) = self.cancel.take() {
            cancel(self.waiter);
        }
    }
}

/// A channel operation or `select` blocked on one or more channels: the first channel to complete
/// one of its cases claims it, so exactly one case happens.
#[derive(Debug)]
pub(crate) struct SelectWaiter {
    /// `UNSELECTED`, `TIMED_OUT`, or the index of the claimed case plus one.
    selected: AtomicUsize,
    /// Set once the claimed case's transfer is complete.
    done: AtomicUsize,
    /// Set by the waker once it no longer touches the waiter: its frame may go after this.
    released: AtomicBool,
    /// Nothing but a channel can claim it (a plain blocking send or receive: no other case, no
    /// deadline), and channels claim under their lock, so a claim needs no compare-and-swap.
    exclusive: bool,
    unparker: Unparker,
}

const UNSELECTED: usize = 0;
const TIMED_OUT: usize = usize::MAX;

/// How a blocked channel operation or `select` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Selected {
    Case(usize),
    TimedOut,
}

/// A `SelectWaiter` as channel queues hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SelectRef(NonNull<SelectWaiter>);

// SAFETY: used under a channel's lock while the waiter is blocked; `SelectWaiter` is `Sync`.
unsafe impl Send for SelectRef {}

impl SelectWaiter {
    /// A waiter for a `select` or an operation with a deadline, which more than one party may
    /// try to claim.
    pub(crate) fn new() -> Self {
        SelectWaiter::with_exclusive(false)
    }

    /// A waiter for one blocking channel operation: exclusive when it has no deadline (only
    /// its channel claims it).
    pub(crate) fn for_deadline(deadline: Option<Instant>) -> Self {
        SelectWaiter::with_exclusive(deadline.is_none())
    }

    fn with_exclusive(exclusive: bool) -> Self {
        SelectWaiter {
            selected: AtomicUsize::new(UNSELECTED),
            done: AtomicUsize::new(0),
            released: AtomicBool::new(false),
            exclusive,
            unparker: Unparker::current(),
        }
    }

    fn wait_released(&self) {
        while !self.released.load(Ordering::Acquire) {
            shim::wait_briefly();
        }
    }

    pub(crate) fn as_ref(&self) -> SelectRef {
        SelectRef(NonNull::from(self))
    }

    /// Blocks until a case completes or `deadline` passes, whichever claims the waiter first.
    /// `cancel` runs if the wait is unwound (see [`Waiter::wait`]): it must take the waiter out
    /// of every queue, under each queue's lock.
    pub(crate) fn wait(
        &self,
        deadline: Option<Instant>,
        reason: &'static str,
        cancel: impl FnOnce(&SelectWaiter),
    ) -> Selected {
        let mut on_unwind = CancelSelectOnUnwind {
            waiter: self,
            cancel: Some(cancel),
        };
        let mut deadline = deadline;
        loop {
            if self.done.load(Ordering::Acquire) != 0 {
                on_unwind.cancel = None;
                self.wait_released();
                return Selected::Case(self.selected.load(Ordering::Relaxed) - 1);
            }
            if let Some(at) = deadline
                && shim::expired(at)
            {
                if self
                    .selected
                    .compare_exchange(UNSELECTED, TIMED_OUT, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    on_unwind.cancel = None;
                    return Selected::TimedOut;
                }
                // A case was claimed just now; its waker unparks us once it is done.
                deadline = None;
            }
            shim::park(deadline, reason);
        }
    }

    /// Settles the waiter after it has left every queue (the unwinding path): if a case was
    /// claimed meanwhile, waits until its waker is done with this waiter.
    pub(crate) fn settle(&self) {
        // An exclusive waiter is claimed only under the lock of the channel it just left, so
        // what `selected` says now is final.
        let claimed = if self.exclusive {
            self.selected.load(Ordering::Acquire) != UNSELECTED
        } else {
            self.selected
                .compare_exchange(UNSELECTED, TIMED_OUT, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        };
        if claimed {
            while self.done.load(Ordering::Acquire) == 0 {
                shim::wait_briefly();
            }
            self.wait_released();
        }
    }
}

impl SelectRef {
    /// Whether this is `waiter`.
    pub(crate) fn is(self, waiter: &SelectWaiter) -> bool {
        self.0 == NonNull::from(waiter)
    }

    /// Claims the waiter for its case `case`: true for exactly one claimant, and only while the
    /// waiter has neither timed out nor been claimed. The caller dequeues the entry it claims
    /// through.
    ///
    /// # Safety
    ///
    /// The caller holds the lock of a channel whose queue holds this reference, so the waiter is
    /// alive (it leaves every queue, under each lock, before it returns).
    pub(crate) unsafe fn claim(self, case: usize) -> bool {
        // SAFETY: alive per the contract.
        let waiter = unsafe { self.0.as_ref() };
        if waiter.exclusive {
            // Only the channel holding its lock can claim it, once: it is dequeued right after.
            waiter.selected.store(case + 1, Ordering::Relaxed);
            return true;
        }
        waiter
            .selected
            .compare_exchange(UNSELECTED, case + 1, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Tells the waiter its claimed case is complete (after the value moved) and wakes it.
    ///
    /// # Safety
    ///
    /// The caller claimed the waiter with [`SelectRef::claim`] and still holds the lock it held
    /// then; the waiter stays alive until this stores `done`.
    pub(crate) unsafe fn finish(self) {
        // SAFETY: the waiter does not return before `released` is set below (it waits for it
        // after seeing `done`), so it is alive throughout.
        let waiter = unsafe { self.0.as_ref() };
        waiter.done.store(1, Ordering::Release);
        waiter.unparker.unpark();
        waiter.released.store(true, Ordering::Release);
    }
}

struct CancelSelectOnUnwind<'a, F: FnOnce(&SelectWaiter)> {
    waiter: &'a SelectWaiter,
    cancel: Option<F>,
}

impl<F: FnOnce(&SelectWaiter)> Drop for CancelSelectOnUnwind<'_, F> {
    fn drop(&mut self) {
        if let Some(cancel) = self.cancel.take() {
            cancel(self.waiter);
        }
    }
}
