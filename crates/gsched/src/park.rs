//! Parking: the interface gsync's primitives block through.
//!
//! From a goroutine, [`park`] suspends the goroutine and its worker runs others; from a plain
//! thread it blocks the thread. [`Unparker::unpark`] may be called from any thread, any number of
//! times, before or after the park: an unpark that finds the goroutine running is kept as a
//! token that its next `park` consumes, so no wake-up is lost. `park` may also return
//! spuriously, so callers re-check their condition in a loop, as with `std::thread::park`.

use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::scheduler::WorkerLocal;
use crate::scheduler::task::{PARKED_WITHOUT_REASON, Switch, Task};
use crate::scheduler::task_ref::{QueueRef, TaskRef};

/// A handle that wakes one parked goroutine or thread.
#[derive(Clone)]
pub struct Unparker {
    target: Target,
}

#[derive(Clone)]
enum Target {
    Goroutine(TaskRef),
    /// A goroutine that outlives every use of this handle (see `current_unparker_unchecked`).
    Uncounted(UncountedTask),
    Thread(Thread),
}

/// A goroutine's task, without a reference.
#[derive(Clone, Copy)]
struct UncountedTask(NonNull<Task>);

// SAFETY: `Task` is `Send` and `Sync`; the handle's contract keeps the task alive while it is
// used, from any thread (see `current_unparker_unchecked`).
unsafe impl Send for UncountedTask {}
// SAFETY: as above.
unsafe impl Sync for UncountedTask {}

impl Unparker {
    /// Wakes the goroutine or thread if it is parked, or makes its next park return at once.
    #[inline]
    pub fn unpark(&self) {
        match &self.target {
            // SAFETY: the handle's reference keeps the task alive.
            Target::Goroutine(task) => unsafe { unpark_goroutine(task.as_non_null()) },
            // SAFETY: the goroutine has not finished (the contract of
            // `current_unparker_unchecked`), and its own reference keeps its task alive until
            // then (see `QueueRef`).
            Target::Uncounted(task) => unsafe { unpark_goroutine(task.0) },
            Target::Thread(thread) => thread.unpark(),
        }
    }
}

/// Wakes the goroutine at `task`, a pointer with the task's own provenance (from
/// `TaskRef::as_non_null`), which the entry it may queue keeps, and frees the task through in
/// the end.
///
/// # Safety
///
/// The task is alive for the whole call.
#[inline]
unsafe fn unpark_goroutine(task: NonNull<Task>) {
    // SAFETY: alive, as the caller guarantees.
    let goroutine = unsafe { task.as_ref() };
    if goroutine.state.notify() {
        // SAFETY: the goroutine was parked, so it has not ended, and `notify` moved it into
        // `QUEUED`: this is its one entry.
        let queued = unsafe { QueueRef::woken(task) };
        goroutine.runtime.schedule_woken(queued);
    }
}

impl std::fmt::Debug for Unparker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.target {
            Target::Goroutine(task) => write!(f, "Unparker(goroutine {})", task.id),
            Target::Uncounted(task) => {
                // SAFETY: as in `unpark`.
                let task = unsafe { task.0.as_ref() };
                write!(f, "Unparker(goroutine {})", task.id)
            }
            Target::Thread(thread) => write!(f, "Unparker(thread {:?})", thread.id()),
        }
    }
}

/// The unparker of the calling goroutine, or of the calling thread outside goroutines.
pub fn current_unparker() -> Unparker {
    let target = WorkerLocal::with_current(|local| local.current_ref().map(Target::Goroutine))
        .flatten()
        .unwrap_or_else(|| Target::Thread(thread::current()));
    Unparker { target }
}

/// As [`current_unparker`], without counting a reference to the calling goroutine: no atomic
/// read-modify-write to make the handle, clone it or drop it, for a primitive that parks in
/// every blocking call and hands its unparker only to wakers that are done with it before the
/// park returns. On a plain thread it is the thread's handle, as from `current_unparker`.
///
/// ```
/// gsched::run(|| {
///     let done = std::sync::atomic::AtomicBool::new(false);
///     // SAFETY: the waker below is joined before this goroutine returns.
///     let me = unsafe { gsched::current_unparker_unchecked() };
///     std::thread::scope(|scope| {
///         scope.spawn(|| {
///             done.store(true, std::sync::atomic::Ordering::Release);
///             me.unpark();
///         });
///         while !done.load(std::sync::atomic::Ordering::Acquire) {
///             gsched::park();
///         }
///     });
/// });
/// ```
///
/// # Safety
///
/// The handle and its clones are used (unparked, formatted, cloned) only until the calling
/// goroutine's function returns or is unwound to its end; dropping one later is fine. A
/// goroutine its runtime leaks at shutdown, with frames that may hold such handles, keeps its
/// task for good, so those handles stay usable.
pub unsafe fn current_unparker_unchecked() -> Unparker {
    let target = WorkerLocal::with_current(|local| {
        local
            .current_ptr()
            .map(|task| Target::Uncounted(UncountedTask(task)))
    })
    .flatten()
    .unwrap_or_else(|| Target::Thread(thread::current()));
    Unparker { target }
}

/// Whether the caller runs in a goroutine (rather than on a plain thread).
pub fn in_goroutine() -> bool {
    WorkerLocal::with_current(WorkerLocal::in_goroutine).unwrap_or(false)
}

/// Parks the calling goroutine (or thread) until unparked; may return spuriously.
pub fn park() {
    park_with(None, PARKED_WITHOUT_REASON);
}

/// As [`park`], naming what the goroutine waits on for the runtime's leak report.
// Inlined into the synchronization primitives, which park through it: one return fewer to
// mispredict after each resume (see `yield_now`).
#[inline]
pub fn park_with_reason(reason: &'static str) {
    park_with(None, or_bare(reason));
}

/// Parks the calling goroutine (or thread) until unparked or until `timeout` has passed; may
/// return spuriously. A timeout too long to be a point in time (`Duration::MAX`) means no
/// timeout, as with `std::thread::park_timeout`.
pub fn park_timeout(timeout: Duration) {
    park_with(Instant::now().checked_add(timeout), PARKED_WITHOUT_REASON);
}

/// Parks the calling goroutine (or thread) until unparked or until `deadline` has passed; may
/// return spuriously.
///
/// ```
/// use std::time::{Duration, Instant};
///
/// gsched::run(|| {
///     let deadline = Instant::now() + Duration::from_millis(1);
///     while Instant::now() < deadline {
///         gsched::park_until(deadline);
///     }
/// });
/// ```
pub fn park_until(deadline: Instant) {
    park_with(Some(deadline), PARKED_WITHOUT_REASON);
}

/// As [`park_until`], naming what the goroutine waits on for the runtime's leak report (Go's
/// wait reasons: "chan receive", "sync.Mutex.Lock"). With [`park_with_reason`], the form the
/// synchronization primitives block through.
#[inline]
pub fn park_with_reason_until(reason: &'static str, deadline: Instant) {
    park_with(Some(deadline), or_bare(reason));
}

/// An empty reason reads as a bare `park`.
#[inline]
fn or_bare(reason: &'static str) -> &'static str {
    if reason.is_empty() {
        PARKED_WITHOUT_REASON
    } else {
        reason
    }
}

/// The parking behind every public form; `reason` (never empty) feeds the leak report, the
/// goroutine dump and the park counts.
#[inline(always)]
pub(crate) fn park_with(deadline: Option<Instant>, reason: &'static str) {
    let goroutine = WorkerLocal::with_current(|local| {
        let task = local.current_task()?;
        if task.state.take_notification() {
            return Some(None);
        }
        if let Some(deadline) = deadline {
            local.add_timer(deadline, local.current_ref()?);
        }
        local.shared.workers[local.index].parks.count(reason);
        if local.shared.config.park_backtraces && !task.migratable {
            local.record_park_backtrace(task.id);
        }
        // SAFETY: this is the goroutine itself, on its runner's thread, after it started.
        unsafe { task.set_parked_on(reason, local.shared.tick()) };
        Some(Some(task as *const Task))
    })
    .flatten();
    match goroutine {
        Some(None) => {}
        Some(Some(task)) => {
            // SAFETY: this is the goroutine itself, on its runner's thread, after it started;
            // its own reference keeps its task alive until it finished (see `QueueRef`).
            let task = unsafe { &*task };
            // SAFETY: as above.
            unsafe {
                task.yielder().suspend(Switch::Park);
                task.clear_parked_on();
            }
            if task.timer.cancel() {
                task.runtime.pending_timers.fetch_sub(1, Ordering::SeqCst);
            }
        }
        None => match deadline {
            Some(deadline) => {
                thread::park_timeout(deadline.saturating_duration_since(Instant::now()))
            }
            None => thread::park(),
        },
    }
}

/// Lets other goroutines on this worker run, then continues; on a plain thread,
/// `std::thread::yield_now`.
// Inlined, so that the switch sits in the caller's own frame: a goroutine that yields in a loop
// resumes right where it suspended and suspends again with no return in between, which keeps
// the CPU's return-address predictor in step with the worker's `call` into it. Out of line,
// every yield cost two mispredicted returns: 61 ns a yield against 32 on this project's
// machines. The thread-local read stays out of line (`current_worker`).
#[inline]
pub fn yield_now() {
    let task =
        WorkerLocal::with_current(|local| local.current_task().map(|task| task as *const Task))
            .flatten();
    match task {
        // SAFETY: `current_task` is the goroutine calling this, kept alive while it runs; it is
        // on its runner's thread, after it started.
        Some(task) => unsafe {
            (*task).yielder().suspend(Switch::Yield);
        },
        None => thread::yield_now(),
    }
}

/// Suspends the calling goroutine (or thread) for at least `duration`; `Duration::MAX` sleeps
/// for good.
pub fn sleep(duration: Duration) {
    match Instant::now().checked_add(duration) {
        Some(deadline) => sleep_until(deadline),
        None => loop {
            park_with_reason("sleep");
        },
    }
}

/// Suspends the calling goroutine (or thread) until `deadline`.
pub fn sleep_until(deadline: Instant) {
    if !in_goroutine() {
        let now = Instant::now();
        if deadline > now {
            thread::sleep(deadline - now);
        }
        return;
    }
    while Instant::now() < deadline {
        park_with(Some(deadline), "sleep");
    }
}
