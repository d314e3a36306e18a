//! The monitor on a clock moved by hand: what it marks and reports, and when.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use super::Monitor;
use crate::shim::Clock;
use crate::{Builder, Runtime, go};

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// A goroutine blocked in a raw `std::thread::sleep`: the monitor ends its slice at 10 ms,
/// marks its worker stuck and reports it once at 20 ms, and the goroutines it spawned start on
/// the other worker.
#[test]
fn a_goroutine_blocking_its_worker_is_marked_reported_once_and_its_queue_moves() {
    let start = Instant::now();
    let clock = Arc::new(Mutex::new(start));
    // The runtime's own monitor runs on the same clock, which stands still unless moved: it
    // never fires, and this test drives a monitor of its own.
    let rt = Runtime::builder()
        .workers(2)
        .clock(Clock::Manual(Arc::clone(&clock)))
        .build()
        .unwrap();
    let release = Arc::new(AtomicBool::new(false));
    let (blocked, blocked_on) = mpsc::channel();
    let released = Arc::clone(&release);
    let blocker = Builder::new()
        .name("blocker")
        .spawn_on(&rt, move || {
            let children: Vec<_> = (0..2).map(|_| go(|| thread::current().id())).collect();
            blocked.send((thread::current().id(), children)).unwrap();
            while !released.load(Ordering::Acquire) {
                thread::sleep(ms(1));
            }
        })
        .unwrap();
    let (blocker_thread, children): (ThreadId, Vec<_>) =
        blocked_on.recv_timeout(Duration::from_secs(20)).unwrap();
    let blocker_id = blocker.id();
    let worker = (0..2)
        .find(|&index| {
            rt.shared.workers[index]
                .watch
                .running
                .load(Ordering::Acquire)
                == blocker_id
        })
        .expect("the blocker runs on a worker");
    let watch = &rt.shared.workers[worker].watch;

    let mut monitor = Monitor::new(Arc::clone(&rt.shared));
    assert!(monitor.look(start).is_empty());
    assert!(monitor.look(start + ms(9)).is_empty());
    assert!(!watch.slice_expired());
    assert!(monitor.look(start + ms(10)).is_empty());
    assert!(watch.slice_expired(), "the slice ends after 10 ms");
    assert!(!watch.stuck.load(Ordering::Acquire));
    assert!(monitor.look(start + ms(19)).is_empty());

    let reports = monitor.look(start + ms(20));
    assert!(
        watch.stuck.load(Ordering::Acquire),
        "the worker is stuck after 20 ms"
    );
    assert_eq!(reports.len(), 1, "{reports:?}");
    let report = &reports[0];
    assert!(
        report.contains(&format!("goroutine {blocker_id} \"blocker\"")),
        "{report}"
    );
    assert!(
        report.contains("spawned at crates/gsched/src/scheduler/monitor/tests.rs"),
        "{report}"
    );
    assert!(report.contains("has run 20 ms"), "{report}");
    assert!(monitor.look(start + ms(45)).is_empty(), "reported once");

    // While the blocker still blocks, its children run on the other worker, which the mark
    // woke.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !children.iter().all(|child| child.is_finished()) {
        assert!(
            Instant::now() < deadline,
            "the children waited for the blocker"
        );
        thread::sleep(ms(1));
    }
    release.store(true, Ordering::Release);
    blocker.join().unwrap();
    for child in children {
        assert_ne!(child.join().unwrap(), blocker_thread);
    }
}

/// A goroutine that keeps switching is never marked stuck, and a worker with no goroutine has
/// no slice to end.
#[test]
fn switching_goroutines_and_idle_workers_are_left_alone() {
    let start = Instant::now();
    let clock = Arc::new(Mutex::new(start));
    let rt = Runtime::builder()
        .workers(1)
        .clock(Clock::Manual(Arc::clone(&clock)))
        .build()
        .unwrap();
    let mut monitor = Monitor::new(Arc::clone(&rt.shared));
    let watch = &rt.shared.workers[0].watch;
    for step in 0..10 {
        assert!(monitor.look(start + ms(step * 30)).is_empty());
        assert!(!watch.slice_expired() && !watch.stuck.load(Ordering::Acquire));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let yielder = rt.spawn(move || {
        while !stopped.load(Ordering::Acquire) {
            crate::yield_now();
        }
    });
    for step in 10..20 {
        // Real time passes between looks, so the goroutine switches in between.
        thread::sleep(ms(2));
        assert!(monitor.look(start + ms(step * 30)).is_empty());
        assert!(!watch.stuck.load(Ordering::Acquire));
    }
    stop.store(true, Ordering::Release);
    yielder.join().unwrap();
}
