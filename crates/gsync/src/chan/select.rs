//! The machinery behind [`select!`](crate::select!): each case is a typed value that knows its
//! channel, and one engine runs them all as Go's `selectgo` does. Lock every channel involved
//! (in address order), poll the cases in random order, and if none is ready queue one waiter on
//! all of them; the first channel to complete a case claims the waiter, so exactly one case
//! happens.

use std::time::{Duration, Instant};

use super::channel::{Channel, RecvAttempt, SendAttempt};
use super::errors::{RecvError, SendError};
use super::{Receiver, Sender};
use crate::shim;
use crate::waiter::{SelectRef, SelectWaiter, Selected};

/// Cases a select orders on the stack; more are ordered in a heap buffer.
const MAX_CASES: usize = 8;

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

/// How the engine reaches a case: through `select!`'s `Case`s, or the boxed cases of a
/// run-time `Select`.
pub(super) trait CaseSlot {
    fn ops(&self) -> &dyn CaseOps;
    fn ops_mut(&mut self) -> &mut dyn CaseOps;
}

impl CaseSlot for Case<'_> {
    fn ops(&self) -> &dyn CaseOps {
        self.0
    }

    fn ops_mut(&mut self) -> &mut dyn CaseOps {
        self.0
    }
}

/// What the engine needs of a case's channel, whatever its element type.
pub(super) trait CaseChannel {
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

pub(super) trait CaseOps {
    /// The case's channel; `None` for a disabled case, which the engine leaves out.
    fn channel(&self) -> Option<&dyn CaseChannel>;
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

/// A receive case; see [`select!`](crate::select!). Without a channel it is disabled: never
/// ready, as a receive from a nil channel in Go.
pub struct RecvCase<'a, T> {
    channel: Option<&'a Channel<T>>,
    slot: Option<T>,
    outcome: Option<Result<T, RecvError>>,
}

/// A send case; see [`select!`](crate::select!). Without a channel it is disabled.
pub struct SendCase<'a, T> {
    channel: Option<&'a Channel<T>>,
    slot: Option<T>,
    outcome: Option<Result<(), SendError<T>>>,
}

impl<'a, T> RecvCase<'a, T> {
    pub(crate) fn new(channel: Option<&'a Channel<T>>) -> Self {
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
    pub fn into_outcome(mut self) -> Result<T, RecvError> {
        self.take_outcome()
    }

    pub(super) fn take_outcome(&mut self) -> Result<T, RecvError> {
        self.outcome
            .take()
            .expect("only a selected case has an outcome")
    }
}

impl<'a, T> SendCase<'a, T> {
    pub(crate) fn new(channel: Option<&'a Channel<T>>, value: T) -> Self {
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
    pub fn into_outcome(mut self) -> Result<(), SendError<T>> {
        self.take_outcome()
    }

    pub(super) fn take_outcome(&mut self) -> Result<(), SendError<T>> {
        self.outcome
            .take()
            .expect("only a selected case has an outcome")
    }
}

impl<T> CaseOps for RecvCase<'_, T> {
    fn channel(&self) -> Option<&dyn CaseChannel> {
        self.channel.map(|channel| channel as &dyn CaseChannel)
    }

    unsafe fn try_complete(&mut self) -> bool {
        let Some(channel) = self.channel else {
            return false;
        };
        // SAFETY: the caller holds the lock.
        let attempt = unsafe { channel.try_recv_locked() };
        self.outcome = match attempt {
            RecvAttempt::Received(value) => Some(Ok(value)),
            RecvAttempt::Closed => Some(Err(RecvError)),
            RecvAttempt::WouldBlock => None,
        };
        self.outcome.is_some()
    }

    unsafe fn enqueue(&mut self, waiter: SelectRef, case: usize) {
        if let Some(channel) = self.channel {
            // SAFETY: the caller holds the lock, and keeps the waiter and this case's slot as
            // `enqueue_receiver_locked` needs (this method's contract).
            unsafe { channel.enqueue_receiver_locked(waiter, case, &mut self.slot) }
        }
    }

    fn complete_claimed(&mut self) {
        self.outcome = Some(self.slot.take().ok_or(RecvError));
    }
}

impl<T> CaseOps for SendCase<'_, T> {
    fn channel(&self) -> Option<&dyn CaseChannel> {
        self.channel.map(|channel| channel as &dyn CaseChannel)
    }

    unsafe fn try_complete(&mut self) -> bool {
        let Some(channel) = self.channel else {
            return false;
        };
        // SAFETY: the caller holds the lock.
        let attempt = unsafe { channel.try_send_locked(&mut self.slot) };
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
        if let Some(channel) = self.channel {
            // SAFETY: as for the receive case.
            unsafe { channel.enqueue_sender_locked(waiter, case, &mut self.slot) }
        }
    }

    fn complete_claimed(&mut self) {
        self.outcome = Some(match self.slot.take() {
            None => Ok(()),
            Some(value) => Err(SendError(value)),
        });
    }
}

/// How `select!` makes a receive case of its operand: a [`Receiver`], or an `Option` of one
/// (`None` disables the case, as a nil channel in Go).
#[doc(hidden)]
pub trait SelectRecv<T> {
    fn select_recv_case(&self) -> RecvCase<'_, T>;
}

impl<T> SelectRecv<T> for Receiver<T> {
    fn select_recv_case(&self) -> RecvCase<'_, T> {
        RecvCase::new(Some(self.channel()))
    }
}

impl<T> SelectRecv<T> for Option<&Receiver<T>> {
    fn select_recv_case(&self) -> RecvCase<'_, T> {
        RecvCase::new(self.map(Receiver::channel))
    }
}

impl<T> SelectRecv<T> for Option<Receiver<T>> {
    fn select_recv_case(&self) -> RecvCase<'_, T> {
        RecvCase::new(self.as_ref().map(Receiver::channel))
    }
}

impl<T, R: SelectRecv<T> + ?Sized> SelectRecv<T> for &R {
    fn select_recv_case(&self) -> RecvCase<'_, T> {
        (**self).select_recv_case()
    }
}

/// How `select!` makes a send case of its operand: a [`Sender`], or an `Option` of one.
#[doc(hidden)]
pub trait SelectSend<T> {
    fn select_send_case(&self, value: T) -> SendCase<'_, T>;
}

impl<T> SelectSend<T> for Sender<T> {
    fn select_send_case(&self, value: T) -> SendCase<'_, T> {
        SendCase::new(Some(self.channel()), value)
    }
}

impl<T> SelectSend<T> for Option<&Sender<T>> {
    fn select_send_case(&self, value: T) -> SendCase<'_, T> {
        SendCase::new(self.map(Sender::channel), value)
    }
}

impl<T> SelectSend<T> for Option<Sender<T>> {
    fn select_send_case(&self, value: T) -> SendCase<'_, T> {
        SendCase::new(self.as_ref().map(Sender::channel), value)
    }
}

impl<T, S: SelectSend<T> + ?Sized> SelectSend<T> for &S {
    fn select_send_case(&self, value: T) -> SendCase<'_, T> {
        (**self).select_send_case(value)
    }
}

/// Runs one `select`: completes exactly one case and returns true, or returns false when the
/// mode's `default` or `timeout` applies. Any number of cases; up to `MAX_CASES` without
/// allocating.
pub fn select_cases(cases: &mut [Case<'_>], mode: SelectMode) -> bool {
    run_select(cases, mode).is_some()
}

/// The engine behind [`select_cases`], over any kind of case slot.
pub(super) fn run_select<C: CaseSlot>(cases: &mut [C], mode: SelectMode) -> Option<usize> {
    crate::shim::checkpoint();
    let count = cases.len();
    let mut poll_on_stack = [0usize; MAX_CASES];
    let mut lock_on_stack = [(0usize, 0usize); MAX_CASES];
    let (mut poll_on_heap, mut lock_on_heap) = (Vec::new(), Vec::new());
    let (poll_order, lock_order): (&mut [usize], &mut [(usize, usize)]) = if count <= MAX_CASES {
        (&mut poll_on_stack[..count], &mut lock_on_stack[..count])
    } else {
        poll_on_heap.resize(count, 0);
        lock_on_heap.resize(count, (0, 0));
        (&mut poll_on_heap, &mut lock_on_heap)
    };

    // Go's poll order: a random permutation, so each ready case is equally likely.
    for index in 0..count {
        let other = shim::random_below(index + 1);
        poll_order[index] = poll_order[other];
        poll_order[other] = index;
    }
    let poll_order = &*poll_order;
    // Go's lock order: by address, so two selects never lock the same channels in opposite
    // orders; a channel in several cases is locked once. Each entry is (address, case).
    for (index, slot) in lock_order.iter_mut().enumerate() {
        *slot = (lock_address(&cases[index]), index);
    }
    sort_lock_order(lock_order);
    let lock_order = &*lock_order;

    lock_all(cases, lock_order);
    for &index in poll_order {
        // SAFETY: every channel is locked.
        if unsafe { cases[index].ops_mut().try_complete() } {
            // SAFETY: locked by `lock_all` above.
            unsafe { unlock_all(cases, lock_order) };
            return Some(index);
        }
    }
    let deadline = match mode {
        SelectMode::Block => None,
        SelectMode::Deadline(deadline) if !shim::expired(deadline) => Some(deadline),
        SelectMode::NonBlocking | SelectMode::Deadline(_) => {
            // SAFETY: locked by `lock_all` above.
            unsafe { unlock_all(cases, lock_order) };
            return None;
        }
    };

    let waiter = SelectWaiter::new();
    for (index, case) in cases.iter_mut().enumerate() {
        // SAFETY: every channel is locked, and `waiter` and `cases` stay here, the slots left
        // alone, until every entry is dequeued below (or by the unwinding path).
        unsafe { case.ops_mut().enqueue(waiter.as_ref(), index) };
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
            cases[index].ops_mut().complete_claimed();
            Some(index)
        }
        Selected::TimedOut => None,
    }
}

/// Sorts the lock order: an insertion sort for the few cases a select usually has (the
/// library sort's small-slice network costs more than the whole sort here), the library sort
/// beyond.
fn sort_lock_order(order: &mut [(usize, usize)]) {
    if order.len() > 16 {
        order.sort_unstable();
        return;
    }
    for next in 1..order.len() {
        let mut at = next;
        while at > 0 && order[at - 1] > order[at] {
            order.swap(at - 1, at);
            at -= 1;
        }
    }
}

/// Where a case's channel sorts in the lock order; disabled cases (0) lock nothing.
fn lock_address<C: CaseSlot>(case: &C) -> usize {
    case.ops().channel().map_or(0, CaseChannel::lock_address)
}

fn lock_all<C: CaseSlot>(cases: &[C], lock_order: &[(usize, usize)]) {
    let mut previous = 0;
    for &(address, index) in lock_order {
        // Disabled cases sort first, at address 0, and lock nothing.
        if address != previous
            && let Some(channel) = cases[index].ops().channel()
        {
            channel.lock();
            previous = address;
        }
    }
}

/// # Safety
///
/// The channels were locked with [`lock_all`] in the same order.
unsafe fn unlock_all<C: CaseSlot>(cases: &[C], lock_order: &[(usize, usize)]) {
    let mut previous = 0;
    for &(address, index) in lock_order.iter().rev() {
        if address != previous
            && let Some(channel) = cases[index].ops().channel()
        {
            // SAFETY: locked by `lock_all`, once per channel.
            unsafe { channel.unlock() };
            previous = address;
        }
    }
}

/// Takes the waiter's entries out of every case's channel.
fn leave_all<C: CaseSlot>(cases: &mut [C], lock_order: &[(usize, usize)], waiter: &SelectWaiter) {
    lock_all(cases, lock_order);
    for case in cases.iter_mut() {
        if let Some(channel) = case.ops().channel() {
            // SAFETY: every channel is locked.
            unsafe { channel.remove_waiter(waiter) };
        }
    }
    // SAFETY: locked by `lock_all` above.
    unsafe { unlock_all(cases, lock_order) };
}
