//! `WaitGroup`: Go's `sync.WaitGroup`, as a cheap shared handle.

use std::collections::VecDeque;
use std::fmt;

use crate::lock_cell::LockCell;
use crate::shim::{self, Arc, AtomicU64, Ordering};
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
        crate::shim::checkpoint();
        let inner = &*self.inner;
        // One atomic add, as Go's: a compare-and-swap loop would retry while goroutines on
        // other workers call `done` at the same time. The count lives in the high half, so
        // adding the shifted delta (modulo 2^64) adds to the count and leaves the low half be.
        let step = (i64::from(delta) << COUNT_SHIFT) as u64;
        let before = inner.state.fetch_add(step, Ordering::AcqRel);
        let count = i64::from((before >> COUNT_SHIFT) as u32) + i64::from(delta);
        if !(0..=MAX_COUNT).contains(&count) {
            // Give the counter back before reporting, so that nothing changed.
            inner.state.fetch_sub(step, Ordering::Relaxed);
            if count < 0 {
                panic!("sync: negative WaitGroup counter");
            }
            panic!("sync: WaitGroup counter overflow");
        }
        if count != 0 || before & WAITERS == 0 {
            return;
        }
        // The count reached zero with waiters: end their round. Only this call saw the zero
        // with the flag set, so the round is still theirs; an `add` racing in meanwhile (reuse
        // before the waiters returned, which Go reports as misuse) keeps its count.
        let round = before & ROUND_MASK;
        let mut state = inner.state.load(Ordering::Relaxed);
        loop {
            let next =
                (state & !(ROUND_MASK | WAITERS)) | (round.wrapping_add(ROUND_ONE) & ROUND_MASK);
            match inner.state.compare_exchange_weak(
                state,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => state = now,
            }
        }
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
        shim::spawn(move || {
            let _done = done;
            f();
        });
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
