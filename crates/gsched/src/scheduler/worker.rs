//! A worker: its thread-local state, its loop, and running one goroutine until it switches out.

use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Instant;

use ctxswitch::{Coroutine, CoroutineResult, FpControl, Stack};
use gstack::StackError;

use super::monitor::bump;
use super::runtime_ref::RuntimeRef;
use super::shared::{RuntimeShared, TaskMap, live};
use super::stacks::{GoroutineStack, HousedCoroutine};
use super::steal_policy::SeenBusy;
use super::task::abort_with;
use super::task::{Switch, Task};
use super::task_ref::{QueueRef, TaskRef};
use super::timers::Timer;
use crate::slab::{Heap, InstalledHeap};

/// Capacity of each worker's queue of not-yet-started goroutines.
pub(super) const FRESH_CAPACITY: usize = 256;

/// Scheduling ticks between fairness checks of the injector and timers (Go's figure).
pub(super) const FAIRNESS_TICKS: u32 = 61;

/// The worker's own state, reachable from its thread (and the goroutines it runs) only.
pub(crate) struct WorkerLocal {
    pub(crate) index: usize,
    pub(crate) shared: Arc<RuntimeShared>,
    /// The goroutine woken by the one running now, to run next; private, since a goroutine
    /// that has run never moves (a new one spawned here waits in `WorkerShared::next`).
    pub(crate) runnext: RefCell<Option<QueueRef>>,
    pub(super) tick: Cell<u32>,
    pub(super) timers: RefCell<BinaryHeap<Reverse<Timer>>>,
    /// The heap size at which stale timers are next swept out (see `add_timer`).
    pub(super) timer_sweep_at: Cell<usize>,
    /// Pinned goroutines that started here and have not finished.
    pub(crate) live: RefCell<TaskMap>,
    /// Goroutines that yielded, in order; they stay `RUNNING` (only this worker runs them).
    /// Each with the injector's mark when it yielded: it runs again once the goroutines that
    /// waited there then had their turn, as Go puts a goroutine that yields on the global
    /// queue, behind them.
    pub(crate) yielded: RefCell<VecDeque<(QueueRef, u64)>>,
    /// The stack of the last goroutine that finished here, of the default size, for the next
    /// one that starts: no trip through the pool between a goroutine that ends and one that
    /// begins. Kept only while no goroutine waits for a stack, and given back (with a retry of
    /// one that waits) whenever the worker idles, as the pool's thread cache is.
    pub(super) spare_stack: RefCell<Option<GoroutineStack>>,
    /// The goroutine running now.
    pub(crate) current: Cell<Option<*const Task>>,
    /// The thread's floating-point control state when the worker started, which every
    /// goroutine starts with and finds again after a resume (see `resume`).
    fp_control: FpControl,
    /// Where the goroutines this worker spawns get their memory (see `crate::slab`); dropped
    /// last, after every other field let go of its goroutines.
    pub(super) heap: InstalledHeap,
    /// When the heap was last trimmed, and whether that found memory to give back, so that
    /// the worker looks again soon (see `idle.rs`).
    pub(super) heap_trimmed: Cell<(Instant, bool)>,
    /// Per other worker, its switch count when this one last looked and when it first saw
    /// that count with goroutines waiting (see `may_steal_from`).
    pub(super) seen_busy: RefCell<Vec<SeenBusy>>,
    /// Where each pinned goroutine of this worker last parked, when the runtime captures park
    /// backtraces (`RuntimeBuilder::park_backtraces`).
    pub(crate) park_backtraces: RefCell<HashMap<u64, Arc<Backtrace>>>,
    /// Holds on the runtime in hand, for the goroutines spawned here (see `runtime_ref.rs`).
    pub(crate) runtime_holds: Cell<usize>,
}

thread_local! {
    static WORKER: Cell<*const WorkerLocal> = const { Cell::new(std::ptr::null()) };
}

/// The current thread's worker pointer, if the thread-local is still there. Never inlined: a
/// migratable goroutine may move to another thread across a call that suspends it, and a
/// thread-local's address computed before the suspension must not be reused after it.
#[inline(never)]
fn current_worker() -> Option<*const WorkerLocal> {
    WORKER.try_with(Cell::get).ok()
}

impl WorkerLocal {
    /// Runs `f` with the current thread's worker, if it is one.
    #[inline]
    pub(crate) fn with_current<R>(f: impl FnOnce(&WorkerLocal) -> R) -> Option<R> {
        let worker = current_worker()?;
        // SAFETY: the pointer is set by `worker_main` to a value that lives for the whole loop
        // and is cleared before it is dropped; only this thread reads it.
        (!worker.is_null()).then(|| f(unsafe { &*worker }))
    }

    #[inline]
    pub(crate) fn in_goroutine(&self) -> bool {
        self.current.get().is_some()
    }

    /// The goroutine running on this worker now.
    #[inline]
    pub(crate) fn current_task(&self) -> Option<&Task> {
        // SAFETY: `current` points to a goroutine that is running: it has started and not
        // finished, so its own reference keeps it alive (see `QueueRef`) while the pointer is
        // set.
        self.current.get().map(|task| unsafe { &*task })
    }

    /// The running goroutine's task, as the pointer its entry holds (with the task's own
    /// provenance, not that of a reference to it).
    #[inline]
    pub(crate) fn current_ptr(&self) -> Option<NonNull<Task>> {
        self.current
            .get()
            .and_then(|task| NonNull::new(task.cast_mut()))
    }

    /// A shared handle to the goroutine running on this worker now.
    #[inline]
    pub(crate) fn current_ref(&self) -> Option<TaskRef> {
        self.current.get().map(|task| {
            // SAFETY: `current` was set from `TaskRef::as_ptr` of the running goroutine's entry,
            // and the goroutine's own reference keeps it alive while the pointer is set.
            unsafe { TaskRef::clone_from_ptr(task) }
        })
    }

    /// The next goroutine to run, whether it is already `RUNNING` (it yielded), and whether it
    /// inherits the current time slice (see `monitor.rs`).
    fn pop_runnable(&self) -> Option<(QueueRef, bool, bool)> {
        let shared = &*self.shared;
        let me = &shared.workers[self.index];
        let slice_expired = me.watch.slice_expired();
        // Go's `runnext`: the goroutine woken or spawned by the one that ran last goes first
        // and inherits its time slice, until the monitor ends the slice. Such picks are not
        // scheduling ticks, as in Go: the queues get their turn once per slice, not once per
        // message of a pair talking through `runnext`.
        if !slice_expired && let Some(task) = self.pop_next() {
            return Some((task, false, true));
        }
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        if slice_expired {
            // A goroutine dump ends the slice too, so that the worker answers at once.
            if me.watch.dump_wanted.load(Ordering::Acquire) {
                self.answer_dumps();
            }
            // A goroutine ran its whole slice: timers may be due, and sockets ready, that no
            // idle moment saw.
            self.fire_timers();
            self.poll_driver();
            // The goroutine that used it up yielded to the back of `yielded`; the one it woke
            // runs first but starts a slice of its own, and a new one waits in the queue: else
            // a pair handing the worker back and forth through `runnext` would keep it.
            let woken = self.runnext.borrow_mut().take();
            if let Some(task) = woken {
                if task.state.try_start_run() {
                    // Ahead of the goroutine that yielded last (the one that used the slice
                    // up), behind those that waited longer.
                    let mut yielded = self.yielded.borrow_mut();
                    let ahead_of_last = yielded.len().saturating_sub(1);
                    yielded.insert(ahead_of_last, (task, 0));
                } else {
                    refused(&task);
                }
            }
            if !me.next.is_empty()
                && let Some(task) = me.next.pop()
            {
                shared.push_fresh(self.index, task);
            }
            // Goroutines spawned from outside the runtime get one slice in each that ends, or
            // pairs talking through `runnext` could hold them off for 61 slices.
            if !shared.injector.is_empty()
                && let Some(task) = shared.injector.pop()
            {
                return Some((task, false, false));
            }
        }
        if tick.is_multiple_of(FAIRNESS_TICKS) {
            // The queues that come last get a turn now and then, as Go's global queue does, and
            // so does the driver, as Go's scheduler polls the network.
            self.fire_timers();
            self.poll_driver();
            if let Some(task) = shared.injector.pop().or_else(|| me.fresh.pop()) {
                return Some((task, false, false));
            }
            let yielded = self.yielded.borrow_mut().pop_front();
            if let Some((task, _)) = yielded {
                return Some((task, true, false));
            }
        }
        if let Some(task) = self.pop_inbox() {
            return Some((task, false, false));
        }
        // Goroutines that yielded, or used up their slice, wait behind this worker's new ones,
        // as Go puts them on the global queue.
        if !me.fresh.is_empty()
            && let Some(task) = me.fresh.pop()
        {
            return Some((task, false, false));
        }
        if let Some(picked) = self.pop_yielded() {
            return Some(picked);
        }
        self.pop_shared().map(|task| (task, false, false))
    }

    /// The goroutine that yielded first (`RUNNING` already), once the injector served what
    /// waited there when it yielded; until then, what waits in the injector: a goroutine that
    /// spawns in a loop yields at the end of each slice, and must not outrun the goroutines it
    /// queued there, or they pile up for as long as it spawns.
    fn pop_yielded(&self) -> Option<(QueueRef, bool, bool)> {
        let injector = &self.shared.injector;
        let mut yielded = self.yielded.borrow_mut();
        let &(_, mark) = yielded.front()?;
        if !injector.has_served(mark)
            && let Some(task) = injector.pop()
        {
            return Some((task, false, false));
        }
        yielded.pop_front().map(|(task, _)| (task, true, false))
    }

    /// From `runnext`, or the new goroutine in `next`.
    fn pop_next(&self) -> Option<QueueRef> {
        let me = &self.shared.workers[self.index];
        let woken = self.runnext.borrow_mut().take();
        // `is_empty` first: popping an empty ArrayQueue issues a SeqCst fence.
        woken.or_else(|| (!me.next.is_empty()).then(|| me.next.pop()).flatten())
    }

    /// From the injector, or another worker.
    fn pop_shared(&self) -> Option<QueueRef> {
        let shared = &*self.shared;
        let me = &shared.workers[self.index];
        if !shared.injector.is_empty()
            && let Some(task) = shared.injector.pop()
        {
            // Take a share of the injector while at it.
            let share = (shared.injector.len() / shared.workers.len()).min(FRESH_CAPACITY / 2);
            for _ in 0..share {
                match shared.injector.pop() {
                    Some(extra) => {
                        if let Err(extra) = me.fresh.push(extra) {
                            shared.injector.push(extra);
                            break;
                        }
                    }
                    None => break,
                }
            }
            return Some(task);
        }
        self.steal()
    }

    /// Runs `task` until it switches out, and deals with why it did.
    fn run(&self, task: QueueRef, running: bool) {
        if !running && !task.state.try_start_run() {
            refused(&task);
            return;
        }
        if task.is_unwinding() {
            // Shutdown began unwinding it (a migratable goroutine, woken while this worker
            // had not yet left this loop): only the shutdown loop may go on with it.
            task.state.finish_yield();
            self.shared.workers[self.index].ready.push(task);
            return;
        }
        // SAFETY: winning `try_start_run` (or holding a yielded goroutine, which stays
        // `RUNNING`) makes this thread the goroutine's runner, outside its code.
        let coroutine = unsafe { task.coroutine() };
        if coroutine.is_none() {
            match self.start(&task) {
                Ok(started) => *coroutine = Some(HousedCoroutine::new(started)),
                Err(StartError::NoStackYet) => {
                    task.state.finish_yield();
                    self.shared.waiting_for_stack.push(task);
                    // A stack returned between the refusal and the push found nobody waiting:
                    // look again. And stacks idle in other workers' caches count as in use:
                    // wake an idle worker to hand its cache over (see `idle`).
                    if self.shared.stacks.may_have_stack() {
                        self.retry_waiting_for_stack();
                    }
                    self.shared.wake_idle_worker();
                    return;
                }
                Err(StartError::Failed(reason)) => {
                    self.fail_to_start(task, reason);
                    return;
                }
            }
        }
        match self.resume(&task, false) {
            // A goroutine may park or yield in the middle of unwinding a panic (a destructor
            // that waits): other goroutines run meanwhile, and read `thread::panicking()` as
            // true until it finishes (std counts panics per thread; see the crate docs).
            Some(Switch::Yield) => {
                self.keep_live(&task);
                let mark = self.shared.injector.mark();
                self.yielded.borrow_mut().push_back((task, mark));
            }
            Some(Switch::Park) => {
                self.keep_live(&task);
                // Once parked, a migratable goroutine may be woken, run to its end and freed
                // by another worker: `task` is not read again, and dropping it reads nothing.
                if !task.state.finish_park()
                    && let Some(previous) = self.runnext.replace(Some(task))
                {
                    self.shared.workers[self.index].ready.push(previous);
                }
                #[cfg(test)]
                if self.shared.pause_after_park.load(Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
            None => {
                self.finish(&task);
                // SAFETY: the goroutine ran to its end here, and `task` is not touched again.
                unsafe { task.release() };
            }
        }
    }

    /// Resumes the goroutine (or, `unwind`, goes on unwinding it); `None` when it finished.
    pub(crate) fn resume(&self, task: &TaskRef, unwind: bool) -> Option<Switch> {
        // SAFETY: the caller made this thread the goroutine's runner.
        let coroutine = unsafe { task.coroutine() }
            .as_mut()
            .expect("a started goroutine has a coroutine");
        if let Some(state) = coroutine.take_fp_control() {
            state.restore();
        }
        gstack::set_current_stack(coroutine.stack().limit(), coroutine.stack().base());
        self.current.set(Some(task.as_ptr()));
        let watch = &self.shared.workers[self.index].watch;
        watch.running_site.store(
            std::ptr::from_ref(task.spawned_at).cast_mut(),
            Ordering::Relaxed,
        );
        watch.running.store(task.id, Ordering::Release);
        let result = if unwind {
            coroutine.unwind(()).map(CoroutineResult::Yield)
        } else {
            Some(coroutine.resume(()))
        };
        // The goroutine's switches leave the floating-point control state alone (see `start`):
        // a goroutine that changed it (its rounding mode, say) keeps it for its next resume,
        // and the worker gets its own back. The worker's code never changes it, so one read per
        // resume does what a save and a compare on both sides of every switch did.
        let fp_control = FpControl::current();
        if fp_control != self.fp_control {
            coroutine.keep_fp_control(fp_control);
            self.fp_control.restore();
        }
        watch.running.store(0, Ordering::Relaxed);
        self.current.set(None);
        coroutine.stack().check();
        match result {
            Some(CoroutineResult::Yield(switch)) => Some(switch),
            Some(CoroutineResult::Return(())) | None => None,
        }
    }

    /// Gives a goroutine its stack and coroutine as it runs for the first time.
    fn start(
        &self,
        task: &TaskRef,
    ) -> Result<crate::scheduler::task::GoroutineCoroutine, StartError> {
        let size = task.stack_size as usize;
        let spare = (size == self.shared.stacks.default_size())
            .then(|| self.spare_stack.borrow_mut().take())
            .flatten();
        let stack = match spare.map_or_else(|| self.shared.stacks.get(size), Ok) {
            Ok(stack) => stack,
            Err(StackError::MapLimit { .. } | StackError::RegionFull { .. }) => {
                return Err(StartError::NoStackYet);
            }
            Err(err) => {
                return Err(StartError::Failed(format!(
                    "gsched: cannot get a goroutine stack: {err}"
                )));
            }
        };
        stack.set_label(task.id, task.name.as_deref().unwrap_or(""));
        let task_ptr = task.as_ptr();
        let mut coroutine = Coroutine::with_stack(stack, move |yielder, ()| {
            // SAFETY: the goroutine runs only on the thread of its runner, once, and the task
            // is kept alive for as long as the coroutine exists: by the goroutine's own
            // reference, until its runner is done with it (see `QueueRef`).
            unsafe {
                (*task_ptr).set_yielder(yielder);
                (*task_ptr).body.run();
            }
        })
        .map_err(|err| {
            StartError::Failed(format!("gsched: the goroutine's stack is too small: {err}"))
        })?;
        // SAFETY: every resume and unwind of a goroutine goes through `resume`, which puts the
        // worker's floating-point control state back when the goroutine left another and gives
        // the goroutine its own back before it runs again; dropping the coroutine preserves the
        // dropper's state by itself.
        unsafe { coroutine.skip_fp_control() };
        task.set_home(self.index);
        // Any worker may resume a migratable goroutine and look for it in the dump, so it is
        // in the runtime's map for its whole run; a pinned one joins its worker's map when it
        // first switches out (see `keep_live`).
        if task.migratable {
            self.shared
                .migratable_live
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .insert(task.id, task.clone());
        }
        Ok(coroutine)
    }

    /// Puts a pinned goroutine that switched out in this worker's `live` map, the first time it
    /// does: shutdown unwinds or leaks every goroutine in it, and the dump lists them. Called
    /// before the switch is published (`finish_park`), so a parked goroutine is always there.
    fn keep_live(&self, task: &TaskRef) {
        // SAFETY: this thread is the goroutine's runner, and the goroutine is switched out.
        if task.migratable || unsafe { task.in_live_map() } {
            return;
        }
        self.live.borrow_mut().insert(task.id, task.clone());
        // SAFETY: as above.
        unsafe { task.set_in_live_map(true) };
    }

    /// A goroutine that could not start: its joiner gets `reason`, nothing unwinds the worker.
    /// Its entry gives the goroutine's own reference up.
    fn fail_to_start(&self, task: QueueRef, reason: String) {
        task.state.finish_done();
        // SAFETY: the goroutine never ran, and this thread holds it alone (`RUNNING`).
        let discarded = unsafe { task.body.discard(Box::new(reason)) };
        debug_assert!(discarded, "a goroutine that failed to start never ran");
        if discarded {
            live::add(-1);
            bump(&self.shared.workers[self.index].progress);
            // SAFETY: the goroutine ended here, unstarted, in the hands of the holder of its
            // one entry; `task` is not touched again.
            unsafe { task.release() };
        }
    }

    /// Takes a goroutine that will never run again off the map of started ones: this worker's
    /// when pinned, the runtime's when migratable.
    pub(super) fn forget_live(&self, task: &Task) {
        if task.migratable {
            self.shared.forget_migratable(task);
        } else {
            // SAFETY: this thread is the goroutine's runner (or shutdown's, after the
            // goroutine's last switch), and the goroutine is switched out for good.
            if unsafe { task.in_live_map() } {
                self.live.borrow_mut().remove(&task.id);
            }
            if self.shared.config.park_backtraces {
                self.park_backtraces.borrow_mut().remove(&task.id);
            }
        }
    }

    fn finish(&self, task: &TaskRef) {
        task.state.finish_done();
        // SAFETY: this thread ran the goroutine to completion and is its runner.
        let coroutine = unsafe { task.coroutine() }.take();
        if let Some(coroutine) = coroutine {
            self.keep_stack(coroutine, task.stack_size as usize);
        }
        self.forget_live(task);
        live::add(-1);
        bump(&self.shared.workers[self.index].progress);
        if !self.shared.waiting_for_stack.is_empty()
            && let Some(waiting) = self.shared.waiting_for_stack.pop()
        {
            self.shared.workers[self.index].ready.push(waiting);
        }
    }
}

/// An entry whose goroutine `try_start_run` refused: only that of a goroutine that shutdown
/// leaked, which keeps its task for good. Any other would be a second entry of one goroutine,
/// and dropping it would lose nothing but a goroutine that nobody runs: say so in tests.
pub(super) fn refused(task: &QueueRef) {
    debug_assert!(
        task.state.is_done(),
        "a queue entry of goroutine {} was refused",
        task.id
    );
}

impl WorkerLocal {
    /// Takes the goroutine at the front of this worker's inbox.
    #[inline]
    pub(super) fn pop_inbox(&self) -> Option<QueueRef> {
        // SAFETY: this is the worker's own thread, its inbox's one consumer while it runs.
        unsafe { self.shared.workers[self.index].ready.pop() }
    }

    /// Whether this worker's inbox holds nothing, and nothing is being pushed there.
    #[inline]
    pub(super) fn inbox_is_empty(&self) -> bool {
        // SAFETY: as in `pop_inbox`.
        unsafe { self.shared.workers[self.index].ready.is_empty() }
    }

    /// Keeps the stack of a goroutine that ran to its end for the next one to start here, when
    /// it has the default size, no spare is kept yet and no goroutine waits for a stack; else
    /// gives it back.
    fn keep_stack(&self, coroutine: HousedCoroutine, size: usize) {
        let mut spare = self.spare_stack.borrow_mut();
        if spare.is_none()
            && coroutine.done()
            && !coroutine.is_leaked()
            && size == self.shared.stacks.default_size()
            && self.shared.waiting_for_stack.is_empty()
        {
            *spare = Some(coroutine.into_stack());
        }
    }

    /// Moves one goroutine waiting for a stack to this worker's inbox, to try again.
    pub(super) fn retry_waiting_for_stack(&self) {
        if let Some(waiting) = self.shared.waiting_for_stack.pop() {
            self.shared.workers[self.index].ready.push(waiting);
        }
    }
}

/// Why a goroutine did not start.
enum StartError {
    /// Every stack the budget allows is in use: it waits for one.
    NoStackYet,
    /// It never will; its joiner gets this message.
    Failed(String),
}

/// The body of worker thread `index`.
pub(crate) fn worker_main(shared: Arc<RuntimeShared>, index: usize) {
    let _ = gstack::install_overflow_handler();
    let _ = shared.workers[index].thread.set(thread::current());
    // The monitor reads the kernel's accounting of this thread (see `monitor/thread_times.rs`).
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `gettid` takes no arguments and cannot fail (through `syscall`, which every
        // libc 0.2 has; the `gettid` wrapper came later).
        let tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
        shared.workers[index]
            .watch
            .os_thread
            .store(tid, Ordering::Relaxed);
    }
    let local = WorkerLocal {
        index,
        shared: Arc::clone(&shared),
        runnext: RefCell::new(None),
        tick: Cell::new(index as u32),
        timers: RefCell::new(BinaryHeap::new()),
        timer_sweep_at: Cell::new(0),
        live: RefCell::new(HashMap::default()),
        yielded: RefCell::new(VecDeque::new()),
        spare_stack: RefCell::new(None),
        current: Cell::new(None),
        fp_control: FpControl::current(),
        heap: Box::new(Heap::new()).install(),
        heap_trimmed: Cell::new((Instant::now(), false)),
        seen_busy: RefCell::new(vec![SeenBusy::new(Instant::now()); shared.workers.len()]),
        park_backtraces: RefCell::new(HashMap::new()),
        runtime_holds: Cell::new(0),
    };
    WORKER.with(|worker| worker.set(&local));
    // Nothing a goroutine does unwinds this loop (bodies catch their panics, failures reach the
    // joiner); a panic here is a bug of the runtime, and a dead worker would silently strand
    // every goroutine pinned to it, so it ends the process loudly instead.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        while !shared.shutdown.load(Ordering::Acquire) {
            match local.pop_runnable() {
                Some((task, running, inherits)) => {
                    shared.workers[index].watch.picked(inherits);
                    local.run(task, running);
                }
                None => {
                    local.fire_timers();
                    local.idle();
                }
            }
        }
        local.shut_down();
    }));
    if outcome.is_err() {
        abort_with(&format!("worker {index} of a runtime panicked"));
    }
    WORKER.with(|worker| worker.set(std::ptr::null()));
    // SAFETY: the worker's holds, which nothing takes from any more now that the thread is no
    // longer its worker (goroutines that end later give theirs back one by one).
    unsafe { RuntimeRef::give_back_batch(&shared, local.runtime_holds.replace(0)) };
}
