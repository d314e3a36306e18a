//! Where goroutines start: next to their spawner by default, spread when there is a backlog,
//! and as `Builder::same_worker` and `Builder::spread` say.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use gsched::{Builder, Runtime, go};
use testkit::within;

fn runtime(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().unwrap()
}

fn here() -> ThreadId {
    std::thread::current().id()
}

/// Two goroutines spawned together by one that then waits for them (the seed's ping-pong
/// partners) start on the spawner's worker: the other worker, woken or spinning for new work,
/// does not take one of them while the spawner is about to switch. Before, it stole the first
/// in most rounds, and every message between the two then crossed cores.
#[test]
fn partners_spawned_together_start_on_their_spawners_worker() {
    // A round may lose its core for the whole grace on a loaded machine, and a busy moment can
    // last for many rounds: a few tries tell that from a policy that splits partners, which
    // fails them all.
    let together = (0..5).map(|_| pairs_together_of_20()).collect::<Vec<_>>();
    assert!(
        together.iter().any(|&pairs| pairs >= 16),
        "no try had 16 of 20 pairs start next to their spawner: {together:?}"
    );
}

/// Spawns 20 pairs of partners and waits for each; returns how many pairs started on their
/// spawner's worker.
fn pairs_together_of_20() -> usize {
    within(Duration::from_secs(30), || {
        let rt = runtime(2);
        rt.block_on(|| {
            (0..20)
                .filter(|_| {
                    let spawner = here();
                    let first = go(here);
                    let second = go(here);
                    // The spawner's last steps before it waits.
                    let spin_until = std::time::Instant::now() + Duration::from_micros(5);
                    while std::time::Instant::now() < spin_until {
                        std::hint::spin_loop();
                    }
                    let (first, second) = (first.join().unwrap(), second.join().unwrap());
                    first == spawner && second == spawner
                })
                .count()
        })
    })
}

/// One goroutine that spawns many long-lived children, each parking at once, and then blocks
/// (an accept loop): the backlog is stolen at once, so the children start on every worker.
///
/// "At once" is as soon as the idle worker's thread gets a CPU: a machine busy enough to keep
/// it off for the millisecond the burst lasts (a neighbouring test binary's exit, freeing
/// gigabytes) leaves every child to the spawner's worker. A few tries tell such a moment from a
/// policy that never spreads, which fails them all.
#[test]
fn an_accept_loop_spreads_its_children_over_every_worker() {
    let spread = (0..5).map(|_| accept_loop_workers()).collect::<Vec<_>>();
    assert!(
        spread.contains(&2),
        "the children started on one worker only, in every try: {spread:?}"
    );
}

/// How many workers the children of one accept-loop burst started on.
fn accept_loop_workers() -> usize {
    within(Duration::from_secs(30), || {
        let rt = runtime(2);
        rt.block_on(|| {
            const CHILDREN: usize = 1_000;
            let started = Arc::new(Mutex::new(HashSet::new()));
            let count = Arc::new(AtomicUsize::new(0));
            let release = Arc::new(AtomicUsize::new(0));
            let children: Vec<_> = (0..CHILDREN)
                .map(|_| {
                    let (started, count, release) = (
                        Arc::clone(&started),
                        Arc::clone(&count),
                        Arc::clone(&release),
                    );
                    go(move || {
                        started.lock().unwrap().insert(here());
                        count.fetch_add(1, Ordering::AcqRel);
                        while release.load(Ordering::Acquire) == 0 {
                            gsched::park_timeout(Duration::from_millis(1));
                        }
                    })
                })
                .collect();
            // The loop blocks until every child has started.
            while count.load(Ordering::Acquire) < CHILDREN {
                gsched::sleep(Duration::from_millis(1));
            }
            release.store(1, Ordering::Release);
            for child in children {
                child.join().unwrap();
            }
            started.lock().unwrap().len()
        })
    })
}

#[test]
fn same_worker_goroutines_start_on_the_spawners_worker_even_when_it_is_busy() {
    within(Duration::from_secs(30), || {
        let rt = runtime(2);
        rt.block_on(|| {
            let spawner = here();
            let children: Vec<_> = (0..8)
                .map(|_| Builder::new().same_worker().spawn(here).unwrap())
                .collect();
            // Busy well past the grace without a switch: the idle worker would steal plain
            // goroutines now.
            std::thread::sleep(Duration::from_millis(20));
            for child in children {
                assert_eq!(child.join().unwrap(), spawner);
            }
        });
    });
}

#[test]
fn spread_goroutines_start_on_another_worker() {
    within(Duration::from_secs(30), || {
        let rt = runtime(3);
        rt.block_on(|| {
            let spawner = here();
            let children: Vec<_> = (0..9)
                .map(|_| Builder::new().spread().spawn(here).unwrap())
                .collect();
            let threads: HashSet<ThreadId> = children
                .into_iter()
                .map(|child| child.join().unwrap())
                .collect();
            assert!(!threads.contains(&spawner));
            assert_eq!(
                threads.len(),
                2,
                "spread goroutines used one other worker only"
            );
        });
    });
}

/// A plain goroutine waiting behind a spawner that runs without a switch is taken by an idle
/// worker once the grace has passed.
#[test]
fn a_goroutine_behind_a_busy_spawner_is_taken_by_an_idle_worker() {
    within(Duration::from_secs(30), || {
        let rt = runtime(2);
        rt.block_on(|| {
            let spawner = here();
            let child = go(here);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !child.is_finished() && std::time::Instant::now() < deadline {
                std::hint::spin_loop();
            }
            assert_ne!(child.join().unwrap(), spawner);
        });
    });
}

/// A goroutine spawned beside a pair that hands the worker back and forth through `runnext`
/// still starts: one goroutine runs next, as in Go, and the other waits in the queue, which the
/// worker gets to. Before, the new goroutine waited behind the pair for good.
#[test]
fn a_goroutine_spawned_beside_a_runnext_pair_starts() {
    within(Duration::from_secs(30), || {
        let rt = runtime(1);
        rt.block_on(|| {
            let started = Arc::new(AtomicUsize::new(0));
            let stop = Arc::new(AtomicUsize::new(0));
            let (to_second, second_gets) = std::sync::mpsc::channel::<gsched::Unparker>();
            let (to_first, first_gets) = std::sync::mpsc::channel::<gsched::Unparker>();
            let first = {
                let (started, stop) = (Arc::clone(&started), Arc::clone(&stop));
                go(move || {
                    to_second.send(gsched::current_unparker()).unwrap();
                    let second = receive(&first_gets);
                    let mut child = None;
                    for round in 0.. {
                        if round == 100 {
                            let started = Arc::clone(&started);
                            child = Some(go(move || started.fetch_add(1, Ordering::SeqCst)));
                        }
                        second.unpark();
                        if stop.load(Ordering::SeqCst) == 1 {
                            break;
                        }
                        gsched::park();
                    }
                    child.unwrap().join().unwrap();
                })
            };
            let second = {
                let stop = Arc::clone(&stop);
                go(move || {
                    to_first.send(gsched::current_unparker()).unwrap();
                    let first = receive(&second_gets);
                    loop {
                        first.unpark();
                        if stop.load(Ordering::SeqCst) == 1 {
                            break;
                        }
                        gsched::park();
                    }
                })
            };
            while started.load(Ordering::SeqCst) == 0 {
                gsched::park_timeout(Duration::from_millis(1));
            }
            stop.store(1, Ordering::SeqCst);
            first.join().unwrap();
            second.join().unwrap();
        });
    });
}

/// Receives without blocking the worker thread: the sender may be a goroutine on it.
fn receive<T>(from: &std::sync::mpsc::Receiver<T>) -> T {
    loop {
        match from.try_recv() {
            Ok(value) => return value,
            Err(_) => gsched::yield_now(),
        }
    }
}

/// On a runtime of migratable goroutines, a woken goroutine runs next on its waker's worker, as
/// in Go: two goroutines that start apart and talk end up on one worker. While the pair's worker
/// thread waits for a CPU (other tests in this binary keep workers busy), the idle worker may take
/// the woken partner and the pair runs apart for a while; a few tries tell such a moment from a
/// policy that never brings them together, which fails them all.
#[test]
fn migratable_partners_started_apart_come_together() {
    let together = (0..5)
        .map(|_| rounds_together_of_the_last_100())
        .collect::<Vec<_>>();
    assert!(
        together.iter().any(|&rounds| rounds >= 90),
        "no try had 90 of its last 100 rounds together: {together:?}"
    );
}

/// Plays 2,000 rounds between partners started apart; returns in how many of the last 100 both
/// ran on one thread.
fn rounds_together_of_the_last_100() -> usize {
    within(Duration::from_secs(30), || {
        // SAFETY: the goroutines below hold nothing tied to their thread across a park.
        let rt = unsafe { Runtime::builder().workers(2).migratable_goroutines() }
            .build()
            .unwrap();
        rt.block_on(|| {
            const ROUNDS: usize = 2_000;
            let (to_second, second_gets) = std::sync::mpsc::channel::<gsched::Unparker>();
            let (to_first, first_gets) = std::sync::mpsc::channel::<gsched::Unparker>();
            let turn = Arc::new(AtomicUsize::new(0));
            let player = |me: usize,
                          to_other: std::sync::mpsc::Sender<gsched::Unparker>,
                          from_other: std::sync::mpsc::Receiver<gsched::Unparker>,
                          turn: Arc<AtomicUsize>| {
                move || {
                    to_other.send(gsched::current_unparker()).unwrap();
                    let other = receive(&from_other);
                    let mut threads = Vec::with_capacity(ROUNDS);
                    for round in 0..ROUNDS {
                        while turn.load(Ordering::Acquire) != 2 * round + me {
                            gsched::park();
                        }
                        threads.push(here());
                        turn.store(2 * round + me + 1, Ordering::Release);
                        other.unpark();
                    }
                    threads
                }
            };
            let first = Builder::new()
                .spread()
                .spawn(player(0, to_second, first_gets, Arc::clone(&turn)))
                .unwrap();
            let second = Builder::new()
                .same_worker()
                .spawn(player(1, to_first, second_gets, turn))
                .unwrap();
            let (first, second) = (first.join().unwrap(), second.join().unwrap());
            first[ROUNDS - 100..]
                .iter()
                .zip(&second[ROUNDS - 100..])
                .filter(|(a, b)| a == b)
                .count()
        })
    })
}
