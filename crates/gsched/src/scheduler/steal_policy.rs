//! When a worker may take goroutines that wait on another: at once from a queue longer than
//! `SMALL_QUEUE`, or from a stuck worker; otherwise only after `STEAL_GRACE` while that worker
//! picked none, and one more grace in which its thread was busy on a CPU, not waiting for one.
//! A goroutine never leaves the worker it starts on, so a goroutine taken too soon is parted
//! from the one that spawned it for good.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::monitor::{ThreadTimes, bump, thread_times};
use super::steal::steal_half;
use super::task_ref::QueueRef;
use super::worker::WorkerLocal;

/// Goroutines waiting on a worker that another worker takes at once; fewer wait out
/// `STEAL_GRACE` first, since the worker is likely to run them itself right away.
const SMALL_QUEUE: usize = 2;

/// How long a small queue must wait while its worker picks no goroutine before another worker
/// may steal from it: the worker is then busy in one goroutine. A goroutine and the one it
/// spawned usually talk, and once started a goroutine never moves, so stealing at once would
/// often split such a pair across cores for good.
const STEAL_GRACE: Duration = Duration::from_micros(20);

impl WorkerLocal {
    /// Takes half of another worker's not-yet-started goroutines, or its `next` one, from a
    /// worker it may steal from.
    pub(super) fn steal(&self) -> Option<QueueRef> {
        let shared = &*self.shared;
        let count = shared.workers.len();
        let start = self.tick.get() as usize % count;
        let now = Instant::now();
        for offset in 0..count {
            let index = (start + offset) % count;
            if index == self.index || !self.may_steal_from(index, now) {
                continue;
            }
            let victim = &shared.workers[index];
            let stolen = steal_half(&victim.fresh, &shared.workers[self.index].fresh, |task| {
                shared.injector.push(task)
            })
            .or_else(|| victim.next.pop());
            if stolen.is_some() {
                bump(&shared.workers[self.index].watch.steals);
                return stolen;
            }
        }
        None
    }

    /// Whether worker `index` has goroutines waiting that this one may take now: more than
    /// `SMALL_QUEUE` of them, or a few that waited `STEAL_GRACE` while that worker picked no
    /// goroutine, as far as this worker has watched it.
    pub(super) fn may_steal_from(&self, index: usize, now: Instant) -> bool {
        self.steal_check(index, now) == StealCheck::Now
    }

    /// What this worker may take from worker `index` (see `may_steal_from`).
    pub(super) fn steal_check(&self, index: usize, now: Instant) -> StealCheck {
        let victim = &self.shared.workers[index];
        let waiting = victim.fresh.len() + victim.next.len();
        if waiting == 0 {
            return StealCheck::Nothing;
        }
        if waiting > SMALL_QUEUE {
            return StealCheck::Now;
        }
        if victim.watch.stuck.load(Ordering::Acquire) {
            return StealCheck::Now;
        }
        let switches = victim.watch.switches.load(Ordering::Relaxed);
        let os_thread = victim.watch.os_thread.load(Ordering::Relaxed);
        grace_check(
            &mut self.seen_busy.borrow_mut()[index],
            switches,
            now,
            || thread_times(os_thread),
        )
    }
}

/// What a thief last saw of another worker (see `grace_check`).
#[derive(Clone, Copy, Debug)]
pub(super) struct SeenBusy {
    /// The worker's switch count, and when this thief first saw it.
    switches: u64,
    since: Instant,
    /// The worker thread's accounting when its grace ran out, and when it was read.
    measure: Option<(Instant, ThreadTimes)>,
}

impl SeenBusy {
    pub(super) fn new(now: Instant) -> Self {
        SeenBusy {
            switches: u64::MAX,
            since: now,
            measure: None,
        }
    }
}

/// Whether a few goroutines waiting on a worker whose switch count is `switches` may be taken
/// now: the worker picked none for `STEAL_GRACE`, and then, over one more grace, its thread
/// was busy in one goroutine rather than waiting for a CPU. `times` reads the worker thread's
/// accounting (see the monitor's `thread_times`).
///
/// A thread that waits for a CPU (a machine busier than its CPUs) runs its new goroutines as
/// soon as it gets one back, and a goroutine started elsewhere would never move back beside
/// the one that spawned it: its queue waits, until the thread runs again or the monitor marks
/// the worker stuck. A thread blocked in the kernel, or accounting that cannot be read, lets
/// the goroutines go.
fn grace_check(
    seen: &mut SeenBusy,
    switches: u64,
    now: Instant,
    times: impl FnOnce() -> Option<ThreadTimes>,
) -> StealCheck {
    if seen.switches != switches {
        *seen = SeenBusy {
            switches,
            since: now,
            measure: None,
        };
        return StealCheck::AfterGrace;
    }
    if now.duration_since(seen.since) < STEAL_GRACE {
        return StealCheck::AfterGrace;
    }
    // The accounting costs system calls: read only when it will be judged, once per grace.
    if let Some((at, _)) = seen.measure
        && now.duration_since(at) < STEAL_GRACE
    {
        return StealCheck::AfterGrace;
    }
    let Some(times) = times() else {
        return StealCheck::Now;
    };
    match seen.measure {
        Some((at, before)) => {
            let window = now.duration_since(at);
            let ran = times.on_cpu.saturating_sub(before.on_cpu);
            let waited = times.waited.saturating_sub(before.waited);
            // A wait still going on shows as runnable with little time on a CPU; one that
            // ended within the window, as grown waits.
            if (times.runnable && ran < window / 2) || waited > window / 2 {
                seen.measure = Some((now, times));
                StealCheck::AfterGrace
            } else {
                StealCheck::Now
            }
        }
        None => {
            seen.measure = Some((now, times));
            StealCheck::AfterGrace
        }
    }
}

/// What a worker may take from another (see `WorkerLocal::steal_check`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StealCheck {
    Nothing,
    /// A few goroutines wait; they may be taken if their worker stays busy.
    AfterGrace,
    Now,
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{STEAL_GRACE, SeenBusy, StealCheck, grace_check};
    use crate::scheduler::monitor::ThreadTimes;

    fn times(on_cpu_micros: u64, waited_micros: u64, runnable: bool) -> Option<ThreadTimes> {
        Some(ThreadTimes {
            on_cpu: Duration::from_micros(on_cpu_micros),
            waited: Duration::from_micros(waited_micros),
            runnable,
        })
    }

    #[test]
    fn a_small_queue_is_stolen_only_after_its_worker_stood_still_for_the_grace() {
        let start = Instant::now();
        let mut seen = SeenBusy::new(start);
        let at = |micros| start + Duration::from_micros(micros);
        let unread = || None;
        assert_eq!(
            grace_check(&mut seen, 7, at(0), unread),
            StealCheck::AfterGrace
        );
        assert_eq!(
            grace_check(&mut seen, 7, at(10), unread),
            StealCheck::AfterGrace
        );
        // The worker switched: it may be about to run them; the grace starts again.
        assert_eq!(
            grace_check(&mut seen, 8, at(15), unread),
            StealCheck::AfterGrace
        );
        let grace = STEAL_GRACE.as_micros() as u64;
        assert_eq!(
            grace_check(&mut seen, 8, at(15 + grace - 1), unread),
            StealCheck::AfterGrace
        );
        // Without the thread's accounting, the grace alone decides.
        assert_eq!(
            grace_check(&mut seen, 8, at(15 + grace), unread),
            StealCheck::Now
        );
    }

    /// A thief that saw a worker (switch count 3) pick nothing for the grace, and then read its
    /// thread's accounting (1 ms on a CPU, 50 µs of ended waits, runnable) to judge one grace
    /// later; with the clock in microseconds since the first look, and the grace's length.
    fn watched_for_a_grace() -> (SeenBusy, impl Fn(u64) -> Instant, u64) {
        let start = Instant::now();
        let mut seen = SeenBusy::new(start);
        let grace = STEAL_GRACE.as_micros() as u64;
        let at = move |micros| start + Duration::from_micros(micros);
        assert_eq!(
            grace_check(&mut seen, 3, at(0), || None),
            StealCheck::AfterGrace
        );
        assert_eq!(
            grace_check(&mut seen, 3, at(grace), || times(1_000, 50, true)),
            StealCheck::AfterGrace
        );
        (seen, at, grace)
    }

    #[test]
    fn a_worker_busy_in_one_goroutine_is_stolen_from_one_grace_later() {
        // The grace is out: the thread's accounting is read, and judged one grace later.
        let (mut seen, at, grace) = watched_for_a_grace();
        let check = grace_check(&mut seen, 3, at(2 * grace - 1), || {
            panic!("the accounting is read only when it is judged")
        });
        assert_eq!(check, StealCheck::AfterGrace);
        // On a CPU the whole window: busy in one goroutine.
        let check = grace_check(&mut seen, 3, at(2 * grace), || {
            times(1_000 + grace, 50, true)
        });
        assert_eq!(check, StealCheck::Now);
    }

    #[test]
    fn a_worker_whose_thread_waits_for_a_cpu_keeps_its_goroutines() {
        let (mut seen, at, grace) = watched_for_a_grace();
        // Runnable, and no time on a CPU: a wait still going on.
        assert_eq!(
            grace_check(&mut seen, 3, at(2 * grace), || times(1_000, 50, true)),
            StealCheck::AfterGrace
        );
        // A wait that ended: the waits grew by most of the window.
        assert_eq!(
            grace_check(&mut seen, 3, at(3 * grace), || {
                times(1_001, 50 + grace - 1, true)
            }),
            StealCheck::AfterGrace
        );
        // Blocked in the kernel (a system call): neither running nor waiting for a CPU.
        assert_eq!(
            grace_check(&mut seen, 3, at(4 * grace), || {
                times(1_001, 50 + grace - 1, false)
            }),
            StealCheck::Now
        );
    }
}
