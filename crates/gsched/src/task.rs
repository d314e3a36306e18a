//! A goroutine's shared header and its scheduling state machine.
//!
//! # States
//!
//! `state` holds a phase and a notification bit:
//!
//! | phase | meaning | who moves it on |
//! | --- | --- | --- |
//! | `SCHEDULED` | in exactly one run queue, or about to be pushed to one | the worker that pops it: to `RUNNING` |
//! | `RUNNING` | a worker is running it | the worker, when it switches out: to `SCHEDULED` (yield), `PARKED` (park) or `DONE` |
//! | `PARKED` | in no queue; waits for `unpark` | `unpark`: to `SCHEDULED`, then pushes it |
//! | `DONE` | finished | nobody |
//!
//! `NOTIFIED` is set by an `unpark` that finds the goroutine not parked, and consumed by its next
//! `park`, which then returns at once.
//!
//! # Why no wake-up is lost
//!
//! A goroutine parks in two steps: it switches out with "park", then its worker tries
//! `RUNNING -> PARKED` with a compare-exchange that requires `NOTIFIED` clear. An `unpark`
//! between the two steps finds `RUNNING`, sets `NOTIFIED`, and makes that compare-exchange fail;
//! the worker then consumes the notification and schedules the goroutine again. An `unpark`
//! after the second step finds `PARKED` and schedules it. Every transition is a single atomic
//! read-modify-write, so exactly one of them wins.

use std::any::Any;
use std::cell::UnsafeCell;
use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};

use ctxswitch::{Coroutine, Yielder};

use crate::runtime::{GoroutineStack, RuntimeShared};

pub(crate) const SCHEDULED: u8 = 0;
pub(crate) const RUNNING: u8 = 1;
pub(crate) const PARKED: u8 = 2;
pub(crate) const DONE: u8 = 3;
const PHASE: u8 = 0b11;
pub(crate) const NOTIFIED: u8 = 0b100;

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
    state: AtomicU8,
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
            state: AtomicU8::new(SCHEDULED),
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

    /// `SCHEDULED -> RUNNING`; false for a queue entry that is stale.
    pub(crate) fn try_start_run(&self) -> bool {
        self.state
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |state| {
                (state & PHASE == SCHEDULED).then_some((state & !PHASE) | RUNNING)
            })
            .is_ok()
    }

    /// The goroutine's own `park`: consumes a notification if there is one.
    pub(crate) fn take_notification(&self) -> bool {
        self.state.fetch_and(!NOTIFIED, Ordering::Acquire) & NOTIFIED != 0
    }

    /// After a "park" switch-out: `RUNNING -> PARKED`, unless a notification arrived, which is
    /// then consumed and the goroutine must be scheduled again (`false`).
    pub(crate) fn finish_park(&self) -> bool {
        match self
            .state
            .compare_exchange(RUNNING, PARKED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(_) => {
                self.state.store(SCHEDULED, Ordering::Release);
                false
            }
        }
    }

    /// After a "yield" switch-out: `RUNNING -> SCHEDULED`, keeping a notification.
    pub(crate) fn finish_yield(&self) {
        self.state.fetch_and(!PHASE, Ordering::Release);
    }

    pub(crate) fn finish_done(&self) {
        self.state.store(DONE, Ordering::Release);
    }

    pub(crate) fn is_scheduled(&self) -> bool {
        self.state.load(Ordering::Acquire) & PHASE == SCHEDULED
    }

    /// Wakes the goroutine; true when the caller must now enqueue it (it was parked).
    pub(crate) fn notify(&self) -> bool {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            let next = match state & PHASE {
                PARKED => SCHEDULED,
                DONE => return false,
                _ if state & NOTIFIED != 0 => return false,
                _ => state | NOTIFIED,
            };
            match self
                .state
                .compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return next == SCHEDULED,
                Err(current) => state = current,
            }
        }
    }
}

/// A payload caught from a goroutine.
pub(crate) type Panic = Box<dyn Any + Send + 'static>;
