//! Goroutines beyond the stack budget wait for stacks; when none can ever be freed the runtime
//! stops with a clear error. Both run in child processes: the budget is process-wide.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gsched::{Runtime, go};
use testkit::ChildTest;

const CHILD: ChildTest = ChildTest::new("GSCHED_STACK_LIMIT_CHILD");

#[test]
fn goroutines_wait_for_stacks_when_the_budget_is_spent() {
    const NAME: &str = "goroutines_wait_for_stacks_when_the_budget_is_spent";
    if CHILD.is_child(NAME) {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let finished = rt.block_on(|| {
            gstack::set_stack_limit(gstack::stacks_in_use() + 6);
            let handles: Vec<_> = (0..60u32)
                .map(|i| {
                    go(move || {
                        gsched::sleep(Duration::from_millis(2));
                        i
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum::<u32>()
        });
        assert_eq!(finished, (0..60).sum());
        println!("all finished");
        return;
    }
    assert_all_finished(&CHILD.run(NAME).output());
}

/// Goroutines wait for stacks longer than the stall check while an outside thread holds the
/// key to their release: the runtime must keep waiting, never end the process on a guess.
#[test]
fn a_long_wait_for_stacks_that_an_outside_thread_ends_is_not_killed() {
    const NAME: &str = "a_long_wait_for_stacks_that_an_outside_thread_ends_is_not_killed";
    if CHILD.is_child(NAME) {
        static RELEASED: AtomicBool = AtomicBool::new(false);
        let rt = Runtime::builder().workers(2).build().unwrap();
        let (unparkers_tx, unparkers_rx) = std::sync::mpsc::channel();
        let releaser = std::thread::spawn(move || {
            // Past the runtime's two-second stall check.
            std::thread::sleep(Duration::from_secs(3));
            RELEASED.store(true, Ordering::SeqCst);
            for unparker in unparkers_rx.iter().take(4) {
                gsched::Unparker::unpark(&unparker);
            }
        });
        let finished = rt.block_on(move || {
            gstack::set_stack_limit(gstack::stacks_in_use() + 4);
            let handles: Vec<_> = (0..20u32)
                .map(|i| {
                    let unparkers_tx = unparkers_tx.clone();
                    go(move || {
                        if unparkers_tx.send(gsched::current_unparker()).is_ok() {
                            while !RELEASED.load(Ordering::SeqCst) {
                                gsched::park();
                            }
                        }
                        i
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum::<u32>()
        });
        releaser.join().unwrap();
        assert_eq!(finished, (0..20).sum());
        println!("all finished");
        return;
    }
    let output = CHILD.run(NAME).output();
    assert_all_finished(&output);
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("no goroutine can make progress"),
        "{output:?}"
    );
}

/// Stacks idle in another worker's cache count as in use: when goroutines wait for a stack,
/// that worker hands its cache over instead of sleeping on it. Before, the goroutines waited for
/// good behind four cached stacks on a sleeping worker.
#[test]
fn goroutines_waiting_for_stacks_get_those_cached_on_another_worker() {
    const NAME: &str = "goroutines_waiting_for_stacks_get_those_cached_on_another_worker";
    if CHILD.is_child(NAME) {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let finished = rt.block_on(|| {
            gstack::set_stack_limit(gstack::stacks_in_use() + 4);
            // Four goroutines run at once on the other worker and end: their four stacks stay in
            // its cache.
            let started = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let spread: Vec<_> = (0..4)
                .map(|_| {
                    let started = std::sync::Arc::clone(&started);
                    gsched::Builder::new()
                        .spread()
                        .spawn(move || {
                            started.fetch_add(1, Ordering::SeqCst);
                            while started.load(Ordering::SeqCst) < 4 {
                                gsched::yield_now();
                            }
                        })
                        .unwrap()
                })
                .collect();
            for handle in spread {
                handle.join().unwrap();
            }
            // Let that worker go to sleep with them.
            gsched::sleep(Duration::from_millis(50));
            let handles: Vec<_> = (0..4u32).map(|i| go(move || i)).collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum::<u32>()
        });
        assert_eq!(finished, 6);
        println!("all finished");
        return;
    }
    assert_all_finished(&CHILD.run(NAME).limit(Duration::from_secs(30)).output());
}

/// The child ran every goroutine to the end and said so.
fn assert_all_finished(output: &std::process::Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("all finished"),
        "{output:?}"
    );
}

/// The stack a worker keeps from its last finished goroutine, for its next one, is a stack
/// others may wait for: with a dense region full (the main goroutine's stack and that spare),
/// a goroutine started on the other worker is refused and waits; the keeping worker, once idle,
/// gives the spare back and lets the waiter try again, rather than sleeping beside it.
#[test]
fn a_goroutine_waiting_for_the_stack_a_worker_kept_gets_it() {
    const NAME: &str = "a_goroutine_waiting_for_the_stack_a_worker_kept_gets_it";
    if CHILD.is_child(NAME) {
        // SAFETY: the goroutines here stay a few frames deep, far inside a 64 KiB slot.
        let rt = unsafe { Runtime::builder().workers(2).dense_stacks(64 * 1024, 2) }
            .build()
            .unwrap();
        let value = rt.block_on(|| {
            // Finishes on this worker, which keeps its stack.
            gsched::Builder::new()
                .same_worker()
                .spawn(|| ())
                .unwrap()
                .join()
                .unwrap();
            // On the other worker, refused: the region is full.
            let refused = gsched::Builder::new().spread().spawn(|| 7).unwrap();
            // This worker stays busy meanwhile, so it cannot give the spare back first.
            let busy_until = std::time::Instant::now() + Duration::from_millis(50);
            while std::time::Instant::now() < busy_until {
                std::hint::spin_loop();
            }
            refused.join().unwrap()
        });
        assert_eq!(value, 7);
        println!("all finished");
        return;
    }
    assert_all_finished(&CHILD.run(NAME).limit(Duration::from_secs(30)).output());
}
