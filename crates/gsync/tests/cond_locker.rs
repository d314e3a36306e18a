//! `Cond` over a `Locker`, with Go's cond tests over a Mutex and over an RWMutex's RLocker.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use gsync::{Cond, Locker, Mutex, RwMutex, chan};

/// Go's TestCondSignal: each signal wakes exactly one waiter. `exclusive` excludes every
/// holder of the cond's locker: once the signaller has it, every waiter is queued in `wait`.
fn signal_wakes_one_at_a_time<L: Locker + Send + Sync + 'static>(
    cond: Arc<Cond<L>>,
    exclusive: &dyn Locker,
) {
    let n = 4;
    let (running_tx, running) = chan::<()>(n);
    let (awake_tx, awake) = chan::<()>(n);
    for _ in 0..n {
        let (cond, running_tx, awake_tx) = (cond.clone(), running_tx.clone(), awake_tx.clone());
        gsched::go(move || {
            cond.locker().lock();
            running_tx.send(()).unwrap();
            cond.wait();
            awake_tx.send(()).unwrap();
            cond.locker().unlock();
        });
    }
    for _ in 0..n {
        running.recv().unwrap();
    }
    for left in (0..n).rev() {
        // Every waiter has released the lock inside `wait` once this lock is had.
        exclusive.lock();
        cond.signal();
        exclusive.unlock();
        awake.recv().unwrap();
        assert!(
            awake.try_recv().is_err(),
            "one signal woke more than one waiter"
        );
        let _ = left;
    }
}

/// Go's TestCondBroadcast: one broadcast wakes every waiter.
fn broadcast_wakes_all<L: Locker + Send + Sync + 'static>(
    cond: Arc<Cond<L>>,
    exclusive: &dyn Locker,
) {
    let n = 10;
    let waiting = Arc::new(AtomicUsize::new(0));
    let (awake_tx, awake) = chan::<()>(n);
    let (running_tx, running) = chan::<()>(n);
    for _ in 0..n {
        let (cond, waiting, awake_tx, running_tx) = (
            cond.clone(),
            waiting.clone(),
            awake_tx.clone(),
            running_tx.clone(),
        );
        gsched::go(move || {
            cond.locker().lock();
            waiting.fetch_add(1, Ordering::SeqCst);
            running_tx.send(()).unwrap();
            cond.wait();
            cond.locker().unlock();
            awake_tx.send(()).unwrap();
        });
    }
    for _ in 0..n {
        running.recv().unwrap();
    }
    exclusive.lock();
    cond.broadcast();
    exclusive.unlock();
    for _ in 0..n {
        awake.recv().unwrap();
    }
    assert_eq!(waiting.load(Ordering::SeqCst), n);
}

#[test]
fn cond_over_a_mutex_signals_and_broadcasts() {
    let mutex: &'static Mutex<()> = Box::leak(Box::new(Mutex::new(())));
    signal_wakes_one_at_a_time(Arc::new(Cond::with_locker(mutex)), mutex);
    broadcast_wakes_all(Arc::new(Cond::with_locker(mutex)), mutex);
}

#[test]
fn cond_over_an_rlocker_signals_and_broadcasts() {
    let rwmutex: &'static RwMutex<()> = Box::leak(Box::new(RwMutex::new(())));
    // The write lock excludes the readers: once it is had, each is queued in `wait`, which
    // also shows that readers waiting on the cond do not hold the lock.
    signal_wakes_one_at_a_time(Arc::new(Cond::with_locker(rwmutex.rlocker())), rwmutex);
    broadcast_wakes_all(Arc::new(Cond::with_locker(rwmutex.rlocker())), rwmutex);
}

#[test]
fn a_wait_without_holding_the_locker_panics_and_leaves_nothing_queued() {
    let mutex = Mutex::new(());
    let cond = Cond::with_locker(&mutex);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cond.wait()));
    let message = caught.unwrap_err();
    assert_eq!(
        message.downcast_ref::<&str>().copied(),
        Some("sync: unlock of unlocked mutex")
    );
    // The waiter left the queue before its frame went away: signalling touches nothing dead.
    cond.signal();
    cond.broadcast();
}
