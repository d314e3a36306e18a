//! Collecting the goroutine dump, and the counters behind `Runtime::metrics`.
//!
//! # How a dump is collected
//!
//! The goroutines a worker has started are in its own `live` map, which only its thread may
//! touch, so each worker lists its own: the requester queues a `DumpRequest`, sets every
//! worker's `dump_wanted` mark and wakes the sleeping ones the way a push of work does (see
//! `idle.rs`), and ends their time slices, so each worker answers at its next pick. A
//! goroutine that asks lists its own worker itself. The requester waits a bounded time; a
//! worker busy in one goroutine that long is described by what its `Watch` shows. Goroutines
//! that have not started are listed from the queues that hold them, taken out and put back in
//! order; the migratable ones that started are listed from the runtime's map, by state only
//! (their wait reason is written by whichever thread runs them).
//!
//! A dump stops each worker once, for the time it takes to list its goroutines.

use std::backtrace::Backtrace;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::RuntimeShared;
use super::monitor::bump;
use super::shared::live;
use super::state::{DONE, PARKED};
use super::task::Task;
use super::task_ref::QueueRef;
use super::worker::WorkerLocal;
use crate::diagnostics::{
    Dump, GoroutineInfo, GoroutineState, Metrics, WorkerMetrics, WorkerState,
};
use crate::park::{Unparker, current_unparker, park_with_reason_until};

/// Distinct wait reasons counted per worker; more count as `OTHER_REASONS`.
const PARK_REASONS: usize = 16;

/// Parks by wait reason on one worker, in a small open-addressing table keyed by the reason's
/// address: written by its goroutines (on its thread) only, read by anyone.
pub(crate) struct ParkCounts {
    slots: [ReasonCount; PARK_REASONS],
    other: AtomicU64,
}

struct ReasonCount {
    /// The reason's text, set once before `count` first becomes non-zero.
    text: AtomicPtr<u8>,
    len: AtomicUsize,
    count: AtomicU64,
}

/// What the table calls the reasons that found it full.
const OTHER_REASONS: &str = "other";

impl ParkCounts {
    pub(crate) fn new() -> Self {
        ParkCounts {
            slots: std::array::from_fn(|_| ReasonCount {
                text: AtomicPtr::new(std::ptr::null_mut()),
                len: AtomicUsize::new(0),
                count: AtomicU64::new(0),
            }),
            other: AtomicU64::new(0),
        }
    }

    /// Counts a park for `reason`; called on the worker's thread only. One probe finds a
    /// reason seen before, unless two reasons share its slot.
    #[inline]
    pub(crate) fn count(&self, reason: &'static str) {
        let home = Self::home_slot(reason);
        let slot = &self.slots[home];
        if slot.text.load(Ordering::Relaxed).cast_const() == reason.as_ptr()
            && slot.len.load(Ordering::Relaxed) == reason.len()
        {
            bump(&slot.count);
        } else {
            self.count_slow(home, reason);
        }
    }

    fn home_slot(reason: &'static str) -> usize {
        (reason.as_ptr() as usize >> 3) % PARK_REASONS
    }

    #[cold]
    fn count_slow(&self, home: usize, reason: &'static str) {
        for probe in 0..PARK_REASONS {
            let slot = &self.slots[(home + probe) % PARK_REASONS];
            let text = slot.text.load(Ordering::Relaxed);
            if text.is_null() {
                slot.text
                    .store(reason.as_ptr().cast_mut(), Ordering::Relaxed);
                slot.len.store(reason.len(), Ordering::Relaxed);
            } else if text.cast_const() != reason.as_ptr()
                || slot.len.load(Ordering::Relaxed) != reason.len()
            {
                continue;
            }
            bump(&slot.count);
            return;
        }
        bump(&self.other);
    }

    /// The counts so far, added into `into` by text.
    fn add_to(&self, into: &mut Vec<(&'static str, u64)>) {
        for slot in &self.slots {
            let count = slot.count.load(Ordering::Acquire);
            if count == 0 {
                continue;
            }
            let (text, len) = (
                slot.text.load(Ordering::Relaxed),
                slot.len.load(Ordering::Relaxed),
            );
            // SAFETY: both come from one `&'static str`, stored before the release store of a
            // non-zero count that the acquire load above read, and never changed afterwards.
            let reason: &'static str =
                unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(text, len)) };
            add_count(into, reason, count);
        }
        let other = self.other.load(Ordering::Relaxed);
        if other > 0 {
            add_count(into, OTHER_REASONS, other);
        }
    }
}

/// Adds `count` parks for `reason` into `into`, merging equal texts.
fn add_count(into: &mut Vec<(&'static str, u64)>, reason: &'static str, count: u64) {
    match into.iter_mut().find(|(seen, _)| *seen == reason) {
        Some((_, total)) => *total += count,
        None => into.push((reason, count)),
    }
}

/// One dump being collected.
pub(crate) struct DumpRequest {
    parts: Mutex<Parts>,
    requester: Unparker,
}

struct Parts {
    answered: Vec<bool>,
    remaining: usize,
    goroutines: Vec<GoroutineInfo>,
    /// The requester took what came and stopped waiting: late answers are dropped.
    closed: bool,
}

impl Parts {
    fn wants(&self, worker: usize) -> bool {
        !self.closed && !self.answered[worker]
    }
}

impl DumpRequest {
    fn parts(&self) -> MutexGuard<'_, Parts> {
        self.parts
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// The dumps waiting for workers to answer.
#[derive(Default)]
pub(crate) struct DumpRequests {
    pending: Mutex<Vec<Arc<DumpRequest>>>,
}

impl DumpRequests {
    fn pending(&self) -> MutexGuard<'_, Vec<Arc<DumpRequest>>> {
        self.pending
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl WorkerLocal {
    /// Captures where the running goroutine `id` parks, for the dump.
    #[cold]
    pub(crate) fn record_park_backtrace(&self, id: u64) {
        let backtrace = Arc::new(Backtrace::force_capture());
        self.park_backtraces.borrow_mut().insert(id, backtrace);
    }

    /// Lists this worker's goroutines into every dump that waits for it.
    #[cold]
    pub(crate) fn answer_dumps(&self) {
        let me = &self.shared.workers[self.index];
        // A swap reads the latest mark, so it synchronizes with the requester that set it and
        // the list below holds that request.
        me.watch.dump_wanted.swap(false, Ordering::Acquire);
        let requests = self.shared.dumps.pending().clone();
        for request in requests {
            self.answer(&request);
        }
    }

    /// Lists this worker's goroutines into `request`, unless it did already or the requester
    /// stopped waiting.
    fn answer(&self, request: &DumpRequest) {
        if !request.parts().wants(self.index) {
            return;
        }
        let listed = self.list_goroutines();
        let mut parts = request.parts();
        if !parts.wants(self.index) {
            return;
        }
        parts.answered[self.index] = true;
        parts.goroutines.extend(listed);
        parts.remaining -= 1;
        if parts.remaining == 0 {
            request.requester.unpark();
        }
    }

    /// The goroutines this worker started (pinned ones) and those its queues hold unstarted.
    fn list_goroutines(&self) -> Vec<GoroutineInfo> {
        let shared = &*self.shared;
        let now = shared.tick();
        let running = self.current_task().map(|task| task.id);
        let mut listed: Vec<GoroutineInfo> = self
            .live
            .borrow()
            .values()
            .map(|task| {
                if Some(task.id) == running {
                    return info(task, Some(self.index), GoroutineState::Running, None);
                }
                if task.state.phase() != PARKED {
                    return info(task, Some(self.index), GoroutineState::Runnable, None);
                }
                // SAFETY: a pinned goroutine in this worker's map runs on this thread only,
                // and it is not running now (the running one is `running`).
                let (reason, since) = unsafe { (task.parked_on(), task.parked_since()) };
                let waiting = Duration::from_millis(now.saturating_sub(since));
                let state = GoroutineState::Parked(reason);
                let mut entry = info(task, Some(self.index), state, Some(waiting));
                entry.backtrace = self.park_backtraces.borrow().get(&task.id).cloned();
                entry
            })
            .collect();
        // A pinned goroutine joins the map at its first switch out (see `keep_live`), so the
        // one asking for the dump may not be in it yet.
        if let Some(task) = self.current_task()
            && !task.migratable
            // SAFETY: the running goroutine runs on this thread.
            && !unsafe { task.in_live_map() }
        {
            listed.push(info(task, Some(self.index), GoroutineState::Running, None));
        }
        let me = &shared.workers[self.index];
        let next: Vec<QueueRef> = std::iter::from_fn(|| me.next.pop()).collect();
        let fresh: Vec<QueueRef> = std::iter::from_fn(|| me.fresh.pop()).collect();
        let ready: Vec<QueueRef> = std::iter::from_fn(|| self.pop_inbox()).collect();
        let unstarted = next.iter().chain(&fresh).chain(&ready);
        listed.extend(
            unstarted
                .filter(|task| is_unstarted(task))
                .map(|task| info(task, Some(self.index), GoroutineState::NotStarted, None)),
        );
        for task in next {
            if let Some(displaced) = me.next.force_push(task) {
                shared.push_fresh(self.index, displaced);
            }
        }
        for task in fresh {
            shared.push_fresh(self.index, task);
        }
        for task in ready {
            me.ready.push(task);
        }
        listed
    }
}

fn is_unstarted(task: &Task) -> bool {
    task.home().is_none() && task.state.phase() != DONE
}

fn info(
    task: &Task,
    worker: Option<usize>,
    state: GoroutineState,
    waiting: Option<Duration>,
) -> GoroutineInfo {
    GoroutineInfo {
        id: task.id,
        name: task.name.clone(),
        worker,
        state,
        waiting,
        spawned_at: task.spawned_at,
        backtrace: None,
    }
}

/// What a migratable goroutine parked on reads as: the thread that runs it writes its reason.
const MIGRATABLE_PARKED: &str = "parked (migratable goroutine)";

impl RuntimeShared {
    /// The monitor's clock in milliseconds since the runtime started, as of its last look.
    #[inline]
    pub(crate) fn tick(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }

    /// Moves the monitor's tick to `now`.
    pub(crate) fn set_tick(&self, now: Instant) {
        let ms = now.saturating_duration_since(self.started).as_millis();
        self.ticks
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Lists every goroutine of this runtime, waiting at most `wait` for each worker.
    pub(crate) fn dump(self: &Arc<Self>, wait: Duration) -> Dump {
        let workers = self.workers.len();
        let request = Arc::new(DumpRequest {
            parts: Mutex::new(Parts {
                answered: vec![false; workers],
                remaining: workers,
                goroutines: Vec::new(),
                closed: false,
            }),
            requester: current_unparker(),
        });
        // Called on one of this runtime's workers (from a goroutine, or a destructor the
        // worker runs), it lists that worker itself: the worker cannot answer meanwhile.
        WorkerLocal::with_current(|local| {
            if Arc::ptr_eq(&local.shared, self) {
                local.answer(&request);
            }
        });
        self.dumps.pending().push(Arc::clone(&request));
        for index in 0..workers {
            if !request.parts().answered[index] {
                // Ending the worker's time slice makes it look at its mark at its next pick,
                // and its running goroutine yield at its next checkpoint.
                let watch = &self.workers[index].watch;
                watch.dump_wanted.store(true, Ordering::Release);
                watch.preempt.store(true, Ordering::Release);
                self.wake_owner(index);
            }
        }
        let deadline = Instant::now() + wait;
        // Workers stop answering once shutdown begins.
        while request.parts().remaining > 0
            && Instant::now() < deadline
            && !self.shutdown.load(Ordering::Acquire)
        {
            park_with_reason_until("goroutine dump", deadline);
        }
        self.dumps
            .pending()
            .retain(|pending| !Arc::ptr_eq(pending, &request));
        let (answered, mut goroutines) = {
            let mut parts = request.parts();
            parts.closed = true;
            (
                parts.answered.clone(),
                std::mem::take(&mut parts.goroutines),
            )
        };
        let mut dump = Dump::default();
        for (index, answered) in answered.iter().enumerate() {
            if !answered {
                self.describe_unanswered(index, &mut dump);
            }
        }
        dump.goroutines.append(&mut goroutines);
        self.list_shared_queues(&mut dump);
        dump.goroutines.sort_by_key(|goroutine| goroutine.id);
        dump.goroutines.dedup_by_key(|goroutine| goroutine.id);
        dump
    }

    /// A worker that did not answer: what its `Watch` shows.
    fn describe_unanswered(&self, index: usize, dump: &mut Dump) {
        let watch = &self.workers[index].watch;
        let running = watch.running.load(Ordering::Acquire);
        let site = watch.running_site.load(Ordering::Acquire);
        // SAFETY: `running_site` holds null or a `&'static Location`.
        let site = unsafe { site.as_ref() };
        if running != 0
            && let Some(site) = site
        {
            dump.goroutines.push(GoroutineInfo {
                id: running,
                name: self.name_of(running),
                worker: Some(index),
                state: GoroutineState::Running,
                waiting: None,
                spawned_at: site,
                backtrace: None,
            });
        }
        dump.notes.push(format!(
            "worker {index} did not answer within the dump's wait{}: the goroutines pinned to \
             it are not listed",
            if running == 0 {
                String::new()
            } else {
                format!(" (it runs goroutine {running} without a switch)")
            }
        ));
    }

    /// Goroutines in the global queue, waiting for stacks, and the started migratable ones.
    fn list_shared_queues(&self, dump: &mut Dump) {
        // Shutdown's last sweep of the queues must not run while they are out for listing,
        // or what is put back after it would never be dropped.
        let _listing = self.lock_shared_queues();
        if self.shutdown.load(Ordering::Acquire) {
            return;
        }
        let injected: Vec<QueueRef> = std::iter::from_fn(|| self.injector.pop()).collect();
        let waiting: Vec<QueueRef> = std::iter::from_fn(|| self.waiting_for_stack.pop()).collect();
        let had_work = !injected.is_empty();
        let had_waiters = !waiting.is_empty();
        for task in injected {
            if is_unstarted(&task) {
                dump.goroutines
                    .push(info(&task, None, GoroutineState::NotStarted, None));
            }
            self.injector.push(task);
        }
        for task in waiting {
            dump.goroutines
                .push(info(&task, None, GoroutineState::WaitingForStack, None));
            self.waiting_for_stack.push(task);
        }
        // A stack returned while the waiters were out found none of them: one tries again,
        // as a worker does after its own refusal (see `WorkerLocal::run`).
        if had_waiters
            && self.stacks.may_have_stack()
            && let Some(waiting) = self.waiting_for_stack.pop()
        {
            self.injector.push(waiting);
        }
        if had_work || had_waiters {
            self.wake_for_new_work();
        }
        let migratable = self
            .migratable_live
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        for task in migratable.values() {
            let home = task.home();
            let running = self
                .workers
                .iter()
                .any(|worker| worker.watch.running.load(Ordering::Acquire) == task.id);
            let state = match task.state.phase() {
                _ if running => GoroutineState::Running,
                PARKED => GoroutineState::Parked(MIGRATABLE_PARKED),
                _ => GoroutineState::Runnable,
            };
            dump.goroutines.push(info(task, home, state, None));
        }
    }

    /// The scheduler's counters now (see `Metrics`).
    pub(crate) fn metrics(&self) -> Metrics {
        let mut metrics = Metrics {
            spawned: self.outside_spawns.load(Ordering::Relaxed),
            remote_wakes: self.outside_wakes.load(Ordering::Relaxed),
            global_queue: self.injector.len(),
            timers: self.pending_timers.load(Ordering::Relaxed),
            blocking_calls: self.blocking.in_flight(),
            blocking_threads: self.blocking.threads(),
            ..Metrics::default()
        };
        for (index, worker) in self.workers.iter().enumerate() {
            let watch = &worker.watch;
            let running = watch.running.load(Ordering::Relaxed);
            let state = if self.idle.is_sleeping(index) {
                WorkerState::Idle
            } else if running != 0 {
                WorkerState::Running(running)
            } else {
                WorkerState::Spinning
            };
            metrics.workers.push(WorkerMetrics {
                state,
                runnable: worker.fresh.len() + worker.next.len() + worker.ready.len(),
                switches: watch.switches.load(Ordering::Relaxed),
            });
            metrics.spawned += watch.spawned.load(Ordering::Relaxed);
            metrics.finished += worker.progress.load(Ordering::Relaxed);
            metrics.steals += watch.steals.load(Ordering::Relaxed);
            metrics.local_wakes += watch.local_wakes.load(Ordering::Relaxed);
            metrics.remote_wakes += watch.remote_wakes.load(Ordering::Relaxed);
            worker.parks.add_to(&mut metrics.parks);
        }
        metrics.finished += self.discarded.load(Ordering::Relaxed);
        metrics.goroutines = metrics.spawned.saturating_sub(metrics.finished);
        metrics
            .parks
            .sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        metrics
    }
}

/// Goroutines of every runtime, for the deadlock report's first look.
pub(crate) fn any_goroutines() -> bool {
    live::total() > 0
}

#[cfg(test)]
mod tests {
    use super::ParkCounts;

    #[test]
    fn parks_are_counted_by_reason_and_reasons_past_the_table_count_as_other() {
        let counts = ParkCounts::new();
        counts.count("chan receive");
        counts.count("chan receive");
        counts.count("sleep");
        let mut seen = Vec::new();
        counts.add_to(&mut seen);
        // The table is keyed by address: its order means nothing.
        seen.sort_unstable();
        assert_eq!(seen, [("chan receive", 2), ("sleep", 1)]);
        let many: Vec<&'static str> = (0..20)
            .map(|i| &*Box::leak(format!("reason {i}").into_boxed_str()))
            .collect();
        for reason in &many {
            counts.count(reason);
        }
        let mut seen = Vec::new();
        counts.add_to(&mut seen);
        let total: u64 = seen.iter().map(|(_, count)| count).sum();
        assert_eq!(total, 23);
        assert_eq!(seen.len(), super::PARK_REASONS + 1);
        assert_eq!(
            seen.iter()
                .find(|(reason, _)| *reason == "other")
                .unwrap()
                .1,
            6
        );
    }
}
