//! Fork-join with borrowing: goroutines that may use the caller's stack, all joined before
//! `scope` returns.
//!
//! # Borrowed frames at shutdown
//!
//! A scoped goroutine may borrow anything on the stack of the goroutine that called `scope` (the
//! owner). Each one, started or not, holds a [`ScopeMember`] that counts it in the owner's
//! `Task::borrowers` until it has finished or its closure was dropped. Shutdown unwinds an owner
//! only once that count is zero, so the frame others borrow unwinds after its borrowers, never
//! before; an owner whose scoped goroutines never finish is leaked, not unwound.

use std::fmt;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::join::{Completer, JoinHandle, Packet, PacketRef, SharedPacket, joinable_result};
use crate::park::{Unparker, current_unparker, park_with_reason};
use crate::runtime::spawn::{Builder, spawn_boxed};
use crate::scheduler::WorkerLocal;
use crate::scheduler::task::{BoxedFn, Panic};
use crate::scheduler::task_ref::TaskRef;

struct ScopeState {
    running: AtomicUsize,
    waiter: Mutex<Option<Unparker>>,
    /// The first panic of a goroutine nobody joined.
    unjoined_panic: Mutex<Option<Panic>>,
    /// The goroutine whose stack holds the scope; `None` on a plain thread.
    owner: Option<TaskRef>,
}

/// One scoped goroutine's claim on the scope and its owner's frame, from `Scope::go` until its
/// body has finished or was dropped.
struct ScopeMember {
    state: Arc<ScopeState>,
}

impl ScopeMember {
    fn new(state: &Arc<ScopeState>) -> Self {
        if let Some(owner) = &state.owner {
            owner.borrowers.fetch_add(1, Ordering::AcqRel);
        }
        state.running.fetch_add(1, Ordering::AcqRel);
        ScopeMember {
            state: Arc::clone(state),
        }
    }
}

impl Drop for ScopeMember {
    fn drop(&mut self) {
        if let Some(owner) = &self.state.owner
            && owner.borrowers.fetch_sub(1, Ordering::AcqRel) == 1
        {
            owner.runtime.borrowers_released(owner);
        }
        if self.state.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            let waiter = self
                .state
                .waiter
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .take();
            if let Some(waiter) = waiter {
                waiter.unpark();
            }
        }
    }
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
/// When the runtime shuts down while a goroutine waits in `scope`, its scoped goroutines are
/// unwound first; the waiting goroutine's own frames unwind only after every one of them has
/// finished, and if one never does (it catches the unwind), both are leaked and listed in the
/// shutdown report.
///
/// # Panics
///
/// When `f` panics, after every goroutine finished, with `f`'s payload; otherwise, when a
/// goroutine that was not joined panicked, with the first such payload.
pub fn scope<'env, F, T>(f: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    let owner = WorkerLocal::with_current(WorkerLocal::current_ref).flatten();
    let scope = Scope {
        state: Arc::new(ScopeState {
            running: AtomicUsize::new(0),
            waiter: Mutex::new(None),
            unjoined_panic: Mutex::new(None),
            owner,
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
    ///
    /// # Panics
    ///
    /// When the goroutine cannot be started (see [`Builder::spawn`]); the scope stays usable.
    #[track_caller]
    pub fn go<F, T>(&'scope self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        let location = std::panic::Location::caller();
        let report_to = Arc::clone(&self.state);
        let packet = Arc::new(SharedPacket {
            packet: Packet::new(),
            unjoined: Box::new(move |payload| {
                let mut slot = report_to
                    .unjoined_panic
                    .lock()
                    .unwrap_or_else(|poison| poison.into_inner());
                slot.get_or_insert(payload);
            }),
        });
        let completer = Completer {
            shared: Arc::clone(&packet),
        };
        let member = ScopeMember::new(&self.state);
        let body: Box<dyn FnOnce(Result<(), Panic>) + Send + 'scope> = Box::new(move |run| {
            let result = match run {
                Ok(()) => joinable_result(panic::catch_unwind(AssertUnwindSafe(f))),
                Err(why) => match panic::catch_unwind(AssertUnwindSafe(move || drop(f))) {
                    Ok(()) => Err(why),
                    Err(payload) => Err(payload),
                },
            };
            completer.complete(result);
            // Last: once the member is gone the scope may return and its borrows end.
            drop(member);
        });
        type ScopedBody<'a> = Box<dyn FnOnce(Result<(), Panic>) + Send + 'a>;
        // SAFETY: `scope` neither returns nor unwinds before `running` is back to zero, and
        // shutdown does not unwind the owner's frame before its `borrowers` are: both happen
        // only once this body has ended or was dropped, so nothing it borrows outlives `'scope`.
        let body: BoxedFn = unsafe { std::mem::transmute::<ScopedBody<'scope>, BoxedFn>(body) };
        let (id, name) = match spawn_boxed(Builder::new(), body, location) {
            Ok(spawned) => spawned,
            Err(err) => panic!("gsched: {err}"),
        };
        ScopedJoinHandle {
            inner: JoinHandle {
                packet: PacketRef::Shared(packet),
                id,
                name,
                joined: false,
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
