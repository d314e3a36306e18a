//! `Locker`: Go's `sync.Locker`, for code written against any lock.

use crate::mutex::Mutex;
use crate::rwmutex::RwMutex;

/// Something that can be locked and unlocked, as Go's `sync.Locker`: implemented by
/// `Mutex<()>`, by `RwMutex<()>` (its write lock, as Go's `RWMutex` is a `Locker`) and by
/// [`RLocker`], the read view of an `RwMutex<()>`.
///
/// Unlike the guard-returning methods, `lock` and `unlock` are separate calls, so code written
/// against Go's interface ports line for line. As in Go, a lock may be unlocked by another
/// goroutine than the one that locked it; unlocking a lock that is not held panics with Go's
/// message.
///
/// ```
/// use gsync::{Locker, Mutex, RwMutex};
///
/// fn critical(lock: &dyn Locker, hits: &std::sync::atomic::AtomicU32) {
///     lock.lock();
///     hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///     lock.unlock();
/// }
///
/// let hits = std::sync::atomic::AtomicU32::new(0);
/// let mutex = Mutex::new(());
/// let rw = RwMutex::new(());
/// critical(&mutex, &hits);
/// critical(&rw.rlocker(), &hits);
/// assert_eq!(hits.into_inner(), 2);
/// ```
pub trait Locker {
    /// Locks, parking the goroutine (or blocking the thread) until the lock is had.
    fn lock(&self);

    /// Unlocks.
    ///
    /// # Panics
    ///
    /// If the lock is not held, with Go's messages: `sync: unlock of unlocked mutex` for a
    /// `Mutex`, `sync: Unlock of unlocked RWMutex` for an `RwMutex`, `sync: RUnlock of unlocked
    /// RWMutex` for an `RLocker`.
    fn unlock(&self);
}

impl Locker for Mutex<()> {
    fn lock(&self) {
        crate::shim::checkpoint();
        self.raw().acquire();
    }

    fn unlock(&self) {
        self.raw().release();
    }
}

impl Locker for RwMutex<()> {
    fn lock(&self) {
        crate::shim::checkpoint();
        self.raw().acquire_write();
    }

    fn unlock(&self) {
        self.raw().release_write_checked();
    }
}

/// The read half of an `RwMutex<()>` as a [`Locker`] (Go's `RWMutex.RLocker`).
#[derive(Debug, Clone, Copy)]
pub struct RLocker<'a>(&'a RwMutex<()>);

impl RwMutex<()> {
    /// A [`Locker`] whose `lock`/`unlock` read-lock and read-unlock this lock.
    pub fn rlocker(&self) -> RLocker<'_> {
        RLocker(self)
    }
}

impl Locker for RLocker<'_> {
    fn lock(&self) {
        crate::shim::checkpoint();
        self.0.raw().acquire_read();
    }

    fn unlock(&self) {
        self.0.raw().release_read_checked();
    }
}

impl<L: Locker + ?Sized> Locker for &L {
    fn lock(&self) {
        (**self).lock();
    }

    fn unlock(&self) {
        (**self).unlock();
    }
}
