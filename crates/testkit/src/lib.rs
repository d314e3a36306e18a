//! The test helpers of this workspace, shared by the integration tests of its crates. Not a
//! product crate: it is never published, and only `[dev-dependencies]` name it.
//!
//! Two promises every test here keeps: a hang is a failure the test reports itself, within a
//! limit it states, rather than a run the harness never finishes; and a crash (an abort, a
//! signal, a process-wide setting) happens in a child process, never in the test binary that
//! checks it.
//!
//! - [`within`]: runs a scenario on a thread and fails if it does not finish in time.
//! - [`ChildTest`]: lets a test binary re-run one of its own tests as a child process, with a
//!   marker variable telling the child which test it is, and bounds that run by a timeout.
//!
//! std only, so that any crate of the workspace, the lowest included, can use it.

mod child;
mod within;

pub use child::{ChildRun, ChildTest, DEFAULT_CHILD_LIMIT};
pub use within::within;
