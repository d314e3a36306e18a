//! Blocking calls off the workers, and cooperative preemption points.

use std::cell::UnsafeCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

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
    let _borrow = Borrow::new(task);
    let call = Call {
        result: UnsafeCell::new(None),
        done: AtomicBool::new(false),
        waiter: current_unparker(),
    };
    let call_ref = &call;
    let job: Box<dyn FnOnce() + Send + '_> = Box::new(move || {
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        // SAFETY: the caller reads the slot only after `done`, set below.
        unsafe { *call_ref.result.get() = Some(result) };
        // Taken before `done`: once it is set, the caller may return and `call` is gone.
        let waiter = call_ref.waiter.clone();
        call_ref.done.store(true, Ordering::Release);
        waiter.unpark();
    });
    // SAFETY: the job borrows `call` and whatever `f` borrows, all of which outlive it: this
    // function does not return before the job sets `done`, after which the job touches only
    // what it owns; and while the job may run, the goroutine is not unwound at shutdown (it
    // counts a borrower, see `Borrow`), so its stack stays in place even if it never resumes.
    let job: Job = unsafe { std::mem::transmute::<Box<dyn FnOnce() + Send + '_>, Job>(job) };
    if let Err(job) = pool.submit(job) {
        // No blocking thread can run it (the runtime is shutting down, or none could start):
        // run it here rather than fail.
        job();
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
#[inline]
pub fn checkpoint() {
    let expired = WorkerLocal::with_current(|local| {
        local.in_goroutine() && local.shared.workers[local.index].watch.slice_expired()
    })
    .unwrap_or(false);
    if expired {
        yield_now();
    }
}
