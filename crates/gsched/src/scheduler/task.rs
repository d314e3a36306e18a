//! A goroutine's shared header; its scheduling state machine is `state::TaskState`.

use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::panic::Location;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use ctxswitch::{Coroutine, Yielder};

use super::inbox::Link;
use super::runtime_ref::RuntimeRef;
use super::stacks::{GoroutineStack, HousedCoroutine};
use super::state::TaskState;
use super::timer_word::TimerWord;

/// No worker yet: the goroutine has not run.
pub(crate) const NO_HOME: u32 = u32::MAX;

/// Why a goroutine switched out to its worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Switch {
    Yield,
    Park,
}

pub(crate) type GoroutineCoroutine = Coroutine<(), Switch, (), GoroutineStack>;

/// What a goroutine runs, stored inline in its task so that a spawn makes one allocation.
pub(crate) trait Body: Send + Sync + 'static {
    /// Runs the goroutine's function to the end.
    ///
    /// # Safety
    ///
    /// Called once, by the thread running the goroutine.
    unsafe fn run(&self);

    /// Drops the function without running it, handing `why` to whoever joins the goroutine
    /// (the runtime shut down first, or no stack could be had); true if it had not run.
    ///
    /// # Safety
    ///
    /// No thread runs the goroutine, or ever will.
    unsafe fn discard(&self, why: Panic) -> bool;

    /// The goroutine started and will never finish (its stack is leaked at shutdown): tells
    /// its joiner, where the result slot is reachable without the stack.
    fn abandon(&self);
}

/// A boxed body for goroutines whose result travels elsewhere (`scope`): called with `Ok(())` to
/// run, or with the reason it never will.
pub(crate) type BoxedFn = Box<dyn FnOnce(Result<(), Panic>) + Send + 'static>;

/// A boxed closure as a body.
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
        (function.expect("a goroutine's body runs once"))(Ok(()));
    }

    fn abandon(&self) {
        // A scoped goroutine's result slot is held by its closure, on the leaked stack; its
        // scope's owner is leaked with it (see `scope.rs`).
    }

    unsafe fn discard(&self, why: Panic) -> bool {
        // SAFETY: nobody runs the goroutine (the contract).
        match unsafe { (*self.0.get()).take() } {
            Some(function) => {
                function(Err(why));
                true
            }
            None => false,
        }
    }
}

/// A goroutine: its header, then its body, in one slab block (see `task_ref.rs`).
///
/// `repr(C)`, with the fields ordered by size by hand, so that its inbox link comes first (an
/// inbox reaches the task from its link, see `TaskLink`) and the header stays within two cache
/// lines.
#[repr(C)]
pub(crate) struct Task<B: ?Sized = dyn Body> {
    /// Threads the task through a worker's inbox; first, at the task's address.
    pub(crate) link: TaskLink,
    /// References to the task (`TaskRef`s).
    pub(crate) refs: AtomicUsize,
    pub(crate) id: u64,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) spawned_at: &'static Location<'static>,
    /// Keeps the runtime alive, as an `Arc` clone would, for the wakers and join handles that
    /// outlive its last handle.
    pub(crate) runtime: RuntimeRef,
    /// The timer that may wake it (see `timer_word.rs`).
    pub(crate) timer: TimerWord,
    /// The coroutine, from the first run on, at the top of its own stack, so that the header
    /// of a goroutine that has not run stays small and a started one needs no heap for it:
    /// touched only by the worker that runs the
    /// goroutine (the runner), never by the goroutine itself, so the runner's `&mut` across
    /// `resume` aliases nothing.
    coroutine: UnsafeCell<Option<HousedCoroutine>>,
    /// The coroutine's yielder, valid while the coroutine is alive and started: written and
    /// read by the goroutine itself.
    yielder: Cell<*const Yielder<(), Switch>>,
    /// What it is parked on, for the leak report: written by the goroutine, read by its runner.
    parked_on: Cell<&'static str>,
    /// The monitor's tick when it parked (see `RuntimeShared::tick`), for the goroutine dump:
    /// written by the goroutine, read by its runner.
    parked_since: Cell<u64>,
    /// The worker it first ran on (`NO_HOME` before).
    home: AtomicU32,
    /// Scoped goroutines (started or not) that may borrow this goroutine's stack: while any
    /// exists, shutdown must not unwind it (see `scope.rs`).
    pub(crate) borrowers: AtomicU32,
    /// Its stack size in bytes, checked against `MAX_STACK_SIZE` (which fits 32 bits).
    pub(crate) stack_size: u32,
    pub(crate) state: TaskState,
    pub(crate) migratable: bool,
    /// A pinned goroutine is in its worker's `live` map: from its first switch out on, so that
    /// one that runs to its end without switching never touches the map. Read and written by
    /// its runner only.
    in_live_map: Cell<bool>,
    /// Shutdown has started unwinding it. Atomic because any worker may look at a migratable
    /// goroutine's flag while deciding whether to claim it.
    unwinding: AtomicBool,
    pub(crate) body: B,
}

/// A task's inbox link, and how to see the task it starts as a `Task<dyn Body>`: the inbox
/// keeps one thin pointer per entry, and stable Rust cannot rebuild a `dyn` pointer from a thin
/// one without knowing the body's type, which `view` does.
#[repr(C)]
pub(crate) struct TaskLink {
    /// First, at the address of the task.
    pub(crate) link: Link,
    view: fn(NonNull<Link>) -> NonNull<Task>,
}

impl TaskLink {
    fn new<B: Body>() -> Self {
        TaskLink {
            link: Link::new(),
            view: |link| link.cast::<Task<B>>(),
        }
    }

    /// The task whose link is at `link`.
    ///
    /// # Safety
    ///
    /// `link` is the link of a live task.
    pub(crate) unsafe fn task(link: NonNull<Link>) -> NonNull<Task> {
        // SAFETY: the link is the first field of a `repr(C)` `TaskLink`, itself the first field
        // of the live task (the caller's contract), so the `TaskLink` is at the same address.
        let view = unsafe { link.cast::<TaskLink>().as_ref() }.view;
        view(link)
    }
}

// SAFETY: `coroutine`, `yielder`, `parked_on`, `parked_since` and `in_live_map` are touched
// only by the thread running the goroutine: the runner, which won `SCHEDULED -> RUNNING` (the
// read-modify-write hands them over with acquire/release ordering), and the goroutine, which
// runs on the runner's thread inside `resume`; or by shutdown after the goroutine's worker
// stopped.
// Everything else is atomic or immutable.
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
        stack_size: u32,
        runtime: RuntimeRef,
        body: B,
    ) -> Self {
        Task {
            link: TaskLink::new::<B>(),
            refs: AtomicUsize::new(1),
            id,
            name,
            spawned_at,
            migratable,
            stack_size,
            runtime,
            state: TaskState::new(),
            home: AtomicU32::new(NO_HOME),
            timer: TimerWord::new(),
            borrowers: AtomicU32::new(0),
            coroutine: UnsafeCell::new(None),
            yielder: Cell::new(std::ptr::null()),
            parked_on: Cell::new(""),
            parked_since: Cell::new(0),
            in_live_map: Cell::new(false),
            unwinding: AtomicBool::new(false),
            body,
        }
    }
}

impl<B: ?Sized> Task<B> {
    /// The goroutine's coroutine, for its runner.
    ///
    /// # Safety
    ///
    /// The caller is the runner: the thread that won `try_start_run` (or claimed the goroutine
    /// at shutdown), outside the goroutine's own code, and no other reference from this call
    /// is live.
    #[allow(clippy::mut_from_ref)]
    #[inline]
    pub(crate) unsafe fn coroutine(&self) -> &mut Option<HousedCoroutine> {
        // SAFETY: as the caller guarantees; the goroutine never touches this cell.
        unsafe { &mut *self.coroutine.get() }
    }

    /// The goroutine's yielder.
    ///
    /// # Safety
    ///
    /// Called by the goroutine itself, on its runner's thread, after it started.
    #[inline]
    pub(crate) unsafe fn yielder(&self) -> &Yielder<(), Switch> {
        // SAFETY: set at the goroutine's start to its coroutine's yielder, which lives on the
        // goroutine's stack for as long as the goroutine runs, and the caller is that goroutine.
        unsafe { &*self.yielder.get() }
    }

    /// Records the yielder at the goroutine's start.
    ///
    /// # Safety
    ///
    /// Called by the goroutine itself, with its own yielder.
    #[inline]
    pub(crate) unsafe fn set_yielder(&self, yielder: *const Yielder<(), Switch>) {
        self.yielder.set(yielder);
    }

    /// What the goroutine is parked on ("" for nothing).
    ///
    /// # Safety
    ///
    /// Called on the thread running the goroutine (the goroutine or its runner).
    #[inline]
    pub(crate) unsafe fn parked_on(&self) -> &'static str {
        self.parked_on.get()
    }

    /// The monitor's tick when the goroutine last parked.
    ///
    /// # Safety
    ///
    /// As for [`Task::parked_on`].
    #[inline]
    pub(crate) unsafe fn parked_since(&self) -> u64 {
        self.parked_since.get()
    }

    /// Records what the goroutine parks on and the tick it parks at.
    ///
    /// # Safety
    ///
    /// As for [`Task::parked_on`].
    #[inline]
    pub(crate) unsafe fn set_parked_on(&self, reason: &'static str, tick: u64) {
        self.parked_on.set(reason);
        self.parked_since.set(tick);
    }

    /// The goroutine resumed: it is parked on nothing.
    ///
    /// # Safety
    ///
    /// As for [`Task::parked_on`].
    #[inline]
    pub(crate) unsafe fn clear_parked_on(&self) {
        self.parked_on.set("");
    }

    /// The worker it first ran on, `None` before it ran.
    #[inline]
    pub(crate) fn home(&self) -> Option<usize> {
        let home = self.home.load(Ordering::Relaxed);
        (home != NO_HOME).then_some(home as usize)
    }

    /// Whether the pinned goroutine is in its worker's `live` map.
    ///
    /// # Safety
    ///
    /// Called on the thread running the goroutine (the goroutine or its runner).
    #[inline]
    pub(crate) unsafe fn in_live_map(&self) -> bool {
        self.in_live_map.get()
    }

    /// Records whether the pinned goroutine is in its worker's `live` map.
    ///
    /// # Safety
    ///
    /// As for [`Task::in_live_map`].
    #[inline]
    pub(crate) unsafe fn set_in_live_map(&self, in_map: bool) {
        self.in_live_map.set(in_map);
    }

    /// Records the worker it runs on first.
    pub(crate) fn set_home(&self, worker: usize) {
        let worker = u32::try_from(worker).expect("a runtime has fewer than 2^32 workers");
        self.home.store(worker, Ordering::Relaxed);
    }

    /// Makes the task look unstarted, as a freed block taken by a new task would.
    #[cfg(test)]
    pub(crate) fn forget_home(&self) {
        self.home.store(NO_HOME, Ordering::Relaxed);
    }

    /// Whether shutdown started unwinding the goroutine.
    #[inline]
    pub(crate) fn is_unwinding(&self) -> bool {
        self.unwinding.load(Ordering::Acquire)
    }

    /// Marks the goroutine as being unwound, by its runner.
    pub(crate) fn set_unwinding(&self) {
        self.unwinding.store(true, Ordering::Release);
    }
}

impl<B: ?Sized> Drop for Task<B> {
    fn drop(&mut self) {
        if self.name.is_some() {
            self.runtime.forget_name(self.id);
        }
    }
}

/// Ends the process with a message, where std would abort too.
#[cold]
pub(crate) fn abort_with(message: &str) -> ! {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "gsched: fatal: {message}; aborting");
    std::process::abort()
}

/// The message a joiner gets when the goroutine never ran to the end.
pub(crate) const DROPPED_AT_SHUTDOWN: &str =
    "gsched: the goroutine was dropped at runtime shutdown";

/// What a goroutine parked with no reason reads as in the leak report.
pub(crate) const PARKED_WITHOUT_REASON: &str = "park";

/// A payload caught from a goroutine.
pub(crate) type Panic = Box<dyn Any + Send + 'static>;

#[cfg(test)]
mod tests {
    use super::{BoxedBody, Task};

    #[test]
    fn the_header_fits_two_cache_lines() {
        let header = std::mem::size_of::<Task<BoxedBody>>() - std::mem::size_of::<BoxedBody>();
        assert!(header <= 128, "the task header takes {header} bytes");
    }
}
