//! loom models of the scheduler's protocols: run with `--cfg goroutines_loom` (see
//! `cargo xtask test`).

use std::collections::VecDeque;

// The models are only as good as the assertions they check.
const _: () = assert!(
    cfg!(debug_assertions),
    "run the loom models with debug assertions: RUSTFLAGS=\"--cfg goroutines_loom -C debug-assertions\""
);

use loom::sync::Mutex;
use loom::sync::atomic::AtomicUsize;
use loom::thread;

use crate::scheduler::state::TaskState;
use crate::scheduler::steal::RunQueue;
use crate::shim::Ordering;

mod memory;
mod queues;
mod state;
mod workers;

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
