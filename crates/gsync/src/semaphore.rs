//! `Semaphore`: a weighted semaphore, as `golang.org/x/sync/semaphore`.
//!
//! Waiters queue in arrival order and are served strictly in that order: a release wakes the
//! waiters at the front for as long as they fit, and stops at the first that does not, so a
//! large request is never starved by a stream of small ones (Go's fairness).
//!
//! Each waiter waits on a one-slot channel of its own, which the releaser fills while holding
//! the semaphore's lock, and on its context's `done` channel, in one `select!`: the waiting is
//! the channel's and `select`'s, which the loom models `select_takes_exactly_one_case` and
//! `channel_close_wakes_every_waiter` check; the queue is plain data under the lock.

use std::collections::VecDeque;
use std::fmt;

use crate::chan::{Sender, chan};
use crate::context::{Context, ContextError};
use crate::lock_cell::LockCell;
use crate::select;
use crate::shim;

/// A weighted semaphore: `size` units, taken and given back in any amounts.
///
/// ```
/// use std::sync::Arc;
/// use gsync::{Semaphore, WaitGroup};
///
/// // At most 3 units of work at once, whatever the number of goroutines.
/// let slots = Arc::new(Semaphore::new(3));
/// let wg = WaitGroup::new();
/// for job in 0..10u64 {
///     let slots = slots.clone();
///     slots.acquire(1);
///     wg.go(move || {
///         let _ = job * job;
///         slots.release(1);
///     });
/// }
/// wg.wait();
/// assert!(slots.try_acquire(3));
/// ```
pub struct Semaphore {
    size: u64,
    state: LockCell<State>,
}

struct State {
    /// Units held now.
    held: u64,
    waiters: VecDeque<Waiting>,
    next_ticket: u64,
}

struct Waiting {
    ticket: u64,
    weight: u64,
    ready: Sender<()>,
}

impl State {
    /// Grants the waiters at the front while they fit (Go's `notifyWaiters`); returns their
    /// channels, to be signalled once the lock is let go: a send passes a preemption
    /// checkpoint, where no lock of this crate may be held.
    #[must_use]
    fn grant_waiters(&mut self, size: u64) -> Vec<Sender<()>> {
        let mut granted = Vec::new();
        while let Some(front) = self.waiters.front() {
            if size - self.held < front.weight {
                break;
            }
            self.held += front.weight;
            granted.push(self.waiters.pop_front().expect("looked at above").ready);
        }
        granted
    }
}

/// Wakes granted waiters. Each channel has one slot that nothing else sends on, so the send
/// never blocks; a waiter that gave up meanwhile finds its ticket gone and gives the units
/// back (see `acquire_ctx`).
fn signal(granted: Vec<Sender<()>>) {
    for ready in granted {
        let _ = ready.try_send(());
    }
}

impl Semaphore {
    /// A semaphore of `size` units, all free.
    pub fn new(size: u64) -> Self {
        Semaphore {
            size,
            state: LockCell::new(State {
                held: 0,
                waiters: VecDeque::new(),
                next_ticket: 0,
            }),
        }
    }

    /// Takes `n` units, parking until they are free and every earlier waiter is served.
    ///
    /// # Panics
    ///
    /// If `n` exceeds the size: it could never succeed (Go's `Acquire` would block until its
    /// context ends; [`acquire_ctx`](Self::acquire_ctx) does that).
    pub fn acquire(&self, n: u64) {
        assert!(
            n <= self.size,
            "semaphore: acquire of {n} units exceeds the size {}: it could never succeed",
            self.size
        );
        let outcome = self.acquire_ctx(&Context::background(), n);
        outcome.expect("the background context is never done");
    }

    /// Takes `n` units, parking until they are free or `ctx` is done; on `Err`, nothing is
    /// taken. A context already done fails at once, even if the units are free (Go's
    /// `Acquire`). More units than the size wait for the context.
    ///
    /// # Errors
    ///
    /// The context's reason, once it is done.
    pub fn acquire_ctx(&self, ctx: &Context, n: u64) -> Result<(), ContextError> {
        shim::checkpoint();
        if let Some(err) = ctx.err() {
            return Err(err);
        }
        if n > self.size {
            return Err(ctx.wait());
        }
        let (ready_tx, ready) = chan::<()>(1);
        let ticket = self.state.with(|state| {
            if state.waiters.is_empty() && self.size - state.held >= n {
                state.held += n;
                return None;
            }
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            state.waiters.push_back(Waiting {
                ticket,
                weight: n,
                ready: ready_tx,
            });
            Some(ticket)
        });
        let Some(ticket) = ticket else {
            return Ok(());
        };
        // A goroutine unwound while it waits (its runtime shutting down) must leave the queue.
        let mut waiting = LeaveOnUnwind {
            semaphore: self,
            ticket,
            weight: n,
            armed: true,
        };
        let granted = select! {
            recv(ready) -> _granted => true,
            recv(ctx.done_if_it_can_end()) -> _done => false,
        };
        waiting.armed = false;
        if granted {
            // Granted, but the context may have ended meanwhile: as Go, the context wins.
            return match ctx.err() {
                Some(err) => {
                    self.release(n);
                    Err(err)
                }
                None => Ok(()),
            };
        }
        self.abandon(ticket, n);
        Err(ctx.err().expect("the context's channel closed"))
    }

    /// A waiter gives up: it leaves the queue, or gives back the units it was granted just as
    /// it gave up; the waiters behind may fit then.
    fn abandon(&self, ticket: u64, n: u64) {
        let (granted, left) = self.state.with(|state| {
            match state
                .waiters
                .iter()
                .position(|waiting| waiting.ticket == ticket)
            {
                Some(index) => {
                    let left = state.waiters.remove(index);
                    let granted = if index == 0 {
                        state.grant_waiters(self.size)
                    } else {
                        Vec::new()
                    };
                    (granted, left)
                }
                None => {
                    state.held -= n;
                    (state.grant_waiters(self.size), None)
                }
            }
        });
        // Dropped once the lock is let go: dropping a sender closes its channel.
        drop(left);
        signal(granted);
    }

    /// Takes `n` units if they are free and nobody waits; never parks.
    pub fn try_acquire(&self, n: u64) -> bool {
        shim::checkpoint();
        self.state.with(|state| {
            let free = state.waiters.is_empty() && self.size - state.held >= n;
            if free {
                state.held += n;
            }
            free
        })
    }

    /// Gives `n` units back, waking the waiters they let through.
    ///
    /// # Panics
    ///
    /// If more units are released than are held, with Go's message.
    pub fn release(&self, n: u64) {
        let granted = self.state.with(|state| {
            if n > state.held {
                return None;
            }
            state.held -= n;
            Some(state.grant_waiters(self.size))
        });
        match granted {
            Some(granted) => signal(granted),
            None => panic!("semaphore: released more than held"),
        }
    }

    /// The size given to [`new`](Self::new).
    pub fn size(&self) -> u64 {
        self.size
    }
}

/// Takes an unwinding waiter out of the queue (see `Semaphore::abandon`).
struct LeaveOnUnwind<'a> {
    semaphore: &'a Semaphore,
    ticket: u64,
    weight: u64,
    armed: bool,
}

impl Drop for LeaveOnUnwind<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.semaphore.abandon(self.ticket, self.weight);
        }
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (held, waiting) = self.state.with(|state| (state.held, state.waiters.len()));
        f.debug_struct("Semaphore")
            .field("size", &self.size)
            .field("held", &held)
            .field("waiting", &waiting)
            .finish()
    }
}
