//! What every worker and every goroutine of one runtime share: the queues, the sleep flags, the
//! stack policy, and spawning and waking goroutines onto them.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;
use std::time::Instant;

use crossbeam_queue::{ArrayQueue, SegQueue};

use super::Padded;
use super::blocking_pool::BlockingPool;
use super::deadlock::DeadlockAction;
use super::driver::InstalledDriver;
use super::dump::{DumpRequests, ParkCounts};
use super::holds::Holds;
use super::idle::IdleFlags;
use super::inbox::Inbox;
use super::injector::Injector;
use super::monitor::{MonitorConfig, Watch, bump};
use super::stacks::StackPolicy;
use super::task::Task;
use super::task_ref::{QueueRef, TaskRef};
use super::worker::{FRESH_CAPACITY, WorkerLocal};

/// Where a new goroutine starts (see `Builder::same_worker` and `Builder::spread`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Spawned from a goroutine: next on the spawner's worker, stealable by another worker once
    /// this one is seen busy. From anywhere else: the injector, for any worker.
    #[default]
    Near,
    /// On the spawner's worker, never stolen.
    SameWorker,
    /// On another worker than the spawner's (an idle one if any), woken for it; never stolen.
    Spread,
    /// On the workers in turn, the spawner's included, woken for it; never stolen.
    RoundRobin,
}

/// Goroutines the injector holds without allocating.
const INJECTOR_RING: usize = 8192;

/// Ids are keys of the maps that keep parked goroutines' tasks alive (`WorkerLocal::live`,
/// `migratable_live`): their uniqueness is relied on for memory safety, not only for reports.
static NEXT_GOROUTINE_ID: AtomicU64 = AtomicU64::new(1);

/// Goroutine ids a thread takes from the process-wide counter at a time, as Go's `goidcache`
/// does: a spawn then touches no shared line for its id. Ids stay unique, not ordered across
/// threads.
const GOROUTINE_ID_BATCH: u64 = 64;

thread_local! {
    /// The next id this thread hands out and the end of its batch.
    static GOROUTINE_IDS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// A fresh id. Never inlined: a migratable goroutine may move to another thread across a call
/// that suspends it, and a thread-local's address computed before the suspension must not be
/// reused after it (two threads would then hand out ids from one batch).
#[inline(never)]
pub(crate) fn next_goroutine_id() -> u64 {
    // A `const` cell without a destructor: reachable for the thread's whole life.
    GOROUTINE_IDS.with(|ids| {
        let (mut next, mut end) = ids.get();
        if next == end {
            next = NEXT_GOROUTINE_ID.fetch_add(GOROUTINE_ID_BATCH, Ordering::Relaxed);
            end = next + GOROUTINE_ID_BATCH;
        }
        ids.set((next + 1, end));
        next
    })
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

    pub(crate) fn total() -> usize {
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

pub(crate) struct Config {
    pub(crate) leak_report: bool,
    /// Every goroutine may move between workers (`RuntimeBuilder::migratable_goroutines`).
    pub(crate) all_migratable: bool,
    pub(crate) deadlock: DeadlockAction,
    pub(crate) dump_on_sigquit: bool,
    /// Each park captures a backtrace for the dump (`RuntimeBuilder::park_backtraces`).
    pub(crate) park_backtraces: bool,
}

/// Goroutines by id, hashed cheaply.
pub(crate) type TaskMap = HashMap<u64, TaskRef, BuildHasherDefault<IdHasher>>;

/// What every worker and every goroutine of one runtime share.
pub(crate) struct RuntimeShared {
    pub(crate) workers: Box<[WorkerShared]>,
    pub(crate) injector: Injector<QueueRef>,
    /// Goroutines that could not get a stack, waiting for one to be returned.
    pub(crate) waiting_for_stack: SegQueue<QueueRef>,
    /// Tests widen the moment between a park's publication and the end of its worker's `run`,
    /// where the worker still holds the goroutine's entry.
    #[cfg(test)]
    pub(crate) pause_after_park: AtomicBool,
    /// Workers spinning for work, written as they start and stop; on a line of its own, as
    /// are `idle`'s sleeper count and `shutdown`, which every scheduling round reads.
    pub(super) spinning: Padded<AtomicUsize>,
    /// The goroutines' holds on this runtime (see `runtime_ref.rs`), which workers take and give
    /// back in batches.
    pub(crate) task_holds: Padded<Holds>,
    /// The round-robin turn of `Builder::spread`.
    spread_turn: AtomicUsize,
    /// Which workers sleep (see `idle.rs`).
    pub(crate) idle: IdleFlags,
    pub(crate) shutdown: Padded<AtomicBool>,
    /// Timers armed in any worker's heap and not yet fired or cancelled.
    pub(crate) pending_timers: AtomicUsize,
    pub(crate) stacks: StackPolicy,
    pub(crate) config: Config,
    /// Started, unfinished goroutines that may migrate: they have no one home worker whose
    /// `live` map could hold them.
    pub(crate) migratable_live: Mutex<TaskMap>,
    /// Threads blocked in `block_on` on this runtime, which the stall and deadlock reports
    /// count as ours, and which a deadlock wakes.
    /// Each with the id of the main goroutine it waits for.
    blocked_in_block_on: Mutex<Vec<(Thread, u64)>>,
    /// The deadlock report fired, for a runtime whose `block_on` then panics.
    deadlocked: AtomicBool,
    /// When the runtime started, and the monitor's clock since then in milliseconds.
    pub(crate) started: Instant,
    pub(super) ticks: Padded<AtomicU64>,
    pub(crate) dumps: DumpRequests,
    /// Goroutines spawned, and goroutines woken, from threads that are not this runtime's
    /// workers (which count their own in their `Watch`).
    pub(super) outside_spawns: Padded<AtomicU64>,
    pub(super) outside_wakes: Padded<AtomicU64>,
    /// Goroutines dropped unstarted at shutdown.
    pub(super) discarded: AtomicU64,
    /// Held while the shared queues are emptied and refilled: by the goroutine dump, and by
    /// shutdown's last sweep.
    shared_queues: Mutex<()>,
    /// Whether the stall report was printed.
    pub(super) stall_reported: AtomicBool,
    /// Goroutines unwound, dropped or leaked at shutdown, and their report lines.
    pub(super) leaked: Mutex<Vec<String>>,
    pub(crate) monitor: MonitorConfig,
    pub(crate) blocking: BlockingPool,
    /// The monitor's thread, woken at shutdown.
    pub(crate) monitor_thread: OnceLock<Thread>,
    /// What idle workers wait in, once a library installed it (see `crate::driver`).
    pub(crate) driver: OnceLock<InstalledDriver>,
    /// Held while a driver is built, so that one is built at most once.
    pub(crate) driver_installing: Mutex<()>,
    /// Names of the named goroutines that exist, by id, for the monitor's reports (which cannot
    /// reach a goroutine's header safely).
    named: Mutex<HashMap<u64, Arc<str>, BuildHasherDefault<IdHasher>>>,
}

pub(crate) struct WorkerShared {
    /// The goroutine that the goroutine running here spawned last, or a migratable one it woke:
    /// it runs next, as the one in Go's `runnext`, and other workers may take it (see
    /// `WorkerLocal::may_steal_from`). One slot; the one it displaces moves to `fresh`.
    pub(crate) next: ArrayQueue<QueueRef>,
    /// Goroutines that have not started, in order; other workers may steal them (see
    /// `WorkerLocal::may_steal_from`).
    pub(crate) fresh: ArrayQueue<QueueRef>,
    /// Goroutines only this worker may run: its started goroutines woken from elsewhere, and
    /// new ones spawned with `Builder::same_worker`. Taken from by this worker alone
    /// (`WorkerLocal::pop_inbox`), or once it stopped by `finish_shutdown`.
    pub(crate) ready: Inbox<QueueRef>,
    /// What the worker publishes for the monitor and for thieves (see `monitor.rs`).
    pub(crate) watch: Padded<Watch>,
    pub(super) thread: OnceLock<Thread>,
    /// Bumped whenever a goroutine finishes here: the stall detector's sign of life, per worker
    /// so that finishing goroutines do not contend on one counter. Written by the worker alone
    /// (`bump`: no read-modify-write).
    pub(super) progress: AtomicU64,
    /// Parks by wait reason, counted by the goroutines of this worker.
    pub(crate) parks: Padded<ParkCounts>,
}

impl RuntimeShared {
    pub(crate) fn new(
        workers: usize,
        stacks: StackPolicy,
        config: Config,
        monitor: MonitorConfig,
        blocking: BlockingPool,
    ) -> Arc<Self> {
        Arc::new(RuntimeShared {
            workers: (0..workers)
                .map(|_| WorkerShared {
                    next: ArrayQueue::new(1),
                    fresh: ArrayQueue::new(FRESH_CAPACITY),
                    watch: Padded(Watch::new()),
                    ready: Inbox::new(),
                    thread: OnceLock::new(),
                    progress: AtomicU64::new(0),
                    parks: Padded(ParkCounts::new()),
                })
                .collect(),
            injector: Injector::new(INJECTOR_RING),
            waiting_for_stack: SegQueue::new(),
            spinning: Padded(AtomicUsize::new(0)),
            task_holds: Padded(Holds::new()),
            spread_turn: AtomicUsize::new(0),
            idle: IdleFlags::new(workers),
            shutdown: Padded(AtomicBool::new(false)),
            pending_timers: AtomicUsize::new(0),
            stacks,
            config,
            migratable_live: Mutex::new(HashMap::default()),
            #[cfg(test)]
            pause_after_park: AtomicBool::new(false),
            blocked_in_block_on: Mutex::new(Vec::new()),
            deadlocked: AtomicBool::new(false),
            started: Instant::now(),
            ticks: Padded(AtomicU64::new(0)),
            dumps: DumpRequests::default(),
            outside_spawns: Padded(AtomicU64::new(0)),
            outside_wakes: Padded(AtomicU64::new(0)),
            discarded: AtomicU64::new(0),
            shared_queues: Mutex::new(()),
            stall_reported: AtomicBool::new(false),
            leaked: Mutex::new(Vec::new()),
            monitor,
            blocking,
            monitor_thread: OnceLock::new(),
            driver: OnceLock::new(),
            driver_installing: Mutex::new(()),
            named: Mutex::new(HashMap::default()),
        })
    }

    /// Goroutines finished on any worker so far.
    pub(super) fn progress(&self) -> u64 {
        self.workers
            .iter()
            .map(|worker| worker.progress.load(Ordering::Relaxed))
            .sum()
    }

    pub(crate) fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// Counts the calling thread as blocked in `block_on`, waiting for goroutine `main`, until
    /// the guard drops.
    pub(crate) fn block_on_started(&self, main: u64) -> impl Drop + '_ {
        struct Blocked<'a>(&'a Mutex<Vec<(Thread, u64)>>, std::thread::ThreadId);
        impl Drop for Blocked<'_> {
            fn drop(&mut self) {
                let mut threads = self.0.lock().unwrap_or_else(|poison| poison.into_inner());
                if let Some(index) = threads.iter().position(|(thread, _)| thread.id() == self.1) {
                    threads.swap_remove(index);
                }
            }
        }
        let thread = std::thread::current();
        let id = thread.id();
        self.block_on_threads().push((thread, main));
        Blocked(&self.blocked_in_block_on, id)
    }

    fn block_on_threads(&self) -> std::sync::MutexGuard<'_, Vec<(Thread, u64)>> {
        self.blocked_in_block_on
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The main goroutines that threads in `block_on` wait for: such a thread counts as the
    /// runtime's own only while its goroutine has not finished.
    pub(crate) fn block_on_mains(&self) -> Vec<u64> {
        self.block_on_threads()
            .iter()
            .map(|&(_, main)| main)
            .collect()
    }

    /// The deadlock report fired for a runtime that `gsched::run` built: wakes the threads in
    /// `block_on`, which then shut it down and panic.
    pub(crate) fn declare_deadlock(&self) {
        self.deadlocked.store(true, Ordering::SeqCst);
        for (thread, _) in self.block_on_threads().iter() {
            thread.unpark();
        }
    }

    pub(crate) fn is_deadlocked(&self) -> bool {
        self.deadlocked.load(Ordering::SeqCst)
    }

    /// See `shared_queues`.
    pub(crate) fn lock_shared_queues(&self) -> std::sync::MutexGuard<'_, ()> {
        self.shared_queues
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Goroutines picked by every worker so far.
    pub(crate) fn switches(&self) -> u64 {
        self.workers
            .iter()
            .map(|worker| worker.watch.switches.load(Ordering::Relaxed))
            .sum()
    }

    /// The last scoped goroutine borrowing `owner`'s stack is gone: during shutdown, the worker
    /// that may now unwind `owner` must look again.
    pub(crate) fn borrowers_released(&self, owner: &Task) {
        if !self.shutdown.load(Ordering::SeqCst) {
            return;
        }
        fence(Ordering::SeqCst);
        if let Some(home) = owner.home().filter(|_| !owner.migratable) {
            self.wake_worker(home);
        } else {
            for index in 0..self.workers.len() {
                self.wake_worker(index);
            }
        }
    }

    /// The goroutines a worker runs are tracked in its own `live` map when pinned, here when
    /// migratable; removes a finished one.
    pub(super) fn forget_migratable(&self, task: &Task) {
        self.migratable_live
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .remove(&task.id);
    }

    /// Queues a new goroutine where `placement` says (see `Placement`).
    pub(crate) fn spawn(&self, task: TaskRef, placement: Placement) {
        let task = QueueRef::spawned(task);
        live::add(1);
        let own_worker = WorkerLocal::with_current(|local| {
            std::ptr::eq(Arc::as_ptr(&local.shared), self).then_some(local.index)
        })
        .flatten();
        match own_worker {
            Some(index) => bump(&self.workers[index].watch.spawned),
            None => {
                self.outside_spawns.fetch_add(1, Ordering::Relaxed);
            }
        }
        match (own_worker, placement) {
            (Some(index), Placement::Near) => {
                let worker = &self.workers[index];
                if let Some(displaced) = worker.next.force_push(task) {
                    self.push_fresh(index, displaced);
                }
                // One goroutine runs next (see `schedule_woken`): a woken one waiting there
                // goes to the inbox, which only this worker runs.
                WorkerLocal::with_current(|local| {
                    if let Some(woken) = local.runnext.borrow_mut().take() {
                        worker.ready.push(woken);
                    }
                });
                self.wake_for_new_work();
            }
            (Some(index), Placement::SameWorker) => self.workers[index].ready.push(task),
            (own_worker, Placement::Spread) if self.workers.len() > 1 => {
                let target = self.spread_target(own_worker);
                self.workers[target].ready.push(task);
                self.wake_owner(target);
            }
            (_, Placement::RoundRobin) => {
                let target = self.spread_turn.fetch_add(1, Ordering::Relaxed) % self.workers.len();
                self.workers[target].ready.push(task);
                self.wake_owner(target);
            }
            _ => {
                self.injector.push(task);
                self.wake_for_new_work();
            }
        }
    }

    /// Onto worker `index`'s stealable queue, or the injector when that is full.
    pub(super) fn push_fresh(&self, index: usize, task: QueueRef) {
        if let Err(task) = self.workers[index].fresh.push(task) {
            self.injector.push(task);
        }
    }

    /// A worker other than `own` for a goroutine that should start elsewhere: the first one
    /// asleep from a round-robin turn on, or else the one whose turn it is.
    fn spread_target(&self, own: Option<usize>) -> usize {
        let workers = self.workers.len();
        let turn = self.spread_turn.fetch_add(1, Ordering::Relaxed);
        let mut others = (0..workers)
            .map(|offset| (turn + offset) % workers)
            .filter(|&index| Some(index) != own);
        let first = others
            .clone()
            .next()
            .expect("a worker other than the spawner's");
        others
            .find(|&index| self.idle.is_sleeping(index))
            .unwrap_or(first)
    }

    /// Puts a woken goroutine back to work, to run next on its waker's worker when the waker is
    /// a goroutine of this runtime, as Go's `goready` does: in `runnext` when that is the woken
    /// one's own worker, and for a migratable one on any worker in `next`, from which idle
    /// workers may take it. Else its worker's inbox (a migratable one goes to a stealable queue).
    pub(crate) fn schedule_woken(&self, task: QueueRef) {
        let home = task
            .home()
            .expect("only a goroutine that ran can be parked");
        // The common case, a goroutine waking one of its own worker's, in one look at the
        // thread's worker: the task goes into `runnext` right there.
        let mut task = Some(task);
        let waker = WorkerLocal::with_current(|local| {
            if !(std::ptr::eq(Arc::as_ptr(&local.shared), self) && local.in_goroutine()) {
                return None;
            }
            let watch = &self.workers[local.index].watch;
            if local.index == home {
                bump(&watch.local_wakes);
                if let Some(previous) = local.runnext.replace(task.take()) {
                    self.workers[home].ready.push(previous);
                }
            } else {
                bump(&watch.remote_wakes);
            }
            Some(local.index)
        })
        .flatten();
        if waker.is_none() {
            self.outside_wakes.fetch_add(1, Ordering::Relaxed);
        }
        let Some(task) = task else {
            // One goroutine runs next, as in Go: the one spawned before goes to the queue, or a
            // pair talking through `runnext` would keep it waiting for good.
            let worker = &self.workers[home];
            if !worker.next.is_empty()
                && let Some(spawned) = worker.next.pop()
            {
                self.push_fresh(home, spawned);
            }
            return;
        };
        match waker {
            Some(index) if task.migratable => {
                if let Some(displaced) = self.workers[index].next.force_push(task) {
                    self.push_fresh(index, displaced);
                }
                self.wake_for_new_work();
                return;
            }
            _ => {}
        }
        if task.migratable {
            if let Err(task) = self.workers[home].fresh.push(task) {
                self.injector.push(task);
            }
            self.wake_for_new_work();
        } else {
            self.workers[home].ready.push(task);
            self.wake_owner(home);
        }
    }

    /// Wakes a sleeping worker, if any, to look for goroutines to take (the monitor, after it
    /// marked a worker stuck).
    pub(crate) fn wake_idle_worker(&self) {
        fence(Ordering::SeqCst);
        for index in 0..self.workers.len() {
            if self.wake_worker(index) {
                return;
            }
        }
    }

    /// Records a named goroutine's name for the monitor's reports.
    pub(crate) fn name_goroutine(&self, id: u64, name: Arc<str>) {
        self.named
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(id, name);
    }

    /// Forgets a named goroutine's name, as the goroutine goes away.
    pub(crate) fn forget_name(&self, id: u64) {
        self.named
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .remove(&id);
    }

    pub(crate) fn name_of(&self, id: u64) -> Option<Arc<str>> {
        self.named
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .get(&id)
            .cloned()
    }

    /// Threads of the process that belong to this runtime: its workers, its monitor, its
    /// blocking threads, and threads blocked in its `block_on`.
    pub(crate) fn own_threads(&self) -> usize {
        self.workers.len() + 1 + self.blocking.threads() + self.block_on_threads().len()
    }

    /// After pushing work any worker may take: wakes a sleeping worker unless one is spinning.
    pub(crate) fn wake_for_new_work(&self) {
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

    /// After pushing work only worker `index` runs: wakes it if it sleeps (see `idle.rs`).
    pub(crate) fn wake_owner(&self, index: usize) {
        if self.idle.wake_owner(index) {
            self.unpark_worker(index);
        }
    }

    /// Wakes worker `index` if it sleeps; true if it did.
    pub(crate) fn wake_worker(&self, index: usize) -> bool {
        if self.idle.wake(index) {
            self.unpark_worker(index);
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
}

/// Hashes goroutine ids, which are unique and dense (handed out in per-thread runs), by a
/// multiplication.
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
