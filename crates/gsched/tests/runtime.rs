//! The runtime through its public API.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use gsched::{Runtime, go, scope};

fn runtime(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().unwrap()
}

#[test]
fn a_million_goroutines_spawned_and_joined() {
    let rt = runtime(2);
    let total = rt.block_on(|| {
        let handles: Vec<_> = (0..1_000_000u64).map(|i| go(move || i)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    assert_eq!(total, (0..1_000_000u64).sum());
    assert_eq!(rt.shutdown().leaked.len(), 0);
}

#[test]
fn a_started_goroutine_never_changes_thread() {
    let rt = runtime(2);
    let moved = rt.block_on(|| {
        let handles: Vec<_> = (0..10_000)
            .map(|_| {
                go(|| {
                    let first = std::thread::current().id();
                    (0..20).all(|_| {
                        gsched::yield_now();
                        std::thread::current().id() == first
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|stayed| !stayed)
            .count()
    });
    assert_eq!(moved, 0);
}

/// A backlog of goroutines is shared out: the other worker steals its half. It must get a CPU
/// before the spawner's worker runs them all (about 40 ms): a few tries tell a busy machine
/// from a runtime that never steals, which fails them all.
#[test]
fn fresh_goroutines_spread_over_workers() {
    let threads = (0..5)
        .map(|_| workers_that_ran_a_backlog())
        .collect::<Vec<_>>();
    assert!(
        threads.contains(&2),
        "no try had both workers run fresh goroutines: {threads:?}"
    );
}

/// Spawns 2,000 goroutines with some work each on a 2-worker runtime; how many worker threads
/// ran them.
fn workers_that_ran_a_backlog() -> usize {
    let rt = runtime(2);
    rt.block_on(|| {
        let seen = Arc::new(Mutex::new(HashSet::new()));
        let handles: Vec<_> = (0..2000)
            .map(|_| {
                let seen = Arc::clone(&seen);
                go(move || {
                    // Enough work that the other worker has time to steal.
                    let mut x = 0u64;
                    for i in 0..20_000 {
                        x = x.wrapping_mul(31).wrapping_add(i);
                    }
                    seen.lock().unwrap().insert(std::thread::current().id());
                    x
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        let seen = seen.lock().unwrap();
        seen.len()
    })
}

#[test]
fn a_panic_reaches_join_with_its_payload() {
    let rt = runtime(2);
    rt.block_on(|| {
        let handle = gsched::Builder::new()
            .name("doomed")
            .spawn(|| -> u8 { std::panic::panic_any(17u32) })
            .unwrap();
        assert_eq!(handle.name(), Some("doomed"));
        let payload = handle.join().unwrap_err();
        assert_eq!(payload.downcast_ref::<u32>(), Some(&17));
    });
}

#[test]
fn block_on_reraises_the_main_goroutine_panic() {
    let rt = runtime(1);
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(|| panic!("main failed"))
    }))
    .unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"main failed"));
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_leaked_goroutine_is_unwound_at_shutdown() {
    let dropped = Arc::new(AtomicBool::new(false));
    let rt = Runtime::builder()
        .workers(2)
        .leak_report(true)
        .build()
        .unwrap();
    let guard = SetOnDrop(Arc::clone(&dropped));
    let started = Arc::new(Barrier::new(2));
    let started_in = Arc::clone(&started);
    drop(
        gsched::Builder::new()
            .name("forever")
            .spawn_on(&rt, move || {
                let _guard = guard;
                started_in.wait();
                loop {
                    gsched::park_with_reason("a test that never wakes it");
                }
            }),
    );
    started.wait();
    // Let it reach its park.
    std::thread::sleep(Duration::from_millis(50));
    let report = rt.shutdown();
    assert!(
        dropped.load(Ordering::SeqCst),
        "the parked goroutine's destructors ran"
    );
    assert_eq!(report.leaked.len(), 1, "{:?}", report.leaked);
    let line = &report.leaked[0];
    assert!(line.contains("\"forever\""), "{line}");
    assert!(line.contains("tests/runtime.rs"), "{line}");
    assert!(line.contains("a test that never wakes it"), "{line}");
}

#[test]
fn a_goroutine_that_only_yields_is_unwound_at_shutdown() {
    let dropped = Arc::new(AtomicBool::new(false));
    let rt = Runtime::builder().workers(1).build().unwrap();
    let guard = SetOnDrop(Arc::clone(&dropped));
    let started = Arc::new(Barrier::new(2));
    let started_in = Arc::clone(&started);
    drop(rt.spawn(move || {
        let _guard = guard;
        started_in.wait();
        loop {
            gsched::yield_now();
        }
    }));
    started.wait();
    let report = rt.shutdown();
    assert!(
        dropped.load(Ordering::SeqCst),
        "the yielding goroutine's destructors ran"
    );
    assert_eq!(report.leaked.len(), 1, "{:?}", report.leaked);
}

#[test]
fn ten_thousand_sleepers_wake_together() {
    let rt = runtime(2);
    let elapsed = rt.block_on(|| {
        let start = Instant::now();
        let handles: Vec<_> = (0..10_000)
            .map(|_| go(|| gsched::sleep(Duration::from_millis(50))))
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        start.elapsed()
    });
    assert!(elapsed >= Duration::from_millis(50));
    // Generous: sleeping parks goroutines, so this takes 50 ms plus scheduling, not 10,000 × 50 ms.
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn unpark_from_threads_loses_no_wakeup() {
    let rt = runtime(2);
    let rounds = 2_000;
    let counter = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = std::sync::mpsc::channel();
    let seen = Arc::clone(&counter);
    let waiter = rt.spawn(move || {
        tx.send(gsched::current_unparker()).unwrap();
        let mut observed = 0;
        while observed < rounds {
            let now = seen.load(Ordering::Acquire);
            if now > observed {
                observed = now;
            } else {
                gsched::park();
            }
        }
        observed
    });
    let unparker = rx.recv().unwrap();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let unparker = unparker.clone();
            let counter = Arc::clone(&counter);
            std::thread::spawn(move || {
                for _ in 0..rounds / 2 {
                    counter.fetch_add(1, Ordering::Release);
                    unparker.unpark();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(waiter.join().unwrap(), rounds);
}

#[test]
fn park_timeout_returns_and_current_names_the_goroutine() {
    let rt = runtime(1);
    rt.block_on(|| {
        let me = gsched::current().expect("inside a goroutine");
        assert_eq!(me.name(), Some("main"));
        let start = Instant::now();
        gsched::park_timeout(Duration::from_millis(20));
        gsched::park_timeout(Duration::from_millis(20));
        assert!(start.elapsed() >= Duration::from_millis(1));
        let child = go(|| gsched::current().unwrap().id());
        assert_ne!(child.join().unwrap(), me.id());
    });
    assert!(gsched::current().is_none());
}

#[test]
fn scope_borrows_and_reraises_an_unjoined_panic() {
    let rt = runtime(2);
    rt.block_on(|| {
        let data = vec![1u64, 2, 3, 4];
        let total = AtomicUsize::new(0);
        scope(|s| {
            for &x in &data {
                let total = &total;
                s.go(move || total.fetch_add(x as usize, Ordering::Relaxed));
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 10);

        let joined = scope(|s| s.go(|| -> u8 { panic!("joined") }).join().is_err());
        assert!(joined, "a joined panic is the joiner's");

        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            scope(|s| {
                s.go(|| panic!("unjoined"));
                s.go(|| gsched::sleep(Duration::from_millis(5)));
            })
        }))
        .unwrap_err();
        assert_eq!(err.downcast_ref::<&str>(), Some(&"unjoined"));
    });
}

#[test]
fn go_outside_any_runtime_uses_the_default_one() {
    let handle = go(|| gsched::current().is_some());
    assert!(handle.join().unwrap());
}

#[test]
fn a_migratable_goroutine_runs_and_joins() {
    let rt = runtime(2);
    let values = rt.block_on(|| {
        let handles: Vec<_> = (0..100u32)
            .map(|i| {
                // SAFETY: the body holds nothing thread-bound across its yields.
                unsafe { gsched::Builder::new().migratable() }
                    .spawn(move || {
                        for _ in 0..10 {
                            gsched::yield_now();
                        }
                        i
                    })
                    .unwrap()
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum::<u32>()
    });
    assert_eq!(values, (0..100).sum());
}

/// Ping-pong between a goroutine and a plain thread through park/unpark. A lost wake-up would
/// leave the goroutine parked until its five-second safety timeout (a delay the partner thread
/// could not cause even on a loaded machine); none may happen.
#[test]
fn thread_to_goroutine_ping_pong_loses_no_wakeup() {
    let rt = runtime(1);
    let lost = rt.block_on(|| {
        let ping = Arc::new(AtomicBool::new(false));
        let pong = Arc::new(AtomicBool::new(false));
        let me = gsched::current_unparker();
        let (partner_ping, partner_pong) = (Arc::clone(&ping), Arc::clone(&pong));
        let (tx, rx) = std::sync::mpsc::channel();
        const ROUNDS: usize = 50_000;
        let partner = std::thread::spawn(move || {
            tx.send(gsched::current_unparker()).unwrap();
            for _ in 0..ROUNDS {
                while !partner_ping.swap(false, Ordering::Acquire) {
                    gsched::park();
                }
                partner_pong.store(true, Ordering::Release);
                me.unpark();
            }
        });
        let partner_unparker = rx.recv().unwrap();
        let mut lost = 0;
        for _ in 0..ROUNDS {
            ping.store(true, Ordering::Release);
            partner_unparker.unpark();
            while !pong.swap(false, Ordering::Acquire) {
                let start = Instant::now();
                gsched::park_timeout(Duration::from_secs(5));
                if start.elapsed() >= Duration::from_secs(5) {
                    lost += 1;
                }
            }
        }
        partner.join().unwrap();
        lost
    });
    assert_eq!(lost, 0, "wake-ups were lost");
}
