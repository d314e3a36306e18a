//! `blocking`: calls that block their thread run on the blocking pool while the goroutine parks.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use gsched::{BuildError, Runtime, blocking, go};
use testkit::within;

fn runtime(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().unwrap()
}

#[test]
fn a_blocking_call_returns_its_value_and_may_borrow() {
    let rt = runtime(1);
    let total = rt.block_on(|| {
        let numbers: Vec<u64> = (1..=100).collect();
        let sum = blocking(|| numbers.iter().sum::<u64>());
        sum + numbers.len() as u64
    });
    assert_eq!(total, 5050 + 100);
}

#[test]
fn goroutines_on_the_same_worker_run_while_a_call_blocks() {
    within(Duration::from_secs(30), || {
        let rt = runtime(1);
        rt.block_on(|| {
            let ticks = Arc::new(AtomicUsize::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let ticker = {
                let (ticks, stop) = (Arc::clone(&ticks), Arc::clone(&stop));
                go(move || {
                    while !stop.load(Ordering::Acquire) {
                        ticks.fetch_add(1, Ordering::Relaxed);
                        gsched::sleep(Duration::from_millis(1));
                    }
                })
            };
            // The call blocks until the ticker has ticked 20 times (10 s at most): a ticker
            // pinned behind the call on its only worker would tick once.
            let ticked = blocking(|| {
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while ticks.load(Ordering::Relaxed) < 20 {
                    if std::time::Instant::now() > deadline {
                        return false;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                true
            });
            let seen = ticks.load(Ordering::Relaxed);
            stop.store(true, Ordering::Release);
            ticker.join().unwrap();
            assert!(ticked, "the ticker ran {seen} times while the call blocked");
        });
    });
}

#[test]
fn a_panic_in_a_blocking_call_resumes_in_the_caller() {
    let rt = runtime(1);
    let payload = rt.block_on(|| {
        std::panic::catch_unwind(|| blocking(|| -> u32 { std::panic::panic_any(17u8) }))
            .unwrap_err()
    });
    assert_eq!(payload.downcast_ref::<u8>(), Some(&17));
}

#[test]
fn outside_a_goroutine_the_call_runs_on_the_calling_thread() {
    let here = std::thread::current().id();
    assert_eq!(blocking(|| std::thread::current().id()), here);
}

#[test]
fn calls_beyond_the_thread_bound_wait_their_turn() {
    within(Duration::from_secs(30), || {
        let rt = Runtime::builder()
            .workers(2)
            .max_blocking_threads(2)
            .build()
            .unwrap();
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let (running, most) = (Arc::clone(&running), Arc::clone(&most));
                rt.spawn(move || {
                    blocking(|| {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        assert!(most.load(Ordering::SeqCst) <= 2);
    });
}

/// Two calls that each wait for the other need two threads: the second call must not queue
/// behind the first while the bound allows another thread.
#[test]
fn a_call_does_not_wait_behind_another_while_threads_are_allowed() {
    within(Duration::from_secs(30), || {
        let rt = runtime(1);
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let barrier = Arc::clone(&barrier);
                rt.spawn(move || blocking(|| barrier.wait().is_leader()))
            })
            .collect();
        let leaders = handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .filter(|&leader| leader)
            .count();
        assert_eq!(leaders, 1);
    });
}

/// Shutdown does not unwind a goroutine whose blocking call may still use what it borrowed
/// from the goroutine's stack: the goroutine is leaked and listed, and the call finishes
/// with its borrow intact.
#[test]
fn shutdown_leaks_a_goroutine_in_a_blocking_call_instead_of_unwinding_it() {
    within(Duration::from_secs(30), || {
        let rt = runtime(1);
        let (started, is_started) = std::sync::mpsc::channel();
        let (finished, is_finished) = std::sync::mpsc::channel();
        drop(rt.spawn(move || {
            let borrowed = vec![7u8; 1024];
            blocking(|| {
                started.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(300));
                finished
                    .send(borrowed.iter().map(|&b| b as usize).sum::<usize>())
                    .unwrap();
            });
        }));
        is_started.recv().unwrap();
        let begun = Instant::now();
        let report = rt.shutdown();
        assert!(begun.elapsed() < Duration::from_secs(20));
        assert_eq!(report.leaked.len(), 1, "{:?}", report.leaked);
        assert_eq!(is_finished.recv().unwrap(), 7 * 1024);
    });
}

#[test]
fn zero_blocking_threads_or_thresholds_are_refused() {
    assert!(matches!(
        Runtime::builder().max_blocking_threads(0).build(),
        Err(BuildError::NoBlockingThreads)
    ));
    assert!(matches!(
        Runtime::builder().preempt_after(Duration::ZERO).build(),
        Err(BuildError::ZeroThreshold("preempt_after"))
    ));
    assert!(matches!(
        Runtime::builder().stuck_after(Duration::ZERO).build(),
        Err(BuildError::ZeroThreshold("stuck_after"))
    ));
}

/// Sets its flag when dropped: shows that a goroutine was unwound.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A goroutine whose blocking call returns while shutdown is still unwinding others is
/// unwound too, its destructors run: the call gives its borrow of the stack back as it ends.
/// Before, the goroutine still counted the borrow when shutdown looked at it, and was leaked.
#[test]
fn a_blocking_call_that_returns_during_shutdown_lets_its_goroutine_unwind() {
    within(Duration::from_secs(30), || {
        let rt = runtime(1);
        let unwound = Arc::new(AtomicBool::new(false));
        let (started, is_started) = std::sync::mpsc::channel();
        let guard = SetOnDrop(Arc::clone(&unwound));
        drop(rt.spawn(move || {
            let _guard = guard;
            blocking(|| {
                started.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(200));
            });
            loop {
                gsched::park();
            }
        }));
        // Keeps shutdown busy past the call's end: its destructor waits for a timer.
        struct SlowDrop;
        impl Drop for SlowDrop {
            fn drop(&mut self) {
                gsched::sleep(Duration::from_millis(600));
            }
        }
        let (slow_started, is_slow_started) = std::sync::mpsc::channel();
        drop(rt.spawn(move || {
            let _slow = SlowDrop;
            slow_started.send(()).unwrap();
            loop {
                gsched::park();
            }
        }));
        is_started.recv().unwrap();
        // Shutdown unwinds only goroutines that started: this one must have.
        is_slow_started.recv().unwrap();
        let report = rt.shutdown();
        assert!(
            unwound.load(Ordering::SeqCst),
            "the goroutine was leaked: {:?}",
            report.leaked
        );
    });
}
