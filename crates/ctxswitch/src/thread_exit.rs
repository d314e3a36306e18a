//! Detects that the current thread is destroying its thread-locals, so that a coroutine dropped
//! from a thread-local's destructor is leaked rather than unwound (see the docs of [`Coroutine`](crate::Coroutine)).

use std::cell::Cell;

/// Set when the sentinel is destroyed; a const thread-local without a destructor, so it
/// stays readable for as long as any thread-local is.
struct Sentinel;

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = EXITING.try_with(|exiting| exiting.set(true));
    }
}

thread_local! {
    static EXITING: Cell<bool> = const { Cell::new(false) };
    static SENTINEL: Sentinel = const { Sentinel };
}

/// Registers the sentinel's destructor, once per thread. Thread-locals are destroyed in the
/// reverse order of their registration, so arming it after a coroutine's first slice puts
/// it after every thread-local that slice used first: it is destroyed before them.
#[inline]
pub(crate) fn arm() {
    let _ = SENTINEL.try_with(|_| ());
}

/// Whether this thread's thread-locals are being destroyed.
pub(crate) fn in_progress() -> bool {
    EXITING.try_with(Cell::get).unwrap_or(true) || SENTINEL.try_with(|_| ()).is_err()
}
