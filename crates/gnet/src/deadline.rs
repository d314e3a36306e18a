//! Deadlines (Go's `SetReadDeadline`: a point in time) and timeouts (std's
//! `set_read_timeout`: a length per call) of one socket, per direction.

use std::io;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::readiness::Direction;

/// What one direction's limits are: both kept, the earlier one applies.
#[derive(Default)]
struct Limits {
    /// Nanoseconds after `epoch()` plus one; zero for none.
    deadline: AtomicU64,
    /// Nanoseconds; zero for none.
    timeout: AtomicU64,
}

/// A socket's limits for reading and for writing.
#[derive(Default)]
pub(crate) struct Deadlines {
    read: Limits,
    write: Limits,
}

/// The instant deadlines are counted from: the first use in the process.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn encode(deadline: Instant) -> u64 {
    // A deadline before the epoch has passed already: the smallest one there is.
    let since = deadline.saturating_duration_since(epoch()).as_nanos();
    u64::try_from(since).unwrap_or(u64::MAX - 1) + 1
}

fn decode(word: u64) -> Option<Instant> {
    (word != 0).then(|| epoch() + Duration::from_nanos(word - 1))
}

/// The error of an operation that reached its deadline or timeout: `TimedOut` for both (std's
/// blocking sockets report a timeout as `WouldBlock` on Unix, which a non-blocking socket
/// cannot tell apart from not ready).
pub(crate) fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "i/o deadline reached")
}

impl Deadlines {
    fn limits(&self, direction: Direction) -> &Limits {
        match direction {
            Direction::Read => &self.read,
            Direction::Write => &self.write,
        }
    }

    pub(crate) fn set_deadline(&self, direction: Direction, deadline: Option<Instant>) {
        let word = deadline.map_or(0, encode);
        self.limits(direction)
            .deadline
            .store(word, Ordering::Release);
    }

    pub(crate) fn deadline(&self, direction: Direction) -> Option<Instant> {
        decode(self.limits(direction).deadline.load(Ordering::Acquire))
    }

    /// std's rule: a zero timeout is refused, `None` means none.
    pub(crate) fn set_timeout(
        &self,
        direction: Direction,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        let nanos = match timeout {
            Some(timeout) if timeout.is_zero() => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "cannot set a 0 duration timeout",
                ));
            }
            Some(timeout) => u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX),
            None => 0,
        };
        self.limits(direction)
            .timeout
            .store(nanos, Ordering::Release);
        Ok(())
    }

    pub(crate) fn timeout(&self, direction: Direction) -> Option<Duration> {
        let nanos = self.limits(direction).timeout.load(Ordering::Acquire);
        (nanos != 0).then(|| Duration::from_nanos(nanos))
    }

    /// The limit of an operation in `direction` whose timeout, taken when it started, ends at
    /// `by_timeout`: the earlier of that and the deadline, read now so that a change reaches an
    /// operation that waits already.
    pub(crate) fn limit(
        &self,
        direction: Direction,
        by_timeout: Option<Instant>,
    ) -> Option<Instant> {
        match (self.deadline(direction), by_timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
