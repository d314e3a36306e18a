//! What the overflow handler's report looks like from the parent of a child that overflowed.

use std::os::unix::process::ExitStatusExt;
use std::process::Output;

/// The child aborted (the handler's way out) and said `expected` on stderr.
pub(crate) fn assert_aborted_with(output: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGABRT),
        "child ended with {:?}; stderr:\n{stderr}",
        output.status
    );
    assert!(
        stderr.contains(expected),
        "stderr lacks {expected:?}:\n{stderr}"
    );
}
