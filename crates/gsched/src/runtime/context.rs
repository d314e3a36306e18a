//! The runtime a spawn goes to: the calling goroutine's, or the process-wide default one.

use std::sync::{Arc, Mutex, OnceLock};

use super::Runtime;
use super::spawn::SpawnError;
use crate::scheduler::{RuntimeShared, WorkerLocal};

/// Runs `f` with the runtime a spawn from this thread goes to: the worker's own, or the
/// process-wide default. Borrowed, not cloned: no read-modify-write on the runtime's count
/// for the borrow (the task's own hold comes from the worker's batch, see `runtime_ref.rs`).
/// `f` must not run the spawner's code, nor anything else that could park the goroutine
/// inside the worker's borrow: an installed driver's `wake` runs there, and does not block
/// (the contract of `Driver::wake`).
pub(crate) fn with_spawn_target<R>(
    f: impl FnOnce(&Arc<RuntimeShared>) -> R,
) -> Result<R, SpawnError> {
    let mut f = Some(f);
    let on_worker = WorkerLocal::with_current(|local| {
        let f = f.take().expect("called once");
        f(&local.shared)
    });
    match on_worker {
        Some(result) => Ok(result),
        None => {
            let f = f.take().expect("not called on a worker");
            default_runtime().map(|runtime| f(&runtime.shared))
        }
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
