//! loom models of gsync's waiting protocols: run with `--cfg goroutines_loom` (see
//! `cargo xtask test`). Each model runs the crate's own code on loom's atomics, cells and
//! threads; loom reports a lost wake-up as a deadlock.

// The models are only as good as the assertions they check.
const _: () = assert!(
    cfg!(debug_assertions),
    "run the loom models with debug assertions: RUSTFLAGS=\"--cfg goroutines_loom -C debug-assertions\""
);

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;

use crate::{Cond, Mutex, Once, RecvError, RwMutex, TryRecvError, WaitGroup, chan};

/// Two threads increment a counter under the mutex while a third locks it too: every
/// increment lands (the cell is loom's, so overlapping access would be reported), and every
/// blocked locker is woken.
#[test]
fn mutex_excludes_and_loses_no_wakeup() {
    loom::model(|| {
        let mutex = Arc::new(Mutex::new(0u32));
        let others: Vec<_> = (0..2)
            .map(|_| {
                let mutex = Arc::clone(&mutex);
                thread::spawn(move || *mutex.lock() += 1)
            })
            .collect();
        *mutex.lock() += 1;
        for other in others {
            other.join().unwrap();
        }
        assert_eq!(*mutex.lock(), 3);
    });
}

/// Under loom a waiter starves once it has lost one race, so with three lockers the unlock
/// path hands the lock over directly: the handoff must keep mutual exclusion and wake the
/// waiter with the lock held for it.
#[test]
fn mutex_starvation_handoff_keeps_exclusion() {
    loom::model(|| {
        let mutex = Arc::new(Mutex::new(Vec::new()));
        let others: Vec<_> = (1..3)
            .map(|id| {
                let mutex = Arc::clone(&mutex);
                thread::spawn(move || {
                    mutex.lock().push(id);
                    mutex.lock().push(id);
                })
            })
            .collect();
        mutex.lock().push(0);
        for other in others {
            other.join().unwrap();
        }
        let mut seen = mutex.lock().clone();
        seen.sort_unstable();
        assert_eq!(seen, [0, 1, 1, 2, 2]);
        assert!(!mutex.is_locked());
    });
}

/// A writer and two readers: readers see the value before or after the write, never during
/// it (loom checks the cell), and everyone gets through.
#[test]
fn rwmutex_readers_share_writers_exclude() {
    loom::model(|| {
        let lock = Arc::new(RwMutex::new(0u32));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let lock = Arc::clone(&lock);
                thread::spawn(move || {
                    let value = *lock.read();
                    assert!(value == 0 || value == 1);
                })
            })
            .collect();
        *lock.write() += 1;
        for reader in readers {
            reader.join().unwrap();
        }
        assert_eq!(*lock.read(), 1);
    });
}

/// A reader holds the lock while a writer queues: a later reader must not get in ahead of the
/// writer, and once the first reader leaves, both complete.
#[test]
fn rwmutex_waiting_writer_is_not_starved() {
    loom::model(|| {
        let lock = Arc::new(RwMutex::new(0u32));
        let first = lock.read();
        let writer_queued = Arc::new(AtomicBool::new(false));
        let writer = {
            let (lock, writer_queued) = (Arc::clone(&lock), Arc::clone(&writer_queued));
            thread::spawn(move || {
                // The writer cannot get in while `first` is held, so it queues.
                writer_queued.store(true, Ordering::SeqCst);
                *lock.write() += 1;
            })
        };
        let late_reader = {
            let lock = Arc::clone(&lock);
            thread::spawn(move || *lock.read())
        };
        while !writer_queued.load(Ordering::SeqCst) {
            thread::yield_now();
        }
        drop(first);
        writer.join().unwrap();
        let seen = late_reader.join().unwrap();
        assert!(seen == 0 || seen == 1);
        assert_eq!(*lock.read(), 1);
    });
}

/// wait returns exactly when the count reaches zero, with no lost wake-up, and the group works
/// again for a second round.
#[test]
fn waitgroup_wait_returns_at_zero_and_is_reusable() {
    loom::model(|| {
        let wg = WaitGroup::new();
        let finished = Arc::new(AtomicUsize::new(0));
        for _round in 0..2 {
            wg.add(1);
            let worker = {
                let (wg, finished) = (wg.clone(), Arc::clone(&finished));
                thread::spawn(move || {
                    finished.fetch_add(1, Ordering::Relaxed);
                    wg.done();
                })
            };
            wg.wait();
            assert!(finished.load(Ordering::Relaxed) >= 1);
            worker.join().unwrap();
        }
        assert_eq!(finished.load(Ordering::Relaxed), 2);
    });
}

/// Two waiters and two `done`s: both waiters are released, and only after both.
#[test]
fn waitgroup_releases_every_waiter() {
    loom::model(|| {
        let wg = WaitGroup::new();
        wg.add(2);
        let finished = Arc::new(AtomicUsize::new(0));
        let waiter = {
            let (wg, finished) = (wg.clone(), Arc::clone(&finished));
            thread::spawn(move || {
                wg.wait();
                assert_eq!(finished.load(Ordering::Relaxed), 2);
            })
        };
        let worker = {
            let (wg, finished) = (wg.clone(), Arc::clone(&finished));
            thread::spawn(move || {
                finished.fetch_add(1, Ordering::Relaxed);
                wg.done();
            })
        };
        finished.fetch_add(1, Ordering::Relaxed);
        wg.done();
        wg.wait();
        waiter.join().unwrap();
        worker.join().unwrap();
    });
}

/// `go` runs each closure on a thread of its own (loom's, through the shim) and marks it done
/// when it returns, so `wait` sees what every closure did.
#[test]
fn waitgroup_go_marks_each_closure_done() {
    loom::model(|| {
        let wg = WaitGroup::new();
        let finished = Arc::new(AtomicUsize::new(0));
        for _ in 0..2 {
            let finished = Arc::clone(&finished);
            wg.go(move || {
                finished.fetch_add(1, Ordering::Relaxed);
            });
        }
        wg.wait();
        assert_eq!(finished.load(Ordering::Relaxed), 2);
    });
}

/// An unbuffered send hands its value to the receiver directly, whichever side arrives first.
#[test]
fn channel_rendezvous_hands_the_value_over() {
    loom::model(|| {
        let (tx, rx) = chan::<u32>(0);
        let sender = thread::spawn(move || tx.send(7).unwrap());
        assert_eq!(rx.recv(), Ok(7));
        sender.join().unwrap();
        assert_eq!(rx.recv(), Err(RecvError));
    });
}

/// close wakes a blocked receiver and a blocked sender, and the sender gets its value back.
#[test]
fn channel_close_wakes_every_waiter() {
    loom::model(|| {
        let (tx, rx) = chan::<u32>(0);
        let (tx2, rx2) = chan::<u32>(0);
        let receiver = thread::spawn(move || rx.recv());
        let sender = thread::spawn(move || tx2.send(5));
        tx.close();
        drop(rx2);
        assert_eq!(receiver.join().unwrap(), Err(RecvError));
        assert_eq!(sender.join().unwrap().unwrap_err().into_inner(), 5);
    });
}

/// A select over two channels that each get one value takes exactly one of them and leaves
/// the other in place.
#[test]
fn select_takes_exactly_one_case() {
    loom::model(|| {
        let (a_tx, a) = chan::<u32>(1);
        let (b_tx, b) = chan::<u32>(1);
        let senders = [
            thread::spawn(move || a_tx.send(1).unwrap()),
            thread::spawn(move || b_tx.send(2).unwrap()),
        ];
        let got = crate::select! {
            recv(a) -> value => value.unwrap(),
            recv(b) -> value => value.unwrap(),
        };
        for sender in senders {
            sender.join().unwrap();
        }
        let left = match (a.try_recv(), b.try_recv()) {
            (Ok(value), Err(TryRecvError::Closed)) | (Err(TryRecvError::Closed), Ok(value)) => {
                value
            }
            other => panic!("select took {got}, left {other:?}"),
        };
        assert_eq!(got + left, 3);
    });
}

/// A blocked select on an unbuffered channel is claimed by exactly one of two competing
/// senders; the other send completes with a second receive.
#[test]
fn select_is_claimed_once_by_competing_senders() {
    loom::model(|| {
        let (tx, rx) = chan::<u32>(0);
        let (other_tx, other) = chan::<u32>(0);
        let senders = [
            thread::spawn(move || tx.send(1).unwrap()),
            thread::spawn(move || other_tx.send(2).unwrap()),
        ];
        let first = crate::select! {
            recv(rx) -> value => value.unwrap(),
            recv(other) -> value => value.unwrap(),
        };
        let second = if first == 1 { other.recv() } else { rx.recv() };
        assert_eq!(first + second.unwrap(), 3);
        for sender in senders {
            sender.join().unwrap();
        }
    });
}

/// Once: two callers, one initializer run, both see the value.
#[test]
fn once_initializes_once() {
    loom::model(|| {
        let once = Arc::new(Once::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let other = {
            let (once, runs) = (Arc::clone(&once), Arc::clone(&runs));
            thread::spawn(move || {
                *once.get_or_init(|| {
                    runs.fetch_add(1, Ordering::Relaxed);
                    1
                })
            })
        };
        let mine = *once.get_or_init(|| {
            runs.fetch_add(1, Ordering::Relaxed);
            1
        });
        assert_eq!((mine, other.join().unwrap()), (1, 1));
        assert_eq!(runs.load(Ordering::Relaxed), 1);
    });
}

/// Cond: a signal sent after the condition is set reaches the waiter.
#[test]
fn cond_signal_reaches_the_waiter() {
    loom::model(|| {
        let state = Arc::new((Mutex::new(false), Cond::new()));
        let waiter = {
            let state = Arc::clone(&state);
            thread::spawn(move || {
                let (mutex, cond) = &*state;
                drop(cond.wait_while(mutex.lock(), |ready| !*ready));
            })
        };
        let (mutex, cond) = &*state;
        *mutex.lock() = true;
        cond.signal();
        waiter.join().unwrap();
    });
}
