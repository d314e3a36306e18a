//! Building a runtime: its settings, their checks, and starting its threads.

use std::fmt;
use std::sync::{Arc, Mutex, Once};
use std::thread;
use std::time::Duration;

use gstack::{DenseStacks, StackError, StackPool};

use super::Runtime;
use crate::diagnostics::debug_settings;
use crate::procs::{ProcsError, default_workers};
use crate::runtime::spawn::{MAX_STACK_SIZE, MIN_STACK_SIZE};
use crate::scheduler::blocking_pool::{BlockingPool, DEFAULT_MAX_BLOCKING_THREADS};
use crate::scheduler::deadlock::DeadlockAction;
use crate::scheduler::monitor::{
    DEFAULT_PREEMPT_AFTER, DEFAULT_STUCK_AFTER, Monitor, MonitorConfig,
};
use crate::scheduler::shared::Config;
use crate::scheduler::stacks::StackPolicy;
use crate::scheduler::{RuntimeShared, worker_main};
use crate::shim::Clock;

/// Why a runtime could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// `GSCHED_PROCS` is set to something that is not a worker count.
    Procs(ProcsError),
    /// A worker count of zero was asked for.
    NoWorkers,
    /// `stack_size` is outside the range the runtime can give.
    StackSize {
        /// The size asked for, in bytes.
        requested: usize,
        /// The smallest size accepted ([`MIN_STACK_SIZE`](crate::MIN_STACK_SIZE)).
        min: usize,
        /// The largest size accepted: [`MAX_STACK_SIZE`](crate::MAX_STACK_SIZE), or a dense
        /// runtime's slot.
        max: usize,
    },
    /// The dense stack region could not be mapped.
    Stacks(StackError),
    /// A worker thread, or the monitor thread, could not be started.
    Thread(std::io::Error),
    /// A `max_blocking_threads` of zero was asked for.
    NoBlockingThreads,
    /// `preempt_after` or `stuck_after` is zero.
    ZeroThreshold(&'static str),
    /// The `SIGQUIT` handler asked for by `dump_on_sigquit` could not be installed.
    Sigquit(std::io::Error),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Procs(err) => err.fmt(f),
            BuildError::NoWorkers => f.write_str("a runtime needs at least one worker"),
            BuildError::StackSize {
                requested,
                min,
                max,
            } => write!(
                f,
                "stack_size: {requested} bytes is outside the range this runtime can give \
                 ({min}..={max} bytes)"
            ),
            BuildError::Stacks(err) => write!(f, "cannot reserve goroutine stacks: {err}"),
            BuildError::Thread(err) => write!(f, "cannot start a runtime thread: {err}"),
            BuildError::NoBlockingThreads => {
                f.write_str("max_blocking_threads: a runtime needs at least one blocking thread")
            }
            BuildError::ZeroThreshold(setting) => {
                write!(
                    f,
                    "{setting}: the monitor's thresholds must be longer than zero"
                )
            }
            BuildError::Sigquit(err) => {
                write!(
                    f,
                    "dump_on_sigquit: cannot install the SIGQUIT handler: {err}"
                )
            }
        }
    }
}

impl std::error::Error for BuildError {}

/// Configures a [`Runtime`].
#[derive(Debug)]
pub struct RuntimeBuilder {
    workers: Option<usize>,
    stack_size: Option<usize>,
    dense: Option<(usize, usize)>,
    thread_name: String,
    leak_report: bool,
    stack_cache: usize,
    all_migratable: bool,
    monitor: MonitorConfig,
    max_blocking_threads: usize,
    deadlock: DeadlockAction,
    dump_on_sigquit: Option<bool>,
    schedtrace: Option<Duration>,
    park_backtraces: bool,
}

impl RuntimeBuilder {
    /// The defaults (see [`Runtime::builder`]).
    pub(super) fn new() -> Self {
        RuntimeBuilder {
            workers: None,
            stack_size: None,
            dense: None,
            thread_name: "gsched-worker".to_string(),
            leak_report: false,
            stack_cache: gstack::DEFAULT_GLOBAL_CAPACITY,
            all_migratable: false,
            monitor: MonitorConfig {
                preempt_after: DEFAULT_PREEMPT_AFTER,
                stuck_after: DEFAULT_STUCK_AFTER,
                report_long_runs: true,
                schedtrace: None,
                clock: Clock::Real,
            },
            max_blocking_threads: DEFAULT_MAX_BLOCKING_THREADS,
            deadlock: DeadlockAction::Report,
            dump_on_sigquit: None,
            schedtrace: None,
            park_backtraces: false,
        }
    }

    /// `gsched::run`'s deadlock behaviour: shut down and panic in `block_on`'s caller.
    pub(super) fn panic_on_deadlock(mut self) -> Self {
        if self.deadlock == DeadlockAction::Report {
            self.deadlock = DeadlockAction::Panic;
        }
        self
    }

    /// The number of worker threads (overrides `GSCHED_PROCS`).
    pub fn workers(mut self, count: usize) -> Self {
        self.workers = Some(count);
        self
    }

    /// The default stack size of goroutines, in bytes: at least
    /// [`MIN_STACK_SIZE`](crate::MIN_STACK_SIZE), at most
    /// [`MAX_STACK_SIZE`](crate::MAX_STACK_SIZE) (or a dense runtime's slot), checked by
    /// [`build`](Self::build) and rounded up to whole pages.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Runs goroutines on dense stacks: `count` stacks of `slot_size` bytes carved from one
    /// mapping, for more goroutines than `vm.max_map_count` allows guarded stacks.
    ///
    /// # Safety
    ///
    /// The contract of [`gstack::DenseStacks::new`]: no goroutine of this runtime may need more
    /// stack than `slot_size - 256` bytes; an overflow corrupts a neighbouring goroutine's
    /// stack and is caught, after the fact, only by a canary checked when a goroutine switches
    /// out or ends.
    pub unsafe fn dense_stacks(mut self, slot_size: usize, count: usize) -> Self {
        self.dense = Some((slot_size, count));
        self
    }

    /// The name of the worker threads.
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.thread_name = name.into();
        self
    }

    /// Prints a line per unfinished goroutine at shutdown (id, name, spawn location, what it
    /// was parked on).
    pub fn leak_report(mut self, enabled: bool) -> Self {
        self.leak_report = enabled;
        self
    }

    /// Stacks of finished goroutines the runtime keeps warm for the next ones, beyond each
    /// worker's small cache (256 by default): each keeps its top 16 KiB committed. Stacks
    /// returned past it give all their pages back to the kernel, so memory comes back after a
    /// burst; 0 keeps none.
    pub fn stack_cache(mut self, stacks: usize) -> Self {
        self.stack_cache = stacks;
        self
    }

    /// Makes every goroutine of this runtime migratable, as if each were spawned with
    /// [`Builder::migratable`](crate::Builder::migratable): a goroutine may resume on any worker after a park or a yield,
    /// and a woken one runs next on its waker's worker, as in Go. Talking goroutines then stay
    /// together and the load balances, at the price of the contract below.
    ///
    /// # Safety
    ///
    /// As for [`Builder::migratable`](crate::Builder::migratable), for every goroutine the runtime runs, including those
    /// that libraries spawn on it: nothing a goroutine holds across a park, a yield, a sleep, a
    /// join or any blocking gsync call is tied to its OS thread (no `Rc`, `RefCell` borrow or
    /// other `!Send` value, no reference to a thread-local, no `std::sync::MutexGuard`, no
    /// thread-affine handle).
    pub unsafe fn migratable_goroutines(mut self) -> Self {
        self.all_migratable = true;
        self
    }

    /// How long a goroutine may run before its time slice ends (10 ms, Go's figure): it then
    /// yields at its next [`checkpoint`](crate::checkpoint), which every gsync operation that
    /// can complete without blocking passes, and woken goroutines stop inheriting the slice, so
    /// that goroutines waiting in the queues get the worker. Preemption is cooperative only: a
    /// goroutine that never passes a checkpoint keeps its worker (see
    /// [`stuck_after`](Self::stuck_after)).
    pub fn preempt_after(mut self, slice: Duration) -> Self {
        self.monitor.preempt_after = slice;
        self
    }

    /// How long a goroutine may run without a switch before its worker counts as stuck (20 ms):
    /// in a blocking call, or in a loop that never calls into gsched or gsync. Goroutines that
    /// have not started on that worker then go to other workers, goroutines started there wait
    /// (they never move), and the goroutine is reported once on stderr with its name, spawn
    /// site and how long it ran. [`blocking`](crate::blocking) keeps blocking calls off the
    /// workers.
    pub fn stuck_after(mut self, limit: Duration) -> Self {
        self.monitor.stuck_after = limit;
        self
    }

    /// What the runtime does when every goroutine is parked and nothing could wake one (see
    /// [`diagnostics`](crate::diagnostics)): `true` prints Go's
    /// `fatal error: all goroutines are asleep - deadlock!` and the goroutine dump, and exits
    /// the process with status 2, as Go does. By default a runtime from this builder only
    /// prints the report and carries on; [`run`](crate::run) shuts its runtime down and panics.
    pub fn exit_on_deadlock(mut self, exit: bool) -> Self {
        self.deadlock = match (exit, self.deadlock) {
            (true, _) => DeadlockAction::Exit,
            (false, DeadlockAction::Exit) => DeadlockAction::Report,
            (false, other) => other,
        };
        self
    }

    /// Whether the runtime looks for deadlocks at all (on by default; see
    /// [`exit_on_deadlock`](Self::exit_on_deadlock)).
    pub fn deadlock_report(mut self, enabled: bool) -> Self {
        self.deadlock = match (enabled, self.deadlock) {
            (false, _) => DeadlockAction::Off,
            (true, DeadlockAction::Off) => DeadlockAction::Report,
            (true, other) => other,
        };
        self
    }

    /// Prints the goroutine dump of this runtime to stderr when the process gets `SIGQUIT`, and
    /// goes on (off by default, or as `GSCHED_DEBUG=sigquit=1` says). The first runtime that
    /// asks installs the handler and a thread that prints; the handler itself only writes to a
    /// pipe.
    pub fn dump_on_sigquit(mut self, enabled: bool) -> Self {
        self.dump_on_sigquit = Some(enabled);
        self
    }

    /// Prints the scheduler's counters to stderr every `period`, as
    /// `GODEBUG=schedtrace=N` does; zero turns it off (off by default, or as
    /// `GSCHED_DEBUG=schedtrace=N` says).
    pub fn schedtrace(mut self, period: Duration) -> Self {
        self.schedtrace = Some(period);
        self
    }

    /// Captures a backtrace at every park, so that the goroutine dump shows where each parked
    /// goroutine waits (off by default: a capture costs a few microseconds per park, see the
    /// crate's README). Migratable goroutines are not captured.
    pub fn park_backtraces(mut self, enabled: bool) -> Self {
        self.park_backtraces = enabled;
        self
    }

    /// Whether a goroutine that runs `stuck_after` without a switch is reported on stderr (on
    /// by default). Its worker's unstarted goroutines go elsewhere either way.
    pub fn long_run_report(mut self, enabled: bool) -> Self {
        self.monitor.report_long_runs = enabled;
        self
    }

    /// The most threads [`blocking`](crate::blocking) calls run on at once (512): calls
    /// beyond wait for a thread in order. Threads start as calls need them and exit after
    /// ten idle seconds.
    pub fn max_blocking_threads(mut self, threads: usize) -> Self {
        self.max_blocking_threads = threads;
        self
    }

    /// The clock the monitor reads, for tests that move it by hand.
    #[cfg(test)]
    pub(crate) fn clock(mut self, clock: Clock) -> Self {
        self.monitor.clock = clock;
        self
    }

    /// Starts the worker threads.
    ///
    /// # Errors
    ///
    /// [`BuildError`] for a bad `GSCHED_PROCS`, zero workers, a stack size out of range, a
    /// dense region that cannot be mapped, or a worker thread that cannot start.
    pub fn build(self) -> Result<Runtime, BuildError> {
        let workers = match self.workers {
            Some(count) => count,
            None => default_workers().map_err(BuildError::Procs)?,
        };
        if workers == 0 {
            return Err(BuildError::NoWorkers);
        }
        if self.max_blocking_threads == 0 {
            return Err(BuildError::NoBlockingThreads);
        }
        if self.monitor.preempt_after.is_zero() {
            return Err(BuildError::ZeroThreshold("preempt_after"));
        }
        if self.monitor.stuck_after.is_zero() {
            return Err(BuildError::ZeroThreshold("stuck_after"));
        }
        let stack_size_error = |requested, max| BuildError::StackSize {
            requested,
            min: MIN_STACK_SIZE,
            max,
        };
        if let Some(requested) = self.stack_size
            && !(MIN_STACK_SIZE..=MAX_STACK_SIZE).contains(&requested)
        {
            return Err(stack_size_error(requested, MAX_STACK_SIZE));
        }
        let stacks = match self.dense {
            Some((slot_size, count)) => {
                // SAFETY: the caller of the `unsafe` `dense_stacks` took on its contract.
                let stacks = unsafe { DenseStacks::new(slot_size, count) };
                let stacks = stacks.map_err(BuildError::Stacks)?;
                if !(MIN_STACK_SIZE..=MAX_STACK_SIZE).contains(&stacks.stack_size()) {
                    return Err(stack_size_error(stacks.stack_size(), MAX_STACK_SIZE));
                }
                if let Some(requested) = self.stack_size
                    && requested > stacks.stack_size()
                {
                    return Err(stack_size_error(requested, stacks.stack_size()));
                }
                StackPolicy::Dense { stacks }
            }
            None => StackPolicy::Guarded {
                default_pool: StackPool::builder(
                    self.stack_size.unwrap_or(gstack::GOROUTINE_STACK_SIZE),
                )
                .global_capacity(self.stack_cache)
                .build()
                .map_err(BuildError::Stacks)?,
            },
        };
        install_panic_hook();
        let debug = debug_settings();
        let dump_on_sigquit = self.dump_on_sigquit.unwrap_or(debug.sigquit);
        if dump_on_sigquit && let Err(err) = crate::diagnostics::signal::install() {
            return Err(BuildError::Sigquit(err));
        }
        let mut monitor = self.monitor;
        monitor.schedtrace = match self.schedtrace {
            Some(period) => Some(period).filter(|period| !period.is_zero()),
            None => debug.schedtrace,
        };
        let shared = RuntimeShared::new(
            workers,
            stacks,
            Config {
                leak_report: self.leak_report,
                all_migratable: self.all_migratable,
                deadlock: self.deadlock,
                dump_on_sigquit,
                park_backtraces: self.park_backtraces,
            },
            monitor,
            BlockingPool::new(
                self.max_blocking_threads,
                format!("{}-blocking", self.thread_name),
            ),
        );
        let runtime = Runtime {
            shared: Arc::clone(&shared),
            threads: Mutex::new(Vec::with_capacity(workers)),
        };
        for index in 0..workers {
            let worker_shared = Arc::clone(&shared);
            let thread = match thread::Builder::new()
                .name(format!("{}-{index}", self.thread_name))
                .spawn(move || worker_main(worker_shared, index))
            {
                Ok(thread) => thread,
                Err(err) => {
                    // The workers that did start shut down when `runtime` drops; the missing
                    // ones must not be waited for.
                    for absent in index..workers {
                        shared.idle.enter_shutdown(absent, true);
                    }
                    return Err(BuildError::Thread(err));
                }
            };
            runtime
                .threads
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .push(thread);
        }
        let monitor = Monitor::new(Arc::clone(&shared));
        let thread = thread::Builder::new()
            .name(format!("{}-monitor", self.thread_name))
            .spawn(move || monitor.run())
            .map_err(BuildError::Thread)?;
        let _ = shared.monitor_thread.set(thread.thread().clone());
        crate::diagnostics::registry::register(&shared);
        runtime
            .threads
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .push(thread);
        Ok(runtime)
    }
}

/// Prints panics of goroutines with the goroutine's id and name, as std does with a thread's
/// name; other panics go to the hook that was there before.
fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| match crate::current() {
            Some(goroutine) => {
                let name = goroutine
                    .name()
                    .map(|name| format!(" \"{name}\""))
                    .unwrap_or_default();
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("Box<dyn Any>");
                let location = info
                    .location()
                    .map(|l| format!(" at {l}"))
                    .unwrap_or_default();
                eprintln!(
                    "goroutine {}{name} panicked{location}:\n{message}",
                    goroutine.id()
                );
            }
            None => previous(info),
        }));
    });
}
