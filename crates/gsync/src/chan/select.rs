//! The machinery behind [`select!`](crate::select!): each case is a typed value that knows its
//! channel, and one engine runs them all as Go's `selectgo` does. Lock every channel involved
//! (in address order), poll the cases in random order, and if none is ready queue one waiter on
//! all of them; the first channel to complete a case claims the waiter, so exactly one case
//! happens.

use std::time::{Duration, Instant};

use super::channel::{Channel, RecvAttempt, SendAttempt};
use super::errors::{RecvError, SendError};
use crate::shim;
use crate::waiter::{SelectRef, SelectWaiter, Selected};

/// The most cases one `select!` may have.
pub(crate) const MAX_CASES: usize = 32;

/// How `select!` waits when no case is ready.
#[derive(Debug, Clone, Copy)]
pub enum SelectMode {
    /// Until a case is ready.
    Block,
    /// Not at all: the `default` case runs.
    NonBlocking,
    /// Until the deadline: then the `timeout` case runs.
    Deadline(Instant),
}

impl SelectMode {
    /// The mode of a `timeout(duration)` case: wait until `duration` from now, or forever when
    /// that instant cannot be represented, as `std::thread::park_timeout` saturates.
    pub fn after(duration: Duration) -> Self {
        match Instant::now().checked_add(duration) {
            Some(deadline) => SelectMode::Deadline(deadline),
            None => SelectMode::Block,
        }
    }
}

/// One case of a `select!`, type-erased for the engine.
pub struct Case<'a>(&'a mut dyn CaseOps);

impl std::fmt::Debug for Case<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case").finish_non_exhaustive()
    }
}

/// What the engine needs of a case's channel, whatever its element type.
trait CaseChannel {
    fn lock_address(&self) -> usize;
    fn lock(&self);
    /// # Safety
    ///
    /// The caller holds the channel's lock.
    unsafe fn unlock(&self);
    /// Takes the waiter's entries out of the channel's queues.
    ///
    /// # Safety
    ///
    /// The caller holds the channel's lock.
    unsafe fn remove_waiter(&self, waiter: &SelectWaiter);
}

impl<T> CaseChannel for Channel<T> {
    fn lock_address(&self) -> usize {
        Channel::lock_address(self)
    }

    fn lock(&self) {
        Channel::lock(self);
    }

    unsafe fn unlock(&self) {
        // SAFETY: the caller holds the lock.
        unsafe { Channel::unlock(self) }
    }

    unsafe fn remove_waiter(&self, waiter: &SelectWaiter) {
        // SAFETY: the caller holds the lock.
        unsafe { self.remove_waiter_locked(waiter) }
    }
}

trait CaseOps {
    fn channel(&self) -> &dyn CaseChannel;
    /// Completes the case now if it can.
    ///
    /// # Safety
    ///
    /// The caller holds the channel's lock.
    unsafe fn try_complete(&mut self) -> bool;
    /// Queues the waiter on the channel.
    ///
    /// # Safety
    ///
    /// The caller holds the lock; and until the entry is dequeued, the waiter stays alive and
    /// the case (whose slot the entry points into) stays put, its slot left alone.
    unsafe fn enqueue(&mut self, waiter: SelectRef, case: usize);
    /// Records the outcome after a channel claimed this case and finished it.
    fn complete_claimed(&mut self);
}

/// A receive case; see [`select!`](crate::select!).
pub struct RecvCase<'a, T> {
    channel: &'a Channel<T>,
    slot: Option<T>,
    outcome: Option<Result<T, RecvError>>,
}

/// A send case; see [`select!`](crate::select!).
pub struct SendCase<'a, T> {
    channel: &'a Channel<T>,
    slot: Option<T>,
    outcome: Option<Result<(), SendError<T>>>,
}

impl<'a, T> RecvCase<'a, T> {
    pub(crate) fn new(channel: &'a Channel<T>) -> Self {
        RecvCase {
            channel,
            slot: None,
            outcome: None,
        }
    }

    /// This case for the engine.
    pub fn as_case(&mut self) -> Case<'_> {
        Case(self)
    }

    /// Whether this case was the one selected.
    pub fn fired(&self) -> bool {
        self.outcome.is_some()
    }

    /// The received value, or the closed channel's error.
    pub fn into_outcome(self) -> Result<T, RecvError> {
        self.outcome.expect("only a selected case has an outcome")
    }
}

impl<'a, T> SendCase<'a, T> {
    pub(crate) fn new(channel: &'a Channel<T>, value: T) -> Self {
        SendCase {
            channel,
            slot: Some(value),
            outcome: None,
        }
    }

    /// This case for the engine.
    pub fn as_case(&mut self) -> Case<'_> {
        Case(self)
    }

    /// Whether this case was the one selected.
    pub fn fired(&self) -> bool {
        self.outcome.is_some()
    }

    /// `Ok` if the value was sent, or the value back if the channel is closed.
    pub fn into_outcome(self) -> Result<(), SendError<T>> {
        self.outcome.expect("only a selected case has an outcome")
    }
}

impl<T> CaseOps for RecvCase<'_, T> {
    fn channel(&self) -> &dyn CaseChannel {
        self.channel
    }

    unsafe fn try_complete(&mut self) -> bool {
        // SAFETY: the caller holds the lock.
        let attempt = unsafe { self.channel.try_recv_locked() };
        self.outcome = match attempt {
            RecvAttempt::Received(value) => Some(Ok(value)),
            RecvAttempt::Closed => Some(Err(RecvError)),
            RecvAttempt::WouldBlock => None,
        };
        self.outcome.is_some()
    }

    unsafe fn enqueue(&mut self, waiter: SelectRef, case: usize) {
        // SAFETY: the caller holds the lock, and keeps the waiter and this case's slot as
        // `enqueue_receiver_locked` needs (this method's contract).
        unsafe {
            self.channel
                .enqueue_receiver_locked(waiter, case, &mut self.slot)
        }
    }

    fn complete_claimed(&mut self) {
        self.outcome = Some(self.slot.take().ok_or(RecvError));
    }
}

impl<T> CaseOps for SendCase<'_, T> {
    fn channel(&self) -> &dyn CaseChannel {
        self.channel
    }

    unsafe fn try_complete(&mut self) -> bool {
        // SAFETY: the caller holds the lock.
        let attempt = unsafe { self.channel.try_send_locked(&mut self.slot) };
        self.outcome = match attempt {
            SendAttempt::Sent => Some(Ok(())),
            SendAttempt::Closed => Some(Err(SendError(
                self.slot.take().expect("an unsent value stays in its slot"),
            ))),
            SendAttempt::WouldBlock => None,
        };
        self.outcome.is_some()
    }

    unsafe fn enqueue(&mut self, waiter: SelectRef, case: usize) {
        // SAFETY: as for the receive case.
        unsafe {
            self.channel
                .enqueue_sender_locked(waiter, case, &mut self.slot)
        }
    }

    fn complete_claimed(&mut self) {
        self.outcome = Some(match self.slot.take() {
            None => Ok(()),
            Some(value) => Err(SendError(value)),
        });
    }
}

/// Runs one `select`: completes exactly one case and returns true, or returns false when the
/// mode's `default` or `timeout` applies.
///
/// # Panics
///
/// With more than [`MAX_CASES`] cases.
pub fn select_cases(cases: &mut [Case<'_>], mode: SelectMode) -> bool {
    crate::shim::checkpoint();
    let count = cases.len();
    assert!(
        count <= MAX_CASES,
        "select! takes at most {MAX_CASES} cases"
    );

    // Go's poll order: a random permutation, so each ready case is equally likely.
    let mut poll_order = [0usize; MAX_CASES];
    for index in 0..count {
        let other = shim::random_below(index + 1);
        poll_order[index] = poll_order[other];
        poll_order[other] = index;
    }
    let poll_order = &poll_order[..count];
    // Go's lock order: by address, so two selects never lock the same channels in opposite
    // orders; a channel in several cases is locked once.
    let mut lock_order = [0usize; MAX_CASES];
    for (index, slot) in lock_order.iter_mut().enumerate().take(count) {
        *slot = index;
    }
    let lock_order = &mut lock_order[..count];
    lock_order.sort_unstable_by_key(|&index| cases[index].0.channel().lock_address());
    let lock_order = &*lock_order;

    lock_all(cases, lock_order);
    for &index in poll_order {
        // SAFETY: every channel is locked.
        if unsafe { cases[index].0.try_complete() } {
            // SAFETY: locked by `lock_all` above.
            unsafe { unlock_all(cases, lock_order) };
            return true;
        }
    }
    let deadline = match mode {
        SelectMode::Block => None,
        SelectMode::Deadline(deadline) if !shim::expired(deadline) => Some(deadline),
        SelectMode::NonBlocking | SelectMode::Deadline(_) => {
            // SAFETY: locked by `lock_all` above.
            unsafe { unlock_all(cases, lock_order) };
            return false;
        }
    };

    let waiter = SelectWaiter::new();
    for (index, case) in cases.iter_mut().enumerate() {
        // SAFETY: every channel is locked, and `waiter` and `cases` stay here, the slots left
        // alone, until every entry is dequeued below (or by the unwinding path).
        unsafe { case.0.enqueue(waiter.as_ref(), index) };
    }
    // SAFETY: locked by `lock_all` above.
    unsafe { unlock_all(cases, lock_order) };

    let selected = waiter.wait(deadline, "select", |waiter| {
        leave_all(cases, lock_order, waiter);
        waiter.settle();
    });
    leave_all(cases, lock_order, &waiter);
    match selected {
        Selected::Case(index) => {
            cases[index].0.complete_claimed();
            true
        }
        Selected::TimedOut => false,
    }
}

fn lock_all(cases: &[Case<'_>], lock_order: &[usize]) {
    let mut previous = None;
    for &index in lock_order {
        let address = cases[index].0.channel().lock_address();
        if previous != Some(address) {
            cases[index].0.channel().lock();
            previous = Some(address);
        }
    }
}

/// # Safety
///
/// The channels were locked with [`lock_all`] in the same order.
unsafe fn unlock_all(cases: &[Case<'_>], lock_order: &[usize]) {
    let mut previous = None;
    for &index in lock_order.iter().rev() {
        let address = cases[index].0.channel().lock_address();
        if previous != Some(address) {
            // SAFETY: locked by `lock_all`, once per channel.
            unsafe { cases[index].0.channel().unlock() };
            previous = Some(address);
        }
    }
}

/// Takes the waiter's entries out of every case's channel.
fn leave_all(cases: &mut [Case<'_>], lock_order: &[usize], waiter: &SelectWaiter) {
    lock_all(cases, lock_order);
    for case in cases.iter_mut() {
        // SAFETY: every channel is locked.
        unsafe { case.0.channel().remove_waiter(waiter) };
    }
    // SAFETY: locked by `lock_all` above.
    unsafe { unlock_all(cases, lock_order) };
}
