//! The hook an I/O poller plugs into: what a worker does when it has nothing to run.
//!
//! Without a driver, an idle worker parks its thread until new work or its next timer. A
//! library that makes goroutines wait on something outside the runtime (gnet waits on sockets
//! through epoll) installs a [`Driver`] in the runtime of the goroutine that first needs it.
//! From then on an idle worker waits in [`Driver::wait`] instead, with the same deadline, and
//! whoever gives it work ends that wait with [`Driver::wake`]. A busy worker calls
//! [`Driver::poll`] now and then (every 61 scheduling ticks, as often as it looks at its
//! timers), and so does the runtime's monitor for a worker that has run one goroutine for a
//! while, so that what a driver finds ready never waits for a busy worker to become idle. A
//! worker that runs out of goroutines polls too while it spins before its wait, as Go's
//! scheduler polls the network before it looks further.
//!
//! Drivers are per worker by design: a goroutine never leaves the worker it started on, so a
//! driver that keeps one poller per worker and registers a goroutine's sockets with its own
//! worker's poller wakes it where it runs, without crossing threads.
//!
//! gsched itself never installs a driver and depends on none: without one nothing changes.
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::time::Duration;
//!
//! use gsched::driver::{self, Driver};
//!
//! /// Parks the worker's thread, and counts the waits.
//! struct Counting {
//!     threads: Vec<std::sync::OnceLock<std::thread::Thread>>,
//!     waits: AtomicUsize,
//! }
//!
//! impl Driver for Counting {
//!     fn wait(&self, worker: usize, timeout: Option<Duration>) {
//!         self.threads[worker].get_or_init(std::thread::current);
//!         self.waits.fetch_add(1, Ordering::Relaxed);
//!         match timeout {
//!             Some(timeout) => std::thread::park_timeout(timeout),
//!             None => std::thread::park(),
//!         }
//!     }
//!     fn poll(&self, _worker: usize) {}
//!     fn wake(&self, worker: usize) {
//!         if let Some(thread) = self.threads[worker].get() {
//!             thread.unpark();
//!         }
//!     }
//! }
//!
//! gsched::run(|| {
//!     let counting = driver::install(|workers| {
//!         Ok::<_, std::convert::Infallible>(Counting {
//!             threads: (0..workers).map(|_| std::sync::OnceLock::new()).collect(),
//!             waits: AtomicUsize::new(0),
//!         })
//!     })
//!     .expect("called from a goroutine")
//!     .unwrap();
//!     // The worker waits in the driver while this goroutine sleeps.
//!     let deadline = std::time::Instant::now() + Duration::from_secs(20);
//!     while counting.waits.load(Ordering::Relaxed) == 0 {
//!         assert!(std::time::Instant::now() < deadline, "the worker never waited");
//!         gsched::sleep(Duration::from_millis(1));
//!     }
//! });
//! ```

use std::sync::Arc;
use std::time::Duration;

use crate::scheduler::WorkerLocal;

/// What an idle worker waits in, in place of parking its thread (see the [module](self) docs).
///
/// Every method may be called from any thread for any worker index below the worker count
/// given to [`install`]'s `make`; `wait` is called only by worker `worker` itself.
pub trait Driver: Send + Sync + 'static {
    /// Worker `worker` has nothing to run: handle what becomes ready (typically by waking the
    /// goroutines that wait on it), and return when something was handled, when `timeout` has
    /// passed (`None`: no timeout), or when [`Driver::wake`] is called for this worker. A
    /// `wake` that comes while the worker is not waiting must make its next `wait` return at
    /// once, or a wake-up would be lost. Returning early is allowed: the worker looks for work
    /// and waits again.
    fn wait(&self, worker: usize, timeout: Option<Duration>);

    /// Handle what is ready for worker `worker` now, without waiting; it should be cheap, since
    /// an idle worker calls it every few microseconds while it spins. Called by the worker
    /// itself while it is busy or spinning, and by the runtime's monitor thread; a driver busy in that
    /// worker's `wait` or `poll` may return at once.
    fn poll(&self, worker: usize);

    /// Ends worker `worker`'s `wait`, or makes its next one return at once. Called from any
    /// thread, a goroutine's included, in the middle of the runtime's scheduling (a spawn, a
    /// wake-up): it must not block, park or call back into the runtime.
    fn wake(&self, worker: usize);

    /// The runtime has shut down: its workers have exited and will never wait or poll again.
    /// Whatever still waits on the driver's behalf (a socket registered with it, used from
    /// elsewhere) should learn that now rather than wait for good. Called once.
    fn shutdown(&self) {}
}

/// The driver of the caller's runtime, installing the one `make` builds (given the number of
/// workers) if the runtime has none yet; `make`'s error comes back as it is, and a later call
/// tries again. `None` when the caller is not on one of a runtime's workers (a plain thread),
/// or when the runtime's driver is of another type.
///
/// A runtime has one driver for its whole life; it is dropped with the runtime.
pub fn install<D: Driver, E>(
    make: impl FnOnce(usize) -> Result<D, E>,
) -> Option<Result<Arc<D>, E>> {
    let shared = WorkerLocal::with_current(|local| Arc::clone(&local.shared))?;
    match shared.install_driver(make) {
        Ok(installed) => installed.downcast().map(Ok),
        Err(err) => Some(Err(err)),
    }
}

/// The index of the worker the caller runs on (`0..workers`), or `None` on a plain thread.
/// A goroutine's worker never changes once it has started (migratable goroutines aside).
pub fn current_worker() -> Option<usize> {
    WorkerLocal::with_current(|local| local.index)
}
