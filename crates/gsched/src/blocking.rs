//! Blocking calls off the workers, and cooperative preemption points.

use std::cell::UnsafeCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::park::{Unparker, current_unparker, park_with_reason, yield_now};
use crate::scheduler::WorkerLocal;
use crate::scheduler::blocking_pool::Job;
use crate::scheduler::task_ref::TaskRef;

/// Runs `f`, which may block its thread (a file read, a `std::sync` lock, a C library call, a
/// DNS lookup), on the runtime's pool of blocking threads while the calling goroutine parks, so
/// that the goroutines sharing its worker keep running. Returns what `f` returns; a panic in `f`
/// resumes in the caller.
///
/// Called outside a goroutine, it runs `f` right there: a plain thread may block.
///
/// `f` may borrow from the caller, as in a scope: the caller waits for `f` to return. If the
/// runtime shuts down meanwhile, the goroutine is not unwound while `f` may still use what it
/// borrowed: it is leaked instead, and listed in the leak report.
///
/// ```
/// gsched::run(|| {
///     let path = std::env::temp_dir();
///     let entries = gsched::blocking(|| std::fs::read_dir(&path).map(|dir| dir.count()));
///     assert!(entries.is_ok());
/// });
/// ```
pub fn blocking<F, R>(f: F) -> R
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    let caller = WorkerLocal::with_current(|local| {
        local
            .current_ref()
            .map(|task| (task, local.shared.blocking.clone()))
    })
    .flatten();
    let Some((task, pool)) = caller else {
        return f();
    };
    let borrow = Borrow::new(task);
    // Shared, not on this stack: the job still holds it for a moment after it says `done`.
    let call = Arc::new(Call {
        result: UnsafeCell::new(None),
        done: AtomicBool::new(false),
        waiter: current_unparker(),
    });
    let job_call = Arc::clone(&call);
    let job: Box<dyn FnOnce() + Send + '_> = Box::new(move || {
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        // SAFETY: the caller reads the slot only after `done`, set below.
        unsafe { *job_call.result.get() = Some(result) };
        job_call.done.store(true, Ordering::Release);
        job_call.waiter.unpark();
        // Only now may shutdown unwind the caller: nothing here touches its stack any more.
        drop(borrow);
    });
    // The job borrows only what `f` borrows from the caller. The caller does not return before
    // the job sets `done`, after which the job touches only what it owns; and until then the
    // caller is not unwound at shutdown (it counts a borrower, released by the job last, see
    // `Borrow`), so its stack stays in place even if it never resumes.
    // SAFETY: as just said, what the job borrows outlives the job's use of it.
    let job: Job = unsafe { std::mem::transmute::<Box<dyn FnOnce() + Send + '_>, Job>(job) };
    if let Err(job) = pool.submit(job) {
        run_refused(job);
    }
    while !call.done.load(Ordering::Acquire) {
        park_with_reason("blocking call");
    }
    // SAFETY: `done` was set after the result was stored, and the job is finished with it.
    match unsafe { (*call.result.get()).take() } {
        Some(Ok(value)) => value,
        Some(Err(payload)) => panic::resume_unwind(payload),
        None => unreachable!("a finished blocking call leaves its result"),
    }
}

/// A call the pool refused (the runtime is shutting down, or no blocking thread could start):
/// on a thread of its own, so that the worker does not block in it; on the worker only when no
/// thread can start at all.
#[cold]
fn run_refused(job: Job) {
    // `spawn` drops its closure when it fails: keep the job where this thread can take it back.
    let slot = Arc::new(Mutex::new(Some(job)));
    let take = |slot: &Mutex<Option<Job>>| {
        slot.lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take()
    };
    let for_thread = Arc::clone(&slot);
    let started = std::thread::Builder::new()
        .name("gsched-blocking".to_string())
        .spawn(move || {
            if let Some(job) = take(&for_thread) {
                job();
            }
        });
    if started.is_err()
        && let Some(job) = take(&slot)
    {
        job();
    }
}

/// Where a blocking call meets the goroutine waiting for it.
struct Call<R> {
    result: UnsafeCell<Option<std::thread::Result<R>>>,
    done: AtomicBool,
    waiter: Unparker,
}

// SAFETY: the result slot is written by the pool thread before `done` (release) and read by the
// caller after it (acquire); `R: Send` lets the value cross.
unsafe impl<R: Send> Sync for Call<R> {}

/// Counts a blocking call as a borrower of the calling goroutine's stack for as long as it
/// runs, so that shutdown leaks the goroutine rather than unwinding it under the call.
struct Borrow(TaskRef);

impl Borrow {
    fn new(task: TaskRef) -> Self {
        task.borrowers.fetch_add(1, Ordering::AcqRel);
        Borrow(task)
    }
}

impl Drop for Borrow {
    fn drop(&mut self) {
        self.0.borrowers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A preemption point: yields when the calling goroutine's time slice is over (it has run
/// longer than [`RuntimeBuilder::preempt_after`](crate::RuntimeBuilder::preempt_after), 10 ms
/// by default), so that other goroutines on its worker get a turn; otherwise returns at once,
/// in a few nanoseconds. Long loops that call nothing else from gsched or gsync call it; every
/// gsync operation that can complete without blocking already does.
///
/// Goroutines are preempted only here and where they block: suspending one anywhere else
/// could stop it inside `malloc` or a thread-local borrow and run its neighbour on the same
/// thread, which stacks pinned to their threads cannot make sound.
///
/// ```
/// gsched::run(|| {
///     let mut sum = 0u64;
///     for i in 0..1_000_000u64 {
///         sum = sum.wrapping_add(i * i);
///         gsched::checkpoint();
///     }
///     assert!(sum > 0);
/// });
/// ```
///
/// Because a checkpoint may yield, holding a `std::sync::Mutex` guard, or a `RefCell` borrow of
/// a thread-local, across one can deadlock or panic: a neighbour run meanwhile on the same
/// thread may want the same lock or cell. That holds for every gsync call, the `try_*` ones and
/// `WaitGroup::done` included, as it does for every call that may park.
///
/// It never yields while the goroutine unwinds a panic (or is unwound at shutdown): another
/// goroutine run meanwhile would read `std::thread::panicking()` as true on the shared thread.
#[inline]
pub fn checkpoint() {
    let expired = WorkerLocal::with_current(|local| {
        local.in_goroutine() && local.shared.workers[local.index].watch.slice_expired()
    })
    .unwrap_or(false);
    if expired && !std::thread::panicking() {
        end_slice();
    }
}

/// Yields at the end of a time slice: out of line, so that the switch `yield_now` inlines is
/// not copied into every operation that passes a checkpoint.
#[cold]
#[inline(never)]
fn end_slice() {
    yield_now();
}
