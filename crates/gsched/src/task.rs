//! A goroutine's shared header; its scheduling state machine is `state::TaskState`.

use std::any::Any;
use std::cell::UnsafeCell;
use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};

use ctxswitch::{Coroutine, Yielder};

use crate::runtime::{GoroutineStack, RuntimeShared};
use crate::state::TaskState;

/// No worker yet: the goroutine has not run.
pub(crate) const NO_HOME: usize = usize::MAX;

/// Why a goroutine switched out to its worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Switch {
    Yield,
    Park,
}

pub(crate) type GoroutineCoroutine = Coroutine<(), Switch, (), GoroutineStack>;
pub(crate) type BoxedFn = Box<dyn FnOnce() + Send + 'static>;

/// What a goroutine runs, stored inline in its task so that a spawn makes one allocation.
pub(crate) trait Body: Send + Sync + 'static {
    /// Runs the goroutine's function to the end.
    ///
    /// # Safety
    ///
    /// Called once, by the thread running the goroutine.
    unsafe fn run(&self);

    /// Drops the function without running it (the runtime shuts down first); true if it had
    /// not run.
    ///
    /// # Safety
    ///
    /// No thread runs the goroutine, or ever will.
    unsafe fn discard(&self) -> bool;
}

/// A boxed closure as a body, for goroutines whose result travels elsewhere (`scope`).
pub(crate) struct BoxedBody(UnsafeCell<Option<BoxedFn>>);

impl BoxedBody {
    pub(crate) fn new(function: BoxedFn) -> Self {
        BoxedBody(UnsafeCell::new(Some(function)))
    }
}

// SAFETY: the closure is taken only by the runner, or at shutdown when nobody runs (the
// contracts of `run` and `discard`), and it is `Send`.
unsafe impl Sync for BoxedBody {}

impl Body for BoxedBody {
    unsafe fn run(&self) {
        // SAFETY: only the runner touches the closure (the contract).
        let function = unsafe { (*self.0.get()).take() };
        (function.expect("a goroutine's body runs once"))();
    }

    unsafe fn discard(&self) -> bool {
        // SAFETY: nobody runs the goroutine (the contract).
        unsafe { (*self.0.get()).take() }.is_some()
    }
}

/// What only the thread running the goroutine touches.
pub(crate) struct TaskLocal {
    pub(crate) coroutine: Option<GoroutineCoroutine>,
    /// The coroutine's yielder, valid while `coroutine` is alive and started.
    pub(crate) yielder: *const Yielder<(), Switch>,
    /// What it is parked on, for the leak report.
    pub(crate) parked_on: &'static str,
}

/// A goroutine: its header, then its body, in one allocation.
pub(crate) struct Task<B: ?Sized = dyn Body> {
    pub(crate) id: u64,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) spawned_at: &'static Location<'static>,
    pub(crate) migratable: bool,
    pub(crate) stack_size: usize,
    pub(crate) runtime: Arc<RuntimeShared>,
    pub(crate) state: TaskState,
    /// The worker it first ran on (`NO_HOME` before).
    pub(crate) home: AtomicUsize,
    /// The worker whose goroutine spawned it (`NO_HOME` when spawned from outside), which is
    /// where its memory is best freed.
    pub(crate) spawned_on: AtomicUsize,
    /// The sequence number of the timer that may wake it, 0 for none.
    pub(crate) timer: AtomicU64,
    local: UnsafeCell<TaskLocal>,
    pub(crate) body: B,
}

// SAFETY: `local` is touched only by the thread that won `SCHEDULED -> RUNNING` (the
// compare-exchange hands it over with acquire/release ordering), or by the runtime at shutdown
// after every worker stopped; everything else is atomic or immutable.
unsafe impl<B: ?Sized + Sync> Sync for Task<B> {}
// SAFETY: as above; the body is `Send`, and the coroutine moves only between the workers
// the safety model allows (see `Builder::migratable`).
unsafe impl<B: ?Sized + Send> Send for Task<B> {}

impl<B: Body> Task<B> {
    pub(crate) fn new(
        id: u64,
        name: Option<Arc<str>>,
        spawned_at: &'static Location<'static>,
        migratable: bool,
        stack_size: usize,
        runtime: Arc<RuntimeShared>,
        body: B,
    ) -> Self {
        Task {
            id,
            name,
            spawned_at,
            migratable,
            stack_size,
            runtime,
            state: TaskState::new(),
            home: AtomicUsize::new(NO_HOME),
            spawned_on: AtomicUsize::new(NO_HOME),
            timer: AtomicU64::new(0),
            local: UnsafeCell::new(TaskLocal {
                coroutine: None,
                yielder: std::ptr::null(),
                parked_on: "",
            }),
            body,
        }
    }
}

impl<B: ?Sized> Task<B> {
    /// # Safety
    ///
    /// The caller is the thread running this goroutine (it won `try_start_run`), or the runtime
    /// tearing down after every worker stopped, and no other reference from this call is live.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn local(&self) -> &mut TaskLocal {
        // SAFETY: as the caller guarantees.
        unsafe { &mut *self.local.get() }
    }
}

/// A payload caught from a goroutine.
pub(crate) type Panic = Box<dyn Any + Send + 'static>;
