//! Each gsync wait shows in the goroutine dump under Go's wait reason.

use std::sync::Arc;
use std::time::Duration;

use gsched::{GoroutineState, Runtime};
use gsync::{Cond, Mutex, Once, RwMutex, WaitGroup, chan, select};

/// Polls the dump until goroutine `id` shows `reason`, for at most 10 s.
fn wait_for_reason(rt: &Runtime, id: u64, reason: &'static str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let dump = rt.dump();
        let state = dump.get(id).map(|goroutine| goroutine.state);
        if state == Some(GoroutineState::Parked(reason)) {
            let text = dump.to_string();
            assert!(
                text.contains(&format!("goroutine {id} [{reason}]:")),
                "the dump prints the reason: {text}"
            );
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "goroutine {id} never showed [{reason}]; last dump:\n{dump}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn every_gsync_wait_shows_its_go_wait_reason() {
    let rt = Runtime::builder().workers(2).build().unwrap();

    let (tx, rx) = chan::<u32>(0);
    let receiver = rt.spawn(move || rx.recv().ok());
    wait_for_reason(&rt, receiver.id(), "chan receive");
    let (full_tx, full_rx) = chan::<u32>(0);
    let sender = rt.spawn(move || full_tx.send(1).ok());
    wait_for_reason(&rt, sender.id(), "chan send");
    let (never_tx, never_rx) = chan::<u32>(0);
    let selecting = rt.spawn(move || {
        select! {
            recv(never_rx) -> value => value.ok(),
        }
    });
    wait_for_reason(&rt, selecting.id(), "select");

    let mutex = Arc::new(Mutex::new(()));
    let rwmutex = Arc::new(RwMutex::new(()));
    let held = mutex.lock();
    let written = rwmutex.write();
    let locker = rt.spawn({
        let mutex = mutex.clone();
        move || drop(mutex.lock())
    });
    wait_for_reason(&rt, locker.id(), "sync.Mutex.Lock");
    let reader = rt.spawn({
        let rwmutex = rwmutex.clone();
        move || drop(rwmutex.read())
    });
    wait_for_reason(&rt, reader.id(), "sync.RWMutex.RLock");
    let writer = rt.spawn({
        let rwmutex = rwmutex.clone();
        move || drop(rwmutex.write())
    });
    wait_for_reason(&rt, writer.id(), "sync.RWMutex.Lock");

    let wg = WaitGroup::new();
    wg.add(1);
    let waiter = rt.spawn({
        let wg = wg.clone();
        move || wg.wait()
    });
    wait_for_reason(&rt, waiter.id(), "sync.WaitGroup.Wait");

    let cond_state = Arc::new((Mutex::new(false), Cond::new()));
    let cond_waiter = rt.spawn({
        let cond_state = cond_state.clone();
        move || {
            let (ready, cond) = &*cond_state;
            let mut ready = ready.lock();
            while !*ready {
                ready = cond.wait(ready);
            }
        }
    });
    wait_for_reason(&rt, cond_waiter.id(), "sync.Cond.Wait");

    let once = Arc::new(Once::new());
    let (release_tx, release_rx) = chan::<()>(0);
    let initializer = rt.spawn({
        let once = once.clone();
        move || once.call_once(|| release_rx.recv().unwrap())
    });
    wait_for_reason(&rt, initializer.id(), "chan receive");
    let second = rt.spawn({
        let once = once.clone();
        move || once.call_once(|| {})
    });
    wait_for_reason(&rt, second.id(), "sync.Once.Do");

    // Everything is let go, and every goroutine finishes.
    tx.send(7).unwrap();
    assert_eq!(receiver.join().unwrap(), Some(7));
    assert_eq!(rt.block_on(move || full_rx.recv().ok()), Some(1));
    assert_eq!(sender.join().unwrap(), Some(()));
    never_tx.send(3).unwrap();
    assert_eq!(selecting.join().unwrap(), Some(3));
    drop(held);
    locker.join().unwrap();
    drop(written);
    reader.join().unwrap();
    writer.join().unwrap();
    wg.done();
    waiter.join().unwrap();
    *cond_state.0.lock() = true;
    cond_state.1.broadcast();
    cond_waiter.join().unwrap();
    release_tx.send(()).unwrap();
    initializer.join().unwrap();
    second.join().unwrap();
}
