//! `Semaphore`, with the behaviour Go's `semaphore_test.go` checks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gsync::{Context, ContextError, Semaphore, WaitGroup};
use proptest::prelude::*;

#[test]
fn weighted_holders_never_exceed_the_size() {
    let size = 7;
    let sem = Arc::new(Semaphore::new(size));
    let held = Arc::new(AtomicU64::new(0));
    let wg = WaitGroup::new();
    for worker in 0..16u64 {
        let (sem, held) = (sem.clone(), held.clone());
        wg.go(move || {
            for round in 0..200u64 {
                let n = 1 + (worker + round) % size;
                sem.acquire(n);
                let now = held.fetch_add(n, Ordering::SeqCst) + n;
                assert!(now <= size, "{now} units held of {size}");
                if round % 7 == 0 {
                    gsched::yield_now();
                }
                held.fetch_sub(n, Ordering::SeqCst);
                sem.release(n);
            }
        });
    }
    wg.wait();
    assert!(sem.try_acquire(size));
}

#[test]
#[should_panic(expected = "semaphore: released more than held")]
fn releasing_more_than_held_panics() {
    let sem = Semaphore::new(2);
    sem.acquire(1);
    sem.release(2);
}

#[test]
#[should_panic(expected = "exceeds the size")]
fn acquiring_more_than_the_size_panics_instead_of_blocking_for_good() {
    Semaphore::new(2).acquire(3);
}

#[test]
fn try_acquire_takes_only_what_is_free() {
    let sem = Semaphore::new(2);
    assert!(sem.try_acquire(1));
    assert!(sem.try_acquire(1));
    assert!(!sem.try_acquire(1));
    sem.release(2);
    assert!(sem.try_acquire(2));
}

#[test]
fn an_acquire_with_a_done_context_fails_and_takes_nothing() {
    let sem = Semaphore::new(2);
    let (ctx, cancel) = Context::background().with_cancel();
    cancel.cancel();
    assert_eq!(sem.acquire_ctx(&ctx, 1), Err(ContextError::Canceled));
    assert!(sem.try_acquire(2), "nothing was taken");
    sem.release(2);
    // A waiter whose context times out gives up, and leaves the semaphore consistent.
    sem.acquire(2);
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(20));
    assert_eq!(
        sem.acquire_ctx(&ctx, 1),
        Err(ContextError::DeadlineExceeded)
    );
    sem.release(2);
    assert!(sem.try_acquire(2));
}

#[test]
fn a_request_too_big_waits_for_its_context_without_blocking_others() {
    let sem = Arc::new(Semaphore::new(1));
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(30));
    let big = gsched::go({
        let sem = sem.clone();
        move || sem.acquire_ctx(&ctx, 2)
    });
    // Others proceed meanwhile.
    sem.acquire(1);
    sem.release(1);
    assert_eq!(big.join().unwrap(), Err(ContextError::DeadlineExceeded));
}

#[test]
fn a_large_waiter_is_not_starved_by_small_ones() {
    // Go's TestLargeAcquireDoesntStarve: small holders cycle; once the large waiter queues,
    // new small acquires wait behind it, so it gets the whole semaphore.
    let n = 5;
    let sem = Arc::new(Semaphore::new(n));
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let wg = WaitGroup::new();
    for _ in 0..n {
        let (sem, running) = (sem.clone(), running.clone());
        sem.acquire(1);
        wg.go(move || {
            while running.load(Ordering::Relaxed) {
                gsched::sleep(Duration::from_millis(1));
                sem.release(1);
                sem.acquire(1);
            }
            sem.release(1);
        });
    }
    sem.acquire(n);
    running.store(false, Ordering::Relaxed);
    sem.release(n);
    wg.wait();
}

#[test]
fn a_cancelled_waiter_at_the_front_lets_the_smaller_ones_behind_in() {
    // Go's TestAllocCancelDoesntStarve.
    let sem = Arc::new(Semaphore::new(10));
    sem.acquire(1);
    let (ctx, cancel) = Context::background().with_cancel();
    let big = gsched::go({
        let sem = sem.clone();
        move || sem.acquire_ctx(&ctx, 10)
    });
    while sem.try_acquire(1) {
        // The big waiter has not queued yet.
        sem.release(1);
        gsched::sleep(Duration::from_millis(1));
    }
    let small = gsched::go({
        let sem = sem.clone();
        move || sem.acquire(1)
    });
    gsched::sleep(Duration::from_millis(5));
    assert!(
        !small.is_finished(),
        "the small waiter queues behind the big one"
    );
    cancel.cancel();
    assert_eq!(big.join().unwrap(), Err(ContextError::Canceled));
    small.join().unwrap();
    sem.release(2);
    assert!(sem.try_acquire(10));
}

proptest! {
    /// Held units follow a model through any sequence of non-blocking steps.
    #[test]
    fn try_acquire_and_release_follow_a_counter(
        size in 1u64..20,
        steps in proptest::collection::vec((any::<bool>(), 1u64..25), 0..60),
    ) {
        let sem = Semaphore::new(size);
        let mut held = 0u64;
        for (take, n) in steps {
            if take {
                let fits = held + n <= size;
                prop_assert_eq!(sem.try_acquire(n), fits);
                if fits {
                    held += n;
                }
            } else if n <= held {
                sem.release(n);
                held -= n;
            }
        }
        prop_assert_eq!(sem.try_acquire(size - held), true);
    }
}

#[test]
fn a_waiter_unwound_by_its_runtimes_shutdown_leaves_the_queue() {
    let sem = Arc::new(Semaphore::new(1));
    sem.acquire(1);
    let rt = gsched::Runtime::builder().workers(1).build().unwrap();
    let waiter = rt.spawn({
        let sem = sem.clone();
        move || sem.acquire(1)
    });
    while format!("{sem:?}").contains("waiting: 0") {
        std::thread::sleep(Duration::from_millis(1));
    }
    // Shutdown unwinds the parked waiter; it must not stay at the front of the queue.
    drop(rt);
    assert!(waiter.join().is_err(), "the waiter was dropped at shutdown");
    sem.release(1);
    assert!(sem.try_acquire(1), "a dead waiter kept the unit: {sem:?}");
}
