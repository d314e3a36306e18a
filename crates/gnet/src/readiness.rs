//! A registered socket's readiness, and the goroutines waiting for it.
//!
//! # The protocol
//!
//! The readiness word holds the directions the poller saw ready since an operation last found
//! them not to be, and a tick that every event (and every deadline change or close) moves on.
//! An operation reads the word first:
//!
//! - If its direction is not ready, the call would fail: it waits at once (step 2).
//! - Else it tries its system call. On `WouldBlock` it clears its direction's bits, but only if
//!   the tick is the one it read before the call (`IoState::clear`): an event that came after
//!   that read is not lost. It then waits, unless the clear failed, in which case it retries at
//!   once. A short read or write (the queue is empty, the buffer full) clears the ready bit the
//!   same way, but keeps a closed or error bit (`IoState::clear_drained`): a read that stopped
//!   short at the peer's end of stream must still find that end.
//!
//! Step 2 (`IoState::wait`): the operation adds itself to the waiters under their lock, and
//! looks at the word once more under that lock: ready bits, or a tick moved on from the one it
//! read, and it returns to retry instead of parking.
//!
//! The poller sets the bits and moves the tick first, and then takes the same lock to wake the
//! waiters of those directions (`IoState::set_ready`). Either the waiter's look under the lock
//! sees the change, or the poller's wake finds the waiter in the list. Waking is a `gsched`
//! unpark, which a goroutine that has not parked yet keeps as a token, so a wake between the
//! lock and the park is not lost either. Sockets are registered edge-triggered: data that
//! arrives after a read emptied the queue is a new edge, so a cleared bit always comes back.

use std::time::Instant;

use crate::shim::{self, AtomicUsize, Mutex, MutexGuard, Ordering, Unparker};

/// A direction of I/O.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

/// Readiness bits, as the poller reported them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ready(usize);

impl Ready {
    pub(crate) const READABLE: Ready = Ready(1);
    pub(crate) const WRITABLE: Ready = Ready(2);
    pub(crate) const READ_CLOSED: Ready = Ready(4);
    pub(crate) const WRITE_CLOSED: Ready = Ready(8);
    pub(crate) const ERROR: Ready = Ready(16);
    /// Urgent data came once: reads may stop short at its mark for the socket's whole life,
    /// so a short read no longer says the queue is empty. Never cleared.
    pub(crate) const URGENT: Ready = Ready(32);
    const ALL: usize = 63;

    #[cfg(not(goroutines_loom))]
    pub(crate) fn from_event(event: &mio::event::Event) -> Ready {
        let mut ready = 0;
        if event.is_readable() {
            ready |= Ready::READABLE.0;
        }
        if event.is_writable() {
            ready |= Ready::WRITABLE.0;
        }
        if event.is_read_closed() {
            ready |= Ready::READ_CLOSED.0;
        }
        if event.is_write_closed() {
            ready |= Ready::WRITE_CLOSED.0;
        }
        if event.is_error() {
            ready |= Ready::ERROR.0;
        }
        if event.is_priority() {
            ready |= Ready::URGENT.0 | Ready::READABLE.0;
        }
        Ready(ready)
    }

    /// Every bit that lets an operation in `direction` go on (an error ends either).
    fn of(direction: Direction) -> usize {
        match direction {
            Direction::Read => Ready::READABLE.0 | Ready::READ_CLOSED.0 | Ready::ERROR.0,
            Direction::Write => Ready::WRITABLE.0 | Ready::WRITE_CLOSED.0 | Ready::ERROR.0,
        }
    }
}

/// The tick's place in the readiness word.
const TICK_SHIFT: u32 = 8;

/// One goroutine (or thread) waiting for a direction.
struct Waiter {
    direction: Direction,
    key: u64,
    unparker: Unparker,
}

#[derive(Default)]
struct Waiters {
    list: Vec<Waiter>,
    next_key: u64,
}

/// What the poller knows of one registered socket.
#[derive(Default)]
pub(crate) struct IoState {
    readiness: AtomicUsize,
    waiters: Mutex<Waiters>,
}

/// The readiness word as an operation read it before its system call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Snapshot(usize);

impl Snapshot {
    /// Whether the poller saw `direction` ready (or closed, or in error) since it was last
    /// found not to be.
    pub(crate) fn is_ready(self, direction: Direction) -> bool {
        self.0 & Ready::of(direction) != 0
    }
}

impl IoState {
    fn waiters(&self) -> MutexGuard<'_, Waiters> {
        shim::lock(&self.waiters)
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot(self.readiness.load(Ordering::Acquire))
    }

    /// Step 1, after `WouldBlock`: forgets `direction`'s readiness if the tick has not moved
    /// since `seen`; false if it did (the caller retries its call rather than wait).
    pub(crate) fn clear(&self, direction: Direction, seen: Snapshot) -> bool {
        self.clear_bits(Ready::of(direction), seen)
    }

    /// Step 1, after a short read or write: forgets that `direction` is ready, but not that it
    /// is closed or in error (a read that stopped short at the peer's end of stream leaves
    /// that end to be read, and no new event will announce it).
    pub(crate) fn clear_drained(&self, direction: Direction, seen: Snapshot) {
        if seen.0 & Ready::URGENT.0 != 0 {
            return;
        }
        let bits = match direction {
            Direction::Read => Ready::READABLE.0,
            Direction::Write => Ready::WRITABLE.0,
        };
        self.clear_bits(bits, seen);
    }

    fn clear_bits(&self, bits: usize, seen: Snapshot) -> bool {
        self.readiness
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                (word >> TICK_SHIFT == seen.0 >> TICK_SHIFT).then_some(word & !bits)
            })
            .is_ok()
    }

    /// Step 2: parks the caller until `direction` may be ready, until `deadline`, or until
    /// anything moves the tick on from `seen` (an event, a deadline change, a close). May
    /// return early; the caller retries its call.
    pub(crate) fn wait(&self, direction: Direction, seen: Snapshot, deadline: Option<Instant>) {
        let key = {
            let mut waiters = self.waiters();
            let word = self.readiness.load(Ordering::Acquire);
            if word & Ready::of(direction) != 0 || word >> TICK_SHIFT != seen.0 >> TICK_SHIFT {
                return;
            }
            let key = waiters.next_key;
            waiters.next_key += 1;
            waiters.list.push(Waiter {
                direction,
                key,
                unparker: Unparker::current(),
            });
            key
        };
        // Out of the list however the park ends, an unwind at runtime shutdown included: a
        // stale entry would keep the goroutine's runtime alive through its unparker.
        let _leave = LeaveWaiters { io: self, key };
        shim::park(deadline, IO_WAIT);
    }

    /// The poller's side: records `ready` and wakes the waiters it concerns.
    pub(crate) fn set_ready(&self, ready: Ready) {
        let ready = ready.0 & Ready::ALL;
        self.readiness
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                let tick = (word >> TICK_SHIFT).wrapping_add(1);
                Some((tick << TICK_SHIFT) | (word & Ready::ALL) | ready)
            })
            .ok();
        // Unparking under the lock: it never takes this lock, and a woken goroutine that
        // reaches its own `retain` first just waits for it a moment.
        self.waiters().list.retain(|waiter| {
            let concerned = ready & Ready::of(waiter.direction) != 0;
            if concerned {
                waiter.unparker.unpark();
            }
            !concerned
        });
    }

    /// Moves the tick on and wakes every waiter, without recording readiness: operations
    /// look at their socket's closed flag and deadline again.
    pub(crate) fn wake_all(&self) {
        self.readiness.fetch_add(1 << TICK_SHIFT, Ordering::AcqRel);
        let woken: Vec<Waiter> = std::mem::take(&mut self.waiters().list);
        for waiter in woken {
            waiter.unparker.unpark();
        }
    }
}

/// Takes one waiter out of the list when dropped.
struct LeaveWaiters<'a> {
    io: &'a IoState,
    key: u64,
}

impl Drop for LeaveWaiters<'_> {
    fn drop(&mut self) {
        let key = self.key;
        self.io.waiters().list.retain(|waiter| waiter.key != key);
    }
}

/// The wait reason of a goroutine parked on a socket in the goroutine dump, as Go's.
pub(crate) const IO_WAIT: &str = "IO wait";
