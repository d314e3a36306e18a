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

/// A goroutine unwinding a panic does not yield at its checkpoints: a neighbour run meanwhile
/// on the same thread would read `std::thread::panicking()` as true, and a std mutex guard it
/// dropped would poison its mutex.
#[test]
fn a_goroutine_unwinding_a_panic_does_not_yield_at_checkpoints() {
    within(Duration::from_secs(30), || {
        let rt = Runtime::builder()
            .workers(1)
            .preempt_after(Duration::from_micros(200))
            .build()
            .unwrap();
        let saw_panicking = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        rt.block_on({
            let (saw_panicking, stop) = (Arc::clone(&saw_panicking), Arc::clone(&stop));
            move || {
                let neighbour_stop = Arc::clone(&stop);
                let neighbour = go(move || {
                    while !neighbour_stop.load(Ordering::Relaxed) {
                        if std::thread::panicking() {
                            saw_panicking.store(true, Ordering::Relaxed);
                        }
                        gsched::yield_now();
                    }
                });
                struct CheckpointsWhileDropped;
                impl Drop for CheckpointsWhileDropped {
                    fn drop(&mut self) {
                        let until = std::time::Instant::now() + Duration::from_millis(50);
                        while std::time::Instant::now() < until {
                            checkpoint();
                        }
                    }
                }
                let panicking = go(|| {
                    let _guard = CheckpointsWhileDropped;
                    panic!("on purpose");
                });
                assert!(panicking.join().is_err());
                stop.store(true, Ordering::Relaxed);
                neighbour.join().unwrap();
            }
        });
        assert!(
            !saw_panicking.load(Ordering::Relaxed),
            "a neighbour ran while a goroutine was unwinding"
        );
    });
}

/// On one worker, a goroutine that spawns in a loop yields at the end of each slice to the
/// goroutines it queued, and resumes only once those that overflowed to the global queue had
/// their turn, as Go's preempted goroutine waits on the global queue behind them: the backlog
/// of unstarted goroutines stays a few slices' worth, where it once grew with every spawn
/// (each slice ran only the worker's local queue before the spawner again).
#[test]
fn a_spawning_loop_does_not_outrun_the_goroutines_it_queued() {
    use std::sync::atomic::AtomicUsize;
    const SPAWNS: usize = 200_000;
    within(Duration::from_secs(60), || {
        let rt = Runtime::builder()
            .workers(1)
            .preempt_after(Duration::from_millis(1))
            .build()
            .unwrap();
        let max_backlog = rt.block_on(|| {
            let finished: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
            let mut max_backlog = 0;
            for spawned in 1..=SPAWNS {
                drop(go(move || {
                    finished.fetch_add(1, Ordering::Relaxed);
                }));
                max_backlog = max_backlog.max(spawned - finished.load(Ordering::Relaxed));
            }
            while finished.load(Ordering::Relaxed) < SPAWNS {
                gsched::yield_now();
            }
            max_backlog
        });
        assert!(
            max_backlog < SPAWNS / 4,
            "{max_backlog} of {SPAWNS} goroutines waited unstarted at once"
        );
    });
}
