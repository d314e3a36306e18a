//! Fork-join with borrowing: goroutines that may use the caller's stack, all joined before
//! `scope` returns.

use std::fmt;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::join::{Completer, JoinHandle, Packet, PacketRef};
use crate::park::{Unparker, current_unparker, park_with_reason};
use crate::spawn::{Builder, spawn_boxed};
use crate::task::{BoxedFn, Panic};

struct ScopeState {
    running: AtomicUsize,
    waiter: Mutex<Option<Unparker>>,
    /// The first panic of a goroutine nobody joined.
    unjoined_panic: Mutex<Option<Panic>>,
}

/// A scope for goroutines that borrow from the caller; see [`scope`].
pub struct Scope<'scope, 'env: 'scope> {
    state: Arc<ScopeState>,
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

/// Runs `f` with a [`Scope`] whose goroutines may borrow anything that outlives the call; waits
/// for all of them before returning (the semantics of `std::thread::scope`).
///
/// ```
/// let mut counts = [0u32; 4];
/// gsched::scope(|s| {
///     for (i, count) in counts.iter_mut().enumerate() {
///         s.go(move || *count = i as u32 * 10);
///     }
/// });
/// assert_eq!(counts, [0, 10, 20, 30]);
/// ```
///
/// # Panics
///
/// When `f` panics, after every goroutine finished, with `f`'s payload; otherwise, when a
/// goroutine that was not joined panicked, with the first such payload.
pub fn scope<'env, F, T>(f: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    let scope = Scope {
        state: Arc::new(ScopeState {
            running: AtomicUsize::new(0),
            waiter: Mutex::new(None),
            unjoined_panic: Mutex::new(None),
        }),
        scope: PhantomData,
        env: PhantomData,
    };
    let result = panic::catch_unwind(AssertUnwindSafe(|| f(&scope)));
    while scope.state.running.load(Ordering::Acquire) != 0 {
        *scope
            .state
            .waiter
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = Some(current_unparker());
        if scope.state.running.load(Ordering::Acquire) == 0 {
            break;
        }
        park_with_reason("scope");
    }
    match result {
        Err(payload) => panic::resume_unwind(payload),
        Ok(value) => {
            if let Some(payload) = scope
                .state
                .unjoined_panic
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .take()
            {
                panic::resume_unwind(payload);
            }
            value
        }
    }
}

impl<'scope> Scope<'scope, '_> {
    /// Starts a goroutine that may borrow from outside the scope.
    #[track_caller]
    pub fn go<F, T>(&'scope self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        let location = std::panic::Location::caller();
        let report_to = Arc::clone(&self.state);
        let packet = Arc::new(Packet::new(Some(Box::new(move |payload| {
            let mut slot = report_to
                .unjoined_panic
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            slot.get_or_insert(payload);
        }))));
        let completer = Completer {
            packet: Arc::clone(&packet),
        };
        let state = Arc::clone(&self.state);
        state.running.fetch_add(1, Ordering::AcqRel);
        let body: Box<dyn FnOnce() + Send + 'scope> = Box::new(move || {
            let result = panic::catch_unwind(AssertUnwindSafe(f));
            let completer = completer;
            completer.packet.complete(result);
            drop(completer);
            if state.running.fetch_sub(1, Ordering::AcqRel) == 1 {
                let waiter = state
                    .waiter
                    .lock()
                    .unwrap_or_else(|poison| poison.into_inner())
                    .take();
                if let Some(waiter) = waiter {
                    waiter.unpark();
                }
            }
        });
        type ScopedBody<'a> = Box<dyn FnOnce() + Send + 'a>;
        // SAFETY: `scope` neither returns nor unwinds before `running` is back to zero, that is
        // after this body ended or was dropped: nothing it borrows outlives `'scope`.
        let body: BoxedFn = unsafe { std::mem::transmute::<ScopedBody<'scope>, BoxedFn>(body) };
        let (id, name) = spawn_boxed(Builder::new(), body, location);
        ScopedJoinHandle {
            inner: JoinHandle {
                packet: PacketRef::Shared(packet),
                id,
                name,
                marker: PhantomData,
            },
            scope: PhantomData,
        }
    }
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("running", &self.state.running.load(Ordering::Relaxed))
            .finish()
    }
}

/// A handle to join one goroutine of a [`Scope`]: a [`JoinHandle`] that cannot outlive the
/// scope.
pub struct ScopedJoinHandle<'scope, T> {
    inner: JoinHandle<T>,
    scope: PhantomData<&'scope ()>,
}

impl<T> ScopedJoinHandle<'_, T> {
    /// Waits for the goroutine and returns its value or panic payload.
    ///
    /// # Errors
    ///
    /// The goroutine's panic payload.
    pub fn join(self) -> std::thread::Result<T> {
        self.inner.join()
    }
}

impl<T> std::ops::Deref for ScopedJoinHandle<'_, T> {
    type Target = JoinHandle<T>;

    /// The handle's read-only side: `is_finished`, `id`, `name`.
    fn deref(&self) -> &JoinHandle<T> {
        &self.inner
    }
}

impl<T> fmt::Debug for ScopedJoinHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}
