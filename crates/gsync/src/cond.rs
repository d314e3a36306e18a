//! `Cond`: Go's `sync.Cond`, waiting with a [`Mutex`] guard.

use std::collections::VecDeque;
use std::fmt;

use crate::lock_cell::LockCell;
use crate::mutex::{Mutex, MutexGuard};
use crate::waiter::{Waiter, WaiterRef};

/// The outcome a waiter is woken with.
const SIGNALED: usize = 1;

/// A condition variable: goroutines wait for an event while holding a [`Mutex`], and
/// [`signal`](Cond::signal) or [`broadcast`](Cond::broadcast) wakes them.
///
/// `wait` unlocks the mutex and parks as one step, so a signal sent after the waiter unlocked
/// reaches it; it relocks before returning. As in Go, wake-ups are not tied to the condition
/// itself, so wait in a loop (or use [`wait_while`](Cond::wait_while)).
///
/// ```
/// use gsync::{Cond, Mutex};
///
/// let ready = Mutex::new(false);
/// let cond = Cond::new();
/// gsched::scope(|s| {
///     s.go(|| {
///         let mut ready_now = ready.lock();
///         while !*ready_now {
///             ready_now = cond.wait(ready_now);
///         }
///     });
///     *ready.lock() = true;
///     cond.broadcast();
/// });
/// ```
pub struct Cond {
    waiters: LockCell<VecDeque<WaiterRef>>,
}

impl Cond {
    /// A condition variable nobody waits on.
    pub fn new() -> Self {
        Cond {
            waiters: LockCell::new(VecDeque::new()),
        }
    }

    /// Unlocks the guard's mutex, parks until signaled, and locks it again.
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        let mutex: &'a Mutex<T> = MutexGuard::mutex(&guard);
        let waiter = Waiter::new();
        self.waiters
            .with(|waiters| waiters.push_back(waiter.as_ref()));
        drop(guard);
        waiter.wait("sync.Cond.Wait", |waiter| waiter.leave(&self.waiters));
        mutex.lock()
    }

    /// Waits until `condition` is false, checking it under the lock after each wake-up.
    pub fn wait_while<'a, T: ?Sized>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: impl FnMut(&mut T) -> bool,
    ) -> MutexGuard<'a, T> {
        while condition(&mut guard) {
            guard = self.wait(guard);
        }
        guard
    }

    /// Wakes one waiter, if any (the longest waiting).
    pub fn signal(&self) {
        if let Some(waiter) = self.waiters.with(VecDeque::pop_front) {
            // SAFETY: taken out of the queue above, not yet woken.
            unsafe { waiter.wake(SIGNALED) };
        }
    }

    /// Wakes every waiter.
    pub fn broadcast(&self) {
        self.waiters.with(|waiters| {
            for waiter in waiters.drain(..) {
                // SAFETY: leaving the queue here, not yet woken.
                unsafe { waiter.wake(SIGNALED) };
            }
        });
    }
}

impl Default for Cond {
    fn default() -> Self {
        Cond::new()
    }
}

impl fmt::Debug for Cond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cond").finish_non_exhaustive()
    }
}

// A panic leaves the queue consistent: it is only changed under its lock, in steps that cannot
// panic halfway.
impl std::panic::UnwindSafe for Cond {}
impl std::panic::RefUnwindSafe for Cond {}
