//! The runtime's counters, as [`Runtime::metrics`](crate::Runtime::metrics) returns them and
//! schedtrace prints them.

use std::fmt;

/// A snapshot of one runtime's scheduler counters; cheap to take (a few loads per worker, no
/// lock on the workers' paths), so it can be polled for export.
///
/// Counters count since the runtime started. Each is read on its own, so a snapshot taken
/// while goroutines run may be off by the events of the moment.
///
/// ```
/// let rt = gsched::Runtime::builder().workers(2).build().unwrap();
/// rt.block_on(|| gsched::go(|| gsched::sleep(std::time::Duration::from_millis(1))).join());
/// let metrics = rt.metrics();
/// assert_eq!(metrics.workers.len(), 2);
/// assert!(metrics.spawned >= 2);
/// assert!(metrics.parks.iter().any(|(reason, count)| *reason == "sleep" && *count >= 1));
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Metrics {
    /// Each worker, by index.
    pub workers: Vec<WorkerMetrics>,
    /// Goroutines spawned and not yet finished.
    pub goroutines: u64,
    /// Goroutines spawned.
    pub spawned: u64,
    /// Goroutines finished (or that could not start).
    pub finished: u64,
    /// Times a worker took goroutines that had not started from another worker.
    pub steals: u64,
    /// Goroutines woken by a goroutine of their own worker (they run next there).
    pub local_wakes: u64,
    /// Goroutines woken from another worker or from outside the runtime.
    pub remote_wakes: u64,
    /// Parks by wait reason (see [`GoroutineState::Parked`](crate::GoroutineState::Parked)),
    /// most frequent first.
    pub parks: Vec<(&'static str, u64)>,
    /// Goroutines in the runtime's global queue.
    pub global_queue: usize,
    /// Timed parks and sleeps armed and not yet fired or cancelled.
    pub timers: usize,
    /// Calls running in, or waiting for, the blocking pool ([`blocking`](crate::blocking)).
    pub blocking_calls: usize,
    /// Threads of the blocking pool.
    pub blocking_threads: usize,
}

/// One worker in [`Metrics`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WorkerMetrics {
    /// What it does now.
    pub state: WorkerState,
    /// Goroutines waiting in its shared queues (not counting the one woken to run next, which
    /// only the worker itself sees).
    pub runnable: usize,
    /// Goroutines it picked to run.
    pub switches: u64,
}

/// What a worker does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkerState {
    /// It runs the goroutine with this id.
    Running(u64),
    /// It is between goroutines, or looking for work.
    Spinning,
    /// It sleeps until work comes.
    Idle,
}

impl fmt::Display for Metrics {
    /// One line, as `GODEBUG=schedtrace` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = |state: fn(&WorkerState) -> bool| {
            self.workers
                .iter()
                .filter(|worker| state(&worker.state))
                .count()
        };
        write!(
            f,
            "workers={} idle={} spinning={} goroutines={} runqueue={} [",
            self.workers.len(),
            count(|state| *state == WorkerState::Idle),
            count(|state| *state == WorkerState::Spinning),
            self.goroutines,
            self.global_queue,
        )?;
        for (index, worker) in self.workers.iter().enumerate() {
            let separator = if index == 0 { "" } else { " " };
            write!(f, "{separator}{}", worker.runnable)?;
        }
        write!(
            f,
            "] spawned={} steals={} wakes={}/{} timers={} blocking={} parks=[",
            self.spawned,
            self.steals,
            self.local_wakes,
            self.remote_wakes,
            self.timers,
            self.blocking_calls,
        )?;
        for (index, (reason, count)) in self.parks.iter().enumerate() {
            let separator = if index == 0 { "" } else { ", " };
            write!(f, "{separator}{reason}: {count}")?;
        }
        f.write_str("]")
    }
}
