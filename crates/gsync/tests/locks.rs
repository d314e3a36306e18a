//! Mutex, RwMutex and Locker from goroutines and threads.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gsched::{Runtime, go};
use gsync::{Locker, Mutex, RwMutex, WaitGroup};

fn runtime(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().unwrap()
}

#[test]
fn a_counter_under_a_mutex_stays_exact_across_goroutines_and_threads() {
    let rt = runtime(2);
    let count = Arc::new(Mutex::new(0u64));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let count = Arc::clone(&count);
            std::thread::spawn(move || {
                for _ in 0..20_000 {
                    *count.lock() += 1;
                }
            })
        })
        .collect();
    let shared = Arc::clone(&count);
    rt.block_on(move || {
        let count = shared;
        let wg = WaitGroup::new();
        for _ in 0..100 {
            let count = Arc::clone(&count);
            wg.go(move || {
                for _ in 0..400 {
                    let mut held = count.lock();
                    *held += 1;
                    assert!(count.try_lock().is_none(), "a held mutex was locked twice");
                }
            });
        }
        wg.wait();
    });
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(*count.lock(), 2 * 20_000 + 100 * 400);
}

#[test]
fn a_contended_mutex_parks_goroutines_not_workers() {
    // One worker: if a blocked locker blocked the worker, the holder could never run again.
    let rt = runtime(1);
    rt.block_on(|| {
        let mutex = Arc::new(Mutex::new(()));
        let held = mutex.lock();
        let waiters: Vec<_> = (0..10)
            .map(|_| {
                let mutex = Arc::clone(&mutex);
                go(move || drop(mutex.lock()))
            })
            .collect();
        gsched::sleep(Duration::from_millis(5));
        assert!(waiters.iter().all(|waiter| !waiter.is_finished()));
        drop(held);
        for waiter in waiters {
            waiter.join().unwrap();
        }
    });
}

#[test]
fn a_starving_waiter_gets_the_lock_handed_over() {
    // A hog that relocks at once would always win the race against a woken waiter; after 1 ms
    // of waiting the waiter is handed the lock instead.
    let rt = runtime(2);
    let got_it = rt.block_on(|| {
        let mutex = Arc::new(Mutex::new(()));
        let stop = Arc::new(AtomicBool::new(false));
        let hog = {
            let (mutex, stop) = (Arc::clone(&mutex), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _held = mutex.lock();
                    std::hint::spin_loop();
                }
            })
        };
        let start = Instant::now();
        let waiter = {
            let mutex = Arc::clone(&mutex);
            go(move || {
                for _ in 0..100 {
                    drop(mutex.lock());
                }
            })
        };
        while !waiter.is_finished() && start.elapsed() < Duration::from_secs(20) {
            gsched::sleep(Duration::from_millis(1));
        }
        let got_it = waiter.is_finished();
        stop.store(true, Ordering::Relaxed);
        hog.join().unwrap();
        waiter.join().unwrap();
        got_it
    });
    assert!(got_it, "a waiter starved behind a lock hog");
}

#[test]
fn unlock_of_an_unlocked_mutex_panics_with_gos_message() {
    let mutex = Mutex::new(());
    let panic = std::panic::catch_unwind(AssertUnwindSafe(|| Locker::unlock(&mutex))).unwrap_err();
    assert_eq!(
        panic.downcast_ref::<&str>(),
        Some(&"sync: unlock of unlocked mutex")
    );
    // Nothing was corrupted: the mutex still works.
    drop(mutex.lock());
    assert!(!mutex.is_locked());
}

#[test]
fn runlock_of_an_unlocked_rwmutex_panics_with_gos_message() {
    let lock = RwMutex::new(());
    let panic = std::panic::catch_unwind(AssertUnwindSafe(|| lock.rlocker().unlock())).unwrap_err();
    assert_eq!(
        panic.downcast_ref::<&str>(),
        Some(&"sync: RUnlock of unlocked RWMutex")
    );
    let panic = std::panic::catch_unwind(AssertUnwindSafe(|| Locker::unlock(&lock))).unwrap_err();
    assert_eq!(
        panic.downcast_ref::<&str>(),
        Some(&"sync: Unlock of unlocked RWMutex")
    );
    drop(lock.write());
}

#[test]
fn a_mutex_locked_by_one_goroutine_may_be_unlocked_by_another() {
    let rt = runtime(2);
    rt.block_on(|| {
        let mutex = Arc::new(Mutex::new(()));
        Locker::lock(&*mutex);
        let other = Arc::clone(&mutex);
        go(move || Locker::unlock(&*other)).join().unwrap();
        assert!(mutex.try_lock().is_some());
    });
}

#[test]
fn readers_share_the_lock_and_writers_hold_it_alone() {
    let rt = runtime(2);
    rt.block_on(|| {
        let lock = Arc::new(RwMutex::new(0u64));
        let readers_in = Arc::new(AtomicUsize::new(0));
        let max_readers = Arc::new(AtomicUsize::new(0));
        let wg = WaitGroup::new();
        for i in 0..200 {
            let (lock, readers_in, max_readers) = (
                Arc::clone(&lock),
                Arc::clone(&readers_in),
                Arc::clone(&max_readers),
            );
            wg.go(move || {
                for _ in 0..50 {
                    if i % 10 == 0 {
                        let mut value = lock.write();
                        assert_eq!(
                            readers_in.load(Ordering::SeqCst),
                            0,
                            "a reader inside a write"
                        );
                        *value += 1;
                    } else {
                        let value = lock.read();
                        let now = readers_in.fetch_add(1, Ordering::SeqCst) + 1;
                        max_readers.fetch_max(now, Ordering::SeqCst);
                        let _ = *value;
                        gsched::yield_now();
                        readers_in.fetch_sub(1, Ordering::SeqCst);
                    }
                }
            });
        }
        wg.wait();
        assert_eq!(*lock.read(), 20 * 50);
        assert!(
            max_readers.load(Ordering::SeqCst) > 1,
            "readers never held the lock together"
        );
    });
}

#[test]
fn a_waiting_writer_holds_back_new_readers() {
    let rt = runtime(1);
    rt.block_on(|| {
        let lock = Arc::new(RwMutex::new(()));
        let first_reader = lock.read();
        let wrote = Arc::new(AtomicBool::new(false));
        let writer = {
            let (lock, wrote) = (Arc::clone(&lock), Arc::clone(&wrote));
            go(move || {
                let _held = lock.write();
                wrote.store(true, Ordering::SeqCst);
            })
        };
        let queued = gsched::GoroutineState::Parked("sync.RWMutex.Lock");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while gsched::dump()
            .get(writer.id())
            .is_none_or(|entry| entry.state != queued)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the writer never queued"
            );
            gsched::sleep(Duration::from_millis(1));
        }
        // The writer is queued: a new reader must wait behind it.
        assert!(
            lock.try_read().is_none(),
            "a reader overtook a waiting writer"
        );
        let late_reader = {
            let (lock, wrote) = (Arc::clone(&lock), Arc::clone(&wrote));
            go(move || {
                let _held = lock.read();
                wrote.load(Ordering::SeqCst)
            })
        };
        // Queued behind the waiting writer before the first reader leaves.
        let queued = gsched::GoroutineState::Parked("sync.RWMutex.RLock");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while gsched::dump()
            .get(late_reader.id())
            .is_none_or(|entry| entry.state != queued)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the late reader never queued"
            );
            gsched::sleep(Duration::from_millis(1));
        }
        drop(first_reader);
        writer.join().unwrap();
        assert!(
            late_reader.join().unwrap(),
            "the late reader ran before the writer"
        );
    });
}

#[test]
fn the_rlocker_and_the_mutex_serve_as_lockers() {
    let rt = runtime(2);
    rt.block_on(|| {
        let rw = Arc::new(RwMutex::new(()));
        let mutex = Arc::new(Mutex::new(()));
        let wg = WaitGroup::new();
        for _ in 0..100 {
            let (rw, mutex) = (Arc::clone(&rw), Arc::clone(&mutex));
            wg.go(move || {
                let lockers: [&dyn Locker; 2] = [&rw.rlocker(), &*mutex];
                for locker in lockers {
                    locker.lock();
                    gsched::yield_now();
                    locker.unlock();
                }
            });
        }
        wg.wait();
        assert!(rw.try_write().is_some() && mutex.try_lock().is_some());
    });
}

#[test]
fn locks_are_unwind_safe_as_std_locks_are() {
    fn unwind_safe<T: std::panic::UnwindSafe + std::panic::RefUnwindSafe>(_: &T) {}
    let mutex = Mutex::new(1);
    let rwmutex = gsync::RwMutex::new(1);
    unwind_safe(&mutex);
    unwind_safe(&rwmutex);
    // A closure borrowing them may be given to `catch_unwind` without `AssertUnwindSafe`; the
    // panic releases the lock, and the data stays as the panic left it (no poisoning).
    let caught = std::panic::catch_unwind(|| {
        let mut held = mutex.lock();
        *held = 2;
        panic!("while holding the lock");
    });
    assert!(caught.is_err());
    assert_eq!(*mutex.lock(), 2);
    assert_eq!(*rwmutex.read(), 1);
}
