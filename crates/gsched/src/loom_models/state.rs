//! The goroutine state machine: parking and waking, concurrent wakes, a ping-pong, a timer
//! racing a wake, and shutdown's claim racing a wake.

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize};
use loom::thread;

use super::park_once;
use crate::scheduler::state::TaskState;
use crate::scheduler::timer_word::TimerWord;
use crate::shim::Ordering;

/// A goroutine parks until a flag is set, while another thread sets the flag and unparks it.
/// Whatever the interleaving, the goroutine runs again and sees the flag: no lost wake-up, and
/// it is never run twice at once (`try_start_run` wins once per scheduling).
#[test]
fn park_and_unpark_lose_no_wakeup() {
    loom::model(|| {
        let state = Arc::new(TaskState::new());
        let flag = Arc::new(AtomicBool::new(false));
        // The run queue the unparker pushes a parked goroutine to.
        let queued = Arc::new(AtomicUsize::new(0));
        assert!(state.try_start_run());

        let unparker = {
            let (state, flag, queued) =
                (Arc::clone(&state), Arc::clone(&flag), Arc::clone(&queued));
            thread::spawn(move || {
                flag.store(true, Ordering::Release);
                if state.notify() {
                    queued.fetch_add(1, Ordering::Release);
                }
            })
        };

        let mut turns = 0;
        while !flag.load(Ordering::Acquire) {
            park_once(&state, &queued);
            turns += 1;
        }
        unparker.join().unwrap();
        assert!(turns <= 2);
        assert_eq!(queued.load(Ordering::Relaxed), 0, "queued but never run");
    });
}

/// Two unparkers race against one park: the goroutine is queued at most once.
#[test]
fn concurrent_unparks_queue_a_goroutine_once() {
    loom::model(|| {
        let state = Arc::new(TaskState::new());
        assert!(state.try_start_run());
        let queued = Arc::new(AtomicUsize::new(0));
        let unparkers: Vec<_> = (0..2)
            .map(|_| {
                let (state, queued) = (Arc::clone(&state), Arc::clone(&queued));
                thread::spawn(move || {
                    if state.notify() {
                        queued.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let parked = !state.take_notification() && state.finish_park();
        for unparker in unparkers {
            unparker.join().unwrap();
        }
        let queued = queued.load(Ordering::Relaxed);
        if parked {
            assert_eq!(queued, 1, "a parked goroutine is queued exactly once");
            assert!(state.try_start_run());
        } else {
            assert_eq!(queued, 0, "a goroutine that did not park is not queued");
        }
    });
}

/// Two rounds of ping-pong between a goroutine and a thread, each side waiting for the other's
/// flag: every round's wake-up reaches the goroutine.
#[test]
fn ping_pong_rounds_lose_no_wakeup() {
    loom::model(|| {
        const ROUNDS: usize = 2;
        let state = Arc::new(TaskState::new());
        let pong = Arc::new(AtomicUsize::new(0));
        let queued = Arc::new(AtomicUsize::new(0));
        assert!(state.try_start_run());
        let partner = {
            let (state, pong, queued) =
                (Arc::clone(&state), Arc::clone(&pong), Arc::clone(&queued));
            thread::spawn(move || {
                for _ in 0..ROUNDS {
                    pong.fetch_add(1, Ordering::Release);
                    if state.notify() {
                        queued.fetch_add(1, Ordering::Release);
                    }
                }
            })
        };
        for round in 1..=ROUNDS {
            while pong.load(Ordering::Acquire) < round {
                park_once(&state, &queued);
            }
        }
        partner.join().unwrap();
    });
}

/// A goroutine parked with a deadline while its timer expires and a waker wakes it, at once:
/// exactly one of the timer and the goroutine's own cancellation retires the timer (the
/// runtime's pending count ends at zero), and the goroutine runs again.
#[test]
fn a_deadline_racing_a_wake_retires_the_timer_once() {
    loom::model(|| {
        let state = Arc::new(TaskState::new());
        let timer = Arc::new(TimerWord::new());
        let pending = Arc::new(AtomicUsize::new(0));
        let queued = Arc::new(AtomicUsize::new(0));
        let woken = Arc::new(AtomicBool::new(false));
        assert!(state.try_start_run());
        assert!(!timer.arm(1), "nothing armed before");
        pending.fetch_add(1, Ordering::Relaxed);
        let expiry = {
            let (state, timer, pending, queued) = (
                Arc::clone(&state),
                Arc::clone(&timer),
                Arc::clone(&pending),
                Arc::clone(&queued),
            );
            thread::spawn(move || {
                if timer.fire(1) {
                    pending.fetch_sub(1, Ordering::Relaxed);
                    if state.notify() {
                        queued.fetch_add(1, Ordering::Release);
                    }
                }
            })
        };
        let waker = {
            let (state, woken, queued) =
                (Arc::clone(&state), Arc::clone(&woken), Arc::clone(&queued));
            thread::spawn(move || {
                woken.store(true, Ordering::Release);
                if state.notify() {
                    queued.fetch_add(1, Ordering::Release);
                }
            })
        };
        // The goroutine parks once (the deadline or the waker brings it back), then retires
        // its timer as `park_until` does; it parks again until the waker's flag is visible.
        park_once(&state, &queued);
        if timer.cancel() {
            pending.fetch_sub(1, Ordering::Relaxed);
        }
        while !woken.load(Ordering::Acquire) {
            park_once(&state, &queued);
        }
        expiry.join().unwrap();
        waker.join().unwrap();
        assert_eq!(
            pending.load(Ordering::Relaxed),
            0,
            "the timer was retired once"
        );
        assert!(!timer.fire(1), "a retired timer never fires");
    });
}

/// A wake-up (from an outside thread) races shutdown's claim of the parked goroutine: exactly
/// one of them gets it. A goroutine the wake-up queued is never claimed while its entry waits,
/// and the entry's popper then starts it: no entry is left stale, so a goroutine is never queued
/// twice at once (what a worker's inbox relies on, see `state.rs`).
#[test]
fn a_wake_racing_shutdowns_claim_leaves_one_owner() {
    loom::model(|| {
        let state = Arc::new(TaskState::new());
        assert!(state.try_start_run());
        assert!(state.finish_park());
        let waker = {
            let state = Arc::clone(&state);
            thread::spawn(move || state.notify())
        };
        let claimed = state.try_claim();
        let queued = waker.join().unwrap();
        assert!(
            !(claimed && queued),
            "both the claim and the wake-up took the goroutine"
        );
        if queued {
            assert!(
                !state.is_claimable() && !state.try_claim(),
                "claimed while queued"
            );
            assert!(state.try_start_run(), "the queue entry's popper starts it");
        } else {
            assert!(claimed, "a wake-up that found it claimed only notifies it");
            state.finish_yield();
            assert!(
                state.try_start_run(),
                "queued again after its turn, it runs"
            );
        }
    });
}
