//! `Once<T>`: Go's `sync.Once`, holding the value it computed, like `std::sync::OnceLock`.

use std::collections::VecDeque;
use std::fmt;
use std::mem::MaybeUninit;

use crate::lock_cell::LockCell;
use crate::shim::{AtomicU8, Ordering, UnsafeCell};
use crate::waiter::{Waiter, WaiterRef};

const INCOMPLETE: u8 = 0;
const RUNNING: u8 = 1;
const COMPLETE: u8 = 2;

/// The outcome waiters are woken with: look at the state again.
const RECHECK: usize = 1;

/// A value computed once, by the first caller; the others park until it is ready.
///
/// # After a panic
///
/// If the initializer panics, the `Once` stays empty and the next caller runs its own
/// initializer, as `std::sync::OnceLock::get_or_init` does. This is a deliberate departure
/// from both Go, whose `Once.Do` counts the panicking call as done, and `std::sync::Once`,
/// which poisons: a `Once<T>` that counted a panicking call as done would have no value to
/// hand to later callers, and poisoning would turn one failure into a panic in every later
/// caller. Waiters parked behind the panicking call wake and one of them runs its
/// initializer. For Go's behaviour, catch the panic inside the closure.
///
/// ```
/// use gsync::Once;
///
/// static CONFIG: Once<String> = Once::new();
/// gsched::scope(|s| {
///     for _ in 0..4 {
///         s.go(|| assert_eq!(CONFIG.get_or_init(|| "loaded".to_string()), "loaded"));
///     }
/// });
///
/// let setup = Once::new();
/// setup.call_once(|| println!("runs once"));
/// setup.call_once(|| unreachable!());
/// ```
pub struct Once<T = ()> {
    state: AtomicU8,
    waiters: LockCell<VecDeque<WaiterRef>>,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: the value is written once, before COMPLETE is published, and only read after; sharing
// it needs `T: Sync`, and the initializing caller may be on any thread, which needs `T: Send`.
unsafe impl<T: Send + Sync> Sync for Once<T> {}
// SAFETY: owning the `Once` owns the value.
unsafe impl<T: Send> Send for Once<T> {}

impl<T> Once<T> {
    /// An empty `Once`.
    #[cfg(not(goroutines_loom))]
    pub const fn new() -> Self {
        Once {
            state: AtomicU8::new(INCOMPLETE),
            waiters: LockCell::new(VecDeque::new()),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// An empty `Once`.
    #[cfg(goroutines_loom)]
    pub fn new() -> Self {
        Once {
            state: AtomicU8::new(INCOMPLETE),
            waiters: LockCell::new(VecDeque::new()),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// The value, if it has been computed.
    pub fn get(&self) -> Option<&T> {
        (self.state.load(Ordering::Acquire) == COMPLETE).then(|| {
            // SAFETY: COMPLETE is stored after the value is written, and it is never written
            // again.
            self.value
                .with(|value| unsafe { (*value).assume_init_ref() })
        })
    }

    /// Whether the value has been computed.
    pub fn is_completed(&self) -> bool {
        self.state.load(Ordering::Acquire) == COMPLETE
    }

    /// The value, computing it with `init` if nobody has; callers that arrive while another
    /// computes it park until it is done.
    pub fn get_or_init(&self, init: impl FnOnce() -> T) -> &T {
        if let Some(value) = self.get() {
            return value;
        }
        self.initialize(init);
        self.get()
            .expect("the value is set once initialize returns")
    }

    /// Consumes the `Once` and returns the value, if it was computed.
    pub fn into_inner(mut self) -> Option<T> {
        let complete = self.state.load(Ordering::Acquire) == COMPLETE;
        // Mark it empty so that `drop` does not drop the value taken here.
        self.state.store(INCOMPLETE, Ordering::Relaxed);
        // SAFETY: when complete the value is initialized, and the state change above means it is
        // read out exactly once.
        complete.then(|| unsafe { self.value.get_mut().assume_init_read() })
    }

    #[cold]
    fn initialize(&self, init: impl FnOnce() -> T) {
        let mut init = Some(init);
        loop {
            match self.state.compare_exchange(
                INCOMPLETE,
                RUNNING,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    let reset = ResetOnUnwind(self);
                    let value = (init.take().expect("runs once"))();
                    std::mem::forget(reset);
                    self.value.with_mut(|slot| {
                        // SAFETY: RUNNING gives this caller sole access to the slot.
                        unsafe { (*slot).write(value) };
                    });
                    self.publish(COMPLETE);
                    return;
                }
                Err(COMPLETE) => return,
                Err(_) => self.wait_while_running(),
            }
        }
    }

    fn wait_while_running(&self) {
        let waiter = Waiter::new();
        let queued = self.waiters.with(|waiters| {
            if self.state.load(Ordering::Acquire) != RUNNING {
                return false;
            }
            waiters.push_back(waiter.as_ref());
            true
        });
        if queued {
            waiter.wait("sync.Once.Do", |waiter| waiter.leave(&self.waiters));
        }
    }

    /// Stores the state the initializer left and wakes everyone waiting for it.
    fn publish(&self, state: u8) {
        self.state.store(state, Ordering::Release);
        self.waiters.with(|waiters| {
            for waiter in waiters.drain(..) {
                // SAFETY: leaving the queue here, not yet woken.
                unsafe { waiter.wake(RECHECK) };
            }
        });
    }
}

impl Once<()> {
    /// Runs `f` if no call has completed yet (Go's `Once.Do`).
    pub fn call_once(&self, f: impl FnOnce()) {
        self.get_or_init(f);
    }
}

/// Reopens the `Once` if the initializer panics, so the next caller tries again.
struct ResetOnUnwind<'a, T>(&'a Once<T>);

impl<T> Drop for ResetOnUnwind<'_, T> {
    fn drop(&mut self) {
        self.0.publish(INCOMPLETE);
    }
}

impl<T> Default for Once<T> {
    fn default() -> Self {
        Once::new()
    }
}

impl<T> Drop for Once<T> {
    fn drop(&mut self) {
        if self.state.load(Ordering::Acquire) == COMPLETE {
            // SAFETY: complete means initialized, and this is the last access.
            unsafe { self.value.get_mut().assume_init_drop() };
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Once<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_tuple("Once");
        match self.get() {
            Some(value) => debug.field(value),
            None => debug.field(&format_args!("<uninit>")),
        };
        debug.finish()
    }
}

// As `OnceLock`: a panicking initializer leaves the `Once` empty, never half-set.
impl<T: std::panic::UnwindSafe> std::panic::UnwindSafe for Once<T> {}
impl<T: std::panic::RefUnwindSafe + std::panic::UnwindSafe> std::panic::RefUnwindSafe for Once<T> {}
