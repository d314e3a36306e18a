//! `RwMutex<T>`: Go's `sync.RWMutex`, with writer preference.

use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use crate::raw_lock::LockCell;
use crate::shim::{self, AtomicUsize, Ordering, UnsafeCell};
use crate::waiter::{Waiter, WaiterRef};

const WRITER: usize = 1;
/// The wait queue is not empty, so unlocking must look at it.
const QUEUED: usize = 2;
/// A writer waits: new readers queue behind it, so writers never starve.
const WRITER_WAITING: usize = 4;
const ONE_READER: usize = 8;

/// A queued waiter is woken only when it has been granted the lock.
const GRANTED: usize = 1;

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
    state: AtomicUsize,
    queue: LockCell<VecDeque<Queued>>,
    data: UnsafeCell<T>,
}

#[derive(Debug, Clone, Copy)]
struct Queued {
    waiter: WaiterRef,
    writer: bool,
}

// SAFETY: readers share `&T` across threads (needs `T: Sync`) and a writer gets `&mut T` on any
// thread (needs `T: Send`), as for `std::sync::RwLock`.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwMutex<T> {}

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
            state: AtomicUsize::new(0),
            queue: LockCell::new(VecDeque::new()),
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
        self.acquire_read();
        RwMutexReadGuard {
            lock: self,
            marker: PhantomData,
        }
    }

    /// Locks for writing, parking until every reader and writer is gone.
    pub fn write(&self) -> RwMutexWriteGuard<'_, T> {
        self.acquire_write();
        RwMutexWriteGuard {
            lock: self,
            marker: PhantomData,
        }
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
        self.try_acquire_read().then(|| RwMutexReadGuard {
            lock: self,
            marker: PhantomData,
        })
    }

    /// Locks for writing if the lock is free right now.
    pub fn try_write(&self) -> Option<RwMutexWriteGuard<'_, T>> {
        self.state
            .compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
            .then(|| RwMutexWriteGuard {
                lock: self,
                marker: PhantomData,
            })
    }

    /// The value, through `&mut self`: no locking needed.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    fn try_acquire_read(&self) -> bool {
        let mut state = self.state.load(Ordering::Relaxed);
        while state & (WRITER | WRITER_WAITING) == 0 {
            match self.state.compare_exchange_weak(
                state,
                state + ONE_READER,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => state = now,
            }
        }
        false
    }

    #[inline]
    pub(crate) fn acquire_read(&self) {
        let state = self.state.load(Ordering::Relaxed);
        if state & (WRITER | WRITER_WAITING) != 0
            || self
                .state
                .compare_exchange_weak(
                    state,
                    state + ONE_READER,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            self.acquire_read_slow();
        }
    }

    #[cold]
    fn acquire_read_slow(&self) {
        let mut round = 0;
        while self.state.load(Ordering::Relaxed) & QUEUED == 0 && shim::spin(round) {
            if self.try_acquire_read() {
                return;
            }
            round += 1;
        }
        self.queue_and_wait(false);
    }

    #[inline]
    pub(crate) fn acquire_write(&self) {
        if self
            .state
            .compare_exchange_weak(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.acquire_write_slow();
        }
    }

    #[cold]
    fn acquire_write_slow(&self) {
        let mut round = 0;
        while self.state.load(Ordering::Relaxed) & QUEUED == 0 && shim::spin(round) {
            if self
                .state
                .compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
            round += 1;
        }
        self.queue_and_wait(true);
    }

    /// Takes the lock under the queue lock if it is free for this kind of locker, or queues and
    /// waits until a releaser grants it.
    fn queue_and_wait(&self, writer: bool) {
        let waiter = Waiter::new();
        let queued = self.queue.with(|queue| {
            let mut state = self.state.load(Ordering::Relaxed);
            loop {
                let free = if writer {
                    state & WRITER == 0 && state < ONE_READER
                } else {
                    state & (WRITER | WRITER_WAITING) == 0
                };
                let (next, order) = match (free, writer) {
                    (true, true) => (state | WRITER, Ordering::Acquire),
                    (true, false) => (state + ONE_READER, Ordering::Acquire),
                    (false, true) => (state | QUEUED | WRITER_WAITING, Ordering::Relaxed),
                    (false, false) => (state | QUEUED, Ordering::Relaxed),
                };
                match self
                    .state
                    .compare_exchange_weak(state, next, order, Ordering::Relaxed)
                {
                    Ok(_) if free => return false,
                    Ok(_) => break,
                    Err(now) => state = now,
                }
            }
            queue.push_back(Queued {
                waiter: waiter.as_ref(),
                writer,
            });
            true
        });
        if queued {
            let reason = if writer {
                "sync.RWMutex.Lock"
            } else {
                "sync.RWMutex.RLock"
            };
            waiter.wait(reason, |waiter| self.cancel_wait(waiter, writer));
        }
    }

    /// Takes an unwinding waiter out of the queue; if it was already granted the lock, releases
    /// it.
    fn cancel_wait(&self, waiter: &Waiter, writer: bool) {
        let removed = self.queue.with(|queue| {
            let position = queue.iter().position(|entry| entry.waiter.is(waiter));
            if let Some(position) = position {
                queue.remove(position);
                let mut clear = 0;
                if queue.is_empty() {
                    clear |= QUEUED;
                }
                if !queue.iter().any(|entry| entry.writer) {
                    clear |= WRITER_WAITING;
                }
                self.state.fetch_and(!clear, Ordering::Relaxed);
            }
            position.is_some()
        });
        if removed {
            // A writer that stops waiting may be what held readers back.
            if writer {
                self.grant_waiters(true);
            }
        } else {
            waiter.outcome_after_dequeue();
            if writer {
                self.release_write();
            } else {
                self.release_read();
            }
        }
    }

    /// Unlocks one reader. The caller holds a read lock.
    #[inline]
    pub(crate) fn release_read(&self) {
        let before = self.state.fetch_sub(ONE_READER, Ordering::Release);
        debug_assert!(
            before >= ONE_READER,
            "read unlock of a lock without readers"
        );
        if before & !(QUEUED | WRITER_WAITING) == ONE_READER && before & WRITER_WAITING != 0 {
            self.grant_waiters(false);
        }
    }

    /// Unlocks one reader if the lock has any, as Go's `RUnlock` checks.
    pub(crate) fn release_read_checked(&self) {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state < ONE_READER {
                panic!("sync: RUnlock of unlocked RWMutex");
            }
            match self.state.compare_exchange_weak(
                state,
                state - ONE_READER,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => state = now,
            }
        }
        if state & !(QUEUED | WRITER_WAITING) == ONE_READER && state & WRITER_WAITING != 0 {
            self.grant_waiters(false);
        }
    }

    /// Unlocks the writer. The caller holds the write lock.
    #[inline]
    fn release_write(&self) {
        if self
            .state
            .compare_exchange(WRITER, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            let state = self.state.fetch_and(!WRITER, Ordering::Release);
            debug_assert!(
                state & WRITER != 0,
                "write unlock of a lock not write-locked"
            );
            self.grant_waiters(true);
        }
    }

    /// Unlocks the writer if the lock is write-locked, as Go's `Unlock` checks.
    pub(crate) fn release_write_checked(&self) {
        if self.state.load(Ordering::Relaxed) & WRITER == 0 {
            panic!("sync: Unlock of unlocked RWMutex");
        }
        self.release_write();
    }

    /// Hands the lock to the queue. After a writer, every queued reader goes in together (they
    /// queued behind it) and writers wait for them; after the last reader, the first writer goes
    /// in. Queued readers may also join readers that hold the lock once no writer waits.
    fn grant_waiters(&self, after_writer: bool) {
        self.queue.with(|queue| {
            let readers = queue.iter().filter(|entry| !entry.writer).count();
            let writers = queue.len() - readers;
            let readers_first = readers > 0 && (after_writer || writers == 0);
            let mut state = self.state.load(Ordering::Relaxed);
            loop {
                // A writer holds it, or readers hold it while a writer waits: its release grants.
                if state & WRITER != 0 || (state >= ONE_READER && !readers_first) {
                    return;
                }
                let mut granted = if readers_first {
                    (state & !(QUEUED | WRITER_WAITING)) + readers * ONE_READER
                } else if writers > 0 {
                    WRITER
                } else {
                    0
                };
                let left_writers = if readers_first {
                    writers
                } else {
                    writers.saturating_sub(1)
                };
                let left = if readers_first {
                    writers
                } else {
                    readers + left_writers
                };
                if left > 0 {
                    granted |= QUEUED;
                }
                if left_writers > 0 {
                    granted |= WRITER_WAITING;
                }
                // Lockers' fast paths fail while QUEUED or WRITER_WAITING is set, and their slow
                // paths need the queue lock held here, so this rarely retries.
                match self.state.compare_exchange_weak(
                    state,
                    granted,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break,
                    Err(now) => state = now,
                }
            }
            if readers_first {
                queue.retain(|entry| {
                    if !entry.writer {
                        // SAFETY: leaving the queue here, not yet woken.
                        unsafe { entry.waiter.wake(GRANTED) };
                    }
                    entry.writer
                });
            } else if let Some(position) = queue.iter().position(|entry| entry.writer) {
                let writer = queue.remove(position).expect("position is in the queue");
                // SAFETY: taken out of the queue here, not yet woken.
                unsafe { writer.waiter.wake(GRANTED) };
            }
        });
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
        self.lock.release_read();
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
        self.lock.release_write();
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
