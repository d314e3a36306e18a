//! A goroutine parked mid-unwind must not make `std::thread::panicking()` true for others.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use gsched::{Runtime, go};

struct SleepOnDrop;

impl Drop for SleepOnDrop {
    fn drop(&mut self) {
        // Parks the goroutine while its panic unwinds.
        gsched::sleep(Duration::from_millis(20));
    }
}

#[test]
fn panicking_does_not_leak_into_other_goroutines() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let others_saw_panicking = Arc::new(AtomicBool::new(false));
    let others_ran = Arc::new(AtomicUsize::new(0));
    let saw = Arc::clone(&others_saw_panicking);
    let ran = Arc::clone(&others_ran);
    let payload = rt.block_on(move || {
        let unwinding = go(|| {
            let _guard = SleepOnDrop;
            panic!("unwinding with a parked destructor");
        });
        let observers: Vec<_> = (0..10)
            .map(|_| {
                let saw = Arc::clone(&saw);
                let ran = Arc::clone(&ran);
                go(move || {
                    for _ in 0..5 {
                        if std::thread::panicking() {
                            saw.store(true, Ordering::SeqCst);
                        }
                        // A std mutex guard dropped while "panicking" would poison the mutex.
                        let lock = std::sync::Mutex::new(0);
                        drop(lock.lock().unwrap());
                        assert!(!lock.is_poisoned());
                        gsched::yield_now();
                    }
                    ran.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        for observer in observers {
            observer.join().unwrap();
        }
        unwinding.join().unwrap_err()
    });
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"unwinding with a parked destructor")
    );
    assert_eq!(others_ran.load(Ordering::SeqCst), 10);
    assert!(!others_saw_panicking.load(Ordering::SeqCst));
}
