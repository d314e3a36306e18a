//! `after` and `tick`: channels that a timer thread sends the time on (Go's `time.After` and
//! `time.Tick`).
//!
//! One process-wide thread, started on first use, keeps the deadlines in a heap. It sends with
//! `try_send` into a one-slot buffer, so it never blocks: a tick that finds the previous one
//! unread is dropped, as Go's tickers drop ticks for slow receivers.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::{Receiver, Sender, TrySendError, chan};

/// A channel that receives the time once, after `duration`.
///
/// Once the value is taken the channel reads as closed. A `duration` too long for an [`Instant`]
/// to represent never fires. For a timeout inside `select!`, the `timeout(d)` case needs no
/// channel at all.
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let start = Instant::now();
/// let fired = gsync::after(Duration::from_millis(5)).recv().unwrap();
/// assert!(fired >= start + Duration::from_millis(5));
/// ```
pub fn after(duration: Duration) -> Receiver<Instant> {
    let (sender, receiver) = chan(1);
    timers().add(deadline_after(Instant::now(), duration), None, sender);
    receiver
}

/// A channel that receives the time every `period`, until the receiver is dropped. A `period`
/// too long for an [`Instant`] to represent never fires.
///
/// # Panics
///
/// If `period` is zero, with Go's message `non-positive interval for NewTicker`.
///
/// ```
/// use std::time::Duration;
///
/// let ticks = gsync::tick(Duration::from_millis(1));
/// let first = ticks.recv().unwrap();
/// let second = ticks.recv().unwrap();
/// assert!(second > first);
/// ```
pub fn tick(period: Duration) -> Receiver<Instant> {
    assert!(!period.is_zero(), "non-positive interval for NewTicker");
    let (sender, receiver) = chan(1);
    timers().add(deadline_after(Instant::now(), period), Some(period), sender);
    receiver
}

/// Far enough ahead to mean "never" for a process, near enough that every platform's
/// [`Instant`] represents it.
const NEVER: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// `from + duration`, or a deadline that never comes when that overflows: the timer must stay
/// queued, because dropping its sender would make the channel read as closed.
fn deadline_after(from: Instant, duration: Duration) -> Instant {
    if let Some(deadline) = from.checked_add(duration) {
        return deadline;
    }
    // The furthest of NEVER, NEVER / 2, ... that this clock represents.
    let mut ahead = NEVER;
    loop {
        if let Some(deadline) = from.checked_add(ahead) {
            return deadline;
        }
        ahead /= 2;
    }
}

struct Timer {
    deadline: Instant,
    /// Ties broken by arrival, so the heap's order is total.
    sequence: u64,
    period: Option<Duration>,
    sender: Sender<Instant>,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.sequence) == (other.deadline, other.sequence)
    }
}

impl Eq for Timer {}

impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timer {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.deadline, self.sequence).cmp(&(other.deadline, other.sequence))
    }
}

struct Timers {
    heap: Mutex<(BinaryHeap<Reverse<Timer>>, u64)>,
    changed: Condvar,
}

fn timers() -> &'static Timers {
    static TIMERS: OnceLock<&'static Timers> = OnceLock::new();
    TIMERS.get_or_init(|| {
        let timers: &'static Timers = Box::leak(Box::new(Timers {
            heap: Mutex::new((BinaryHeap::new(), 0)),
            changed: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("gsync-timer".into())
            .spawn(move || timers.run())
            .expect("gsync: cannot start the timer thread");
        timers
    })
}

impl Timers {
    fn add(&self, deadline: Instant, period: Option<Duration>, sender: Sender<Instant>) {
        let mut guard = self
            .heap
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (heap, sequence) = &mut *guard;
        *sequence += 1;
        let earliest = heap
            .peek()
            .is_none_or(|Reverse(first)| deadline < first.deadline);
        heap.push(Reverse(Timer {
            deadline,
            sequence: *sequence,
            period,
            sender,
        }));
        if earliest {
            self.changed.notify_one();
        }
    }

    fn run(&self) {
        let mut guard = self
            .heap
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        loop {
            let now = Instant::now();
            let next = guard.0.peek().map(|Reverse(first)| first.deadline);
            match next {
                None => {
                    guard = self.changed.wait(guard).unwrap_or_else(|p| p.into_inner());
                }
                Some(deadline) if deadline > now => {
                    guard = self
                        .changed
                        .wait_timeout(guard, deadline - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                Some(_) => {
                    let Reverse(mut timer) = guard.0.pop().expect("peeked above");
                    match (timer.sender.try_send(now), timer.period) {
                        (Err(TrySendError::Closed(_)), _) | (_, None) => {}
                        (_, Some(period)) => {
                            // Ticks keep their phase; if the thread fell behind, missed ones drop.
                            timer.deadline = deadline_after(timer.deadline, period);
                            if timer.deadline <= now {
                                timer.deadline = deadline_after(now, period);
                            }
                            guard.0.push(Reverse(timer));
                        }
                    }
                }
            }
        }
    }
}
