//! The monitor on a clock moved by hand: what it marks and reports, and when.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use super::Monitor;
use super::thread_times::ThreadTimes;
use crate::shim::Clock;
use crate::{Builder, Runtime, go};

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// A runtime of `workers` whose own monitor reads a clock that stands still (it never fires:
/// each test drives a monitor of its own), and the moment that clock shows.
fn hand_clocked_runtime(workers: usize) -> (Runtime, Instant) {
    let start = Instant::now();
    let rt = Runtime::builder()
        .workers(workers)
        .clock(Clock::Manual(Arc::new(Mutex::new(start))))
        .build()
        .unwrap();
    (rt, start)
}

/// Sets its flag however the test ends: a goroutine that loops until the flag is set must stop
/// before the runtime's shutdown waits for it, or a failed assertion would hang the test.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// A goroutine blocked in a raw `std::thread::sleep`: the monitor ends its slice at 10 ms,
/// marks its worker stuck and reports it once at 20 ms, and the goroutines it spawned start on
/// the other worker.
#[test]
fn a_goroutine_blocking_its_worker_is_marked_reported_once_and_its_queue_moves() {
    let (rt, start) = hand_clocked_runtime(2);
    let release = Arc::new(AtomicBool::new(false));
    let _release_on_drop = SetOnDrop(Arc::clone(&release));
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
    // A thread blocked in the kernel, as the blocker's is, whatever a loaded machine does to
    // the real one meanwhile: the measure begins at 10 ms, and the judgement at 20 ms blames
    // the goroutine.
    monitor.thread_times_of = Box::new(|_| {
        Some(ThreadTimes {
            on_cpu: Duration::ZERO,
            waited: Duration::ZERO,
            runnable: false,
        })
    });
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
    // A child caught running on the other worker, whose thread a loaded machine keeps off the
    // CPU for a moment, has "run" 20 ms of this hand-moved clock too, and is reported as well.
    let about_blocker: Vec<_> = reports
        .iter()
        .filter(|report| report.contains(&format!("goroutine {blocker_id} \"blocker\"")))
        .collect();
    assert_eq!(about_blocker.len(), 1, "{reports:?}");
    let report = about_blocker[0];
    assert!(
        report.contains("spawned at crates/gsched/src/scheduler/monitor/tests.rs"),
        "{report}"
    );
    assert!(report.contains("has run 20 ms"), "{report}");

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
    // Only once they are done: a child caught running at a look 25 ms of this clock later
    // would read as another long run.
    assert!(monitor.look(start + ms(45)).is_empty(), "reported once");
    release.store(true, Ordering::Release);
    blocker.join().unwrap();
    for child in children {
        assert_ne!(child.join().unwrap(), blocker_thread);
    }
}

/// A worker thread that spent most of a long run waiting for a CPU (a machine busier than its
/// CPUs) gets the stuck mark, so its queue moves, but its goroutine is not reported until the
/// thread spends a measured stretch blocked instead (see `thread_times.rs` for every case).
#[test]
fn a_worker_waiting_for_a_cpu_is_not_reported_as_a_long_run() {
    let (rt, start) = hand_clocked_runtime(1);
    let release = Arc::new(AtomicBool::new(false));
    let _release_on_drop = SetOnDrop(Arc::clone(&release));
    let (started, started_on) = mpsc::channel();
    let released = Arc::clone(&release);
    let blocker = rt.spawn(move || {
        started.send(()).unwrap();
        while !released.load(Ordering::Acquire) {
            thread::sleep(ms(1));
        }
    });
    started_on.recv_timeout(Duration::from_secs(20)).unwrap();
    let watch = &rt.shared.workers[0].watch;
    assert_ne!(watch.running.load(Ordering::Acquire), 0);

    let times = Arc::new(Mutex::new(ThreadTimes {
        on_cpu: Duration::ZERO,
        waited: Duration::ZERO,
        runnable: false,
    }));
    let mut monitor = Monitor::new(Arc::clone(&rt.shared));
    monitor.thread_times_of = Box::new({
        let times = Arc::clone(&times);
        move |_| Some(*times.lock().unwrap())
    });
    let account = |on_cpu: u64, waited: u64, runnable: bool| {
        *times.lock().unwrap() = ThreadTimes {
            on_cpu: ms(on_cpu),
            waited: ms(waited),
            runnable,
        };
    };
    assert!(monitor.look(start).is_empty());
    assert!(monitor.look(start + ms(10)).is_empty());
    account(1, 8, false);
    assert!(monitor.look(start + ms(20)).is_empty(), "waited 8 of 10 ms");
    assert!(
        watch.stuck.load(Ordering::Acquire),
        "its queue moves all the same"
    );
    account(1, 8, true);
    assert!(
        monitor.look(start + ms(30)).is_empty(),
        "waiting for a CPU now"
    );
    account(2, 8, false);
    let reports = monitor.look(start + ms(40));
    assert_eq!(reports.len(), 1, "blocked for 10 ms: {reports:?}");
    assert!(reports[0].contains("has run 40 ms"), "{}", reports[0]);
    release.store(true, Ordering::Release);
    blocker.join().unwrap();
}

/// A goroutine that keeps switching is never marked stuck, and a worker with no goroutine has
/// no slice to end.
#[test]
fn switching_goroutines_and_idle_workers_are_left_alone() {
    let (rt, start) = hand_clocked_runtime(1);
    let mut monitor = Monitor::new(Arc::clone(&rt.shared));
    let watch = &rt.shared.workers[0].watch;
    for step in 0..10 {
        assert!(monitor.look(start + ms(step * 30)).is_empty());
        assert!(!watch.slice_expired() && !watch.stuck.load(Ordering::Acquire));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_drop = SetOnDrop(Arc::clone(&stop));
    let stopped = Arc::clone(&stop);
    let yielder = rt.spawn(move || {
        while !stopped.load(Ordering::Acquire) {
            crate::yield_now();
        }
    });
    for step in 10..20 {
        // The goroutine switches between looks (waited for, not assumed: a loaded machine may
        // not run the worker for a while).
        let before = watch.switches.load(Ordering::Relaxed);
        let waiting = Instant::now();
        while watch.switches.load(Ordering::Relaxed) == before {
            assert!(
                waiting.elapsed() < Duration::from_secs(10),
                "the worker never switched"
            );
            thread::sleep(Duration::from_micros(200));
        }
        assert!(monitor.look(start + ms(step * 30)).is_empty());
        assert!(!watch.stuck.load(Ordering::Acquire));
    }
    stop.store(true, Ordering::Release);
    yielder.join().unwrap();
}

/// A goroutine parked long ago and unwound at shutdown is not a goroutine that ran all that
/// time without a switch: nothing is reported while shutdown unwinds it.
#[test]
fn a_goroutine_unwound_at_shutdown_is_not_reported_as_a_long_run() {
    struct BlockingDrop {
        unwinding: Arc<AtomicBool>,
        release: Arc<AtomicBool>,
    }
    impl Drop for BlockingDrop {
        fn drop(&mut self) {
            self.unwinding.store(true, Ordering::Release);
            while !self.release.load(Ordering::Acquire) {
                thread::sleep(ms(1));
            }
        }
    }
    let (rt, start) = hand_clocked_runtime(1);
    let unwinding = Arc::new(AtomicBool::new(false));
    let release = Arc::new(AtomicBool::new(false));
    let guard = BlockingDrop {
        unwinding: Arc::clone(&unwinding),
        release: Arc::clone(&release),
    };
    let parked = rt.spawn(move || {
        let _guard = guard;
        crate::park_with_reason("forever");
    });
    let mut monitor = Monitor::new(Arc::clone(&rt.shared));
    let watch = &rt.shared.workers[0].watch;
    let deadline = Instant::now() + Duration::from_secs(20);
    while watch.switches.load(Ordering::Acquire) == 0 || watch.running.load(Ordering::Acquire) != 0
    {
        assert!(Instant::now() < deadline, "the goroutine never parked");
        thread::sleep(ms(1));
    }
    assert!(monitor.look(start + ms(5)).is_empty());

    let stopping = thread::spawn(move || drop(rt));
    while !unwinding.load(Ordering::Acquire) {
        assert!(
            Instant::now() < deadline,
            "shutdown never unwound the goroutine"
        );
        thread::sleep(ms(1));
    }
    let reports = monitor.look(start + Duration::from_secs(1));
    release.store(true, Ordering::Release);
    stopping.join().unwrap();
    drop(parked);
    assert!(reports.is_empty(), "{reports:?}");
}
