//! `after` and `tick`: channels that a timer thread sends the time on (Go's `time.After` and
//! `time.Tick`).
//!
//! One process-wide thread, started on first use, keeps the deadlines in a heap. It sends with
//! `try_send` into a one-slot buffer, so it never blocks: a tick that finds the previous one
//! unread is dropped, as Go's tickers drop ticks for slow receivers. The thread and its armed
//! timers are registered with gsched, so the deadlock report knows that they may still wake a
//! goroutine, and that the thread alone will not.

use std::collections::BTreeMap;
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
    period: Option<Duration>,
    action: Action,
    /// While the timer is armed, the runtimes' deadlock report stays silent: it may still wake
    /// a goroutine.
    _armed: gsched::PendingWake,
}

/// What a timer does when it fires.
enum Action {
    /// Sends the time without blocking; a tick stays armed until its receiver is gone.
    Send(Sender<Instant>),
    /// Calls a function once, on the timer thread (a context's deadline).
    Call(Box<dyn FnOnce() + Send>),
}

/// A timer in the queue: its deadline, ties broken by arrival so that keys are unique.
pub(crate) type TimerKey = (Instant, u64);

pub(crate) struct Timers {
    queue: Mutex<(BTreeMap<TimerKey, Timer>, u64)>,
    changed: Condvar,
}

pub(crate) fn timers() -> &'static Timers {
    static TIMERS: OnceLock<&'static Timers> = OnceLock::new();
    TIMERS.get_or_init(|| {
        let timers: &'static Timers = Box::leak(Box::new(Timers {
            queue: Mutex::new((BTreeMap::new(), 0)),
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
        self.insert(deadline, period, Action::Send(sender));
    }

    /// Calls `call` on the timer thread at `deadline`, unless [`cancel`](Self::cancel)led
    /// first.
    pub(crate) fn call_at(&self, deadline: Instant, call: Box<dyn FnOnce() + Send>) -> TimerKey {
        self.insert(deadline, None, Action::Call(call))
    }

    /// Takes a timer out of the queue before it fires; false if it fired (or is firing).
    pub(crate) fn cancel(&self, key: TimerKey) -> bool {
        let removed = self.queue().0.remove(&key);
        // Dropped outside the lock: a timer's action may own anything.
        removed.is_some()
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, (BTreeMap<TimerKey, Timer>, u64)> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn insert(&self, deadline: Instant, period: Option<Duration>, action: Action) -> TimerKey {
        let mut guard = self.queue();
        let (queue, sequence) = &mut *guard;
        *sequence += 1;
        let key = (deadline, *sequence);
        let earliest = queue
            .first_key_value()
            .is_none_or(|(first, _)| key < *first);
        queue.insert(
            key,
            Timer {
                period,
                action,
                _armed: gsched::PendingWake::new(),
            },
        );
        if earliest {
            self.changed.notify_one();
        }
        key
    }

    fn run(&self) {
        // It wakes goroutines only for the timers it holds, each counted as pending.
        let _helper = gsched::HelperThread::register();
        let mut guard = self.queue();
        loop {
            let now = Instant::now();
            let next = guard.0.first_key_value().map(|(key, _)| key.0);
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
                    let ((deadline, _), timer) = guard.0.pop_first().expect("looked at above");
                    match timer.action {
                        Action::Call(call) => {
                            // Outside the lock: the call may arm or cancel timers. A panic in
                            // it must not end the thread every timer of the process needs.
                            drop(guard);
                            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).is_err()
                            {
                                eprintln!(
                                    "gsync: a timer callback panicked; the timer thread goes on"
                                );
                            }
                            guard = self.queue();
                        }
                        Action::Send(sender) => match (sender.try_send(now), timer.period) {
                            (Err(TrySendError::Closed(_)), _) | (_, None) => {}
                            (_, Some(period)) => {
                                // Ticks keep their phase; if the thread fell behind, missed
                                // ones drop.
                                let mut next = deadline_after(deadline, period);
                                if next <= now {
                                    next = deadline_after(now, period);
                                }
                                guard.1 += 1;
                                let key = (next, guard.1);
                                guard.0.insert(
                                    key,
                                    Timer {
                                        period: timer.period,
                                        action: Action::Send(sender),
                                        _armed: timer._armed,
                                    },
                                );
                            }
                        },
                    }
                }
            }
        }
    }
}
