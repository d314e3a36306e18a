//! Which workers sleep, and the one decision shutdown takes from that: the runtime is quiet.
//!
//! A worker going to sleep sets its flag (`announce`) and then looks at its queues once more
//! before it parks its thread. Thread parking keeps a token, so an unpark that lands before the
//! park is not lost. Two kinds of push must not lose the wake-up:
//!
//! - Work for one worker (a goroutine woken onto its home worker's inbox): the pusher clears
//!   that worker's flag with a swap (`wake_owner`) after its push. The worker set the flag with
//!   a swap too, so the two read-modify-writes of the one flag are ordered: if the pusher's
//!   comes second it reads `true` and unparks the worker; if the worker's comes second, it
//!   acquires the pusher's push, and its last look finds the work. The loom model
//!   `a_push_racing_a_worker_going_to_sleep_wakes_it` checks this with the real type.
//! - Work any worker may take (a new goroutine): the pusher issues a `SeqCst` fence and reads
//!   the sleeper count (`wake` on a worker found asleep); `announce` issues a `SeqCst` fence
//!   after raising the flag and the count. The fences order each side's store before its load:
//!   either the pusher sees a sleeper, or the sleeper's last look sees the work. Meeting on one
//!   read-modify-write here would make every spawn on every worker write one shared line; the
//!   fences keep that line read-mostly. loom 0.7 cannot check this store-buffering shape with
//!   fences (tokio-rs/loom#180), so it rests on the C++ fence rules and the soak.
//!
//! During shutdown the same flags decide when every worker is done (`try_quiesce`): a worker
//! that finds every flag set after its own last look knows that each worker looked after its
//! flag went up and found nothing, and that any push since would have cleared a flag first.
//! The loom model `shutdown_quiesces_only_when_no_work_is_left` checks this with the real type.

use super::Padded;
use crate::shim::{AtomicBool, AtomicUsize, Ordering, fence};

/// A worker's flag, on a cache line of its own: pushers write it.
#[repr(align(128))]
struct SleepFlag(AtomicBool);

pub(crate) struct IdleFlags {
    sleeping: Box<[SleepFlag]>,
    /// Workers whose flag is set.
    sleepers: Padded<AtomicUsize>,
    /// Set once shutdown found every worker asleep with nothing left to do.
    quiesced: AtomicBool,
    /// Workers in their shutdown loop, plus workers whose thread never started: quiet can only
    /// be declared once every worker is past its scheduling loop.
    shut_down: AtomicUsize,
}

impl IdleFlags {
    pub(crate) fn new(workers: usize) -> Self {
        IdleFlags {
            sleeping: (0..workers)
                .map(|_| SleepFlag(AtomicBool::new(false)))
                .collect(),
            sleepers: Padded(AtomicUsize::new(0)),
            quiesced: AtomicBool::new(false),
            shut_down: AtomicUsize::new(0),
        }
    }

    /// Worker `index` entered its shutdown loop, or (`absent`) its thread never started: it
    /// counts as asleep for good.
    pub(crate) fn enter_shutdown(&self, index: usize, absent: bool) {
        if absent {
            self.announce(index);
        }
        self.shut_down.fetch_add(1, Ordering::SeqCst);
    }

    /// Sets worker `index`'s flag; the caller then looks for work once more before it parks.
    #[inline]
    pub(crate) fn announce(&self, index: usize) {
        // A swap, not a store: `wake_owner` meets it on this flag (see the module docs).
        self.sleeping[index].0.swap(true, Ordering::SeqCst);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// Clears worker `index`'s flag; true if this call cleared it.
    #[inline]
    pub(crate) fn end(&self, index: usize) -> bool {
        let was_sleeping = self.sleeping[index].0.swap(false, Ordering::SeqCst);
        if was_sleeping {
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
        was_sleeping
    }

    /// After work any worker may take was pushed and fenced, for a worker seen among the
    /// sleepers: true when the caller must unpark that worker's thread (this call cleared its
    /// flag).
    #[inline]
    pub(crate) fn wake(&self, index: usize) -> bool {
        self.sleeping[index].0.load(Ordering::SeqCst) && self.end(index)
    }

    /// After work only worker `index` runs was pushed (no fence needed): true when the caller
    /// must unpark that worker's thread (this call cleared its flag).
    #[inline]
    pub(crate) fn wake_owner(&self, index: usize) -> bool {
        self.end(index)
    }

    pub(crate) fn is_sleeping(&self, index: usize) -> bool {
        self.sleeping[index].0.load(Ordering::SeqCst)
    }

    /// Workers asleep now.
    #[inline]
    pub(crate) fn sleepers(&self) -> usize {
        self.sleepers.load(Ordering::SeqCst)
    }

    /// Shutdown, after worker `announce`d and found nothing in its last look: true once the
    /// runtime is quiet (every worker is asleep, or another worker said so first).
    pub(crate) fn try_quiesce(&self) -> bool {
        let workers = self.sleeping.len();
        if self.quiesced.load(Ordering::SeqCst)
            || (self.shut_down.load(Ordering::SeqCst) == workers && self.sleepers() == workers)
        {
            self.quiesced.store(true, Ordering::SeqCst);
            return true;
        }
        false
    }

    pub(crate) fn is_quiesced(&self) -> bool {
        self.quiesced.load(Ordering::SeqCst)
    }
}

#[cfg(not(goroutines_loom))]
mod worker_idle {
    use std::cmp::Reverse;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use super::super::steal_policy::StealCheck;
    use super::super::worker::WorkerLocal;

    /// Looks at the queues between two checks of the clock while spinning.
    const SPIN_ROUNDS: u32 = 64;

    /// How long an idle worker spins looking for work before it sleeps: long enough to bridge the
    /// usual gap between a park and the wake-up that answers it, short enough not to burn a core.
    const SPIN_TIME: Duration = Duration::from_micros(50);

    /// How long an idle worker spins at most while goroutines wait out their steal grace on
    /// another worker.
    const MAX_SPIN_TIME: Duration = Duration::from_micros(200);

    /// How long a worker sleeps at most while goroutines wait out their steal grace on another
    /// worker, in case that worker stays busy.
    const STEAL_RECHECK: Duration = Duration::from_millis(1);

    /// How often at most an idle worker trims its heap (see `crate::slab`): soon after a burst
    /// ends, but not at every sleep of a worker that sleeps between every two messages.
    const TRIM_INTERVAL: Duration = Duration::from_millis(1);

    /// How long a worker whose last trim found memory to give back sleeps at most before it
    /// trims again: goroutines that finish on other workers free into its heap after it slept.
    const TRIM_RETRY: Duration = Duration::from_millis(10);

    impl WorkerLocal {
        /// Whether this worker has something to run, or may steal something (as of `now`).
        pub(in crate::scheduler) fn has_visible_work(&self, now: Instant) -> bool {
            let shared = &*self.shared;
            let me = &shared.workers[self.index];
            self.runnext.borrow().is_some()
                || me.watch.dump_wanted.load(Ordering::Acquire)
                || !self.yielded.borrow().is_empty()
                || !shared.injector.is_empty()
                || !self.inbox_is_empty()
                || !me.next.is_empty()
                || !me.fresh.is_empty()
                || (0..shared.workers.len())
                    .any(|index| index != self.index && self.may_steal_from(index, now))
        }

        /// Whether another worker has a few goroutines waiting that this one may take if that
        /// worker stays busy (see `WorkerLocal::steal_check`).
        fn steal_waits(&self, now: Instant) -> bool {
            (0..self.shared.workers.len()).any(|index| {
                index != self.index && self.steal_check(index, now) == StealCheck::AfterGrace
            })
        }

        /// Spins for a while (if few others do), then sleeps until woken or until the next timer
        /// is due.
        pub(in crate::scheduler) fn idle(&self) {
            let shared = &*self.shared;
            // The spare stack goes back to the pool (or the dense region), where goroutines
            // waiting for a stack and the pool's trimming can reach it.
            let gave_back_spare = self.spare_stack.borrow_mut().take().is_some();
            if shared.workers[self.index]
                .watch
                .dump_wanted
                .load(Ordering::Acquire)
            {
                self.answer_dumps();
                return;
            }
            // Goroutines wait for stacks while this worker kept some: hand them over and let
            // one of those goroutines try again.
            if !shared.waiting_for_stack.is_empty()
                && (gave_back_spare || shared.stacks.release_thread_cache() > 0)
            {
                self.retry_waiting_for_stack();
                return;
            }
            let max_spinners = (shared.workers.len() / 2).max(1);
            if shared.spinning.fetch_add(1, Ordering::SeqCst) < max_spinners {
                let start = Instant::now();
                let mut now = start;
                // What the driver has ready (a socket's data) is work too, as Go's scheduler
                // polls the network before it looks further: spinning blind to it would leave
                // it waiting for the whole spin.
                self.poll_driver();
                // Longer while goroutines wait out their steal grace elsewhere: this worker is
                // the one to take them if their worker stays busy.
                while now.duration_since(start) < SPIN_TIME
                    || (now.duration_since(start) < MAX_SPIN_TIME && self.steal_waits(now))
                {
                    for _ in 0..SPIN_ROUNDS {
                        if self.has_visible_work(now) || shared.shutdown.load(Ordering::Relaxed) {
                            shared.spinning.fetch_sub(1, Ordering::SeqCst);
                            return;
                        }
                        std::hint::spin_loop();
                    }
                    self.poll_driver();
                    now = Instant::now();
                    if self
                        .timers
                        .borrow()
                        .peek()
                        .is_some_and(|Reverse(timer)| timer.deadline <= now)
                    {
                        break;
                    }
                }
            }
            shared.spinning.fetch_sub(1, Ordering::SeqCst);
            shared.announce_sleep(self.index);
            if self.has_visible_work(Instant::now()) || shared.shutdown.load(Ordering::SeqCst) {
                shared.end_sleep(self.index);
                return;
            }
            // A goroutine refused a stack since the look at the top: its worker's wake came
            // while this one spun, before the announcement, and found nobody asleep. Hand the
            // cache over now, or both workers may sleep for good beside it.
            if !shared.waiting_for_stack.is_empty() && shared.stacks.release_thread_cache() > 0 {
                shared.end_sleep(self.index);
                self.retry_waiting_for_stack();
                return;
            }
            let next_timer = self.fire_timers();
            let now = Instant::now();
            let trim_again = self.trim_heap().then(|| now + TRIM_RETRY);
            let look_again = self.steal_waits(now).then(|| now + STEAL_RECHECK);
            let wake_at = [next_timer, trim_again, look_again]
                .into_iter()
                .flatten()
                .min();
            self.wait_idle(wake_at);
            shared.end_sleep(self.index);
        }

        /// Gives memory back from this worker's heap and the shared one, at most once per
        /// `TRIM_INTERVAL`; true when the last trim gave something back, so more may follow.
        fn trim_heap(&self) -> bool {
            let (trimmed_at, gave_back) = self.heap_trimmed.get();
            let now = Instant::now();
            if now.duration_since(trimmed_at) < TRIM_INTERVAL {
                return gave_back;
            }
            // Stacks given back wait in batches for their pages to be released (see gstack's
            // `release_pending`): an idle moment ends the last, partial batch.
            let gave_back = self.heap.heap().trim()
                | crate::slab::trim_shared()
                | (gstack::release_pending() > 0);
            self.heap_trimmed.set((now, gave_back));
            gave_back
        }
    }
}
