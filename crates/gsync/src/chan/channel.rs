//! The channel itself: its buffer and the queues of blocked senders and receivers under one
//! lock, and the blocking send and receive.
//!
//! Everything else reaches the state through [`Channel`]'s methods. The handles call the ones
//! that take the lock themselves; `select`, which must hold several channels' locks at once,
//! takes them with [`Channel::lock`] and calls the `_locked` methods, which are `unsafe` for
//! that reason.

use std::collections::VecDeque;
use std::time::Instant;

use crate::lock_cell::LockCell;
use crate::shim::{self, AtomicUsize, Ordering};
use crate::waiter::{SelectRef, SelectWaiter, Selected};

pub(crate) struct Channel<T> {
    state: LockCell<State<T>>,
    capacity: usize,
    sender_count: AtomicUsize,
    receiver_count: AtomicUsize,
}

struct State<T> {
    buffer: VecDeque<T>,
    closed: bool,
    receivers_gone: bool,
    /// Blocked senders, each with the slot holding the value it offers.
    senders: VecDeque<Entry<T>>,
    /// Blocked receivers, each with the empty slot a sender fills.
    receivers: VecDeque<Entry<T>>,
}

/// A blocked send or receive: the waiter, which of its cases this is, and its value slot (on the
/// waiter's stack).
struct Entry<T> {
    waiter: SelectRef,
    case: usize,
    slot: *mut Option<T>,
}

// SAFETY: entries are touched only under their channel's lock while the waiter is blocked; the
// slot's value crosses threads as a sent `T` does.
unsafe impl<T: Send> Send for Entry<T> {}

/// What a send attempt did.
pub(crate) enum SendAttempt {
    Sent,
    /// The channel is closed or has no receivers; the value stays in the slot.
    Closed,
    WouldBlock,
}

/// What a receive attempt got.
pub(crate) enum RecvAttempt<T> {
    Received(T),
    Closed,
    WouldBlock,
}

impl<T> State<T> {
    /// Sends the slot's value if a receiver waits or the buffer has room.
    fn try_send(&mut self, capacity: usize, slot: &mut Option<T>) -> SendAttempt {
        if self.closed || self.receivers_gone {
            return SendAttempt::Closed;
        }
        while let Some(receiver) = self.receivers.pop_front() {
            // SAFETY: the entry is in this channel's queue and its lock is held.
            if unsafe { receiver.waiter.claim(receiver.case) } {
                // SAFETY: claimed: the receiver stays blocked, its slot untouched, until
                // `finish`.
                unsafe {
                    *receiver.slot = slot.take();
                    receiver.waiter.finish();
                }
                return SendAttempt::Sent;
            }
        }
        if self.buffer.len() < capacity {
            self.buffer
                .push_back(slot.take().expect("a send offers a value"));
            return SendAttempt::Sent;
        }
        SendAttempt::WouldBlock
    }

    /// Takes the next value: from the buffer (refilling it from a blocked sender), or straight
    /// from a blocked sender when unbuffered.
    fn try_recv(&mut self) -> RecvAttempt<T> {
        if let Some(value) = self.buffer.pop_front() {
            if let Some(offered) = self.take_from_sender() {
                self.buffer.push_back(offered);
            }
            return RecvAttempt::Received(value);
        }
        if let Some(offered) = self.take_from_sender() {
            return RecvAttempt::Received(offered);
        }
        if self.closed {
            RecvAttempt::Closed
        } else {
            RecvAttempt::WouldBlock
        }
    }

    fn take_from_sender(&mut self) -> Option<T> {
        while let Some(sender) = self.senders.pop_front() {
            // SAFETY: as in `try_send`.
            if unsafe { sender.waiter.claim(sender.case) } {
                // SAFETY: claimed: the sender stays blocked, its slot untouched, until `finish`.
                let value = unsafe {
                    let value = (*sender.slot).take();
                    sender.waiter.finish();
                    value
                };
                return value;
            }
        }
        None
    }

    /// Queues a blocked sender whose value is in `slot`.
    ///
    /// # Safety
    ///
    /// Until the entry leaves the queue (a claimant takes it out, or [`State::remove_waiter`]
    /// does), the waiter stays alive and `slot` stays where it is, untouched by its owner.
    unsafe fn enqueue_sender(&mut self, waiter: SelectRef, case: usize, slot: *mut Option<T>) {
        self.senders.push_back(Entry { waiter, case, slot });
    }

    /// Queues a blocked receiver, whose empty `slot` a sender fills.
    ///
    /// # Safety
    ///
    /// As for [`State::enqueue_sender`].
    unsafe fn enqueue_receiver(&mut self, waiter: SelectRef, case: usize, slot: *mut Option<T>) {
        self.receivers.push_back(Entry { waiter, case, slot });
    }

    /// Wakes every blocked sender and receiver with nothing: receivers see the channel closed
    /// and senders keep their values.
    fn release_all(&mut self) {
        for entry in self.senders.drain(..).chain(self.receivers.drain(..)) {
            // SAFETY: as in `try_send`; a claimed entry is finished without moving a value.
            unsafe {
                if entry.waiter.claim(entry.case) {
                    entry.waiter.finish();
                }
            }
        }
    }

    /// Takes a waiter's entries out of the queues (it is leaving).
    fn remove_waiter(&mut self, waiter: &SelectWaiter) {
        self.senders.retain(|entry| !entry.waiter.is(waiter));
        self.receivers.retain(|entry| !entry.waiter.is(waiter));
    }
}

impl<T> Channel<T> {
    /// An open channel with one sender and one receiver.
    pub(crate) fn new(capacity: usize) -> Self {
        Channel {
            state: LockCell::new(State {
                buffer: VecDeque::with_capacity(capacity.min(1024)),
                closed: false,
                receivers_gone: false,
                senders: VecDeque::new(),
                receivers: VecDeque::new(),
            }),
            capacity,
            sender_count: AtomicUsize::new(1),
            receiver_count: AtomicUsize::new(1),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.with(|state| state.closed)
    }

    pub(crate) fn len(&self) -> usize {
        self.state.with(|state| state.buffer.len())
    }

    /// Closes the channel and wakes every blocked party; false if it was closed already.
    pub(crate) fn close(&self) -> bool {
        self.state.with(|state| {
            if state.closed {
                return false;
            }
            state.closed = true;
            state.release_all();
            true
        })
    }

    pub(crate) fn add_sender(&self) {
        self.sender_count.fetch_add(1, Ordering::Relaxed);
    }

    /// A sender is gone; the last one closes the channel.
    pub(crate) fn remove_sender(&self) {
        if self.sender_count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.close();
        }
    }

    pub(crate) fn add_receiver(&self) {
        self.receiver_count.fetch_add(1, Ordering::Relaxed);
    }

    /// A receiver is gone. After the last one nobody can receive any more: blocked senders get
    /// their values back, and buffered values are dropped here, outside the lock, since dropping
    /// runs user code.
    pub(crate) fn remove_receiver(&self) {
        if self.receiver_count.fetch_sub(1, Ordering::AcqRel) == 1 {
            let buffered = self.state.with(|state| {
                state.receivers_gone = true;
                state.release_all();
                std::mem::take(&mut state.buffer)
            });
            drop(buffered);
        }
    }

    /// Sends the slot's value if that can be done without waiting.
    pub(crate) fn try_send(&self, slot: &mut Option<T>) -> SendAttempt {
        self.state.with(|state| state.try_send(self.capacity, slot))
    }

    /// Receives a value if one is ready now.
    pub(crate) fn try_recv(&self) -> RecvAttempt<T> {
        self.state.with(State::try_recv)
    }

    /// A blocking send with an optional deadline. On failure the value comes back, with
    /// whether the channel was closed (else the deadline passed).
    pub(crate) fn send(&self, value: T, deadline: Option<Instant>) -> Result<(), (T, bool)> {
        let mut slot = Some(value);
        // Made only when the send must wait, under the lock.
        let mut waiter = None;
        let begun = self
            .state
            .with(|state| match state.try_send(self.capacity, &mut slot) {
                SendAttempt::Sent => Some(Ok(())),
                SendAttempt::Closed => Some(Err(true)),
                SendAttempt::WouldBlock if deadline.is_some_and(shim::expired) => Some(Err(false)),
                SendAttempt::WouldBlock => {
                    let waiter = waiter.insert(SelectWaiter::for_deadline(deadline));
                    // SAFETY: `waiter` and `slot` outlive the entry and `slot` is left alone
                    // while it is queued: a claimant takes it out before the wait below ends;
                    // otherwise the time-out path, or `leave` when unwinding, removes it first.
                    unsafe { state.enqueue_sender(waiter.as_ref(), 0, &mut slot) };
                    None
                }
            });
        let outcome = match (begun, &waiter) {
            (Some(outcome), _) => outcome,
            (None, None) => unreachable!("a send that waits has a waiter"),
            (None, Some(waiter)) => {
                match waiter.wait(deadline, "chan send", |waiter| self.leave(waiter)) {
                    // Claimed: the value is gone if a receiver took it, still here if closed.
                    Selected::Case(_) => match slot.is_some() {
                        false => Ok(()),
                        true => Err(true),
                    },
                    Selected::TimedOut => {
                        self.state.with(|state| state.remove_waiter(waiter));
                        Err(false)
                    }
                }
            }
        };
        outcome.map_err(|closed| {
            (
                slot.take().expect("an unsent value stays in its slot"),
                closed,
            )
        })
    }

    /// A blocking receive with an optional deadline: `Err(true)` when closed and drained,
    /// `Err(false)` when the deadline passed.
    pub(crate) fn recv(&self, deadline: Option<Instant>) -> Result<T, bool> {
        let mut slot = None;
        // Made only when the receive must wait, under the lock.
        let mut waiter = None;
        let begun = self.state.with(|state| match state.try_recv() {
            RecvAttempt::Received(value) => Some(Ok(value)),
            RecvAttempt::Closed => Some(Err(true)),
            RecvAttempt::WouldBlock if deadline.is_some_and(shim::expired) => Some(Err(false)),
            RecvAttempt::WouldBlock => {
                let waiter = waiter.insert(SelectWaiter::for_deadline(deadline));
                // SAFETY: as in `send`.
                unsafe { state.enqueue_receiver(waiter.as_ref(), 0, &mut slot) };
                None
            }
        });
        let waiter = match (begun, &waiter) {
            (Some(outcome), _) => return outcome,
            (None, None) => unreachable!("a receive that waits has a waiter"),
            (None, Some(waiter)) => waiter,
        };
        match waiter.wait(deadline, "chan receive", |waiter| self.leave(waiter)) {
            // Claimed: a sender filled the slot, or the channel closed and it stayed empty.
            Selected::Case(_) => slot.take().ok_or(true),
            Selected::TimedOut => {
                self.state.with(|state| state.remove_waiter(waiter));
                Err(false)
            }
        }
    }

    /// The unwinding path of a blocked operation: leave the queues, then settle.
    fn leave(&self, waiter: &SelectWaiter) {
        self.state.with(|state| state.remove_waiter(waiter));
        waiter.settle();
    }

    /// The address that orders this channel's lock among others when `select` takes several.
    pub(crate) fn lock_address(&self) -> usize {
        self.state.address()
    }

    /// Takes the channel's lock for the `_locked` methods; [`Channel::unlock`] gives it back.
    pub(crate) fn lock(&self) {
        self.state.lock();
    }

    /// # Safety
    ///
    /// The caller holds the lock, taken with [`Channel::lock`].
    pub(crate) unsafe fn unlock(&self) {
        // SAFETY: the caller holds the lock.
        unsafe { self.state.unlock() }
    }

    /// [`Channel::try_send`] under a lock the caller holds.
    ///
    /// # Safety
    ///
    /// The caller holds the lock, taken with [`Channel::lock`].
    pub(crate) unsafe fn try_send_locked(&self, slot: &mut Option<T>) -> SendAttempt {
        // SAFETY: the caller holds the lock.
        unsafe {
            self.state
                .with_locked(|state| state.try_send(self.capacity, slot))
        }
    }

    /// [`Channel::try_recv`] under a lock the caller holds.
    ///
    /// # Safety
    ///
    /// The caller holds the lock, taken with [`Channel::lock`].
    pub(crate) unsafe fn try_recv_locked(&self) -> RecvAttempt<T> {
        // SAFETY: the caller holds the lock.
        unsafe { self.state.with_locked(State::try_recv) }
    }

    /// Queues `waiter`'s case `case` as a blocked sender offering the value in `slot`.
    ///
    /// # Safety
    ///
    /// The caller holds the lock, taken with [`Channel::lock`]; and until the entry leaves the
    /// queue (a claimant takes it out, or [`Channel::remove_waiter_locked`] does), the waiter
    /// stays alive and `slot` stays where it is, untouched by its owner.
    pub(crate) unsafe fn enqueue_sender_locked(
        &self,
        waiter: SelectRef,
        case: usize,
        slot: *mut Option<T>,
    ) {
        // SAFETY: the caller holds the lock, and keeps the waiter and slot as `enqueue_sender`
        // needs.
        unsafe {
            self.state
                .with_locked(|state| state.enqueue_sender(waiter, case, slot));
        }
    }

    /// Queues `waiter`'s case `case` as a blocked receiver whose empty `slot` a sender fills.
    ///
    /// # Safety
    ///
    /// As for [`Channel::enqueue_sender_locked`].
    pub(crate) unsafe fn enqueue_receiver_locked(
        &self,
        waiter: SelectRef,
        case: usize,
        slot: *mut Option<T>,
    ) {
        // SAFETY: as in `enqueue_sender_locked`.
        unsafe {
            self.state
                .with_locked(|state| state.enqueue_receiver(waiter, case, slot));
        }
    }

    /// Takes the waiter's entries out of the queues.
    ///
    /// # Safety
    ///
    /// The caller holds the lock, taken with [`Channel::lock`].
    pub(crate) unsafe fn remove_waiter_locked(&self, waiter: &SelectWaiter) {
        // SAFETY: the caller holds the lock.
        unsafe {
            self.state.with_locked(|state| state.remove_waiter(waiter));
        }
    }
}
