//! The runtime a spawn goes to: the calling goroutine's, or the process-wide default one.

use std::sync::{Arc, Mutex, OnceLock};

use super::Runtime;
use super::spawn::SpawnError;
use crate::scheduler::{RuntimeShared, WorkerLocal};

/// The runtime a spawn from this thread goes to: the worker's own, or the process-wide default.
pub(crate) fn spawn_target() -> Result<Arc<RuntimeShared>, SpawnError> {
    match WorkerLocal::with_current(|local| Arc::clone(&local.shared)) {
        Some(runtime) => Ok(runtime),
        None => default_runtime().map(|runtime| Arc::clone(&runtime.shared)),
    }
}

/// The process-wide runtime that `go` uses outside any runtime. A failure to start it is not
/// remembered: the next spawn tries again (a thread limit may have been transient).
fn default_runtime() -> Result<&'static Runtime, SpawnError> {
    static DEFAULT: OnceLock<Runtime> = OnceLock::new();
    static STARTING: Mutex<()> = Mutex::new(());
    if let Some(runtime) = DEFAULT.get() {
        return Ok(runtime);
    }
    let _starting = STARTING.lock().unwrap_or_else(|poison| poison.into_inner());
    if let Some(runtime) = DEFAULT.get() {
        return Ok(runtime);
    }
    let runtime = Runtime::builder()
        .thread_name("gsched-default")
        .build()
        .map_err(|err| SpawnError::DefaultRuntime(err.to_string()))?;
    Ok(DEFAULT.get_or_init(|| runtime))
}
