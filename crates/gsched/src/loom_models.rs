//! loom models of the scheduler's protocols: run with `--cfg goroutines_loom` (see
//! `cargo xtask test`).

use std::collections::VecDeque;

// The models are only as good as the assertions they check.
const _: () = assert!(
    cfg!(debug_assertions),
    "run the loom models with debug assertions: RUSTFLAGS=\"--cfg goroutines_loom -C debug-assertions\""
);

use loom::sync::atomic::{AtomicBool, AtomicUsize};
use loom::sync::{Arc, Mutex};
use loom::thread;

use crate::state::TaskState;
use crate::steal::{RunQueue, steal_half};
use crate::sync::Ordering;

/// A stand-in for crossbeam's `ArrayQueue`, which loom cannot see into: a bounded queue behind
/// loom's mutex, so that what is modeled is the logic around the queue.
struct BoundedQueue<T> {
    items: Mutex<VecDeque<T>>,
    capacity: usize,
}

impl<T> BoundedQueue<T> {
    fn new(capacity: usize) -> Self {
        BoundedQueue {
            items: Mutex::new(VecDeque::new()),
            capacity,
        }
    }
}

impl<T> RunQueue<T> for BoundedQueue<T> {
    fn push(&self, item: T) -> Result<(), T> {
        let mut items = self.items.lock().unwrap();
        if items.len() == self.capacity {
            return Err(item);
        }
        items.push_back(item);
        Ok(())
    }

    fn pop(&self) -> Option<T> {
        self.items.lock().unwrap().pop_front()
    }

    fn len(&self) -> usize {
        self.items.lock().unwrap().len()
    }
}

/// One turn of the goroutine and its worker waiting for a wake-up, as in `park_until` and
/// `WorkerLocal::run`: consume a pending notification, or park and wait until an unpark queues
/// the goroutine; either way it runs again.
fn park_once(state: &TaskState, queued: &AtomicUsize) {
    if state.take_notification() {
        return;
    }
    if state.finish_park() {
        while queued.load(Ordering::Acquire) == 0 {
            thread::yield_now();
        }
        queued.fetch_sub(1, Ordering::Relaxed);
    }
    assert!(state.try_start_run(), "a scheduled goroutine runs");
}

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

/// An owner pushes and pops its queue while a thief steals half: every goroutine is taken
/// exactly once, none lost, none duplicated.
#[test]
fn stealing_loses_and_duplicates_nothing() {
    loom::model(|| {
        let victim = Arc::new(BoundedQueue::new(4));
        let thief_queue = Arc::new(BoundedQueue::new(1));
        for item in 0..3u32 {
            victim.push(item).unwrap();
        }
        let thief = {
            let (victim, thief_queue) = (Arc::clone(&victim), Arc::clone(&thief_queue));
            thread::spawn(move || {
                let mut taken = Vec::new();
                let mut overflow = Vec::new();
                taken.extend(steal_half(&*victim, &*thief_queue, |item| {
                    overflow.push(item)
                }));
                while let Some(item) = thief_queue.pop() {
                    taken.push(item);
                }
                taken.extend(overflow);
                taken
            })
        };
        let mut owner = Vec::new();
        victim.push(3).unwrap();
        while let Some(item) = victim.pop() {
            owner.push(item);
        }
        let mut all = thief.join().unwrap();
        while let Some(item) = victim.pop() {
            all.push(item);
        }
        all.extend(owner);
        all.sort_unstable();
        assert_eq!(all, [0, 1, 2, 3]);
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
