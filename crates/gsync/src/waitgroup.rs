//! `WaitGroup`: Go's `sync.WaitGroup`, as a cheap shared handle.

use std::collections::VecDeque;
use std::fmt;

use crate::raw_lock::LockCell;
use crate::shim::{Arc, AtomicU64, Ordering};
use crate::waiter::{Waiter, WaiterRef};

/// The state word: the counter in the high half; in the low half, the wait round's number
/// (shifted up one) and whether anyone waits in this round.
const COUNT_SHIFT: u32 = 32;
const WAITERS: u64 = 1;
const ROUND_ONE: u64 = 2;
const ROUND_MASK: u64 = (1 << COUNT_SHIFT) - ROUND_ONE;
/// Go's counter is an int32.
const MAX_COUNT: i64 = i32::MAX as i64;

/// The outcome a waiter is woken with: its round ended.
const RELEASED: usize = 1;

/// Waits for a collection of goroutines (or threads) to finish.
///
/// [`add`](WaitGroup::add) raises the counter, [`done`](WaitGroup::done) lowers it, and
/// [`wait`](WaitGroup::wait) blocks until it is zero. Any number may wait; every wait that began
/// while the counter was above zero returns once it reaches zero, and the group can then be used
/// again. [`go`](WaitGroup::go) adds one, runs the closure in a new goroutine and marks it done
/// when it returns or panics (Go 1.25's `WaitGroup.Go`). Clones share one counter.
///
/// ```
/// use gsync::WaitGroup;
///
/// let wg = WaitGroup::new();
/// for salutation in ["hello", "greetings", "good day"] {
///     wg.go(move || println!("{salutation}"));
/// }
/// wg.wait();
/// ```
#[derive(Clone)]
pub struct WaitGroup {
    inner: Arc<Inner>,
}

struct Inner {
    state: AtomicU64,
    /// Waiters with the round they wait in.
    queue: LockCell<VecDeque<(WaiterRef, u64)>>,
}

impl WaitGroup {
    /// A group with a zero counter.
    pub fn new() -> Self {
        WaitGroup {
            inner: Arc::new(Inner {
                state: AtomicU64::new(0),
                queue: LockCell::new(VecDeque::new()),
            }),
        }
    }

    /// Adds `delta`, which may be negative, to the counter; at zero, every waiter is released.
    ///
    /// # Panics
    ///
    /// With Go's message `sync: negative WaitGroup counter` if the counter would drop below zero,
    /// and `sync: WaitGroup counter overflow` above `i32::MAX`. The counter is left unchanged.
    ///
    /// ```should_panic
    /// let wg = gsync::WaitGroup::new();
    /// wg.add(1);
    /// wg.done();
    /// wg.done(); // panics: sync: negative WaitGroup counter
    /// ```
    pub fn add(&self, delta: i32) {
        let inner = &*self.inner;
        let mut state = inner.state.load(Ordering::Relaxed);
        loop {
            let count = (state >> COUNT_SHIFT) as i64 + i64::from(delta);
            if count < 0 {
                panic!("sync: negative WaitGroup counter");
            }
            if count > MAX_COUNT {
                panic!("sync: WaitGroup counter overflow");
            }
            let release = count == 0 && state & WAITERS != 0;
            let next = if release {
                // A new round starts; waiters queue under the old one.
                (state & ROUND_MASK).wrapping_add(ROUND_ONE) & ROUND_MASK
            } else {
                ((count as u64) << COUNT_SHIFT) | (state & (ROUND_MASK | WAITERS))
            };
            match inner.state.compare_exchange_weak(
                state,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) if release => break,
                Ok(_) => return,
                Err(now) => state = now,
            }
        }
        let round = state & ROUND_MASK;
        inner.queue.with(|queue| {
            queue.retain(|&(waiter, waiting_round)| {
                if waiting_round == round {
                    // SAFETY: leaving the queue here, not yet woken.
                    unsafe { waiter.wake(RELEASED) };
                    false
                } else {
                    true
                }
            })
        });
    }

    /// Lowers the counter by one.
    ///
    /// # Panics
    ///
    /// `sync: negative WaitGroup counter` if it is already zero.
    pub fn done(&self) {
        self.add(-1);
    }

    /// Blocks until the counter is zero: parks the goroutine, or blocks the thread.
    pub fn wait(&self) {
        let inner = &*self.inner;
        if inner.state.load(Ordering::Acquire) >> COUNT_SHIFT == 0 {
            return;
        }
        let waiter = Waiter::new();
        let queued = inner.queue.with(|queue| {
            let mut state = inner.state.load(Ordering::Acquire);
            loop {
                if state >> COUNT_SHIFT == 0 {
                    return false;
                }
                match inner.state.compare_exchange_weak(
                    state,
                    state | WAITERS,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => break,
                    Err(now) => state = now,
                }
            }
            queue.push_back((waiter.as_ref(), state & ROUND_MASK));
            true
        });
        if queued {
            waiter.wait("sync.WaitGroup.Wait", |waiter| {
                let removed = inner.queue.with(|queue| {
                    let before = queue.len();
                    queue.retain(|&(queued, _)| !queued.is(waiter));
                    queue.len() != before
                });
                if !removed {
                    waiter.outcome_after_dequeue();
                }
            });
        }
    }

    /// The counter's current value, for diagnostics (it may change at once).
    pub fn count(&self) -> u32 {
        (self.inner.state.load(Ordering::Relaxed) >> COUNT_SHIFT) as u32
    }

    /// Adds one, runs `f` in a new goroutine, and calls [`done`](WaitGroup::done) when `f`
    /// returns or panics. Outside a runtime the goroutine runs on the default runtime, as
    /// `gsched::go` does.
    #[cfg(not(goroutines_loom))]
    #[track_caller]
    pub fn go<F>(&self, f: F)
    where
        F: FnOnce() + Send + 'static,
    {
        struct DoneOnDrop(WaitGroup);
        impl Drop for DoneOnDrop {
            fn drop(&mut self) {
                self.0.done();
            }
        }

        self.add(1);
        let done = DoneOnDrop(self.clone());
        drop(gsched::go(move || {
            let _done = done;
            f();
        }));
    }
}

impl Default for WaitGroup {
    fn default() -> Self {
        WaitGroup::new()
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroup")
            .field("count", &self.count())
            .finish_non_exhaustive()
    }
}

// A panic leaves the counter and the queue consistent: every operation is one atomic step or
// finishes under the queue lock.
impl std::panic::UnwindSafe for WaitGroup {}
impl std::panic::RefUnwindSafe for WaitGroup {}
