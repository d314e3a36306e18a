//! The state machine of Go's `sync.RWMutex`: a reader count and flags in one word, a queue of
//! parked readers and writers, and writer preference.

use std::collections::VecDeque;

use crate::lock_cell::LockCell;
use crate::shim::{self, AtomicUsize, Ordering};
use crate::waiter::{Waiter, WaiterRef};

const WRITER: usize = 1;
/// The wait queue is not empty, so unlocking must look at it.
const QUEUED: usize = 2;
/// A writer waits: new readers queue behind it, so writers never starve.
const WRITER_WAITING: usize = 4;
const ONE_READER: usize = 8;

/// A queued waiter is woken only when it has been granted the lock.
const GRANTED: usize = 1;

/// A reader-writer lock without data: read and write locking, their `try` forms, and unlocks
/// both unchecked (for guards) and checked with Go's misuse reports (for `Locker`).
///
/// As in Go, a writer that waits holds back readers that come after it, so a stream of readers
/// cannot starve writers; and when a writer unlocks, the readers that queued behind it go in
/// together before the next writer. Waiters are handed the lock directly.
pub(crate) struct RawRwMutex {
    /// The number of readers holding it, in units of `ONE_READER`, and three flags:
    ///
    /// | state              | meaning                                                  |
    /// |--------------------|----------------------------------------------------------|
    /// | `0`                | free                                                     |
    /// | `n * ONE_READER`   | `n` readers hold it                                      |
    /// | `WRITER`           | a writer holds it                                        |
    /// | `+ QUEUED`         | waiters are queued: unlocking must look at the queue     |
    /// | `+ WRITER_WAITING` | a writer is among them: new readers queue behind it      |
    ///
    /// `QUEUED` and `WRITER_WAITING` change only under the queue's lock.
    state: AtomicUsize,
    queue: LockCell<VecDeque<Queued>>,
}

#[derive(Debug, Clone, Copy)]
struct Queued {
    waiter: WaiterRef,
    writer: bool,
}

impl RawRwMutex {
    pub(crate) fn new() -> Self {
        RawRwMutex {
            state: AtomicUsize::new(0),
            queue: LockCell::new(VecDeque::new()),
        }
    }

    /// Read-locks if that is possible right now: no writer holds the lock or waits for it.
    pub(crate) fn try_acquire_read(&self) -> bool {
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

    /// Write-locks if the lock is free right now.
    pub(crate) fn try_acquire_write(&self) -> bool {
        self.state
            .compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Read-locks, parking while a writer holds the lock or waits for it.
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

    /// Write-locks, parking until every reader and writer is gone.
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
            if self.try_acquire_write() {
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
            return;
        }
        waiter.outcome_after_dequeue();
        // SAFETY: a waiter leaves the queue only through `grant_waiters`, which grants it the
        // lock of its kind, so the lock released here is this waiter's.
        unsafe {
            if writer {
                self.release_write();
            } else {
                self.release_read();
            }
        }
    }

    /// Unlocks one reader.
    ///
    /// # Safety
    ///
    /// The caller holds a read lock, and gives it up here.
    #[inline]
    pub(crate) unsafe fn release_read(&self) {
        let before = self.state.fetch_sub(ONE_READER, Ordering::Release);
        debug_assert!(
            before >= ONE_READER,
            "read unlock of a lock without readers"
        );
        self.reader_left(before);
    }

    /// Unlocks one reader if the lock has any, as Go's `RUnlock` checks. As in Go, the reader
    /// that unlocks need not be the one that locked.
    ///
    /// # Panics
    ///
    /// With Go's message `sync: RUnlock of unlocked RWMutex` if no reader holds it.
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
        self.reader_left(state);
    }

    /// After a reader left a lock whose state was `before`: the last reader out lets a waiting
    /// writer in.
    fn reader_left(&self, before: usize) {
        if before & !(QUEUED | WRITER_WAITING) == ONE_READER && before & WRITER_WAITING != 0 {
            self.grant_waiters(false);
        }
    }

    /// Unlocks the writer.
    ///
    /// # Safety
    ///
    /// The caller holds the write lock, and gives it up here.
    #[inline]
    pub(crate) unsafe fn release_write(&self) {
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
    ///
    /// # Panics
    ///
    /// With Go's message `sync: Unlock of unlocked RWMutex` if no writer holds it.
    pub(crate) fn release_write_checked(&self) {
        if self.state.load(Ordering::Relaxed) & WRITER == 0 {
            panic!("sync: Unlock of unlocked RWMutex");
        }
        // SAFETY: a writer holds the lock, and Go's `Unlock` lets any party release it.
        unsafe { self.release_write() }
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
