//! `Cond`: Go's `sync.Cond`, waiting with a [`Mutex`] guard or over any [`Locker`].

use std::collections::VecDeque;
use std::fmt;

use crate::lock_cell::LockCell;
use crate::locker::Locker;
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
///
/// Over any [`Locker`], as Go's `sync.NewCond(l)`: [`Cond::with_locker`] keeps the locker,
/// and `wait` (called with it held) unlocks it while parked, as Go's `c.Wait()`.
///
/// ```
/// use gsync::{Cond, Locker, RwMutex};
///
/// let lock = RwMutex::new(());
/// let ready = std::sync::atomic::AtomicBool::new(false);
/// let cond = Cond::with_locker(lock.rlocker()); // readers wait, as with Go's RLocker
/// gsched::scope(|s| {
///     s.go(|| {
///         cond.locker().lock();
///         while !ready.load(std::sync::atomic::Ordering::Relaxed) {
///             cond.wait();
///         }
///         cond.locker().unlock();
///     });
///     lock.lock();
///     ready.store(true, std::sync::atomic::Ordering::Relaxed);
///     lock.unlock();
///     cond.broadcast();
/// });
/// ```
pub struct Cond<L = ()> {
    waiters: LockCell<VecDeque<WaiterRef>>,
    locker: L,
}

impl Cond {
    /// A condition variable nobody waits on, to wait with a [`MutexGuard`].
    pub fn new() -> Self {
        Cond {
            waiters: LockCell::new(VecDeque::new()),
            locker: (),
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
}

impl<L: Locker> Cond<L> {
    /// A condition variable over `locker` (Go's `sync.NewCond(l)`): a `&Mutex<()>`, a
    /// `&RwMutex<()>`, an [`RLocker`](crate::RLocker), or anything else that is a
    /// [`Locker`].
    pub fn with_locker(locker: L) -> Self {
        Cond {
            waiters: LockCell::new(VecDeque::new()),
            locker,
        }
    }

    /// The locker, held around `wait` (Go's `c.L`).
    pub fn locker(&self) -> &L {
        &self.locker
    }

    /// Unlocks the locker, parks until signaled, and locks it again (Go's `c.Wait()`). The
    /// caller holds the locker. The steps are those of the guard form, the unlock going
    /// through the locker: queued first, so a signal sent after the unlock reaches it.
    pub fn wait(&self) {
        let waiter = Waiter::new();
        self.waiters
            .with(|waiters| waiters.push_back(waiter.as_ref()));
        // A locker that panics in `unlock` (not held: Go's "unlock of unlocked mutex") must
        // not leave the queued waiter behind its stack frame.
        if let Err(payload) =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.locker.unlock()))
        {
            waiter.leave(&self.waiters);
            std::panic::resume_unwind(payload);
        }
        waiter.wait("sync.Cond.Wait", |waiter| waiter.leave(&self.waiters));
        self.locker.lock();
    }
}

impl<L> Cond<L> {
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

impl<L> fmt::Debug for Cond<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cond").finish_non_exhaustive()
    }
}

// A panic leaves the queue consistent: it is only changed under its lock, in steps that cannot
// panic halfway.
impl<L: std::panic::UnwindSafe> std::panic::UnwindSafe for Cond<L> {}
impl<L: std::panic::RefUnwindSafe> std::panic::RefUnwindSafe for Cond<L> {}
