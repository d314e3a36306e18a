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
//!   do so. The goroutine is reported once, with its name, spawn site and how long it ran.
//!   Goroutines already started on that worker wait: they never move.
//! - **Stalls.** When goroutines wait for stacks and nothing in the process can release one, it
//!   says so once (see `stacks::report_stack_exhaustion`).
//!
//! Preemption is cooperative only. Suspending a goroutine from a signal handler could stop it
//! inside `malloc` or inside a thread-local borrow and then run its neighbour on the same
//! thread, which pinned stacks cannot make sound.
//!
//! The monitor reads the time from a [`Clock`], which tests move by hand.

use std::collections::HashSet;
use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::RuntimeShared;
use super::stacks::{process_threads, report_stack_exhaustion};
use crate::shim::Clock;

/// The monitor's default thresholds (Go's `forcePreemptNS` is 10 ms).
pub(crate) const DEFAULT_PREEMPT_AFTER: Duration = Duration::from_millis(10);
pub(crate) const DEFAULT_STUCK_AFTER: Duration = Duration::from_millis(20);

/// How long goroutines must wait for stacks with no progress before the stall report.
const STALL_CHECK: Duration = Duration::from_secs(2);

/// The longest the monitor sleeps while every worker sleeps too.
const IDLE_PERIOD: Duration = Duration::from_millis(10);

/// Reports of goroutines that ran without a switch, at most, per runtime.
const MAX_LONG_RUN_REPORTS: usize = 16;

/// The monitor's settings, from `RuntimeBuilder`.
#[derive(Clone, Debug)]
pub(crate) struct MonitorConfig {
    pub(crate) preempt_after: Duration,
    pub(crate) stuck_after: Duration,
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
fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// What the monitor last saw of one worker.
struct Seen {
    switches: u64,
    switched_at: Instant,
    slices: u64,
    sliced_at: Instant,
}

/// The monitor's memory between two looks.
pub(crate) struct Monitor {
    shared: Arc<RuntimeShared>,
    seen: Vec<Seen>,
    /// Goroutines already reported for running without a switch.
    reported: HashSet<u64>,
    /// When goroutines were first seen waiting for stacks with no progress, and the progress.
    stall: Option<(Instant, u64)>,
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
            })
            .collect();
        Monitor {
            shared,
            seen,
            reported: HashSet::new(),
            stall: None,
        }
    }

    /// The monitor thread's loop, until shutdown.
    pub(crate) fn run(mut self) {
        let busy_period = self.shared.monitor.period();
        let mut period = busy_period;
        while !self.shared.shutdown.load(Ordering::Acquire) {
            thread::park_timeout(period);
            let now = self.shared.monitor.clock.now();
            self.look(now);
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
            if ran >= config.stuck_after && !watch.stuck.load(Ordering::Relaxed) {
                watch.stuck.store(true, Ordering::Release);
                self.shared.wake_idle_worker();
                if self.reported.len() < MAX_LONG_RUN_REPORTS && self.reported.insert(running) {
                    // SAFETY: `running_site` holds null or a `&'static Location`.
                    let site = unsafe { site.as_ref() };
                    reports.push(report_long_run(&self.shared, index, running, site, ran));
                }
            }
        }
        self.look_for_stall(now);
        reports
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
