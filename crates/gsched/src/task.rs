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
pub(crate) type Body = Box<dyn FnOnce() + Send + 'static>;

/// What only the thread running the goroutine touches.
pub(crate) struct TaskLocal {
    /// The closure, until the goroutine first runs.
    pub(crate) body: Option<Body>,
    pub(crate) coroutine: Option<GoroutineCoroutine>,
    /// The coroutine's yielder, valid while `coroutine` is alive and started.
    pub(crate) yielder: *const Yielder<(), Switch>,
    /// What it is parked on, for the leak report.
    pub(crate) parked_on: &'static str,
}

/// A goroutine.
pub(crate) struct Task {
    pub(crate) id: u64,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) spawned_at: &'static Location<'static>,
    pub(crate) migratable: bool,
    pub(crate) stack_size: usize,
    pub(crate) runtime: Arc<RuntimeShared>,
    pub(crate) state: TaskState,
    /// The worker it first ran on (`NO_HOME` before).
    pub(crate) home: AtomicUsize,
    /// The sequence number of the timer that may wake it, 0 for none.
    pub(crate) timer: AtomicU64,
    local: UnsafeCell<TaskLocal>,
}

// SAFETY: `local` is touched only by the thread that won `SCHEDULED -> RUNNING` (the
// compare-exchange hands it over with acquire/release ordering), or by the runtime at shutdown
// after every worker stopped; everything else is atomic or immutable.
unsafe impl Sync for Task {}
// SAFETY: as above; the body is `Send`, and the coroutine moves only between the workers
// the safety model allows (see `Builder::migratable`).
unsafe impl Send for Task {}

impl Task {
    pub(crate) fn new(
        id: u64,
        name: Option<Arc<str>>,
        spawned_at: &'static Location<'static>,
        migratable: bool,
        stack_size: usize,
        runtime: Arc<RuntimeShared>,
        body: Body,
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
            timer: AtomicU64::new(0),
            local: UnsafeCell::new(TaskLocal {
                body: Some(body),
                coroutine: None,
                yielder: std::ptr::null(),
                parked_on: "",
            }),
        }
    }

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
