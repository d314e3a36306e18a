//! A destructor that waits during a panic's unwind parks its goroutine like any other wait: the
//! goroutine that will wake it runs meanwhile, even when it is pinned to the same worker.

use std::time::Duration;

use gsched::{Runtime, go};
use gsync::{Mutex, chan};
use testkit::within;

/// Locks the mutex when dropped.
struct LockOnDrop(&'static Mutex<u32>);

impl Drop for LockOnDrop {
    fn drop(&mut self) {
        *self.0.lock() += 1;
    }
}

#[test]
fn a_destructor_that_locks_during_a_panic_waits_for_the_holder() {
    for workers in [1, 2] {
        let count = within(Duration::from_secs(20), move || {
            static LOCK: std::sync::LazyLock<Mutex<u32>> =
                std::sync::LazyLock::new(|| Mutex::new(0));
            let rt = Runtime::builder().workers(workers).build().unwrap();
            rt.block_on(|| {
                let (held, is_held) = chan::<()>(1);
                let holder = go(move || {
                    let mut guard = LOCK.lock();
                    held.send(()).unwrap();
                    gsched::sleep(Duration::from_millis(20));
                    *guard += 10;
                });
                is_held.recv().unwrap();
                let panicking = go(|| {
                    let _guard = LockOnDrop(&LOCK);
                    panic!("with a guard that locks");
                });
                assert!(panicking.join().is_err());
                holder.join().unwrap();
                let mut guard = LOCK.lock();
                std::mem::replace(&mut *guard, 0)
            })
        });
        assert_eq!(count, 11, "{workers} workers");
    }
}

/// Sends on an unbuffered channel when dropped.
struct SendOnDrop(Option<gsync::Sender<u32>>);

impl Drop for SendOnDrop {
    fn drop(&mut self) {
        if let Some(sender) = self.0.take() {
            sender.send(7).unwrap();
        }
    }
}

#[test]
fn a_destructor_that_sends_during_a_panic_waits_for_a_sleeping_receiver() {
    for workers in [1, 2] {
        let got = within(Duration::from_secs(20), move || {
            let rt = Runtime::builder().workers(workers).build().unwrap();
            rt.block_on(|| {
                let (tx, rx) = chan::<u32>(0);
                let receiver = go(move || {
                    gsched::sleep(Duration::from_millis(20));
                    rx.recv().unwrap()
                });
                let panicking = go(move || {
                    let _guard = SendOnDrop(Some(tx));
                    panic!("with a guard that sends");
                });
                assert!(panicking.join().is_err());
                receiver.join().unwrap()
            })
        });
        assert_eq!(got, 7, "{workers} workers");
    }
}
