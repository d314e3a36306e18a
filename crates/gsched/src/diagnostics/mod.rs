//! Looking inside running runtimes: the goroutine dump, the runtime's counters, and how
//! libraries that wake goroutines from threads of their own tell the deadlock report about them.
//!
//! - [`dump`] (or [`Runtime::dump`](crate::Runtime::dump)) lists every goroutine with its state
//!   and what it waits on, as Go's `SIGQUIT` dump does; [`RuntimeBuilder::dump_on_sigquit`]
//!   prints it when the process gets `SIGQUIT`, and the program goes on.
//! - The deadlock report: when every goroutine of a runtime is parked and nothing could ever
//!   wake one (no worker runs, no timer is pending, no blocking call is in flight, and no thread
//!   outside the runtime exists that might still send), the runtime prints Go's
//!   `all goroutines are asleep - deadlock!` and the dump; [`run`](crate::run) then panics, and
//!   a runtime built with [`RuntimeBuilder::exit_on_deadlock`] exits with status 2.
//! - [`Runtime::metrics`](crate::Runtime::metrics) returns the scheduler's counters, and
//!   `GSCHED_DEBUG=schedtrace=1000` prints them every second, as `GODEBUG=schedtrace` does.
//!
//! [`RuntimeBuilder::dump_on_sigquit`]: crate::RuntimeBuilder::dump_on_sigquit
//! [`RuntimeBuilder::exit_on_deadlock`]: crate::RuntimeBuilder::exit_on_deadlock

mod debug_var;
mod dump;
mod helpers;
mod metrics;
pub(crate) mod registry;
pub(crate) mod signal;

pub use debug_var::DEBUG_VAR;
pub(crate) use debug_var::debug_settings;
pub(crate) use dump::DUMP_WAIT;
pub use dump::{Dump, GoroutineInfo, GoroutineState, dump};
pub use helpers::{HelperThread, PendingWake};
pub(crate) use helpers::{helper_threads, pending_wakes};
pub use metrics::{Metrics, WorkerMetrics, WorkerState};
