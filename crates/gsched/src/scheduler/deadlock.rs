//! The deadlock report, Go's `all goroutines are asleep - deadlock!`, checked by the monitor.
//!
//! It fires only when nothing could ever wake a goroutine of the runtime again, and a false
//! report is worse than none, so every condition errs towards silence. For `DEADLOCK_CHECK`:
//!
//! - every worker sleeps, and none picked a goroutine (their switch counts stand still);
//! - no goroutine is queued (global queue, stack wait) and no timer is armed, here or in a
//!   library that registers its pending wake-ups (`PendingWake`: gsync's `after` and `tick`);
//! - no blocking call is in flight;
//! - and, counted then, no thread exists in the process besides the runtime's own (workers,
//!   monitor, blocking threads), threads blocked in its `block_on` on a main goroutine that is
//!   still parked, and helper threads that registered (`HelperThread`): any other thread might
//!   still send.
//!
//! Then the workers list their goroutines (a dump), and if each one is parked, it is a
//! deadlock. A quiet spell is looked at once: the next look waits for a goroutine to run.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::RuntimeShared;
use super::dump::any_goroutines;
use super::stacks::process_threads;
use crate::diagnostics::{Dump, GoroutineState, helper_threads, pending_wakes};

/// How long the runtime must stay quiet before the report.
pub(crate) const DEADLOCK_CHECK: Duration = Duration::from_millis(100);

/// Go's words.
pub(crate) const DEADLOCK_MESSAGE: &str = "all goroutines are asleep - deadlock!";

/// How long the deadlock check waits for the (sleeping) workers to list their goroutines.
const DEADLOCK_DUMP_WAIT: Duration = Duration::from_secs(1);

/// What a runtime does when it finds itself deadlocked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DeadlockAction {
    /// Nothing: the check is off.
    Off,
    /// Prints the report, and carries on.
    Report,
    /// Prints the report; `block_on` shuts the runtime down and panics (`gsched::run`).
    Panic,
    /// Prints the report and exits the process with status 2, as Go does.
    Exit,
}

/// The monitor's memory of the current quiet spell.
#[derive(Default)]
pub(crate) struct DeadlockWatch {
    /// When the runtime was first seen quiet, and the workers' switch count then.
    suspected: Option<(Instant, u64)>,
    /// The switch count of a quiet spell already looked at.
    settled: Option<u64>,
}

impl DeadlockWatch {
    /// One look at time `now`; the report (ending in a newline), once, when the runtime is
    /// deadlocked.
    pub(crate) fn look(&mut self, shared: &Arc<RuntimeShared>, now: Instant) -> Option<String> {
        if shared.config.deadlock == DeadlockAction::Off {
            return None;
        }
        let switches = shared.switches();
        if !is_quiet(shared) || self.settled == Some(switches) {
            self.suspected = None;
            return None;
        }
        match self.suspected {
            Some((since, seen)) if seen == switches => {
                if now.duration_since(since) < DEADLOCK_CHECK {
                    return None;
                }
            }
            _ => {
                self.suspected = Some((now, switches));
                return None;
            }
        }
        // Threads are counted at most once per `DEADLOCK_CHECK` while the spell lasts.
        self.suspected = Some((now, switches));
        let outside_threads = process_threads()
            .is_none_or(|threads| threads > shared.own_threads() + helper_threads());
        if outside_threads {
            return None;
        }
        let dump = shared.dump(DEADLOCK_DUMP_WAIT);
        // Listing wakes the workers; it does not make them pick a goroutine.
        self.settled = Some(switches);
        // A thread in `block_on` whose main goroutine finished is about to return and may
        // still send: it counts as outside.
        let mains_parked = shared.block_on_mains().iter().all(|&main| {
            dump.get(main)
                .is_some_and(|goroutine| matches!(goroutine.state, GoroutineState::Parked(_)))
        });
        if shared.switches() != switches || !mains_parked || !all_parked(&dump) {
            return None;
        }
        Some(format!("{DEADLOCK_MESSAGE}\n\n{dump}"))
    }
}

/// Nothing runs, nothing is queued, nothing is armed, nothing blocks.
fn is_quiet(shared: &RuntimeShared) -> bool {
    shared.idle.sleepers() == shared.workers.len()
        && any_goroutines()
        && shared.pending_timers.load(Ordering::SeqCst) == 0
        && pending_wakes() == 0
        && shared.blocking.in_flight() == 0
        && shared.waiting_for_stack.is_empty()
        && shared.injector.is_empty()
}

/// A complete dump with goroutines, each of them parked.
fn all_parked(dump: &Dump) -> bool {
    dump.is_complete()
        && !dump.goroutines().is_empty()
        && dump
            .goroutines()
            .iter()
            .all(|goroutine| matches!(goroutine.state, GoroutineState::Parked(_)))
}

/// Prints the report and does what the runtime was built to do.
#[cold]
pub(crate) fn act_on_deadlock(shared: &RuntimeShared, report: &str) {
    let mut stderr = std::io::stderr().lock();
    if shared.config.deadlock == DeadlockAction::Exit {
        let _ = write!(stderr, "fatal error: {report}");
        drop(stderr);
        // Go's status for a deadlock; the user asked for it with `exit_on_deadlock(true)`.
        std::process::exit(2);
    }
    let _ = write!(stderr, "gsched: {report}");
    drop(stderr);
    if shared.config.deadlock == DeadlockAction::Panic {
        shared.declare_deadlock();
    }
}
