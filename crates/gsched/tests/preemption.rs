//! Cooperative preemption: a goroutine that loops through `checkpoint` shares its worker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gsched::{Runtime, checkpoint, go};
use testkit::within;

/// On one worker, a goroutine spinning through `checkpoint` no longer holds the worker for
/// good: the main goroutine's 10 ms sleep returns, within a few slices.
#[test]
fn a_spinning_goroutine_yields_at_its_checkpoints() {
    within(Duration::from_secs(30), || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        rt.block_on(|| {
            let stop = Arc::new(AtomicBool::new(false));
            let hog = {
                let stop = Arc::clone(&stop);
                go(move || {
                    while !stop.load(Ordering::Relaxed) {
                        checkpoint();
                    }
                })
            };
            for _ in 0..5 {
                gsched::sleep(Duration::from_millis(10));
            }
            stop.store(true, Ordering::Relaxed);
            hog.join().unwrap();
        });
    });
}

/// `checkpoint` outside a goroutine does nothing.
#[test]
fn a_checkpoint_on_a_plain_thread_returns() {
    checkpoint();
}
