//! A blocked goroutine or thread, as the primitives queue it.
//!
//! A waiter lives on the blocked party's own stack (a goroutine's stack stays put while it is
//! parked) and the primitive's queue holds a pointer to it. Whoever takes the pointer out of the
//! queue, under the queue's lock, owns the right to wake it, exactly once, with an outcome.
//!
//! The two kinds, [`Waiter`] for the locks, `Once` and `WaitGroup`, and [`SelectWaiter`] for
//! channels, differ in who may wake them; both end their wait through one [`Handshake`].

use std::collections::VecDeque;
use std::ptr::NonNull;
use std::time::Instant;

use crate::lock_cell::LockCell;
use crate::shim::{self, AtomicBool, AtomicUsize, Ordering, Unparker};

/// The outcome of a waiter that nobody has woken yet.
const WAITING: usize = 0;

/// How a waker hands a blocked party its outcome and then lets go of it.
///
/// The waker, once it alone may wake the waiter:
/// 1. stores the outcome (release);
/// 2. unparks the waiter;
/// 3. stores `released` (release), and touches the waiter no more.
///
/// No wake-up is lost: the waiter loads the outcome (acquire) before every park, and step 2
/// comes after the store that load looks for. An unpark that lands before the park is kept as a
/// token that makes the park return at once, so the waiter loops back and sees the outcome.
///
/// The waiter returns only after step 3, because its frame, and with it the unparker that step 2
/// still reads, may go as soon as it returns.
#[derive(Debug)]
struct Handshake {
    /// `WAITING` until step 1.
    outcome: AtomicUsize,
    /// Step 3: from here on the waker does not touch the waiter.
    released: AtomicBool,
    unparker: Unparker,
}

impl Handshake {
    fn new() -> Self {
        Handshake {
            outcome: AtomicUsize::new(WAITING),
            released: AtomicBool::new(false),
            // SAFETY: a handshake lives in its waiter's frame, and its wakers let go of it at
            // step 3, before that frame can go: the waiter returns only after step 3, and so
            // does the cancellation that runs when the wait unwinds (`CancelOnUnwind`).
            unparker: unsafe { Unparker::for_this_frame() },
        }
    }

    /// The outcome once a waker has handed it over and let go; `None` while nobody has.
    fn woken(&self) -> Option<usize> {
        let outcome = self.outcome.load(Ordering::Acquire);
        if outcome == WAITING {
            return None;
        }
        // The waker is between steps 1 and 3, a few instructions.
        while !self.released.load(Ordering::Acquire) {
            shim::wait_briefly();
        }
        Some(outcome)
    }

    /// Parks until woken and returns the outcome, or returns `None` once `deadline` has passed
    /// with nobody waking the waiter. A plain thread spins a moment before it first parks (see
    /// `shim::spin_before_thread_park`).
    fn park_until_woken(&self, deadline: Option<Instant>, reason: &'static str) -> Option<usize> {
        let mut spin = 0;
        loop {
            if let Some(outcome) = self.woken() {
                return Some(outcome);
            }
            if deadline.is_some_and(shim::expired) {
                return None;
            }
            if shim::spin_before_thread_park(spin) {
                spin += 1;
                continue;
            }
            shim::park(deadline, reason);
        }
    }

    /// The outcome of a waiter that a waker has already taken charge of (out of its queue, or
    /// claimed): the waker may not have stored it yet, but is about to.
    fn outcome_after_dequeue(&self) -> usize {
        loop {
            if let Some(outcome) = self.woken() {
                return outcome;
            }
            shim::wait_briefly();
        }
    }

    /// Steps 1 to 3: wakes the waiter with `outcome` (not `WAITING`).
    ///
    /// It takes a pointer rather than a reference: a reference argument would assert the waiter
    /// alive until this returns, but it may go as soon as step 3 is stored.
    ///
    /// # Safety
    ///
    /// `handshake` belongs to a waiter that nobody has woken, so it is still blocked and alive,
    /// and that only the caller may wake: the caller took it out of its queue, or claimed it.
    unsafe fn wake(handshake: NonNull<Handshake>, outcome: usize) {
        debug_assert_ne!(outcome, WAITING);
        // SAFETY: the waiter is alive (the contract) and does not return before `released` is
        // stored, which is the last use of this reference.
        let handshake = unsafe { handshake.as_ref() };
        handshake.outcome.store(outcome, Ordering::Release);
        handshake.unparker.unpark();
        handshake.released.store(true, Ordering::Release);
    }
}

/// Runs `cancel` on the waiter if its wait unwinds before [`disarm`](Self::disarm).
struct CancelOnUnwind<'a, W, F: FnOnce(&W)> {
    waiter: &'a W,
    cancel: Option<F>,
}

impl<'a, W, F: FnOnce(&W)> CancelOnUnwind<'a, W, F> {
    fn new(waiter: &'a W, cancel: F) -> Self {
        CancelOnUnwind {
            waiter,
            cancel: Some(cancel),
        }
    }

    /// The wait ended without unwinding: nothing to cancel.
    fn disarm(mut self) {
        self.cancel = None;
    }
}

impl<W, F: FnOnce(&W)> Drop for CancelOnUnwind<'_, W, F> {
    fn drop(&mut self) {
        if let Some(cancel) = self.cancel.take() {
            cancel(self.waiter);
        }
    }
}

/// A waiter in one queue, woken by whoever takes it out.
#[derive(Debug)]
pub(crate) struct Waiter {
    handshake: Handshake,
}

/// A queued waiter. Only the queue's lock holder touches it, and only while the waiter is queued
/// or between dequeueing and waking it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WaiterRef(NonNull<Waiter>);

// SAFETY: a `WaiterRef` is used under its queue's lock while the waiter waits; `Waiter` itself
// is `Sync` (atomics and an unparker).
unsafe impl Send for WaiterRef {}

impl Waiter {
    pub(crate) fn new() -> Self {
        Waiter {
            handshake: Handshake::new(),
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
        let on_unwind = CancelOnUnwind::new(self, cancel);
        let Some(outcome) = self.handshake.park_until_woken(None, reason) else {
            unreachable!("a wait without a deadline ends only when woken");
        };
        on_unwind.disarm();
        outcome
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
        self.handshake.outcome_after_dequeue()
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
        // SAFETY: the waiter is alive and only the caller wakes it (the contract), which is what
        // both the reference made here and `Handshake::wake` need.
        unsafe { Handshake::wake(NonNull::from(&self.0.as_ref().handshake), outcome) }
    }
}

/// A channel operation or `select` blocked on one or more channels: the first channel to complete
/// one of its cases claims it, so exactly one case happens.
#[derive(Debug)]
pub(crate) struct SelectWaiter {
    /// `UNSELECTED`, `TIMED_OUT`, or the index of the claimed case plus one.
    selected: AtomicUsize,
    /// Nothing but a channel can claim it (a plain blocking send or receive: no other case, no
    /// deadline), and channels claim under their lock, so a claim needs no compare-and-swap.
    exclusive: bool,
    /// Woken with `FINISHED` once the claimed case's transfer is complete.
    handshake: Handshake,
}

const UNSELECTED: usize = 0;
const TIMED_OUT: usize = usize::MAX;

/// The outcome a claimant wakes a `SelectWaiter` with: which case it took is in `selected`.
const FINISHED: usize = 1;

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
            exclusive,
            handshake: Handshake::new(),
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
        let on_unwind = CancelOnUnwind::new(self, cancel);
        let mut deadline = deadline;
        let selected = loop {
            if self.handshake.park_until_woken(deadline, reason).is_some() {
                break Selected::Case(self.selected.load(Ordering::Relaxed) - 1);
            }
            if self
                .selected
                .compare_exchange(UNSELECTED, TIMED_OUT, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                break Selected::TimedOut;
            }
            // A case was claimed just now; its waker unparks us once it is done.
            deadline = None;
        };
        on_unwind.disarm();
        selected
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
            self.handshake.outcome_after_dequeue();
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
    /// then; the waiter stays alive until this wakes it.
    pub(crate) unsafe fn finish(self) {
        // SAFETY: claimed by the caller and not yet finished, so the waiter is still blocked and
        // alive, and only the caller wakes it: what the reference made here and
        // `Handshake::wake` need.
        unsafe { Handshake::wake(NonNull::from(&self.0.as_ref().handshake), FINISHED) }
    }
}
