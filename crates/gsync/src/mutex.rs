//! `Mutex<T>`: Go's `sync.Mutex` with the data inside, as Rust locks are shaped.

use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use crate::raw_lock::LockCell;
use crate::shim::{self, AtomicU8, Ordering, UnsafeCell, WaitStart};
use crate::waiter::{Waiter, WaiterRef};

const LOCKED: u8 = 1;
/// The wait queue is not empty, so unlocking must look at it.
const QUEUED: u8 = 2;

/// Outcomes a queued locker is woken with.
const HANDED_OFF: usize = 1;
const RETRY: usize = 2;

/// A mutual-exclusion lock that parks goroutines (or blocks threads) while it is held.
///
/// Locking an unheld mutex is one compare-and-swap. A contended locker spins briefly and then
/// parks. Unlocking wakes the longest waiter, which then competes with newcomers, as in Go; but a
/// waiter that has waited more than 1 ms is handed the lock directly (Go's starvation mode), so
/// no waiter starves.
///
/// There is no poisoning: as in Go, a panic while the lock is held releases it, and the panic
/// itself reaches whoever joins the goroutine. Code that must not see half-updated data after a
/// panic catches the panic where it can repair the data.
///
/// ```
/// use gsync::Mutex;
///
/// let count = Mutex::new(0);
/// gsched::scope(|s| {
///     for _ in 0..10 {
///         s.go(|| *count.lock() += 1);
///     }
/// });
/// assert_eq!(count.into_inner(), 10);
/// ```
pub struct Mutex<T: ?Sized> {
    state: AtomicU8,
    queue: LockCell<VecDeque<Queued>>,
    data: UnsafeCell<T>,
}

#[derive(Debug, Clone, Copy)]
struct Queued {
    waiter: WaiterRef,
    since: WaitStart,
    retries: u32,
}

// SAFETY: the mutex hands `&mut T` to one holder at a time, so it can be shared when `T` can be
// sent between the holders' threads.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

/// Holds a [`Mutex`] locked; unlocks it when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    /// `Send`/`Sync` as `&mut T` is.
    marker: PhantomData<&'a mut T>,
}

impl<T> Mutex<T> {
    /// A new unlocked mutex holding `value`.
    pub fn new(value: T) -> Self {
        Mutex {
            state: AtomicU8::new(0),
            queue: LockCell::new(VecDeque::new()),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the mutex and returns the value.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks the mutex, parking the goroutine (or blocking the thread) until it is free.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.acquire();
        self.guard()
    }

    /// Locks the mutex if it is free right now.
    ///
    /// ```
    /// let mutex = gsync::Mutex::new(1);
    /// let held = mutex.lock();
    /// assert!(mutex.try_lock().is_none());
    /// drop(held);
    /// assert_eq!(*mutex.try_lock().unwrap(), 1);
    /// ```
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        let mut state = self.state.load(Ordering::Relaxed);
        while state & LOCKED == 0 {
            match self.state.compare_exchange_weak(
                state,
                state | LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(self.guard()),
                Err(now) => state = now,
            }
        }
        None
    }

    /// Whether the mutex is held right now (by anyone).
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & LOCKED != 0
    }

    /// The value, through `&mut self`: no locking needed.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    fn guard(&self) -> MutexGuard<'_, T> {
        MutexGuard {
            mutex: self,
            marker: PhantomData,
        }
    }

    #[inline]
    pub(crate) fn acquire(&self) {
        if self
            .state
            .compare_exchange_weak(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.acquire_slow();
        }
    }

    #[cold]
    fn acquire_slow(&self) {
        let mut round = 0;
        loop {
            let state = self.state.load(Ordering::Relaxed);
            if state & LOCKED == 0 {
                if self
                    .state
                    .compare_exchange_weak(
                        state,
                        state | LOCKED,
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    return;
                }
                continue;
            }
            // Spinning pays only while nobody is queued: otherwise the lock goes to a waiter.
            if state & QUEUED != 0 || !shim::spin(round) {
                break;
            }
            round += 1;
        }

        let since = WaitStart::now();
        // Races for the lock lost after a wake-up; loom's stand-in for the starvation clock.
        let mut retries = 0u32;
        loop {
            let waiter = Waiter::new();
            let queued = self.queue.with(|queue| {
                let mut state = self.state.load(Ordering::Relaxed);
                loop {
                    let (next, order) = if state & LOCKED == 0 {
                        (state | LOCKED, Ordering::Acquire)
                    } else {
                        (state | QUEUED, Ordering::Relaxed)
                    };
                    match self
                        .state
                        .compare_exchange_weak(state, next, order, Ordering::Relaxed)
                    {
                        Ok(_) if state & LOCKED == 0 => return false,
                        Ok(_) => break,
                        Err(now) => state = now,
                    }
                }
                let entry = Queued {
                    waiter: waiter.as_ref(),
                    since,
                    retries,
                };
                // A waiter that lost a race keeps its place at the front, as in Go.
                if retries == 0 {
                    queue.push_back(entry);
                } else {
                    queue.push_front(entry);
                }
                true
            });
            if !queued {
                return;
            }
            let outcome = waiter.wait("sync.Mutex.Lock", |waiter| self.cancel_wait(waiter));
            if outcome == HANDED_OFF {
                return;
            }
            retries += 1;
        }
    }

    /// Takes an unwinding waiter out of the queue; if it was already woken, gives back what it
    /// was handed.
    fn cancel_wait(&self, waiter: &Waiter) {
        let removed = self.queue.with(|queue| {
            let position = queue.iter().position(|entry| entry.waiter.is(waiter));
            if let Some(position) = position {
                queue.remove(position);
                if queue.is_empty() {
                    self.state.fetch_and(!QUEUED, Ordering::Relaxed);
                }
            }
            position.is_some()
        });
        if !removed && waiter.outcome_after_dequeue() == HANDED_OFF {
            self.release();
        }
    }

    /// Unlocks; the caller holds the lock (or, through [`crate::Locker`], claims to).
    #[inline]
    pub(crate) fn release(&self) {
        if self
            .state
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.release_slow();
        }
    }

    #[cold]
    fn release_slow(&self) {
        let woken = self.queue.with(|queue| {
            let state = self.state.load(Ordering::Relaxed);
            if state & LOCKED == 0 {
                return Err(());
            }
            let Some(first) = queue.pop_front() else {
                self.state.store(0, Ordering::Release);
                return Ok(None);
            };
            let queued = if queue.is_empty() { 0 } else { QUEUED };
            // Nobody else changes the state while it is locked and the queue is held: lockers
            // only set QUEUED under the queue lock, and only take an unlocked mutex.
            if first.since.starving(first.retries) {
                self.state.store(LOCKED | queued, Ordering::Release);
                Ok(Some((first.waiter, HANDED_OFF)))
            } else {
                self.state.store(queued, Ordering::Release);
                Ok(Some((first.waiter, RETRY)))
            }
        });
        match woken {
            Err(()) => panic!("sync: unlock of unlocked mutex"),
            Ok(None) => {}
            // SAFETY: the waiter was taken out of the queue above and not yet woken.
            Ok(Some((waiter, outcome))) => unsafe { waiter.wake(outcome) },
        }
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Self {
        Mutex::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Mutex");
        match self.try_lock() {
            Some(guard) => debug.field("data", &&*guard),
            None => debug.field("data", &format_args!("<locked>")),
        };
        debug.finish_non_exhaustive()
    }
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// The mutex this guard holds.
    pub(crate) fn mutex(guard: &Self) -> &'a Mutex<T> {
        guard.mutex
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock, so nobody writes meanwhile.
        self.mutex.data.with(|data| unsafe { &*data })
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock, and `&mut self` makes this the only access.
        self.mutex.data.with_mut(|data| unsafe { &mut *data })
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.release();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
