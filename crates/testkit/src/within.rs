use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::mpsc;
use std::time::Duration;

/// Runs `scenario` on a new thread and returns what it returns, or fails the calling test if it
/// has not finished after `limit`: a hang becomes a failure inside the test, with the limit in
/// its message, instead of a run the harness waits on for ever.
///
/// A panic in `scenario` is raised again in the caller, payload and all, so assertions inside
/// it fail the test as they would outside. After a timeout the scenario's thread is left
/// running (a thread cannot be stopped from outside); the test binary ends it when it exits.
///
/// # Panics
///
/// When `scenario` panics, or when it has not finished after `limit`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let sum = testkit::within(Duration::from_secs(10), || (1..=10).sum::<u32>());
/// assert_eq!(sum, 55);
/// ```
///
/// A scenario that never finishes fails the test once the limit has passed:
///
/// ```should_panic
/// use std::time::Duration;
///
/// testkit::within(Duration::from_millis(10), || {
///     loop {
///         std::thread::park();
///     }
/// });
/// ```
pub fn within<T: Send + 'static>(
    limit: Duration,
    scenario: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (done, outcome) = mpsc::channel();
    std::thread::spawn(move || {
        // The caller may have given up waiting: nobody to tell is not an error.
        let _ = done.send(catch_unwind(AssertUnwindSafe(scenario)));
    });
    match outcome.recv_timeout(limit) {
        Ok(Ok(value)) => value,
        Ok(Err(payload)) => resume_unwind(payload),
        Err(_) => panic!("the scenario hung for {limit:?}"),
    }
}
