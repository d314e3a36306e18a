//! The one place that picks std's or loom's types and reaches the scheduler: with
//! `--cfg goroutines_loom`, the readiness protocol and the poller's wake state run on loom's
//! atomics, locks and threads, so the models check the code that ships.

use std::time::Instant;

#[cfg(goroutines_loom)]
pub(crate) use loom::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
#[cfg(not(goroutines_loom))]
pub(crate) use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

#[cfg(goroutines_loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(not(goroutines_loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, through a poisoning (no protocol here leaves its data half-changed).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// Wakes one goroutine or thread blocked in [`park`].
#[derive(Clone, Debug)]
pub(crate) struct Unparker(
    #[cfg(goroutines_loom)] loom::sync::Arc<modeled::Parker>,
    #[cfg(not(goroutines_loom))] gsched::Unparker,
);

impl Unparker {
    /// The caller's unparker.
    pub(crate) fn current() -> Self {
        #[cfg(goroutines_loom)]
        return Unparker(modeled::Parker::current());
        #[cfg(not(goroutines_loom))]
        return Unparker(gsched::current_unparker());
    }

    pub(crate) fn unpark(&self) {
        self.0.unpark();
    }
}

/// Parks the caller until unparked or past `deadline`; may return spuriously. `reason` is Go's
/// wait reason, for the goroutine dump. While parked, the wait counts as a pending wake-up, so
/// the deadlock report stays silent: a peer outside the process may still write.
pub(crate) fn park(deadline: Option<Instant>, reason: &'static str) {
    #[cfg(goroutines_loom)]
    {
        let _ = (deadline, reason);
        modeled::Parker::current().park();
    }
    #[cfg(not(goroutines_loom))]
    {
        let _pending = gsched::PendingWake::new();
        match deadline {
            Some(deadline) => gsched::park_with_reason_until(reason, deadline),
            None => gsched::park_with_reason(reason),
        }
    }
}

/// Under loom, a thread's parker is loom's mutex and condition variable holding an unpark
/// token, with `std::thread::park`'s semantics (loom's own `thread::unpark` would also wake a
/// thread blocked on one of loom's mutexes).
#[cfg(goroutines_loom)]
pub(crate) mod modeled {
    use loom::sync::{Arc, Condvar, Mutex};

    #[derive(Debug)]
    pub(crate) struct Parker {
        token: Mutex<bool>,
        unparked: Condvar,
    }

    loom::thread_local! {
        static PARKER: Arc<Parker> = Arc::new(Parker::new());
    }

    impl Parker {
        pub(crate) fn new() -> Parker {
            Parker {
                token: Mutex::new(false),
                unparked: Condvar::new(),
            }
        }

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
