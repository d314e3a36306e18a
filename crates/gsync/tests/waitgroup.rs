//! WaitGroup, Once and Cond.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gsched::{Runtime, go};
use gsync::{Cond, Mutex, Once, WaitGroup};

fn runtime(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().unwrap()
}

#[test]
fn wait_returns_once_every_goroutine_is_done() {
    let rt = runtime(2);
    rt.block_on(|| {
        let finished = Arc::new(AtomicUsize::new(0));
        let wg = WaitGroup::new();
        for _ in 0..10_000 {
            let finished = Arc::clone(&finished);
            wg.go(move || {
                gsched::yield_now();
                finished.fetch_add(1, Ordering::Relaxed);
            });
        }
        wg.wait();
        assert_eq!(finished.load(Ordering::Relaxed), 10_000);
        assert_eq!(wg.count(), 0);
    });
}

#[test]
fn many_waiters_on_goroutines_and_threads_are_all_released_and_the_group_is_reused() {
    let rt = runtime(2);
    let wg = WaitGroup::new();
    for round in 0..20 {
        wg.add(1);
        let released = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (wg, released) = (wg.clone(), Arc::clone(&released));
                std::thread::spawn(move || {
                    wg.wait();
                    released.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        let (wg_main, released_main) = (wg.clone(), Arc::clone(&released));
        rt.block_on(move || {
            let (wg, released) = (wg_main, released_main);
            let waiters: Vec<_> = (0..50)
                .map(|_| {
                    let (wg, released) = (wg.clone(), Arc::clone(&released));
                    go(move || {
                        wg.wait();
                        released.fetch_add(1, Ordering::SeqCst);
                    })
                })
                .collect();
            gsched::yield_now();
            assert_eq!(
                released.load(Ordering::SeqCst),
                0,
                "round {round}: released early"
            );
            wg.done();
            for waiter in waiters {
                waiter.join().unwrap();
            }
        });
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(released.load(Ordering::SeqCst), 52);
    }
}

#[test]
fn a_negative_counter_panics_with_gos_message_and_changes_nothing() {
    let wg = WaitGroup::new();
    wg.add(2);
    let panic = std::panic::catch_unwind(|| wg.add(-3)).unwrap_err();
    assert_eq!(
        panic.downcast_ref::<&str>(),
        Some(&"sync: negative WaitGroup counter")
    );
    assert_eq!(wg.count(), 2);
    wg.add(-2);
    wg.wait();
}

#[test]
fn a_counter_overflow_panics() {
    let wg = WaitGroup::new();
    wg.add(i32::MAX);
    let panic = std::panic::catch_unwind(|| wg.add(1)).unwrap_err();
    assert_eq!(
        panic.downcast_ref::<&str>(),
        Some(&"sync: WaitGroup counter overflow")
    );
    assert_eq!(wg.count(), i32::MAX as u32);
}

#[test]
fn go_marks_done_even_when_the_goroutine_panics() {
    let rt = runtime(1);
    rt.block_on(|| {
        let wg = WaitGroup::new();
        wg.go(|| panic!("expected in this test"));
        wg.wait();
    });
}

#[test]
fn once_runs_its_initializer_once_while_others_wait() {
    let rt = runtime(2);
    rt.block_on(|| {
        let once = Arc::new(Once::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let wg = WaitGroup::new();
        for _ in 0..100 {
            let (once, runs) = (Arc::clone(&once), Arc::clone(&runs));
            wg.go(move || {
                let value = once.get_or_init(|| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    gsched::sleep(Duration::from_millis(5));
                    42
                });
                assert_eq!(*value, 42);
            });
        }
        wg.wait();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn a_panicking_initializer_leaves_the_once_empty_for_the_next_caller() {
    let once = Once::new();
    let panicked = std::panic::catch_unwind(|| {
        once.get_or_init(|| -> u32 { panic!("expected in this test") });
    });
    assert!(panicked.is_err());
    let panicked = std::panic::catch_unwind(|| {
        once.get_or_init(|| -> u32 { panic!("expected in this test, again") });
    });
    assert!(panicked.is_err());
    assert_eq!(once.get(), None);
    assert_eq!(*once.get_or_init(|| 7), 7);
    assert_eq!(once.into_inner(), Some(7));
}

#[test]
fn cond_signal_wakes_one_and_broadcast_wakes_all() {
    let rt = runtime(2);
    rt.block_on(|| {
        let state = Arc::new((Mutex::new(0u32), Cond::new()));
        let woken = Arc::new(AtomicUsize::new(0));
        let waiters: Vec<_> = (0..20)
            .map(|_| {
                let (state, woken) = (Arc::clone(&state), Arc::clone(&woken));
                go(move || {
                    let (mutex, cond) = &*state;
                    let mut tickets = mutex.lock();
                    while *tickets == 0 {
                        tickets = cond.wait(tickets);
                    }
                    *tickets -= 1;
                    woken.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        gsched::sleep(Duration::from_millis(5));
        let (mutex, cond) = &*state;
        *mutex.lock() += 1;
        cond.signal();
        while woken.load(Ordering::SeqCst) < 1 {
            gsched::sleep(Duration::from_millis(1));
        }
        gsched::sleep(Duration::from_millis(5));
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        *mutex.lock() += 19;
        cond.broadcast();
        for waiter in waiters {
            waiter.join().unwrap();
        }
        assert_eq!(woken.load(Ordering::SeqCst), 20);
    });
}

#[test]
fn goroutines_parked_in_primitives_are_unwound_cleanly_at_shutdown() {
    // Each waiter leaves its queue as it unwinds; a use after shutdown must find the queues
    // consistent (no dangling waiter).
    let rt = runtime(2);
    let mutex = Arc::new(Mutex::new(()));
    let wg = WaitGroup::new();
    let cond = Arc::new((Mutex::new(()), Cond::new()));
    // Senders block on one channel, receivers on another, so that they cannot meet.
    let (tx, unread) = gsync::chan::<u32>(0);
    let (unsent, rx) = gsync::chan::<u32>(0);
    let held = mutex.lock();
    wg.add(1);
    let (mutex_main, wg_main, cond_main, tx_main, rx_main) = (
        Arc::clone(&mutex),
        wg.clone(),
        Arc::clone(&cond),
        tx.clone(),
        rx.clone(),
    );
    rt.block_on(move || {
        let (mutex, wg, cond, tx, rx) = (mutex_main, wg_main, cond_main, tx_main, rx_main);
        for _ in 0..10 {
            let mutex = Arc::clone(&mutex);
            go(move || drop(mutex.lock()));
            let wg = wg.clone();
            go(move || wg.wait());
            let cond = Arc::clone(&cond);
            go(move || {
                let (mutex, cond) = &*cond;
                drop(cond.wait(mutex.lock()));
            });
            let tx = tx.clone();
            go(move || tx.send(1));
            let rx = rx.clone();
            go(move || rx.recv());
        }
        gsched::sleep(Duration::from_millis(20));
    });
    let report = rt.shutdown();
    assert_eq!(report.leaked.len(), 50, "{:#?}", report.leaked);
    drop(held);
    assert!(mutex.try_lock().is_some());
    wg.done();
    wg.wait();
    cond.1.broadcast();
    assert_eq!(unread.try_recv(), Err(gsync::TryRecvError::Empty));
    assert_eq!(unsent.try_send(5), Err(gsync::TrySendError::Full(5)));
}
