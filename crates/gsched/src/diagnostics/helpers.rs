//! What the deadlock report must know about threads it does not own: a library's own thread
//! that wakes goroutines (a timer thread, an I/O poller) is not an outside thread that might
//! still send, as long as it says so, and the work it holds pending may still wake one.

use std::sync::atomic::{AtomicUsize, Ordering};

static HELPER_THREADS: AtomicUsize = AtomicUsize::new(0);
static PENDING_WAKES: AtomicUsize = AtomicUsize::new(0);

/// Marks the calling thread, while the value lives, as a helper of the runtimes: a thread that
/// wakes goroutines only for work it registers as [`PendingWake`]s.
///
/// The deadlock report stays silent while any thread exists outside the runtime, since such a
/// thread might still wake a goroutine. A library that runs a thread of its own to wake
/// goroutines (gsync's timer thread for `after` and `tick`, an I/O poller) registers it here,
/// and registers each pending wake-up, so that its existence alone does not hide a deadlock.
/// Register only a thread of your own: a runtime's workers, blocking threads and threads in
/// `block_on` are counted already, and counting one twice would hide an outside thread.
///
/// ```
/// let timer_thread = std::thread::spawn(|| {
///     let _helper = gsched::HelperThread::register();
///     // ... wait for deadlines, each held as a `gsched::PendingWake` ...
/// });
/// timer_thread.join().unwrap();
/// ```
#[derive(Debug)]
#[must_use = "the thread counts as a helper only while the value lives"]
pub struct HelperThread(());

impl HelperThread {
    /// Counts the calling thread as a helper until the value is dropped.
    pub fn register() -> HelperThread {
        HELPER_THREADS.fetch_add(1, Ordering::SeqCst);
        HelperThread(())
    }
}

impl Drop for HelperThread {
    fn drop(&mut self) {
        HELPER_THREADS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A wake-up that some goroutine may still get from outside the runtimes (an armed timer, a
/// registered socket): while any exists, no deadlock is reported.
///
/// ```
/// let armed = gsched::PendingWake::new();
/// // ... the timer fires and wakes its goroutine ...
/// drop(armed);
/// ```
#[derive(Debug)]
#[must_use = "the wake-up counts as pending only while the value lives"]
pub struct PendingWake(());

impl PendingWake {
    /// Counts one pending wake-up until the value is dropped.
    pub fn new() -> PendingWake {
        PENDING_WAKES.fetch_add(1, Ordering::SeqCst);
        PendingWake(())
    }
}

impl Default for PendingWake {
    fn default() -> Self {
        PendingWake::new()
    }
}

impl Drop for PendingWake {
    fn drop(&mut self) {
        PENDING_WAKES.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Threads registered as helpers now.
pub(crate) fn helper_threads() -> usize {
    HELPER_THREADS.load(Ordering::SeqCst)
}

/// Wake-ups pending outside the runtimes now.
pub(crate) fn pending_wakes() -> usize {
    PENDING_WAKES.load(Ordering::SeqCst)
}
