//! The one place that picks std's or loom's types and reaches the scheduler: with
//! `--cfg goroutines_loom`, the same algorithms run on loom's atomics, cells and threads, so the
//! models check the code that ships.

use std::time::Instant;

#[cfg(goroutines_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
#[cfg(not(goroutines_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};

#[cfg(goroutines_loom)]
pub(crate) use loom::sync::Arc;
#[cfg(not(goroutines_loom))]
pub(crate) use std::sync::Arc;

/// A cell whose accesses loom tracks under its cfg; outside it, a plain `UnsafeCell`.
#[derive(Debug)]
pub(crate) struct UnsafeCell<T: ?Sized>(
    #[cfg(goroutines_loom)] loom::cell::UnsafeCell<T>,
    #[cfg(not(goroutines_loom))] std::cell::UnsafeCell<T>,
);

impl<T> UnsafeCell<T> {
    #[cfg(goroutines_loom)]
    pub(crate) fn new(value: T) -> Self {
        UnsafeCell(loom::cell::UnsafeCell::new(value))
    }

    #[cfg(not(goroutines_loom))]
    pub(crate) const fn new(value: T) -> Self {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }

    pub(crate) fn into_inner(self) -> T {
        #[cfg(goroutines_loom)]
        return self.0.into_inner();
        #[cfg(not(goroutines_loom))]
        return self.0.into_inner();
    }
}

impl<T: ?Sized> UnsafeCell<T> {
    /// Runs `f` with a pointer to the contents.
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        #[cfg(goroutines_loom)]
        return self.0.with(f);
        #[cfg(not(goroutines_loom))]
        return f(self.0.get());
    }

    /// Runs `f` with a mutable pointer to the contents.
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        #[cfg(goroutines_loom)]
        return self.0.with_mut(f);
        #[cfg(not(goroutines_loom))]
        return f(self.0.get());
    }

    pub(crate) fn get_mut(&mut self) -> &mut T {
        #[cfg(goroutines_loom)]
        // SAFETY: `&mut self` excludes every other access.
        return self.0.with_mut(|contents| unsafe { &mut *contents });
        #[cfg(not(goroutines_loom))]
        return self.0.get_mut();
    }
}

/// Wakes one goroutine or thread blocked in [`park`].
#[derive(Clone, Debug)]
pub(crate) struct Unparker(
    #[cfg(goroutines_loom)] Arc<modeled::Parker>,
    #[cfg(not(goroutines_loom))] gsched::Unparker,
);

impl Unparker {
    /// The handle of the calling goroutine, or of the calling thread outside goroutines, for a
    /// waiter in the caller's own frame.
    ///
    /// # Safety
    ///
    /// The handle is used only while the frame that holds it is alive: wakers let go of it
    /// before the wait returns (see `waiter::Handshake`), so it counts no reference to the
    /// goroutine.
    pub(crate) unsafe fn for_this_frame() -> Self {
        #[cfg(goroutines_loom)]
        return Unparker(modeled::Parker::current());
        // SAFETY: the frame ends before the goroutine's function returns, and the caller's
        // wakers are done with the handle by then (the contract).
        #[cfg(not(goroutines_loom))]
        return Unparker(unsafe { gsched::current_unparker_unchecked() });
    }

    pub(crate) fn unpark(&self) {
        self.0.unpark();
    }
}

/// Parks the caller until unparked or past `deadline`; may return spuriously. `reason` is Go's
/// wait reason, shown in the runtime's leak report. Under loom there is no clock, so deadlines
/// are not modeled: the models never rely on a timeout.
pub(crate) fn park(deadline: Option<Instant>, reason: &'static str) {
    #[cfg(goroutines_loom)]
    {
        let _ = (deadline, reason);
        modeled::Parker::current().park();
    }
    #[cfg(not(goroutines_loom))]
    match deadline {
        Some(deadline) => gsched::park_with_reason_until(reason, deadline),
        None => gsched::park_with_reason(reason),
    }
}

/// A preemption point (see `gsched::checkpoint`): every operation that can complete without
/// blocking passes one, so that a goroutine looping on them shares its worker. Nothing under
/// loom, which schedules threads itself.
#[inline]
pub(crate) fn checkpoint() {
    #[cfg(not(goroutines_loom))]
    gsched::checkpoint();
}

/// Runs `f` on a new goroutine, detached. Under loom it runs on a new modeled thread instead, so
/// the code that starts goroutines is the code the models run.
#[track_caller]
pub(crate) fn spawn(f: impl FnOnce() + Send + 'static) {
    #[cfg(goroutines_loom)]
    drop(loom::thread::spawn(f));
    #[cfg(not(goroutines_loom))]
    drop(gsched::go(f));
}

/// Under loom, a thread's parker is loom's mutex and condition variable holding an unpark
/// token, with `std::thread::park`'s semantics. loom's own `thread::unpark` would also wake a
/// thread blocked on one of loom's mutexes (which the internal lock is, under loom), so it is
/// not used.
#[cfg(goroutines_loom)]
mod modeled {
    use loom::sync::{Arc, Condvar, Mutex};

    #[derive(Debug)]
    pub(crate) struct Parker {
        token: Mutex<bool>,
        unparked: Condvar,
    }

    loom::thread_local! {
        static PARKER: Arc<Parker> = Arc::new(Parker {
            token: Mutex::new(false),
            unparked: Condvar::new(),
        });
    }

    impl Parker {
        pub(crate) fn current() -> Arc<Parker> {
            PARKER.with(Arc::clone)
        }

        pub(crate) fn park(&self) {
            let mut token = self.token.lock().unwrap();
            while !*token {
                token = self.unparked.wait(token).unwrap();
            }
            *token = false;
        }

        pub(crate) fn unpark(&self) {
            *self.token.lock().unwrap() = true;
            self.unparked.notify_one();
        }
    }
}

/// Waits a moment for another party that is about to finish a short step (a waker between
/// taking a waiter out of its queue and handing it the outcome).
pub(crate) fn wait_briefly() {
    #[cfg(goroutines_loom)]
    loom::thread::yield_now();
    #[cfg(not(goroutines_loom))]
    std::thread::yield_now();
}

/// Whether `deadline` has passed. Never under loom, which models no clock.
pub(crate) fn expired(deadline: Instant) -> bool {
    #[cfg(goroutines_loom)]
    {
        let _ = deadline;
        false
    }
    #[cfg(not(goroutines_loom))]
    return Instant::now() >= deadline;
}

/// One step of a bounded busy-wait before queueing: `false` once spinning should stop. Spinning
/// pays only while another CPU may release the lock; under loom it is pure state-space, so it is
/// off there.
pub(crate) fn spin(round: u32) -> bool {
    const SPIN_ROUNDS: u32 = 6;
    if cfg!(goroutines_loom) || round >= SPIN_ROUNDS {
        return false;
    }
    for _ in 0..(1u32 << round) {
        std::hint::spin_loop();
    }
    true
}

/// One step of the spin of a plain thread about to park, waiting for a wake-up that may be a
/// moment away (a goroutine answering): `false` once it should park. A futex sleep and wake cost
/// the two sides microseconds that a short spin saves when the answer comes within it. A
/// goroutine never spins here: parking lets its worker run the very goroutine it waits for.
pub(crate) fn spin_before_thread_park(round: u32) -> bool {
    #[cfg(goroutines_loom)]
    {
        let _ = round;
        false
    }
    #[cfg(not(goroutines_loom))]
    return (round > 0 || !gsched::in_goroutine()) && spin(round);
}

/// When a waiter started waiting, to tell when it starves.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WaitStart(#[cfg(not(goroutines_loom))] Instant);

impl WaitStart {
    pub(crate) fn now() -> Self {
        #[cfg(goroutines_loom)]
        return WaitStart();
        #[cfg(not(goroutines_loom))]
        return WaitStart(Instant::now());
    }

    /// Whether a waiter that started then and has lost `retries` races for the lock starves:
    /// Go's threshold, 1 ms of waiting. loom has no clock, so there a waiter starves once it has
    /// lost a race, which makes the handoff path part of the model.
    pub(crate) fn starving(self, retries: u32) -> bool {
        #[cfg(goroutines_loom)]
        return retries >= 1;
        #[cfg(not(goroutines_loom))]
        {
            let _ = retries;
            self.0.elapsed() >= std::time::Duration::from_millis(1)
        }
    }
}

/// A small random number for select's polling order. Under loom the order is fixed, since a
/// model must replay the same choices.
pub(crate) fn random_below(bound: usize) -> usize {
    #[cfg(goroutines_loom)]
    {
        let _ = bound;
        0
    }
    #[cfg(not(goroutines_loom))]
    {
        use std::cell::Cell;
        thread_local! {
            static STATE: Cell<u64> = Cell::new({
                // Each thread starts from its own seed: the address of its local and the time.
                let local = 0u8;
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |since| since.as_nanos() as u64);
                (&local as *const u8 as u64) ^ nanos.rotate_left(32) | 1
            });
        }
        STATE.with(|state| {
            // xorshift64*: fast and plenty for a uniform pick among a few cases.
            let mut x = state.get();
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            state.set(x);
            ((x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as usize) % bound
        })
    }
}
