//! The state machine of Go's `sync.Mutex`: one compare-and-swap to lock or unlock when nobody
//! waits, a short spin, then a queue of parked waiters with Go's starvation handoff.

use std::collections::VecDeque;

use crate::lock_cell::LockCell;
use crate::shim::{self, AtomicU8, Ordering, WaitStart};
use crate::waiter::{Waiter, WaiterRef};

const LOCKED: u8 = 1;
/// The wait queue is not empty, so unlocking must look at it.
const QUEUED: u8 = 2;

/// Outcomes a queued locker is woken with.
const HANDED_OFF: usize = 1;
const RETRY: usize = 2;

/// A mutex without data: lock, try, and unlock with Go's misuse report.
///
/// Unlocking wakes the longest waiter, which then competes with newcomers, as in Go; but a
/// waiter that has waited more than 1 ms is handed the lock directly (Go's starvation mode), so
/// no waiter starves.
pub(crate) struct RawMutex {
    /// | state             | meaning                                                        |
    /// |-------------------|----------------------------------------------------------------|
    /// | `0`               | free, nobody queued                                            |
    /// | `LOCKED`          | held, nobody queued: unlocking is one compare-and-swap         |
    /// | `LOCKED \| QUEUED` | held, waiters queued: unlocking wakes the first                |
    /// | `QUEUED`          | free, waiters queued: a woken waiter races newcomers for it    |
    ///
    /// `QUEUED` changes only under the queue's lock, and so does the whole word while it is
    /// `LOCKED | QUEUED`: the lock-free paths only take a free lock or free a lone holder's.
    state: AtomicU8,
    queue: LockCell<VecDeque<Queued>>,
}

#[derive(Debug, Clone, Copy)]
struct Queued {
    waiter: WaiterRef,
    since: WaitStart,
    retries: u32,
}

impl RawMutex {
    pub(crate) fn new() -> Self {
        RawMutex {
            state: AtomicU8::new(0),
            queue: LockCell::new(VecDeque::new()),
        }
    }

    /// Locks, parking the goroutine (or blocking the thread) until the lock is free.
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

    /// Locks if the lock is free right now.
    pub(crate) fn try_acquire(&self) -> bool {
        let mut state = self.state.load(Ordering::Relaxed);
        while state & LOCKED == 0 {
            match self.state.compare_exchange_weak(
                state,
                state | LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => state = now,
            }
        }
        false
    }

    /// Whether the lock is held right now (by anyone).
    pub(crate) fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & LOCKED != 0
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

    /// Unlocks. As in Go, any party may unlock a locked mutex, not only the one that locked it.
    ///
    /// # Panics
    ///
    /// With Go's message `sync: unlock of unlocked mutex` if it is not locked.
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
