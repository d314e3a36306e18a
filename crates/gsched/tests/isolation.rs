//! A goroutine parked in the middle of unwinding a panic does not stall its worker: the others
//! keep running. std counts panics per thread, so while it is parked they read
//! `std::thread::panicking() == true`, and a std `MutexGuard` they drop then poisons its mutex:
//! the documented price of the rare case.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gsched::{Runtime, go};
use testkit::within;

struct SleepOnDrop(Arc<AtomicBool>);

impl Drop for SleepOnDrop {
    fn drop(&mut self) {
        // Parks the goroutine while its panic unwinds.
        gsched::sleep(Duration::from_millis(20));
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn other_goroutines_run_while_one_is_parked_mid_unwind() {
    for workers in [1, 2] {
        let (saw_panicking, poisoned) = within(Duration::from_secs(20), move || {
            let rt = Runtime::builder().workers(workers).build().unwrap();
            rt.block_on(|| {
                let finished = Arc::new(AtomicBool::new(false));
                let holding = Arc::new(AtomicBool::new(false));
                let (observer_done, observer_holding) =
                    (Arc::clone(&finished), Arc::clone(&holding));
                // Pinned to this worker: on one worker it runs during the unwind only if the
                // unwinding goroutine does not hold the worker.
                let observer = go(move || {
                    let lock = std::sync::Mutex::new(0);
                    let mut guard = Some(lock.lock().unwrap());
                    observer_holding.store(true, Ordering::SeqCst);
                    let mut saw = false;
                    while !observer_done.load(Ordering::SeqCst) {
                        if std::thread::panicking() {
                            saw = true;
                            // Taken before the panic began, dropped while it is counted.
                            drop(guard.take());
                        }
                        gsched::yield_now();
                    }
                    drop(guard);
                    (saw, lock.is_poisoned())
                });
                while !holding.load(Ordering::SeqCst) {
                    gsched::yield_now();
                }
                let unwinding = gsched::Builder::new()
                    .name("unwinding")
                    .spawn(move || {
                        let _guard = SleepOnDrop(finished);
                        panic!("unwinding with a parked destructor");
                    })
                    .unwrap();
                let payload = unwinding.join().unwrap_err();
                assert_eq!(
                    payload.downcast_ref::<&str>(),
                    Some(&"unwinding with a parked destructor")
                );
                let seen = observer.join().unwrap();
                assert!(
                    !std::thread::panicking(),
                    "the count is back once it finished"
                );
                seen
            })
        });
        if workers == 1 {
            assert!(
                saw_panicking,
                "on one worker the observer ran during the unwind"
            );
            assert!(poisoned, "a std guard dropped then poisons its mutex");
        }
    }
}
