//! Helpers shared by the integration tests.

use std::sync::mpsc;
use std::time::Duration;

/// Runs `scenario` on a thread and fails if it does not finish in time: a hang is a failure,
/// bounded inside the test rather than left to the harness.
pub(crate) fn within<T: Send + 'static>(
    limit: Duration,
    scenario: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (done, outcome) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(
            scenario,
        )));
    });
    match outcome.recv_timeout(limit) {
        Ok(Ok(value)) => value,
        Ok(Err(payload)) => std::panic::resume_unwind(payload),
        Err(_) => panic!("the scenario hung for {limit:?}"),
    }
}
