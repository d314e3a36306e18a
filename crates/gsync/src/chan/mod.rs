//! Go's channels: typed, many-to-many, unbuffered (rendezvous) or buffered, closable, and
//! selectable with [`select!`](crate::select!).

mod errors;
mod select;
#[cfg(not(goroutines_loom))]
mod timer;

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use crate::raw_lock::LockCell;
use crate::shim::{self, Arc, AtomicUsize, Ordering};
use crate::waiter::{SelectRef, SelectWaiter, Selected};

pub use errors::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
#[doc(hidden)]
pub use select::{Case, RecvCase, SelectMode, SendCase, select_cases};
#[cfg(not(goroutines_loom))]
pub use timer::{after, tick};

/// Creates a channel with room for `capacity` values: `0` makes it unbuffered, so a send
/// completes only when a receiver takes the value (Go's `make(chan T)`).
///
/// Both halves clone: any number of goroutines (or threads) may send and receive. The channel
/// closes when [`Sender::close`] is called or the last `Sender` is dropped; receivers then drain
/// what is buffered and see [`RecvError`]. A send on a closed channel, or one nobody can receive
/// from any more, returns the value in a [`SendError`].
///
/// ```
/// use gsync::chan;
///
/// let (tx, rx) = chan::<u32>(0);
/// gsched::go(move || {
///     for i in 0..3 {
///         tx.send(i).unwrap();
///     }
///     // Dropping the last sender closes the channel.
/// });
/// assert_eq!(rx.iter().collect::<Vec<_>>(), [0, 1, 2]);
/// ```
pub fn chan<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let channel = Arc::new(Channel {
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
    });
    (
        Sender {
            channel: Arc::clone(&channel),
        },
        Receiver { channel },
    )
}

pub(crate) struct Channel<T> {
    state: LockCell<State<T>>,
    capacity: usize,
    sender_count: AtomicUsize,
    receiver_count: AtomicUsize,
}

pub(crate) struct State<T> {
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
pub(crate) struct Entry<T> {
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
    pub(crate) fn try_send(&mut self, capacity: usize, slot: &mut Option<T>) -> SendAttempt {
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
    pub(crate) fn try_recv(&mut self) -> RecvAttempt<T> {
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
    pub(crate) fn remove_waiter(&mut self, waiter: &SelectWaiter) {
        self.senders.retain(|entry| !entry.waiter.is(waiter));
        self.receivers.retain(|entry| !entry.waiter.is(waiter));
    }
}

impl<T> Channel<T> {
    pub(crate) fn lock_cell(&self) -> &LockCell<State<T>> {
        &self.state
    }

    fn is_closed(&self) -> bool {
        self.state.with(|state| state.closed)
    }

    fn len(&self) -> usize {
        self.state.with(|state| state.buffer.len())
    }

    fn close(&self) -> bool {
        self.state.with(|state| {
            if state.closed {
                return false;
            }
            state.closed = true;
            state.release_all();
            true
        })
    }

    /// A blocking send with an optional deadline. On failure the value comes back, with
    /// whether the channel was closed (else the deadline passed).
    fn send(&self, value: T, deadline: Option<Instant>) -> Result<(), (T, bool)> {
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
                    state.senders.push_back(Entry {
                        waiter: waiter.as_ref(),
                        case: 0,
                        slot: &mut slot,
                    });
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
    fn recv(&self, deadline: Option<Instant>) -> Result<T, bool> {
        let mut slot = None;
        // Made only when the receive must wait, under the lock.
        let mut waiter = None;
        let begun = self.state.with(|state| match state.try_recv() {
            RecvAttempt::Received(value) => Some(Ok(value)),
            RecvAttempt::Closed => Some(Err(true)),
            RecvAttempt::WouldBlock if deadline.is_some_and(shim::expired) => Some(Err(false)),
            RecvAttempt::WouldBlock => {
                let waiter = waiter.insert(SelectWaiter::for_deadline(deadline));
                state.receivers.push_back(Entry {
                    waiter: waiter.as_ref(),
                    case: 0,
                    slot: &mut slot,
                });
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
}

/// The sending half of a channel; clone it for more senders.
pub struct Sender<T> {
    channel: Arc<Channel<T>>,
}

/// The receiving half of a channel; clone it for more receivers.
pub struct Receiver<T> {
    channel: Arc<Channel<T>>,
}

impl<T> Sender<T> {
    /// Sends `value`, parking until a receiver takes it (unbuffered) or the buffer has room.
    ///
    /// # Errors
    ///
    /// If the channel is closed, or every receiver is gone, the value comes back in the error.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.channel
            .send(value, None)
            .map_err(|(value, _)| SendError(value))
    }

    /// Sends `value` if that can be done without waiting.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] when it would wait, [`TrySendError::Closed`] when closed; either
    /// way with the value.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let mut slot = Some(value);
        let attempt = self
            .channel
            .state
            .with(|state| state.try_send(self.channel.capacity, &mut slot));
        match attempt {
            SendAttempt::Sent => Ok(()),
            SendAttempt::Closed => Err(TrySendError::Closed(slot.take().expect("unsent"))),
            SendAttempt::WouldBlock => Err(TrySendError::Full(slot.take().expect("unsent"))),
        }
    }

    /// Sends `value`, waiting at most `timeout`. A `timeout` too long for an [`Instant`] to
    /// represent means no deadline, as [`std::thread::park_timeout`] has it.
    ///
    /// # Errors
    ///
    /// [`SendTimeoutError::Timeout`] or [`SendTimeoutError::Closed`], with the value.
    pub fn send_timeout(&self, value: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.send_deadline(value, deadline),
            None => self
                .send(value)
                .map_err(|SendError(value)| SendTimeoutError::Closed(value)),
        }
    }

    /// Sends `value`, waiting until `deadline` at the latest.
    ///
    /// # Errors
    ///
    /// As [`send_timeout`](Sender::send_timeout).
    pub fn send_deadline(&self, value: T, deadline: Instant) -> Result<(), SendTimeoutError<T>> {
        self.channel
            .send(value, Some(deadline))
            .map_err(|(value, closed)| match closed {
                true => SendTimeoutError::Closed(value),
                false => SendTimeoutError::Timeout(value),
            })
    }

    /// Closes the channel: blocked and later receivers get what is buffered and then
    /// [`RecvError`]; blocked and later senders get their values back.
    ///
    /// # Panics
    ///
    /// With Go's message `close of closed channel` if it was closed with `close` before.
    /// (Dropping the last sender closes it too, without a panic.)
    pub fn close(&self) {
        if !self.channel.close() {
            panic!("close of closed channel");
        }
    }

    /// Whether the channel is closed.
    pub fn is_closed(&self) -> bool {
        self.channel.is_closed()
    }

    /// The number of values buffered now.
    pub fn len(&self) -> usize {
        self.channel.len()
    }

    /// Whether no value is buffered now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer's capacity (0 for an unbuffered channel).
    pub fn capacity(&self) -> usize {
        self.channel.capacity
    }

    #[doc(hidden)]
    pub fn select_case(&self, value: T) -> SendCase<'_, T> {
        SendCase::new(&self.channel, value)
    }
}

impl<T> Receiver<T> {
    /// Receives the next value, parking until one is sent.
    ///
    /// # Errors
    ///
    /// [`RecvError`] once the channel is closed and drained.
    pub fn recv(&self) -> Result<T, RecvError> {
        self.channel.recv(None).map_err(|_| RecvError)
    }

    /// Receives a value if one is ready now.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] when it would wait, [`TryRecvError::Closed`] once closed and
    /// drained.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        match self.channel.state.with(State::try_recv) {
            RecvAttempt::Received(value) => Ok(value),
            RecvAttempt::Closed => Err(TryRecvError::Closed),
            RecvAttempt::WouldBlock => Err(TryRecvError::Empty),
        }
    }

    /// Receives a value, waiting at most `timeout`. A `timeout` too long for an [`Instant`] to
    /// represent means no deadline, as [`std::thread::park_timeout`] has it.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] or [`RecvTimeoutError::Closed`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.recv_deadline(deadline),
            None => self.recv().map_err(|RecvError| RecvTimeoutError::Closed),
        }
    }

    /// Receives a value, waiting until `deadline` at the latest.
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Receiver::recv_timeout).
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.channel
            .recv(Some(deadline))
            .map_err(|closed| match closed {
                true => RecvTimeoutError::Closed,
                false => RecvTimeoutError::Timeout,
            })
    }

    /// An iterator that receives until the channel is closed and drained (Go's `range ch`).
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { receiver: self }
    }

    /// An iterator over the values ready now, without waiting.
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { receiver: self }
    }

    /// Whether the channel is closed (values may still be buffered).
    pub fn is_closed(&self) -> bool {
        self.channel.is_closed()
    }

    /// The number of values buffered now.
    pub fn len(&self) -> usize {
        self.channel.len()
    }

    /// Whether no value is buffered now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer's capacity (0 for an unbuffered channel).
    pub fn capacity(&self) -> usize {
        self.channel.capacity
    }

    #[doc(hidden)]
    pub fn select_case(&self) -> RecvCase<'_, T> {
        RecvCase::new(&self.channel)
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.channel.sender_count.fetch_add(1, Ordering::Relaxed);
        Sender {
            channel: Arc::clone(&self.channel),
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.channel.receiver_count.fetch_add(1, Ordering::Relaxed);
        Receiver {
            channel: Arc::clone(&self.channel),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.channel.sender_count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.channel.close();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        if self.channel.receiver_count.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Nobody can receive any more: blocked senders get their values back, and buffered
            // values are dropped here, outside the lock, since dropping runs user code.
            let buffered = self.channel.state.with(|state| {
                state.receivers_gone = true;
                state.release_all();
                std::mem::take(&mut state.buffer)
            });
            drop(buffered);
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("capacity", &self.channel.capacity)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("capacity", &self.channel.capacity)
            .finish_non_exhaustive()
    }
}

/// Receives until the channel is closed and drained; see [`Receiver::iter`].
#[derive(Debug)]
pub struct Iter<'a, T> {
    receiver: &'a Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.receiver.recv().ok()
    }
}

/// The values ready now; see [`Receiver::try_iter`].
#[derive(Debug)]
pub struct TryIter<'a, T> {
    receiver: &'a Receiver<T>,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.receiver.try_recv().ok()
    }
}

/// Receives until the channel is closed and drained, owning the receiver.
#[derive(Debug)]
pub struct IntoIter<T> {
    receiver: Receiver<T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.receiver.recv().ok()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;

    fn into_iter(self) -> IntoIter<T> {
        IntoIter { receiver: self }
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

// A panic leaves a channel consistent: its state changes only under its lock, in steps that do
// not panic halfway, and values are never dropped under the lock.
impl<T> std::panic::UnwindSafe for Sender<T> {}
impl<T> std::panic::RefUnwindSafe for Sender<T> {}
impl<T> std::panic::UnwindSafe for Receiver<T> {}
impl<T> std::panic::RefUnwindSafe for Receiver<T> {}
