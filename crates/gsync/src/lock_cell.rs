//! The short internal lock that guards each primitive's wait queue and each channel.
//!
//! Critical sections under it are a few queue operations and never park, so, as Go's runtime
//! mutex does, it spins briefly and then blocks the OS thread (through `parking_lot_core`) rather
//! than the goroutine: a goroutine cannot be descheduled while it holds it. That is what sets it
//! apart from [`crate::raw`]'s locks, which park goroutines and are built on it.

use crate::shim::UnsafeCell;

/// A lock around a value, with closure access (`with`) and the raw lock/unlock pair that
/// `select` needs to hold several channels at once.
#[derive(Debug)]
pub(crate) struct LockCell<T> {
    lock: ThreadLock,
    value: UnsafeCell<T>,
}

// SAFETY: the value is only reached under the lock, one thread at a time.
unsafe impl<T: Send> Send for LockCell<T> {}
// SAFETY: as above; `&LockCell` gives `&mut T` to one holder of the lock at a time.
unsafe impl<T: Send> Sync for LockCell<T> {}

impl<T> LockCell<T> {
    #[cfg(not(goroutines_loom))]
    pub(crate) const fn new(value: T) -> Self {
        LockCell {
            lock: ThreadLock::new(),
            value: UnsafeCell::new(value),
        }
    }

    #[cfg(goroutines_loom)]
    pub(crate) fn new(value: T) -> Self {
        LockCell {
            lock: ThreadLock::new(),
            value: UnsafeCell::new(value),
        }
    }

    /// Runs `f` on the value under the lock. `f` must not block or run user code that might.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        self.lock.lock();
        let unlock = Unlock(&self.lock);
        // SAFETY: the lock is held until `unlock` drops, so this is the only access.
        let result = self.value.with_mut(|value| f(unsafe { &mut *value }));
        drop(unlock);
        result
    }

    pub(crate) fn lock(&self) {
        self.lock.lock();
    }

    /// # Safety
    ///
    /// The caller holds the lock, taken with [`LockCell::lock`].
    pub(crate) unsafe fn unlock(&self) {
        // SAFETY: the caller holds the lock.
        unsafe { self.lock.unlock() }
    }

    /// Runs `f` on the value while the caller holds the lock.
    ///
    /// # Safety
    ///
    /// The caller holds the lock, taken with [`LockCell::lock`].
    pub(crate) unsafe fn with_locked<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: the caller holds the lock, so this is the only access.
        self.value.with_mut(|value| f(unsafe { &mut *value }))
    }

    /// The address that orders locks when `select` takes several.
    pub(crate) fn address(&self) -> usize {
        &self.lock as *const ThreadLock as usize
    }
}

/// Releases the lock when dropped, so a panic in a critical section cannot leave it held.
struct Unlock<'a>(&'a ThreadLock);

impl Drop for Unlock<'_> {
    fn drop(&mut self) {
        // SAFETY: an `Unlock` exists only while its lock is held.
        unsafe { self.0.unlock() }
    }
}

#[cfg(not(goroutines_loom))]
use parked::ThreadLock;

#[cfg(not(goroutines_loom))]
mod parked {
    use std::sync::atomic::{AtomicU8, Ordering};

    use parking_lot_core::{DEFAULT_PARK_TOKEN, DEFAULT_UNPARK_TOKEN, SpinWait};

    const LOCKED: u8 = 1;
    /// Some thread sleeps in parking_lot_core's table on this lock's address.
    const PARKED: u8 = 2;

    #[derive(Debug)]
    pub(super) struct ThreadLock {
        state: AtomicU8,
    }

    impl ThreadLock {
        pub(super) const fn new() -> Self {
            ThreadLock {
                state: AtomicU8::new(0),
            }
        }

        #[inline]
        pub(super) fn lock(&self) {
            if self
                .state
                .compare_exchange_weak(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                self.lock_slow();
            }
        }

        #[cold]
        fn lock_slow(&self) {
            let mut spin = SpinWait::new();
            let mut state = self.state.load(Ordering::Relaxed);
            loop {
                if state & LOCKED == 0 {
                    match self.state.compare_exchange_weak(
                        state,
                        state | LOCKED,
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => return,
                        Err(now) => state = now,
                    }
                    continue;
                }
                if state & PARKED == 0 && spin.spin() {
                    state = self.state.load(Ordering::Relaxed);
                    continue;
                }
                if state & PARKED == 0
                    && let Err(now) = self.state.compare_exchange_weak(
                        state,
                        state | PARKED,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    )
                {
                    state = now;
                    continue;
                }
                let key = self as *const ThreadLock as usize;
                // SAFETY: the key is this lock's address, which no other parking_lot_core user
                // of ours shares, and the callbacks neither panic nor park.
                unsafe {
                    parking_lot_core::park(
                        key,
                        || self.state.load(Ordering::Relaxed) == LOCKED | PARKED,
                        || {},
                        |_, _| {},
                        DEFAULT_PARK_TOKEN,
                        None,
                    );
                }
                spin.reset();
                state = self.state.load(Ordering::Relaxed);
            }
        }

        /// # Safety
        ///
        /// The caller holds the lock.
        #[inline]
        pub(super) unsafe fn unlock(&self) {
            if self
                .state
                .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
                .is_err()
            {
                self.unlock_slow();
            }
        }

        #[cold]
        fn unlock_slow(&self) {
            let key = self as *const ThreadLock as usize;
            // SAFETY: as in `lock_slow`; the callback runs under parking_lot_core's bucket lock,
            // so no thread can park between its check and the store.
            unsafe {
                parking_lot_core::unpark_one(key, |result| {
                    let parked = if result.have_more_threads { PARKED } else { 0 };
                    self.state.store(parked, Ordering::Release);
                    DEFAULT_UNPARK_TOKEN
                });
            }
        }
    }
}

#[cfg(goroutines_loom)]
use modeled::ThreadLock;

/// Under loom the lock is loom's mutex and condition variable, which loom explores without
/// the unbounded branching of a spin loop; what is modeled is the protocols the lock guards.
#[cfg(goroutines_loom)]
mod modeled {
    use loom::sync::{Condvar, Mutex};

    #[derive(Debug)]
    pub(super) struct ThreadLock {
        locked: Mutex<bool>,
        released: Condvar,
    }

    impl ThreadLock {
        pub(super) fn new() -> Self {
            ThreadLock {
                locked: Mutex::new(false),
                released: Condvar::new(),
            }
        }

        pub(super) fn lock(&self) {
            let mut locked = self.locked.lock().unwrap();
            while *locked {
                locked = self.released.wait(locked).unwrap();
            }
            *locked = true;
        }

        /// # Safety
        ///
        /// The caller holds the lock.
        pub(super) unsafe fn unlock(&self) {
            *self.locked.lock().unwrap() = false;
            self.released.notify_one();
        }
    }
}
