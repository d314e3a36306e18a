//! `Mutex<T>`: Go's `sync.Mutex` with the data inside, as Rust locks are shaped.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use crate::raw::RawMutex;
use crate::shim::UnsafeCell;

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
    /// Unlocked only by guards, except in a `Mutex<()>` (see [`Mutex::raw`]), which has no data
    /// for an unlock by another party to expose.
    raw: RawMutex,
    data: UnsafeCell<T>,
}

// SAFETY: the mutex hands `&mut T` to one holder at a time, so it can be shared when `T` can be
// sent between the holders' threads.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

// Unwind-safe, as std's locks are, though without std's poisoning: like Go's, a panic while
// the lock is held releases it and leaves the data as the panic left it, which a `catch_unwind`
// around code that locks must be ready for (as tokio's locks decide too).
impl<T: ?Sized> std::panic::UnwindSafe for Mutex<T> {}
impl<T: ?Sized> std::panic::RefUnwindSafe for Mutex<T> {}

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
            raw: RawMutex::new(),
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
        crate::shim::checkpoint();
        self.raw.acquire();
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
        crate::shim::checkpoint();
        self.raw.try_acquire().then(|| self.guard())
    }

    /// Whether the mutex is held right now (by anyone).
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
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
}

impl Mutex<()> {
    /// The lock itself, for [`crate::Locker`], whose `lock` and `unlock` are separate calls that
    /// no guard ties together. Only a `Mutex<()>` hands it out: it guards no data that such an
    /// unlock could expose.
    pub(crate) fn raw(&self) -> &RawMutex {
        &self.raw
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
        self.mutex.raw.release();
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
