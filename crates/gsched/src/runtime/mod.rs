//! Runtimes: running the main goroutine on one, and shutting it down (building one is
//! `builder.rs`).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::thread;

mod builder;
pub(crate) mod context;
pub(crate) mod spawn;

pub use builder::{BuildError, RuntimeBuilder};

use crate::runtime::spawn::Builder;
use crate::scheduler::deadlock::DEADLOCK_MESSAGE;
use crate::scheduler::{RuntimeShared, WorkerLocal};

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
        RuntimeBuilder::new()
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
        if crate::in_goroutine() {
            return match handle.join() {
                Ok(value) => value,
                Err(payload) => std::panic::resume_unwind(payload),
            };
        }
        let blocked = self.shared.block_on_started(handle.id());
        match handle.join_unless(|| self.shared.is_deadlocked()) {
            Some(Ok(value)) => value,
            Some(Err(payload)) => std::panic::resume_unwind(payload),
            None => {
                drop(blocked);
                self.stop();
                panic!("{DEADLOCK_MESSAGE}");
            }
        }
    }

    /// Lists every goroutine of this runtime (see [`dump`](crate::dump)).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// let rt = gsched::Runtime::builder().workers(1).build().unwrap();
    /// let sleeper = rt.spawn(|| gsched::sleep(Duration::from_secs(60)));
    /// // The sleeper parks as soon as its worker runs it.
    /// let deadline = Instant::now() + Duration::from_secs(10);
    /// while rt.dump().get(sleeper.id()).map(|entry| entry.state)
    ///     != Some(gsched::GoroutineState::Parked("sleep"))
    /// {
    ///     assert!(Instant::now() < deadline, "the sleeper never parked");
    ///     std::thread::sleep(Duration::from_millis(1));
    /// }
    /// drop(rt); // unwinds the sleeper
    /// ```
    pub fn dump(&self) -> crate::Dump {
        self.shared.dump(crate::diagnostics::DUMP_WAIT)
    }

    /// The scheduler's counters now (see [`Metrics`](crate::Metrics)).
    pub fn metrics(&self) -> crate::Metrics {
        self.shared.metrics()
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
/// re-raised. When every goroutine is parked and nothing could wake one (see
/// [`diagnostics`](crate::diagnostics)), the runtime prints Go's
/// `all goroutines are asleep - deadlock!` report with the goroutine dump, shuts down
/// (unwinding the parked goroutines), and `run` panics with that message.
#[track_caller]
pub fn run<F, T>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let runtime = match Runtime::builder().panic_on_deadlock().build() {
        Ok(runtime) => runtime,
        Err(err) => panic!("gsched: {err}"),
    };
    runtime.block_on(f)
}
