//! Runtimes: building one, running the main goroutine on it, and shutting it down.

use std::fmt;
use std::sync::{Arc, Mutex, Once};
use std::thread;
use std::time::Duration;

use gstack::{DenseStacks, StackError, StackPool};

pub(crate) mod context;
pub(crate) mod spawn;

use crate::procs::{ProcsError, default_workers};
use crate::runtime::spawn::{Builder, MAX_STACK_SIZE, MIN_STACK_SIZE};
use crate::scheduler::blocking_pool::{BlockingPool, DEFAULT_MAX_BLOCKING_THREADS};
use crate::scheduler::monitor::{
    DEFAULT_PREEMPT_AFTER, DEFAULT_STUCK_AFTER, Monitor, MonitorConfig,
};
use crate::scheduler::shared::Config;
use crate::scheduler::stacks::StackPolicy;
use crate::scheduler::{RuntimeShared, WorkerLocal, worker_main};
use crate::shim::Clock;

/// A runtime: a set of worker threads that run goroutines.
///
/// ```
/// let runtime = gsched::Runtime::builder().workers(2).build()?;
/// let sum = runtime.block_on(|| {
///     let handles: Vec<_> = (1..=10u64).map(|i| gsched::go(move || i * i)).collect();
///     handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
/// });
/// assert_eq!(sum, 385);
/// # Ok::<(), gsched::BuildError>(())
/// ```
pub struct Runtime {
    pub(crate) shared: Arc<RuntimeShared>,
    threads: Mutex<Vec<thread::JoinHandle<()>>>,
}

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
}

/// What shutting a runtime down found.
#[derive(Debug, Default)]
pub struct ShutdownReport {
    /// One line per goroutine that had not finished: id, name, spawn location, and what it was
    /// parked on (it was unwound, so its destructors ran) or that it never ran.
    pub leaked: Vec<String>,
}

impl Runtime {
    /// A builder with the defaults: workers from `GSCHED_PROCS` or the CPUs this process may use
    /// (affinity mask and cgroup quota), guarded stacks of `gstack::GOROUTINE_STACK_SIZE`.
    pub fn builder() -> RuntimeBuilder {
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
                clock: Clock::Real,
            },
            max_blocking_threads: DEFAULT_MAX_BLOCKING_THREADS,
        }
    }

    /// Runs `f` as this runtime's main goroutine and returns its value; the calling thread
    /// blocks meanwhile. A panic in `f` is re-raised here.
    ///
    /// Called from a goroutine (of this runtime or another), `f` still runs on this runtime, and
    /// the calling goroutine parks until it returns.
    #[track_caller]
    pub fn block_on<F, T>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let handle = match Builder::new().name("main").spawn_into(
            &self.shared,
            f,
            std::panic::Location::caller(),
        ) {
            Ok(handle) => handle,
            Err(err) => panic!("gsched: {err}"),
        };
        let _blocked = self.shared.block_on_started();
        match handle.join() {
            Ok(value) => value,
            Err(payload) => std::panic::resume_unwind(payload),
        }
    }

    /// Starts a goroutine with the default configuration on this runtime, from anywhere (a
    /// plain thread, or a goroutine of this or another runtime). [`Builder::spawn_on`] names
    /// it or sizes its stack.
    ///
    /// ```
    /// let rt = gsched::Runtime::builder().workers(2).build().unwrap();
    /// assert_eq!(rt.spawn(|| 6 * 7).join().unwrap(), 42);
    /// ```
    #[track_caller]
    pub fn spawn<F, T>(&self, f: F) -> crate::JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match Builder::new().spawn_into(&self.shared, f, std::panic::Location::caller()) {
            Ok(handle) => handle,
            Err(err) => unreachable!("the default configuration fits every runtime: {err}"),
        }
    }

    /// The number of worker threads.
    pub fn workers(&self) -> usize {
        self.shared.worker_count()
    }

    /// Stops the runtime: goroutines that never ran are dropped, goroutines still parked are
    /// unwound on their workers (their destructors run; a goroutine waiting in [`scope`]
    /// unwinds only after its scoped goroutines), and the worker threads are joined. Returns
    /// what was left; with `leak_report(true)` it is also printed to stderr.
    ///
    /// A destructor that waits during the unwind is resumed when something wakes it (another
    /// goroutine's unwinding, a due timer); one that nothing wakes, or a goroutine that catches
    /// the unwind and carries on, is leaked: its stack is never freed or reused, and the report
    /// says so. Every other goroutine is still unwound.
    ///
    /// Called from one of this runtime's own goroutines, shutdown cannot wait for that
    /// goroutine's worker: it is finished on a new thread (which prints the report when
    /// `leak_report` is on), and the returned report is empty.
    ///
    /// [`scope`]: crate::scope
    pub fn shutdown(self) -> ShutdownReport {
        self.stop()
    }

    fn stop(&self) -> ShutdownReport {
        let threads = std::mem::take(
            &mut *self
                .threads
                .lock()
                .unwrap_or_else(|poison| poison.into_inner()),
        );
        if threads.is_empty() {
            return ShutdownReport::default();
        }
        let on_own_worker =
            WorkerLocal::with_current(|local| Arc::ptr_eq(&local.shared, &self.shared))
                .unwrap_or(false);
        let shared = Arc::clone(&self.shared);
        let finish = move || {
            shared.begin_shutdown();
            for thread in threads {
                let _ = thread.join();
            }
            let leaked = shared.finish_shutdown();
            if shared.config.leak_report {
                for line in &leaked {
                    eprintln!("gsched: leaked {line}");
                }
            }
            ShutdownReport { leaked }
        };
        if on_own_worker {
            // Joining our own thread would fail; a detached thread finishes the job.
            if let Err(err) = thread::Builder::new()
                .name("gsched-shutdown".to_string())
                .spawn(finish)
            {
                eprintln!("gsched: cannot start the shutdown thread ({err}); runtime leaked");
            }
            return ShutdownReport::default();
        }
        finish()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop();
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &self.workers())
            .finish()
    }
}

impl RuntimeBuilder {
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
    /// [`Builder::migratable`]: a goroutine may resume on any worker after a park or a yield,
    /// and a woken one runs next on its waker's worker, as in Go. Talking goroutines then stay
    /// together and the load balances, at the price of the contract below.
    ///
    /// # Safety
    ///
    /// As for [`Builder::migratable`], for every goroutine the runtime runs, including those
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
        let shared = RuntimeShared::new(
            workers,
            stacks,
            Config {
                leak_report: self.leak_report,
                all_migratable: self.all_migratable,
            },
            self.monitor,
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
        runtime
            .threads
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .push(thread);
        Ok(runtime)
    }
}

/// Runs `f` as the main goroutine of a new runtime with the default configuration, returns its
/// value, and shuts the runtime down.
///
/// ```
/// let answer = gsched::run(|| {
///     let wg = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
///     let handles: Vec<_> = (0..5)
///         .map(|_| {
///             let wg = wg.clone();
///             gsched::go(move || wg.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
///         })
///         .collect();
///     handles.into_iter().for_each(|h| drop(h.join()));
///     wg.load(std::sync::atomic::Ordering::Relaxed)
/// });
/// assert_eq!(answer, 5);
/// ```
///
/// # Panics
///
/// When the runtime cannot be built (a bad `GSCHED_PROCS`), with the reason; a panic in `f` is
/// re-raised.
#[track_caller]
pub fn run<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let runtime = match Runtime::builder().build() {
        Ok(runtime) => runtime,
        Err(err) => panic!("gsched: {err}"),
    };
    runtime.block_on(f)
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
