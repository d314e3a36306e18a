//! The monitor: one thread per runtime that watches the workers, as Go's `sysmon` does.
//!
//! Every few milliseconds it looks at what each worker publishes in its [`Watch`]:
//!
//! - **Time slices.** A worker that has gone `preempt_after` (10 ms) without starting a new time
//!   slice (a pick that does not inherit the slice, as a woken goroutine in `runnext` does) gets
//!   its `preempt` mark: the goroutine running there yields at its next `checkpoint` (every
//!   gsync operation that can complete without blocking has one), and the worker then picks
//!   from its queues rather than `runnext`, so a pair of goroutines talking through `runnext`
//!   shares the worker with the rest as in Go.
//! - **Stuck workers.** A worker that has run one goroutine for `stuck_after` (20 ms) without a
//!   switch (a blocking system call, or a loop that never calls into the library) gets its
//!   `stuck` mark: idle workers may take its unstarted goroutines at once, and one is woken to
//!   do so. The goroutine is reported once, with its name, spawn site and how long it ran,
//!   unless the worker's thread spent most of that time waiting for a CPU (the kernel's
//!   accounting says so on Linux, see `thread_times`): on a machine busier than its CPUs, the
//!   goroutine is not to blame, until it has had the threshold's worth of CPU.
//!   Goroutines already started on that worker wait: they never move.
//! - **Stalls.** When goroutines wait for stacks and nothing in the process can release one, it
//!   says so once (see `stacks::report_stack_exhaustion`).
//! - **Page tables.** Every second, stack slots that stayed unused since the last second give
//!   back their page tables (gstack's `return_page_tables`), as Go's scavenger gives back
//!   memory a burst no longer uses.
//!
//! Preemption is cooperative only. Suspending a goroutine from a signal handler could stop it
//! inside `malloc` or inside a thread-local borrow and then run its neighbour on the same
//! thread, which pinned stacks cannot make sound.
//!
//! The monitor reads the time from a [`Clock`], which tests move by hand.

use std::collections::HashSet;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::RuntimeShared;
use super::deadlock::{DeadlockWatch, act_on_deadlock};
use super::stacks::{process_threads, report_stack_exhaustion};
use crate::shim::Clock;
use thread_times::{Measure, goroutine_to_blame};
pub(crate) use thread_times::{ThreadTimes, thread_times};

/// The monitor's default thresholds (Go's `forcePreemptNS` is 10 ms).
pub(crate) const DEFAULT_PREEMPT_AFTER: Duration = Duration::from_millis(10);
pub(crate) const DEFAULT_STUCK_AFTER: Duration = Duration::from_millis(20);

/// How long goroutines must wait for stacks with no progress before the stall report.
const STALL_CHECK: Duration = Duration::from_secs(2);

/// The longest the monitor sleeps while every worker sleeps too.
const IDLE_PERIOD: Duration = Duration::from_millis(10);

/// How often the monitor lets stack slots that stayed unused since its last call give back
/// their page tables (gstack's `return_page_tables`): a slot beyond the warm cache gives them
/// back after one to two periods unused.
const PAGE_TABLE_PERIOD: Duration = Duration::from_secs(1);

/// Lets stack slots give back their page tables, once per `PAGE_TABLE_PERIOD` in the process
/// however many runtimes' monitors call this (slots are the process's, not a runtime's).
fn return_page_tables_when_due() {
    static LAST_PASS: Mutex<Option<Instant>> = Mutex::new(None);
    let mut last_pass = match LAST_PASS.try_lock() {
        Ok(last_pass) => last_pass,
        Err(std::sync::TryLockError::Poisoned(poison)) => poison.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return,
    };
    let now = Instant::now();
    match *last_pass {
        // The first look starts the period: a runtime starting up is no moment for a pass.
        None => *last_pass = Some(now),
        Some(at) if now.duration_since(at) >= PAGE_TABLE_PERIOD => {
            *last_pass = Some(now);
            gstack::return_page_tables();
        }
        Some(_) => {}
    }
}

/// Reports of goroutines that ran without a switch, at most, per runtime.
const MAX_LONG_RUN_REPORTS: usize = 16;

/// The monitor's settings, from `RuntimeBuilder`.
#[derive(Clone, Debug)]
pub(crate) struct MonitorConfig {
    pub(crate) preempt_after: Duration,
    pub(crate) stuck_after: Duration,
    /// Whether a goroutine that ran `stuck_after` without a switch is reported.
    pub(crate) report_long_runs: bool,
    /// How often to print the scheduler's counters (`GSCHED_DEBUG=schedtrace=N`), if at all.
    pub(crate) schedtrace: Option<Duration>,
    pub(crate) clock: Clock,
}

impl MonitorConfig {
    /// How often the monitor looks while workers are busy: a quarter of the shorter threshold,
    /// so each is noticed within a quarter of itself.
    fn period(&self) -> Duration {
        (self.preempt_after.min(self.stuck_after) / 4).max(Duration::from_micros(100))
    }
}

/// What a worker publishes for the monitor and for other workers, on a cache line of its own.
/// Only its worker writes it, except the two marks, which the monitor sets and the worker
/// clears.
pub(crate) struct Watch {
    /// Goroutines picked to run.
    pub(crate) switches: AtomicU64,
    /// Picks that began a new time slice.
    pub(crate) slices: AtomicU64,
    /// The goroutine running now (0 between goroutines) and where it was spawned.
    pub(crate) running: AtomicU64,
    pub(crate) running_site: AtomicPtr<Location<'static>>,
    /// The time slice is over: the running goroutine should yield.
    pub(crate) preempt: AtomicBool,
    /// The running goroutine has run `stuck_after` without a switch.
    pub(crate) stuck: AtomicBool,
    /// A goroutine dump waits for this worker's list (see `dump.rs`).
    pub(crate) dump_wanted: AtomicBool,
    /// The worker's kernel thread id (0 until it starts, or where there is none to read).
    pub(crate) os_thread: AtomicI32,
    /// Counters for `Runtime::metrics`, bumped by the worker only.
    pub(crate) spawned: AtomicU64,
    pub(crate) steals: AtomicU64,
    pub(crate) local_wakes: AtomicU64,
    pub(crate) remote_wakes: AtomicU64,
}

impl Watch {
    pub(crate) fn new() -> Self {
        Watch {
            switches: AtomicU64::new(0),
            slices: AtomicU64::new(0),
            running: AtomicU64::new(0),
            running_site: AtomicPtr::new(std::ptr::null_mut()),
            preempt: AtomicBool::new(false),
            stuck: AtomicBool::new(false),
            dump_wanted: AtomicBool::new(false),
            os_thread: AtomicI32::new(0),
            spawned: AtomicU64::new(0),
            steals: AtomicU64::new(0),
            local_wakes: AtomicU64::new(0),
            remote_wakes: AtomicU64::new(0),
        }
    }

    /// Counts a pick, which starts a new time slice unless it `inherits` the current one.
    #[inline]
    pub(crate) fn picked(&self, inherits: bool) {
        bump(&self.switches);
        if !inherits {
            bump(&self.slices);
            if self.preempt.load(Ordering::Relaxed) {
                self.preempt.store(false, Ordering::Relaxed);
            }
        }
        if self.stuck.load(Ordering::Relaxed) {
            self.stuck.store(false, Ordering::Relaxed);
        }
    }

    /// Whether the current time slice is over.
    #[inline]
    pub(crate) fn slice_expired(&self) -> bool {
        self.preempt.load(Ordering::Relaxed)
    }
}

/// Adds one to a counter only its owner writes: a load and a store, no locked instruction.
#[inline]
pub(crate) fn bump(counter: &AtomicU64) {
    // Release: a reader that acquires a non-zero count sees what was stored before the first.
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Release);
}

/// What the monitor last saw of one worker.
struct Seen {
    switches: u64,
    switched_at: Instant,
    slices: u64,
    sliced_at: Instant,
    /// The measure of the worker thread's time during the current run without a switch, if
    /// one was taken (see `thread_times`).
    measure: Option<Measure>,
}

/// A thread's accounting, by kernel thread id: [`thread_times`], or a stand-in in tests.
type ThreadTimesOf = Box<dyn Fn(i32) -> Option<ThreadTimes> + Send>;

/// The monitor's memory between two looks.
pub(crate) struct Monitor {
    shared: Arc<RuntimeShared>,
    seen: Vec<Seen>,
    /// Goroutines already reported for running without a switch.
    reported: HashSet<u64>,
    /// When goroutines were first seen waiting for stacks with no progress, and the progress.
    stall: Option<(Instant, u64)>,
    deadlock: DeadlockWatch,
    /// When schedtrace last printed.
    traced_at: Instant,
    thread_times_of: ThreadTimesOf,
}

impl Monitor {
    pub(crate) fn new(shared: Arc<RuntimeShared>) -> Self {
        let now = shared.monitor.clock.now();
        let seen = (0..shared.workers.len())
            .map(|_| Seen {
                switches: 0,
                switched_at: now,
                slices: 0,
                sliced_at: now,
                measure: None,
            })
            .collect();
        Monitor {
            shared,
            seen,
            reported: HashSet::new(),
            stall: None,
            deadlock: DeadlockWatch::default(),
            traced_at: now,
            thread_times_of: Box::new(thread_times),
        }
    }

    /// The monitor thread's loop, until shutdown.
    pub(crate) fn run(mut self) {
        let busy_period = self.shared.monitor.period();

        let mut period = busy_period;
        while !self.shared.shutdown.load(Ordering::Acquire) {
            thread::park_timeout(period);
            let now = self.shared.monitor.clock.now();
            self.shared.set_tick(now);
            self.look(now);
            if let Some(report) = self.deadlock.look(&self.shared, now) {
                act_on_deadlock(&self.shared, &report);
            }
            self.trace(now);
            return_page_tables_when_due();
            // Back off while the whole runtime sleeps, as sysmon does.
            period = if self.shared.idle.sleepers() == self.shared.workers.len() {
                (period * 2).min(IDLE_PERIOD.max(busy_period))
            } else {
                busy_period
            };
        }
    }

    /// One look at every worker, at time `now`; returns the reports it printed.
    pub(crate) fn look(&mut self, now: Instant) -> Vec<String> {
        let mut reports = Vec::new();
        // Shutdown unwinds goroutines that parked long ago, and no queue can move any more:
        // nothing to mark or report.
        if self.shared.shutdown.load(Ordering::Acquire) {
            return reports;
        }
        let config = &self.shared.monitor;
        for (index, seen) in self.seen.iter_mut().enumerate() {
            let watch = &self.shared.workers[index].watch;
            let switches = watch.switches.load(Ordering::Relaxed);
            let slices = watch.slices.load(Ordering::Relaxed);
            let running = watch.running.load(Ordering::Acquire);
            let site = watch.running_site.load(Ordering::Acquire);
            if switches != seen.switches {
                seen.switches = switches;
                seen.switched_at = now;
                seen.measure = None;
            }
            if slices != seen.slices {
                seen.slices = slices;
                seen.sliced_at = now;
            }
            // A worker between goroutines has no slice to end; a count read again unchanged
            // means `running` and `site` belong to the goroutine the counts describe.
            if running == 0 || watch.switches.load(Ordering::Acquire) != switches {
                continue;
            }
            if now.duration_since(seen.sliced_at) >= config.preempt_after {
                watch.preempt.store(true, Ordering::Relaxed);
            }
            let ran = now.duration_since(seen.switched_at);
            // A worker in one goroutine since the last look does not poll its driver: what is
            // ready there would wait for it, so the monitor handles it, as sysmon polls the
            // network.
            if !ran.is_zero()
                && let Some(installed) = self.shared.driver.get()
            {
                installed.driver.poll(index);
            }
            let reportable = config.report_long_runs
                && self.reported.len() < MAX_LONG_RUN_REPORTS
                && !self.reported.contains(&running);
            let tid = watch.os_thread.load(Ordering::Relaxed);
            // Half way, the measure of the worker thread's time begins, so that the goroutine
            // can be judged when the threshold is reached.
            if reportable && ran >= config.stuck_after / 2 && seen.measure.is_none() {
                seen.measure = (self.thread_times_of)(tid).map(|times| Measure::start(now, times));
            }
            if ran < config.stuck_after {
                continue;
            }
            // Idle workers take the unstarted goroutines of a worker that does not switch,
            // whether its goroutine blocks or its thread waits for a CPU.
            if !watch.stuck.load(Ordering::Relaxed) {
                watch.stuck.store(true, Ordering::Release);
                self.shared.wake_idle_worker();
            }
            let judge = seen
                .measure
                .is_none_or(|measure| measure.long_enough(now, config.stuck_after / 4));
            if reportable
                && judge
                && goroutine_to_blame(
                    &mut seen.measure,
                    (self.thread_times_of)(tid),
                    now,
                    config.stuck_after,
                )
            {
                self.reported.insert(running);
                // SAFETY: `running_site` holds null or a `&'static Location`.
                let site = unsafe { site.as_ref() };
                reports.push(report_long_run(&self.shared, index, running, site, ran));
            }
        }
        self.look_for_stall(now);
        reports
    }

    /// Prints the counters every `schedtrace` period, if asked to.
    fn trace(&mut self, now: Instant) {
        use std::io::Write;
        let Some(every) = self.shared.monitor.schedtrace else {
            return;
        };
        if now.duration_since(self.traced_at) < every {
            return;
        }
        self.traced_at = now;
        let since_start = now.saturating_duration_since(self.shared.started);
        let line = format!(
            "SCHED {}ms: {}",
            since_start.as_millis(),
            self.shared.metrics()
        );
        let _ = writeln!(std::io::stderr(), "{line}");
    }

    /// The stall report: goroutines wait for stacks while, for `STALL_CHECK`, no goroutine
    /// finished, every worker slept, no timer was pending, and no thread outside the runtime
    /// existed that could release a stack. Only a report follows: a thread the runtime cannot
    /// see may still make progress.
    fn look_for_stall(&mut self, now: Instant) {
        let shared = &*self.shared;
        let progress = shared.progress();
        let stalled = !shared.waiting_for_stack.is_empty()
            && shared.pending_timers.load(Ordering::SeqCst) == 0
            && shared.idle.sleepers() == shared.workers.len()
            && process_threads().is_some_and(|threads| threads <= shared.own_threads());
        if !stalled {
            self.stall = None;
            return;
        }
        match self.stall {
            Some((since, seen)) if seen == progress => {
                if now.duration_since(since) >= STALL_CHECK
                    && !shared.stall_reported.swap(true, Ordering::Relaxed)
                {
                    report_stack_exhaustion(&shared.stacks);
                }
            }
            _ => self.stall = Some((now, progress)),
        }
    }
}

/// Prints, and returns, the report of a goroutine that ran `ran` without a switch.
#[cold]
fn report_long_run(
    shared: &RuntimeShared,
    worker: usize,
    id: u64,
    site: Option<&Location<'static>>,
    ran: Duration,
) -> String {
    use std::io::Write;
    let name = shared
        .name_of(id)
        .map(|name| format!(" \"{name}\""))
        .unwrap_or_default();
    let site = site
        .map(|site| format!(" spawned at {site}"))
        .unwrap_or_default();
    let report = format!(
        "gsched: goroutine {id}{name}{site} has run {} ms on worker {worker} without a switch \
         (a blocking call, or a loop that never calls into gsched or gsync); goroutines that \
         have not started there go to other workers, and goroutines started there wait. Wrap \
         blocking calls in gsched::blocking, and call gsched::checkpoint() in long loops.",
        ran.as_millis()
    );
    // A closed stderr must not stop the monitor.
    let _ = writeln!(std::io::stderr(), "{report}");
    report
}

#[cfg(test)]
mod tests;
mod thread_times;
