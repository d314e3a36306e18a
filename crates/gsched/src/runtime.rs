//! The runtime: workers, run queues, stealing, sleeping and waking, timers and shutdown.
//!
//! # Shape (Go's)
//!
//! Each worker owns a bounded queue of goroutines that have not run yet (`fresh`, stealable:
//! a started goroutine never moves, see the crate docs), an inbox of started goroutines that
//! were woken and belong to it (`ready`), a `runnext` slot for the goroutine woken by the one
//! running now, and its timers. Goroutines spawned from outside, and overflow from full `fresh`
//! queues, go to the global injector. Every 61st scheduling tick a worker looks at the injector
//! and its timers first, and `runnext` yields to the queues after a few consecutive turns, so
//! nothing starves.
//!
//! # Sleeping and waking without lost wake-ups
//!
//! A worker with nothing to do spins briefly (counted in `spinning`), then sleeps by the
//! protocol of `idle.rs`: announce, fence, look at every queue once more, park. Whoever makes
//! work pushes it, fences, then wakes a sleeping worker (unless one is spinning).
//!
//! # Shutdown
//!
//! See `shutdown.rs`: goroutines that never ran are dropped, started ones are unwound on their
//! workers (a scope owner after its scoped goroutines), what cannot be unwound is leaked, and
//! the runtime joins the worker threads.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crossbeam_queue::{ArrayQueue, SegQueue};

use crate::idle::IdleFlags;
use crate::injector::Injector;
use crate::join::{DROPPED_AT_SHUTDOWN, abort_with};
use crate::spawn::{MAX_STACK_SIZE, MIN_STACK_SIZE, SpawnError};
use ctxswitch::{Coroutine, CoroutineResult, Stack};
use gstack::{DenseStack, DenseStacks, PooledStack, StackError, StackPool};

use crate::steal::steal_half;
use crate::task::{NO_HOME, Switch, Task};

/// Capacity of each worker's queue of not-yet-started goroutines.
const FRESH_CAPACITY: usize = 256;
/// Scheduling ticks between fairness checks of the injector and timers (Go's figure).
const FAIRNESS_TICKS: u32 = 61;
/// Consecutive `runnext` turns before the queues get one.
const RUNNEXT_STREAK: u32 = 16;
/// Looks at the queues between two checks of the clock while spinning.
const SPIN_ROUNDS: u32 = 64;
/// How long an idle worker spins looking for work before it sleeps: long enough to bridge the
/// usual gap between a park and the wake-up that answers it, short enough not to burn a core.
const SPIN_TIME: Duration = Duration::from_micros(50);
/// How long a stall must last before the runtime gives up (see `nothing_can_progress`).
const STALL_CHECK: Duration = Duration::from_secs(2);
/// Goroutines the injector holds without allocating.
const INJECTOR_RING: usize = 8192;
/// Batches of finished goroutines a worker holds for freeing at most.
const GRAVEYARD_CAPACITY: usize = 64;
/// Finished goroutines sent back to their spawning worker at once.
const BURIAL_BATCH: usize = 32;

static NEXT_GOROUTINE_ID: AtomicU64 = AtomicU64::new(1);
static NEXT_TIMER_SEQ: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_goroutine_id() -> u64 {
    NEXT_GOROUTINE_ID.fetch_add(1, Ordering::Relaxed)
}

/// Goroutines spawned minus goroutines finished, counted per thread so that a spawn on one
/// worker and the finish on another touch different cache lines; only the sum means anything.
pub(crate) mod live {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

    const SHARDS: usize = 32;

    #[repr(align(128))]
    struct Shard(AtomicIsize);

    static COUNTS: [Shard; SHARDS] = [const { Shard(AtomicIsize::new(0)) }; SHARDS];
    static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

    thread_local! {
        static SHARD: Cell<usize> = Cell::new(NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS);
    }

    pub(crate) fn add(delta: isize) {
        let shard = SHARD.with(Cell::get);
        COUNTS[shard].0.fetch_add(delta, Ordering::Relaxed);
    }

    pub(super) fn total() -> usize {
        let sum: isize = COUNTS
            .iter()
            .map(|shard| shard.0.load(Ordering::Relaxed))
            .sum();
        sum.max(0) as usize
    }
}

/// Goroutines spawned and not yet finished, in every runtime of the process.
pub fn num_goroutines() -> usize {
    live::total()
}

/// Where goroutine stacks come from.
pub(crate) enum StackPolicy {
    /// Guarded stacks from gstack's shared pools, one per stack size; the pool of the default
    /// size is kept at hand, so the common case takes no lock.
    Guarded { default_pool: StackPool },
    /// Stacks carved from one region (the `unsafe` opt-in).
    Dense { stacks: DenseStacks },
}

impl StackPolicy {
    /// The stack size of a goroutine that asks for none.
    pub(crate) fn default_size(&self) -> usize {
        match self {
            StackPolicy::Guarded { default_pool } => default_pool.stack_size(),
            StackPolicy::Dense { stacks } => stacks.stack_size(),
        }
    }

    /// The stack size a goroutine asking for `requested` bytes gets, or why it cannot.
    pub(crate) fn check_goroutine_stack(&self, requested: usize) -> Result<usize, SpawnError> {
        let (max, given) = match self {
            StackPolicy::Guarded { .. } => (MAX_STACK_SIZE, requested),
            StackPolicy::Dense { stacks } => (stacks.stack_size(), stacks.stack_size()),
        };
        if (MIN_STACK_SIZE..=max).contains(&requested) {
            Ok(given)
        } else {
            Err(SpawnError::StackSize {
                requested,
                min: MIN_STACK_SIZE,
                max,
            })
        }
    }

    fn get(&self, size: usize) -> Result<GoroutineStack, StackError> {
        match self {
            StackPolicy::Guarded { default_pool } if default_pool.stack_size() == size => {
                default_pool.get().map(GoroutineStack::Guarded)
            }
            StackPolicy::Guarded { .. } => {
                StackPool::shared(size).get().map(GoroutineStack::Guarded)
            }
            StackPolicy::Dense { stacks } => stacks.get().map(GoroutineStack::Dense),
        }
    }
}

/// A goroutine's stack under either policy.
pub(crate) enum GoroutineStack {
    Guarded(PooledStack),
    Dense(DenseStack),
}

impl GoroutineStack {
    fn set_label(&self, id: u64, name: &str) {
        if let GoroutineStack::Guarded(stack) = self {
            stack.set_label(id, name);
        }
    }

    /// Aborts with a report if a dense stack's canary was overwritten.
    pub(crate) fn check(&self) {
        if let GoroutineStack::Dense(stack) = self {
            stack.check_canary();
        }
    }
}

// SAFETY: forwards to the stack of either policy, which this value owns alone.
unsafe impl Stack for GoroutineStack {
    fn base(&self) -> usize {
        match self {
            GoroutineStack::Guarded(stack) => stack.base(),
            GoroutineStack::Dense(stack) => stack.base(),
        }
    }

    fn limit(&self) -> usize {
        match self {
            GoroutineStack::Guarded(stack) => stack.limit(),
            GoroutineStack::Dense(stack) => stack.limit(),
        }
    }
}

pub(crate) struct Config {
    pub(crate) leak_report: bool,
}

/// Goroutines by id, hashed cheaply.
pub(crate) type TaskMap = HashMap<u64, Arc<Task>, BuildHasherDefault<IdHasher>>;

/// What every worker and every goroutine of one runtime share.
pub(crate) struct RuntimeShared {
    pub(crate) workers: Box<[WorkerShared]>,
    pub(crate) injector: Injector<Arc<Task>>,
    /// Goroutines that could not get a stack, waiting for one to be returned.
    pub(crate) waiting_for_stack: SegQueue<Arc<Task>>,
    spinning: AtomicUsize,
    /// Which workers sleep (see `idle.rs`).
    pub(crate) idle: IdleFlags,
    pub(crate) shutdown: AtomicBool,
    /// Timers armed in any worker's heap and not yet fired or cancelled.
    pub(crate) pending_timers: AtomicUsize,
    pub(crate) stacks: StackPolicy,
    pub(crate) config: Config,
    /// Started, unfinished goroutines that may migrate: they have no one home worker whose
    /// `live` map could hold them.
    pub(crate) migratable_live: Mutex<TaskMap>,
    /// Threads blocked in `block_on` on this runtime, which the stall report counts as ours.
    blocked_in_block_on: AtomicUsize,
    /// Whether the stall report was printed.
    stall_reported: AtomicBool,
    /// Goroutines unwound, dropped or leaked at shutdown, and their report lines.
    leaked: Mutex<Vec<String>>,
}

pub(crate) struct WorkerShared {
    pub(crate) fresh: ArrayQueue<Arc<Task>>,
    pub(crate) ready: SegQueue<Arc<Task>>,
    thread: OnceLock<Thread>,
    /// Bumped whenever a goroutine finishes here: the stall detector's sign of life, per worker
    /// so that finishing goroutines do not contend on one counter.
    progress: AtomicU64,
    /// Finished goroutines spawned here but run elsewhere, handed back in batches to be freed
    /// on this worker's thread: the allocator then reuses their memory for the next spawn
    /// without taking a lock, where a free on another thread would contend with this one's
    /// allocations.
    graveyard: ArrayQueue<Vec<Arc<Task>>>,
}

impl RuntimeShared {
    pub(crate) fn new(workers: usize, stacks: StackPolicy, config: Config) -> Arc<Self> {
        Arc::new(RuntimeShared {
            workers: (0..workers)
                .map(|_| WorkerShared {
                    fresh: ArrayQueue::new(FRESH_CAPACITY),
                    ready: SegQueue::new(),
                    thread: OnceLock::new(),
                    progress: AtomicU64::new(0),
                    graveyard: ArrayQueue::new(GRAVEYARD_CAPACITY),
                })
                .collect(),
            injector: Injector::new(INJECTOR_RING),
            waiting_for_stack: SegQueue::new(),
            spinning: AtomicUsize::new(0),
            idle: IdleFlags::new(workers),
            shutdown: AtomicBool::new(false),
            pending_timers: AtomicUsize::new(0),
            stacks,
            config,
            migratable_live: Mutex::new(HashMap::default()),
            blocked_in_block_on: AtomicUsize::new(0),
            stall_reported: AtomicBool::new(false),
            leaked: Mutex::new(Vec::new()),
        })
    }

    /// Goroutines finished on any worker so far.
    fn progress(&self) -> u64 {
        self.workers
            .iter()
            .map(|worker| worker.progress.load(Ordering::Relaxed))
            .sum()
    }

    pub(crate) fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// Counts the calling thread as blocked in `block_on` until the guard drops.
    pub(crate) fn block_on_started(&self) -> impl Drop + '_ {
        struct Blocked<'a>(&'a AtomicUsize);
        impl Drop for Blocked<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.blocked_in_block_on.fetch_add(1, Ordering::Relaxed);
        Blocked(&self.blocked_in_block_on)
    }

    /// The last scoped goroutine borrowing `owner`'s stack is gone: during shutdown, the worker
    /// that may now unwind `owner` must look again.
    pub(crate) fn borrowers_released(&self, owner: &Task) {
        if !self.shutdown.load(Ordering::SeqCst) {
            return;
        }
        fence(Ordering::SeqCst);
        let home = owner.home.load(Ordering::Relaxed);
        if home < self.workers.len() && !owner.migratable {
            self.wake_worker(home);
        } else {
            for index in 0..self.workers.len() {
                self.wake_worker(index);
            }
        }
    }

    /// The goroutines a worker runs are tracked in its own `live` map when pinned, here when
    /// migratable; removes a finished one.
    fn forget_migratable(&self, task: &Task) {
        self.migratable_live
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .remove(&task.id);
    }

    /// Queues a new goroutine: on the spawning worker's own queue when spawned from a goroutine
    /// of this runtime, else on the injector.
    pub(crate) fn spawn(self: &Arc<Self>, task: Arc<Task>) {
        live::add(1);
        // On one of this runtime's workers, free finished goroutines it spawned while here.
        let own_worker = WorkerLocal::with_current(|local| {
            let own = Arc::ptr_eq(&local.shared, self);
            if own {
                local.free_returned();
            }
            own.then_some(local.index)
        })
        .flatten();
        let task = match own_worker {
            Some(index) => {
                task.spawned_on.store(index, Ordering::Relaxed);
                match self.workers[index].fresh.push(task) {
                    Ok(()) => {
                        self.wake_for_new_work();
                        return;
                    }
                    Err(task) => task,
                }
            }
            None => task,
        };
        self.injector.push(task);
        self.wake_for_new_work();
    }

    /// Puts a woken goroutine back to work: `runnext` when the waker runs on the goroutine's
    /// own worker, else that worker's inbox (a migratable one goes to a stealable queue).
    pub(crate) fn schedule_woken(self: &Arc<Self>, task: Arc<Task>) {
        let home = task.home.load(Ordering::Relaxed);
        debug_assert_ne!(home, NO_HOME, "only a goroutine that ran can be parked");
        let on_home = WorkerLocal::with_current(|local| {
            local.index == home && Arc::ptr_eq(&local.shared, self) && local.in_goroutine()
        })
        .unwrap_or(false);
        if on_home {
            let mut task = Some(task);
            WorkerLocal::with_current(|local| {
                if let Some(previous) = local.runnext.replace(task.take()) {
                    self.workers[home].ready.push(previous);
                }
            });
            return;
        }
        if task.migratable {
            if let Err(task) = self.workers[home].fresh.push(task) {
                self.injector.push(task);
            }
            self.wake_for_new_work();
        } else {
            self.workers[home].ready.push(task);
            fence(Ordering::SeqCst);
            self.wake_worker(home);
        }
    }

    /// After pushing work any worker may take: wakes a sleeping worker unless one is spinning.
    fn wake_for_new_work(&self) {
        fence(Ordering::SeqCst);
        if self.spinning.load(Ordering::SeqCst) > 0 || self.idle.sleepers() == 0 {
            return;
        }
        for index in 0..self.workers.len() {
            if self.wake_worker(index) {
                return;
            }
        }
    }

    /// Wakes worker `index` if it sleeps; true if it did.
    pub(crate) fn wake_worker(&self, index: usize) -> bool {
        let worker = &self.workers[index];
        if self.idle.wake(index) {
            if let Some(thread) = worker.thread.get() {
                thread.unpark();
            }
            return true;
        }
        false
    }

    /// Sets worker `index`'s `sleeping` flag; the caller then looks for work once more.
    pub(crate) fn announce_sleep(&self, index: usize) {
        self.idle.announce(index);
    }

    /// Clears worker `index`'s `sleeping` flag.
    pub(crate) fn end_sleep(&self, index: usize) {
        self.idle.end(index);
    }

    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        for (index, worker) in self.workers.iter().enumerate() {
            self.end_sleep(index);
            if let Some(thread) = worker.thread.get() {
                thread.unpark();
            }
        }
    }

    /// Shutdown step 4, after the workers stopped: drops every goroutine still queued, leaks
    /// the migratable ones that could not be unwound, and returns the report.
    pub(crate) fn finish_shutdown(&self) -> Vec<String> {
        // Finished goroutines waiting to be freed hold the runtime: let them go.
        for worker in self.workers.iter() {
            while worker.graveyard.pop().is_some() {}
        }
        let queues = self
            .workers
            .iter()
            .flat_map(|worker| {
                std::iter::from_fn(|| worker.fresh.pop())
                    .chain(std::iter::from_fn(|| worker.ready.pop()))
            })
            .chain(std::iter::from_fn(|| self.injector.pop()))
            .chain(std::iter::from_fn(|| self.waiting_for_stack.pop()))
            .collect::<Vec<_>>();
        for task in queues {
            self.discard_unstarted(&task);
        }
        let stranded: Vec<Arc<Task>> = self
            .migratable_live
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .drain()
            .map(|(_, task)| task)
            .collect();
        for task in stranded {
            // SAFETY: every worker has stopped: nobody runs the goroutine or ever will.
            unsafe { crate::shutdown::leak(&task, self) };
        }
        std::mem::take(
            &mut *self
                .leaked
                .lock()
                .unwrap_or_else(|poison| poison.into_inner()),
        )
    }

    /// Drops a goroutine that never ran (its joiner learns why); a started one is left alone.
    pub(crate) fn discard_unstarted(&self, task: &Task) {
        // SAFETY: the goroutine never ran (a started one has lost its function, and `discard`
        // then does nothing), and it was taken off its queue, so nobody runs it.
        if unsafe { task.body.discard(Box::new(DROPPED_AT_SHUTDOWN)) } {
            self.record_leak(task, "never ran");
            live::add(-1);
        }
    }

    pub(crate) fn record_leak(&self, task: &Task, what: &str) {
        let name = task
            .name
            .as_deref()
            .map(|name| format!(" \"{name}\""))
            .unwrap_or_default();
        let line = format!(
            "goroutine {}{name} spawned at {}: {what}",
            task.id, task.spawned_at
        );
        self.leaked
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .push(line);
    }
}

/// Hashes goroutine ids, which are already unique sequence numbers, by a multiplication.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 << 8 | u64::from(byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A timer that wakes a goroutine parked with a timeout.
struct Timer {
    deadline: Instant,
    seq: u64,
    task: Arc<Task>,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timer {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

/// The worker's own state, reachable from its thread (and the goroutines it runs) only.
pub(crate) struct WorkerLocal {
    pub(crate) index: usize,
    pub(crate) shared: Arc<RuntimeShared>,
    pub(crate) runnext: RefCell<Option<Arc<Task>>>,
    runnext_streak: Cell<u32>,
    tick: Cell<u32>,
    timers: RefCell<BinaryHeap<Reverse<Timer>>>,
    /// The heap size at which stale timers are next swept out (see `add_timer`).
    timer_sweep_at: Cell<usize>,
    /// Pinned goroutines that started here and have not finished.
    pub(crate) live: RefCell<TaskMap>,
    /// Goroutines that yielded, in order; they stay `RUNNING` (only this worker runs them).
    pub(crate) yielded: RefCell<VecDeque<Arc<Task>>>,
    /// The goroutine running now.
    pub(crate) current: Cell<Option<*const Task>>,
    /// Per spawning worker, finished goroutines waiting to be sent back to it.
    burials: RefCell<Vec<Vec<Arc<Task>>>>,
    /// Finished goroutines this worker spawned, sent back, freed a few per spawn.
    returned: RefCell<Vec<Arc<Task>>>,
}

thread_local! {
    static WORKER: Cell<*const WorkerLocal> = const { Cell::new(std::ptr::null()) };
}

impl WorkerLocal {
    /// Runs `f` with the current thread's worker, if it is one.
    pub(crate) fn with_current<R>(f: impl FnOnce(&WorkerLocal) -> R) -> Option<R> {
        let worker = WORKER.try_with(Cell::get).ok()?;
        // SAFETY: the pointer is set by `worker_main` to a value that lives for the whole loop
        // and is cleared before it is dropped; only this thread reads it.
        (!worker.is_null()).then(|| f(unsafe { &*worker }))
    }

    pub(crate) fn in_goroutine(&self) -> bool {
        self.current.get().is_some()
    }

    /// The goroutine running on this worker now.
    pub(crate) fn current_task(&self) -> Option<&Task> {
        // SAFETY: `current` points to a goroutine kept alive by the `Arc` that `run` holds for
        // as long as the pointer is set.
        self.current.get().map(|task| unsafe { &*task })
    }

    /// A shared handle to the goroutine running on this worker now.
    pub(crate) fn current_arc(&self) -> Option<Arc<Task>> {
        self.current.get().map(|task| {
            // SAFETY: `current` was set from `Arc::as_ptr` of an `Arc` that `run` holds while
            // the pointer is set; taking another count on it is sound.
            unsafe {
                Arc::increment_strong_count(task);
                Arc::from_raw(task)
            }
        })
    }

    /// Arms a timer that wakes `task` at `deadline`.
    ///
    /// A goroutine woken before its deadline retires its timer itself (`TimerWord::cancel`),
    /// leaving a stale entry here; stale entries are swept out whenever the heap has doubled
    /// since the last sweep, so the heap (and the goroutines its entries keep alive) stays
    /// within twice the timers that are really pending, plus a small floor.
    pub(crate) fn add_timer(&self, deadline: Instant, task: Arc<Task>) {
        const SWEEP_FLOOR: usize = 64;
        let seq = NEXT_TIMER_SEQ.fetch_add(1, Ordering::Relaxed);
        // A timer still armed here was left by a park that never returned normally (a forced
        // unwind): this one replaces it in the count.
        if !task.timer.arm(seq) {
            self.shared.pending_timers.fetch_add(1, Ordering::SeqCst);
        }
        let swept = {
            let mut timers = self.timers.borrow_mut();
            timers.push(Reverse(Timer {
                deadline,
                seq,
                task,
            }));
            if timers.len() < self.timer_sweep_at.get().max(SWEEP_FLOOR) {
                return;
            }
            let (live, stale): (Vec<_>, Vec<_>) = std::mem::take(&mut *timers)
                .into_vec()
                .into_iter()
                .partition(|Reverse(timer)| timer.task.timer.is_armed(timer.seq));
            *timers = BinaryHeap::from(live);
            self.timer_sweep_at.set(2 * timers.len());
            stale
        };
        // Stale entries may hold the last handle of a finished goroutine: dropped here, after
        // the heap is released, never while it is borrowed.
        drop(swept);
    }

    /// Timer entries in this worker's heap, stale ones included.
    #[cfg(test)]
    pub(crate) fn timer_entries(&self) -> usize {
        self.timers.borrow().len()
    }

    /// The deadline of the earliest timer that wakes a goroutine being unwound, when it is due
    /// within `SHUTDOWN_TIMER_GRACE`.
    pub(crate) fn unwinding_timer_due_soon(&self) -> Option<Instant> {
        let horizon = Instant::now() + crate::shutdown::SHUTDOWN_TIMER_GRACE;
        self.timers
            .borrow()
            .iter()
            .filter(|Reverse(timer)| {
                timer.deadline <= horizon
                    && timer.task.is_unwinding()
                    && timer.task.timer.is_armed(timer.seq)
            })
            .map(|Reverse(timer)| timer.deadline)
            .min()
    }

    /// Drops every timer at shutdown, accounting for those still pending.
    pub(crate) fn drop_timers(&self) {
        let timers = std::mem::take(&mut *self.timers.borrow_mut());
        for Reverse(timer) in timers {
            if timer.task.timer.fire(timer.seq) {
                self.shared.pending_timers.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// Wakes the goroutines whose timers are due; returns the next deadline.
    pub(crate) fn fire_timers(&self) -> Option<Instant> {
        let now = Instant::now();
        loop {
            let due = {
                let mut timers = self.timers.borrow_mut();
                match timers.peek() {
                    Some(Reverse(timer)) if timer.deadline <= now => {
                        timers.pop().map(|Reverse(timer)| timer)
                    }
                    Some(Reverse(timer)) => return Some(timer.deadline),
                    None => return None,
                }
            };
            if let Some(timer) = due
                && timer.task.timer.fire(timer.seq)
            {
                self.shared.pending_timers.fetch_sub(1, Ordering::SeqCst);
                if timer.task.state.notify() {
                    self.shared.schedule_woken(timer.task);
                }
            }
        }
    }

    /// The next goroutine to run, and whether it is already `RUNNING` (it yielded).
    fn pop_runnable(&self) -> Option<(Arc<Task>, bool)> {
        let shared = &*self.shared;
        let me = &shared.workers[self.index];
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        if tick.is_multiple_of(FAIRNESS_TICKS) {
            self.fire_timers();
            if let Some(task) = shared.injector.pop().or_else(|| me.fresh.pop()) {
                return Some((task, false));
            }
        }
        self.pop_queued()
            .map(|task| (task, false))
            .or_else(|| {
                let yielded = self.yielded.borrow_mut().pop_front();
                yielded.map(|task| (task, true))
            })
            .or_else(|| self.pop_shared().map(|task| (task, false)))
    }

    /// From `runnext` and the worker's inbox.
    fn pop_queued(&self) -> Option<Arc<Task>> {
        let me = &self.shared.workers[self.index];
        if self.runnext_streak.get() < RUNNEXT_STREAK
            && let Some(task) = self.runnext.borrow_mut().take()
        {
            self.runnext_streak.set(self.runnext_streak.get() + 1);
            return Some(task);
        }
        self.runnext_streak.set(0);
        // `is_empty` first: popping an empty SegQueue issues a SeqCst fence.
        if !me.ready.is_empty()
            && let Some(task) = me.ready.pop()
        {
            return Some(task);
        }
        self.runnext.borrow_mut().take()
    }

    /// From the worker's fresh queue, the injector, or another worker.
    fn pop_shared(&self) -> Option<Arc<Task>> {
        let shared = &*self.shared;
        let me = &shared.workers[self.index];
        if let Some(task) = me.fresh.pop() {
            return Some(task);
        }
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

    /// Takes half of another worker's not-yet-started goroutines.
    fn steal(&self) -> Option<Arc<Task>> {
        let shared = &*self.shared;
        let count = shared.workers.len();
        let start = self.tick.get() as usize % count;
        for offset in 0..count {
            let victim = (start + offset) % count;
            if victim == self.index {
                continue;
            }
            let stolen = steal_half(
                &shared.workers[victim].fresh,
                &shared.workers[self.index].fresh,
                |task| shared.injector.push(task),
            );
            if stolen.is_some() {
                return stolen;
            }
        }
        None
    }

    fn has_visible_work(&self) -> bool {
        let shared = &*self.shared;
        self.runnext.borrow().is_some()
            || !self.yielded.borrow().is_empty()
            || !shared.injector.is_empty()
            || !shared.workers[self.index].ready.is_empty()
            || shared.workers.iter().any(|worker| !worker.fresh.is_empty())
    }

    /// Spins for a while (if few others do), then sleeps until woken or until the next timer
    /// is due.
    fn idle(&self) {
        let shared = &*self.shared;
        self.flush_burials();
        let max_spinners = (shared.workers.len() / 2).max(1);
        if shared.spinning.fetch_add(1, Ordering::SeqCst) < max_spinners {
            let start = Instant::now();
            while start.elapsed() < SPIN_TIME {
                for _ in 0..SPIN_ROUNDS {
                    if self.has_visible_work() || shared.shutdown.load(Ordering::Relaxed) {
                        shared.spinning.fetch_sub(1, Ordering::SeqCst);
                        return;
                    }
                    std::hint::spin_loop();
                }
                if self
                    .timers
                    .borrow()
                    .peek()
                    .is_some_and(|Reverse(timer)| timer.deadline <= Instant::now())
                {
                    break;
                }
            }
        }
        shared.spinning.fetch_sub(1, Ordering::SeqCst);
        shared.announce_sleep(self.index);
        if self.has_visible_work() || shared.shutdown.load(Ordering::SeqCst) {
            shared.end_sleep(self.index);
            return;
        }
        let next_timer = self.fire_timers();
        let stalled = !shared.waiting_for_stack.is_empty();
        let progress = shared.progress();
        match (next_timer, stalled) {
            (Some(deadline), _) => {
                thread::park_timeout(deadline.saturating_duration_since(Instant::now()));
            }
            (None, true) => thread::park_timeout(STALL_CHECK),
            (None, false) => thread::park(),
        }
        shared.end_sleep(self.index);
        if stalled
            && next_timer.is_none()
            && self.nothing_can_progress(progress)
            && !shared.stall_reported.swap(true, Ordering::Relaxed)
        {
            report_stack_exhaustion(&shared.stacks);
        }
    }

    /// Whether, one stall period after seeing `progress`, goroutines still wait for stacks while
    /// no goroutine finished, none is runnable, no timer is pending, every other worker sleeps,
    /// and no thread outside the runtime exists that could release a stack: every stack is held
    /// by a parked goroutine, and nothing will wake one. Only a report follows (the runtime
    /// keeps waiting): a thread the runtime cannot see, such as a blocking call's, may still
    /// make progress.
    fn nothing_can_progress(&self, progress: u64) -> bool {
        let shared = &*self.shared;
        !shared.waiting_for_stack.is_empty()
            && shared.progress() == progress
            && shared.pending_timers.load(Ordering::SeqCst) == 0
            && self.runnext.borrow().is_none()
            && !self.has_visible_work()
            && (0..shared.workers.len())
                .all(|index| index == self.index || shared.idle.is_sleeping(index))
            && process_threads().is_some_and(|threads| {
                threads <= shared.workers.len() + shared.blocked_in_block_on.load(Ordering::Relaxed)
            })
    }

    /// Runs `task` until it switches out, and deals with why it did.
    fn run(&self, task: Arc<Task>, running: bool) {
        if !running && !task.state.try_start_run() {
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
                Ok(started) => *coroutine = Some(started),
                Err(StartError::NoStackYet) => {
                    task.state.finish_yield();
                    self.shared.waiting_for_stack.push(task);
                    return;
                }
                Err(StartError::Failed(reason)) => {
                    self.fail_to_start(&task, reason);
                    return;
                }
            }
        }
        match self.resume(&task, false) {
            // A goroutine may park or yield in the middle of unwinding a panic (a destructor
            // that waits): other goroutines run meanwhile, and read `thread::panicking()` as
            // true until it finishes (std counts panics per thread; see the crate docs).
            Some(Switch::Yield) => self.yielded.borrow_mut().push_back(task),
            Some(Switch::Park) => {
                if !task.state.finish_park()
                    && let Some(previous) = self.runnext.replace(Some(task))
                {
                    self.shared.workers[self.index].ready.push(previous);
                }
            }
            None => {
                self.finish(&task);
                self.bury(task);
            }
        }
    }

    /// Resumes the goroutine (or, `unwind`, goes on unwinding it); `None` when it finished.
    pub(crate) fn resume(&self, task: &Arc<Task>, unwind: bool) -> Option<Switch> {
        // SAFETY: the caller made this thread the goroutine's runner.
        let coroutine = unsafe { task.coroutine() }
            .as_mut()
            .expect("a started goroutine has a coroutine");
        gstack::set_current_stack(coroutine.stack().limit(), coroutine.stack().base());
        self.current.set(Some(Arc::as_ptr(task)));
        let result = if unwind {
            coroutine.unwind(()).map(CoroutineResult::Yield)
        } else {
            Some(coroutine.resume(()))
        };
        self.current.set(None);
        coroutine.stack().check();
        match result {
            Some(CoroutineResult::Yield(switch)) => Some(switch),
            Some(CoroutineResult::Return(())) | None => None,
        }
    }

    /// Gives a goroutine its stack and coroutine as it runs for the first time.
    fn start(&self, task: &Arc<Task>) -> Result<crate::task::GoroutineCoroutine, StartError> {
        let stack = match self.shared.stacks.get(task.stack_size) {
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
        let task_ptr = Arc::as_ptr(task);
        let coroutine = Coroutine::with_stack(stack, move |yielder, ()| {
            // SAFETY: the goroutine runs only on the thread of its runner, once, and the task
            // is kept alive by the `live` map for as long as the coroutine exists.
            unsafe {
                (*task_ptr).set_yielder(yielder);
                (*task_ptr).body.run();
            }
        })
        .map_err(|err| {
            StartError::Failed(format!("gsched: the goroutine's stack is too small: {err}"))
        })?;
        task.home.store(self.index, Ordering::Relaxed);
        if task.migratable {
            self.shared
                .migratable_live
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .insert(task.id, Arc::clone(task));
        } else {
            self.live.borrow_mut().insert(task.id, Arc::clone(task));
        }
        Ok(coroutine)
    }

    /// A goroutine that could not start: its joiner gets `reason`, nothing unwinds the worker.
    fn fail_to_start(&self, task: &Arc<Task>, reason: String) {
        task.state.finish_done();
        // SAFETY: the goroutine never ran, and this thread holds it alone (`RUNNING`).
        if unsafe { task.body.discard(Box::new(reason)) } {
            live::add(-1);
        }
    }

    fn finish(&self, task: &Arc<Task>) {
        task.state.finish_done();
        // SAFETY: this thread ran the goroutine to completion and is its runner.
        *unsafe { task.coroutine() } = None;
        if task.migratable {
            self.shared.forget_migratable(task);
        } else {
            self.live.borrow_mut().remove(&task.id);
        }
        live::add(-1);
        self.shared.workers[self.index]
            .progress
            .fetch_add(1, Ordering::Relaxed);
        if !self.shared.waiting_for_stack.is_empty()
            && let Some(waiting) = self.shared.waiting_for_stack.pop()
        {
            self.shared.workers[self.index].ready.push(waiting);
        }
    }

    /// Drops a finished goroutine's last handle where its memory is best freed: on the worker
    /// that spawned it (see `WorkerShared::graveyard`), in batches.
    fn bury(&self, task: Arc<Task>) {
        let origin = task.spawned_on.load(Ordering::Relaxed);
        if origin == self.index
            || origin >= self.shared.workers.len()
            || Arc::strong_count(&task) != 1
        {
            return;
        }
        let mut burials = self.burials.borrow_mut();
        let batch = &mut burials[origin];
        if batch.capacity() == 0 {
            batch.reserve_exact(BURIAL_BATCH);
        }
        batch.push(task);
        if batch.len() == BURIAL_BATCH {
            let full = std::mem::take(batch);
            drop(burials);
            // A full graveyard means its worker is not spawning: free here instead.
            let _ = self.shared.workers[origin].graveyard.push(full);
        }
    }

    /// Sends back every partial batch of finished goroutines, and frees what was sent here:
    /// before the worker idles, so that memory does not wait on the next spawn.
    fn flush_burials(&self) {
        let batches: Vec<(usize, Vec<Arc<Task>>)> = self
            .burials
            .borrow_mut()
            .iter_mut()
            .enumerate()
            .filter(|(_, batch)| !batch.is_empty())
            .map(|(origin, batch)| (origin, std::mem::take(batch)))
            .collect();
        for (origin, batch) in batches {
            let _ = self.shared.workers[origin].graveyard.push(batch);
        }
        self.returned.borrow_mut().clear();
        while self.shared.workers[self.index].graveyard.pop().is_some() {}
    }

    /// Frees two finished goroutines that this worker spawned, for each new spawn: the
    /// allocator hands their memory straight back.
    fn free_returned(&self) {
        let mut returned = self.returned.borrow_mut();
        if returned.is_empty()
            && let Some(batch) = self.shared.workers[self.index].graveyard.pop()
        {
            *returned = batch;
        }
        returned.pop();
        returned.pop();
    }
}

/// Why a goroutine did not start.
enum StartError {
    /// Every stack the budget allows is in use: it waits for one.
    NoStackYet,
    /// It never will; its joiner gets this message.
    Failed(String),
}

/// Threads in this process, from `/proc/self/status`.
fn process_threads() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()
}

#[cold]
fn report_stack_exhaustion(policy: &StackPolicy) {
    use std::io::Write;
    let message = match policy {
        StackPolicy::Guarded { .. } => format!(
            "gsched: no goroutine can make progress: every goroutine stack is held by a parked \
             goroutine, and {} stacks is the most the kernel's map limit allows \
             (vm.max_map_count = {}). Raise it with `sysctl -w vm.max_map_count=N`, use smaller \
             or dense stacks, or let fewer goroutines block at once. The runtime keeps waiting.",
            gstack::stack_limit(),
            gstack::max_map_count()
        ),
        StackPolicy::Dense { stacks } => format!(
            "gsched: no goroutine can make progress: every goroutine stack is held by a parked \
             goroutine, and the runtime's dense region holds {} stacks. Build the runtime with \
             more dense stacks, or let fewer goroutines block at once. The runtime keeps \
             waiting.",
            stacks.capacity()
        ),
    };
    // A closed stderr must not unwind the worker.
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// The body of worker thread `index`.
pub(crate) fn worker_main(shared: Arc<RuntimeShared>, index: usize) {
    let _ = gstack::install_overflow_handler();
    let _ = shared.workers[index].thread.set(thread::current());
    let local = WorkerLocal {
        index,
        shared: Arc::clone(&shared),
        runnext: RefCell::new(None),
        runnext_streak: Cell::new(0),
        tick: Cell::new(index as u32),
        timers: RefCell::new(BinaryHeap::new()),
        timer_sweep_at: Cell::new(0),
        live: RefCell::new(HashMap::default()),
        yielded: RefCell::new(VecDeque::new()),
        current: Cell::new(None),
        burials: RefCell::new((0..shared.workers.len()).map(|_| Vec::new()).collect()),
        returned: RefCell::new(Vec::new()),
    };
    WORKER.with(|worker| worker.set(&local));
    // Nothing a goroutine does unwinds this loop (bodies catch their panics, failures reach the
    // joiner); a panic here is a bug of the runtime, and a dead worker would silently strand
    // every goroutine pinned to it, so it ends the process loudly instead.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        while !shared.shutdown.load(Ordering::Acquire) {
            match local.pop_runnable() {
                Some((task, running)) => local.run(task, running),
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
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use super::WorkerLocal;

    /// 20,000 parks with a one-hour timeout, each woken by another goroutine long before: the
    /// stale timers are swept out as they pile up, so the heap stays small and nothing counts
    /// as pending once the parks are over.
    #[test]
    fn timers_of_goroutines_woken_early_do_not_pile_up() {
        let runtime = crate::Runtime::builder().workers(1).build().unwrap();
        let (entries, pending) = runtime.block_on(|| {
            let parked = crate::current_unparker();
            let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let stop = std::sync::Arc::clone(&done);
            let waker = crate::go(move || {
                while !stop.load(Ordering::Acquire) {
                    parked.unpark();
                    crate::yield_now();
                }
            });
            let mut most = 0;
            for _ in 0..20_000 {
                crate::park_timeout(Duration::from_secs(3600));
                let entries =
                    WorkerLocal::with_current(WorkerLocal::timer_entries).unwrap_or_default();
                most = most.max(entries);
            }
            done.store(true, Ordering::Release);
            waker.join().unwrap();
            let pending = WorkerLocal::with_current(|local| {
                local.shared.pending_timers.load(Ordering::SeqCst)
            });
            (most, pending)
        });
        assert!(entries <= 256, "the timer heap grew to {entries} entries");
        assert_eq!(pending, Some(0));
    }
}
