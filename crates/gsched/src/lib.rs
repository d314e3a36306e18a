#![cfg_attr(goroutines_loom, allow(dead_code))]
#![doc = include_str!("../README.md")]

// Under `--cfg goroutines_loom` only the modeled protocols are built, on loom's types.
#[cfg(all(test, goroutines_loom))]
mod loom_models;
mod result_slot;
mod scheduler;
mod shim;
mod slab;
mod wake_flag;

#[cfg(not(goroutines_loom))]
mod block_on_future;
#[cfg(not(goroutines_loom))]
mod blocking;
#[cfg(not(goroutines_loom))]
pub mod diagnostics;
#[cfg(not(goroutines_loom))]
pub mod driver;
#[cfg(not(goroutines_loom))]
mod join;
#[cfg(not(goroutines_loom))]
mod park;
#[cfg(not(goroutines_loom))]
mod procs;
#[cfg(not(goroutines_loom))]
mod runtime;
#[cfg(not(goroutines_loom))]
mod scope;

#[cfg(not(goroutines_loom))]
pub use api::*;

#[cfg(not(goroutines_loom))]
mod api {
    pub use crate::block_on_future::block_on_future;
    pub use crate::blocking::{blocking, checkpoint};
    pub use crate::diagnostics::{
        DEBUG_VAR, Dump, GoroutineInfo, GoroutineState, HelperThread, Metrics, PendingWake,
        WorkerMetrics, WorkerState, dump,
    };
    pub use crate::join::{JoinHandle, is_shutdown_unwind};
    pub use crate::park::{
        Unparker, current_unparker, current_unparker_unchecked, in_goroutine, park, park_timeout,
        park_until, park_with_reason, park_with_reason_until, sleep, sleep_until, yield_now,
    };
    pub use crate::procs::{PROCS_VAR, ProcsError, available_cpus};
    pub use crate::runtime::spawn::{Builder, MAX_STACK_SIZE, MIN_STACK_SIZE, SpawnError, go};
    pub use crate::runtime::{BuildError, Runtime, RuntimeBuilder, ShutdownReport, run};
    pub use crate::scheduler::shared::num_goroutines;
    pub use crate::scope::{Scope, ScopedJoinHandle, scope};

    /// The calling goroutine: its id and name.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Goroutine {
        id: u64,
        name: Option<std::sync::Arc<str>>,
    }

    impl Goroutine {
        /// The goroutine's id, unique in the process.
        pub fn id(&self) -> u64 {
            self.id
        }

        /// The goroutine's name, if it was given one.
        pub fn name(&self) -> Option<&str> {
            self.name.as_deref()
        }
    }

    /// The goroutine the caller runs in, or `None` on a plain thread.
    pub fn current() -> Option<Goroutine> {
        crate::scheduler::WorkerLocal::with_current(|local| {
            local.current_task().map(|task| Goroutine {
                id: task.id,
                name: task.name.clone(),
            })
        })
        .flatten()
    }
}
