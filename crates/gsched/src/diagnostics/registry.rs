//! The runtimes of the process, for a dump asked for outside any goroutine and for `SIGQUIT`.

use std::sync::{Arc, Mutex, Weak};

use crate::scheduler::RuntimeShared;

static RUNTIMES: Mutex<Vec<Weak<RuntimeShared>>> = Mutex::new(Vec::new());

/// Adds a new runtime, and forgets the ones that are gone.
pub(crate) fn register(shared: &Arc<RuntimeShared>) {
    let mut runtimes = RUNTIMES.lock().unwrap_or_else(|poison| poison.into_inner());
    runtimes.retain(|runtime| runtime.strong_count() > 0);
    runtimes.push(Arc::downgrade(shared));
}

/// The runtimes that still run.
pub(crate) fn runtimes() -> Vec<Arc<RuntimeShared>> {
    RUNTIMES
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .iter()
        .filter_map(Weak::upgrade)
        .filter(|shared| !shared.shutdown.load(std::sync::atomic::Ordering::Acquire))
        .collect()
}
