//! Go's channels: typed, many-to-many, unbuffered (rendezvous) or buffered, closable, and
//! selectable with [`select!`](crate::select!).

mod channel;
mod dynamic;
mod errors;
mod iter;
mod select;
mod select_macro;
#[cfg(not(goroutines_loom))]
mod timer;

use std::fmt;
use std::time::{Duration, Instant};

use crate::shim::Arc;
use channel::{Channel, RecvAttempt, SendAttempt};

pub use dynamic::{RecvOp, Select, Selected, SendOp};
pub use errors::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
pub use iter::{IntoIter, Iter, TryIter};
#[doc(hidden)]
pub use select::{Case, RecvCase, SelectMode, SelectRecv, SelectSend, SendCase, select_cases};
#[cfg(not(goroutines_loom))]
pub(crate) use timer::{TimerKey, timers};
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
    let channel = Arc::new(Channel::new(capacity));
    (
        Sender {
            channel: Arc::clone(&channel),
        },
        Receiver { channel },
    )
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
        crate::shim::checkpoint();
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
        crate::shim::checkpoint();
        let mut slot = Some(value);
        match self.channel.try_send(&mut slot) {
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
        crate::shim::checkpoint();
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
        self.channel.capacity()
    }

    pub(crate) fn channel(&self) -> &Channel<T> {
        &self.channel
    }
}

impl<T> Receiver<T> {
    /// Receives the next value, parking until one is sent.
    ///
    /// # Errors
    ///
    /// [`RecvError`] once the channel is closed and drained.
    pub fn recv(&self) -> Result<T, RecvError> {
        crate::shim::checkpoint();
        self.channel.recv(None).map_err(|_| RecvError)
    }

    /// Receives a value if one is ready now.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] when it would wait, [`TryRecvError::Closed`] once closed and
    /// drained.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        crate::shim::checkpoint();
        match self.channel.try_recv() {
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
        crate::shim::checkpoint();
        self.channel
            .recv(Some(deadline))
            .map_err(|closed| match closed {
                true => RecvTimeoutError::Closed,
                false => RecvTimeoutError::Timeout,
            })
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
        self.channel.capacity()
    }

    pub(crate) fn channel(&self) -> &Channel<T> {
        &self.channel
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.channel.add_sender();
        Sender {
            channel: Arc::clone(&self.channel),
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.channel.add_receiver();
        Receiver {
            channel: Arc::clone(&self.channel),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.channel.remove_sender();
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.channel.remove_receiver();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("capacity", &self.channel.capacity())
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("capacity", &self.channel.capacity())
            .finish_non_exhaustive()
    }
}

// A panic leaves a channel consistent: its state changes only under its lock, in steps that do
// not panic halfway, and values are never dropped under the lock.
impl<T> std::panic::UnwindSafe for Sender<T> {}
impl<T> std::panic::RefUnwindSafe for Sender<T> {}
impl<T> std::panic::UnwindSafe for Receiver<T> {}
impl<T> std::panic::RefUnwindSafe for Receiver<T> {}
