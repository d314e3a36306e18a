//! `RwMutex<T>`: Go's `sync.RWMutex`, with writer preference.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use crate::raw::RawRwMutex;
use crate::shim::UnsafeCell;

/// A reader-writer lock: any number of readers, or one writer.
///
/// As in Go, a writer that waits holds back readers that come after it, so a stream of readers
/// cannot starve writers; and when a writer unlocks, the readers that queued behind it go in
/// together before the next writer. Waiters are handed the lock directly.
///
/// ```
/// use gsync::RwMutex;
///
/// let config = RwMutex::new(String::from("v1"));
/// gsched::scope(|s| {
///     for _ in 0..4 {
///         s.go(|| assert!(config.read().starts_with('v')));
///     }
///     s.go(|| *config.write() = String::from("v2"));
/// });
/// assert_eq!(*config.read(), "v2");
/// ```
pub struct RwMutex<T: ?Sized> {
    /// Unlocked only by guards, except in an `RwMutex<()>` (see [`RwMutex::raw`]), which has no
    /// data for an unlock by another party to expose.
    raw: RawRwMutex,
    data: UnsafeCell<T>,
}

// SAFETY: readers share `&T` across threads (needs `T: Sync`) and a writer gets `&mut T` on any
// thread (needs `T: Send`), as for `std::sync::RwLock`.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwMutex<T> {}

// Unwind-safe, as std's locks are, though without std's poisoning: like Go's, a panic while
// the lock is held releases it and leaves the data as the panic left it, which a `catch_unwind`
// around code that locks must be ready for (as tokio's locks decide too).
impl<T: ?Sized> std::panic::UnwindSafe for RwMutex<T> {}
impl<T: ?Sized> std::panic::RefUnwindSafe for RwMutex<T> {}

/// Holds an [`RwMutex`] read-locked; unlocks when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwMutexReadGuard<'a, T: ?Sized> {
    lock: &'a RwMutex<T>,
    marker: PhantomData<&'a T>,
}

/// Holds an [`RwMutex`] write-locked; unlocks when dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwMutexWriteGuard<'a, T: ?Sized> {
    lock: &'a RwMutex<T>,
    marker: PhantomData<&'a mut T>,
}

impl<T> RwMutex<T> {
    /// A new unlocked lock holding `value`.
    pub fn new(value: T) -> Self {
        RwMutex {
            raw: RawRwMutex::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the lock and returns the value.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> RwMutex<T> {
    /// Locks for reading, parking while a writer holds the lock or waits for it.
    pub fn read(&self) -> RwMutexReadGuard<'_, T> {
        crate::shim::checkpoint();
        self.raw.acquire_read();
        self.read_guard()
    }

    /// Locks for writing, parking until every reader and writer is gone.
    pub fn write(&self) -> RwMutexWriteGuard<'_, T> {
        crate::shim::checkpoint();
        self.raw.acquire_write();
        self.write_guard()
    }

    /// Locks for reading if that is possible right now.
    ///
    /// ```
    /// let lock = gsync::RwMutex::new(0);
    /// let reading = lock.try_read().unwrap();
    /// assert!(lock.try_read().is_some());
    /// assert!(lock.try_write().is_none());
    /// drop(reading);
    /// assert!(lock.try_write().is_some());
    /// ```
    pub fn try_read(&self) -> Option<RwMutexReadGuard<'_, T>> {
        crate::shim::checkpoint();
        self.raw.try_acquire_read().then(|| self.read_guard())
    }

    /// Locks for writing if the lock is free right now.
    pub fn try_write(&self) -> Option<RwMutexWriteGuard<'_, T>> {
        crate::shim::checkpoint();
        self.raw.try_acquire_write().then(|| self.write_guard())
    }

    /// The value, through `&mut self`: no locking needed.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    fn read_guard(&self) -> RwMutexReadGuard<'_, T> {
        RwMutexReadGuard {
            lock: self,
            marker: PhantomData,
        }
    }

    fn write_guard(&self) -> RwMutexWriteGuard<'_, T> {
        RwMutexWriteGuard {
            lock: self,
            marker: PhantomData,
        }
    }
}

impl RwMutex<()> {
    /// The lock itself, for [`crate::Locker`] and [`crate::RLocker`], whose `lock` and `unlock`
    /// are separate calls that no guard ties together. Only an `RwMutex<()>` hands it out: it
    /// guards no data that such an unlock could expose.
    pub(crate) fn raw(&self) -> &RawRwMutex {
        &self.raw
    }
}

impl<T: Default> Default for RwMutex<T> {
    fn default() -> Self {
        RwMutex::new(T::default())
    }
}

impl<T> From<T> for RwMutex<T> {
    fn from(value: T) -> Self {
        RwMutex::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwMutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("RwMutex");
        match self.try_read() {
            Some(guard) => debug.field("data", &&*guard),
            None => debug.field("data", &format_args!("<locked>")),
        };
        debug.finish_non_exhaustive()
    }
}

impl<T: ?Sized> Deref for RwMutexReadGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: a read lock is held, so nobody writes meanwhile.
        self.lock.data.with(|data| unsafe { &*data })
    }
}

impl<T: ?Sized> Drop for RwMutexReadGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the guard holds a read lock, and gives it up as it goes. Only through
        // `RwMutex::raw` can a lock be released under its guards, and that breaks the exclusion
        // of a lock that guards no data.
        unsafe { self.lock.raw.release_read() }
    }
}

impl<T: ?Sized> Deref for RwMutexWriteGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the write lock is held, so nobody else reads or writes.
        self.lock.data.with(|data| unsafe { &*data })
    }
}

impl<T: ?Sized> DerefMut for RwMutexWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the write lock is held, and `&mut self` makes this the only access.
        self.lock.data.with_mut(|data| unsafe { &mut *data })
    }
}

impl<T: ?Sized> Drop for RwMutexWriteGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the guard holds the write lock, and gives it up as it goes; as for the read
        // guard, only an `RwMutex<()>`'s lock can be released under it.
        unsafe { self.lock.raw.release_write() }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwMutexReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwMutexWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
