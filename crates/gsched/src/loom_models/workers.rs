//! Workers going to sleep and being woken: stacks given back, the driver, and shutdown's
//! quiet point.

use loom::sync::atomic::AtomicUsize;
use loom::sync::{Arc, Mutex};
use loom::thread;

use crate::scheduler::idle::IdleFlags;
use crate::shim::Ordering;

/// Shutdown on two workers, each running the shape of `WorkerLocal::shut_down` on the real
/// `IdleFlags`: worker 0 has an item whose handling pushes one to worker 1, which is going to
/// sleep meanwhile. Nobody declares the runtime quiet while an item is queued, and both end.
#[test]
fn shutdown_quiesces_only_when_no_work_is_left() {
    loom::model(|| {
        const WORKERS: usize = 2;
        let flags = Arc::new(IdleFlags::new(WORKERS));
        let queues: Arc<Vec<AtomicUsize>> =
            Arc::new((0..WORKERS).map(|_| AtomicUsize::new(0)).collect());
        let handled = Arc::new(AtomicUsize::new(0));
        queues[0].store(1, Ordering::Relaxed);
        let threads: Arc<Mutex<Vec<Option<thread::Thread>>>> =
            Arc::new(Mutex::new(vec![None; WORKERS]));
        let workers: Vec<_> = (0..WORKERS)
            .map(|me| {
                let (flags, queues, handled, threads) = (
                    Arc::clone(&flags),
                    Arc::clone(&queues),
                    Arc::clone(&handled),
                    Arc::clone(&threads),
                );
                thread::spawn(move || {
                    threads.lock().unwrap()[me] = Some(thread::current());
                    flags.enter_shutdown(me, false);
                    let wake = |index: usize| {
                        if flags.wake(index)
                            && let Some(thread) = &threads.lock().unwrap()[index]
                        {
                            thread.unpark();
                        }
                    };
                    loop {
                        if queues[me].load(Ordering::SeqCst) > 0 {
                            queues[me].fetch_sub(1, Ordering::SeqCst);
                            handled.fetch_add(1, Ordering::SeqCst);
                            if me == 0 {
                                queues[1].fetch_add(1, Ordering::SeqCst);
                                crate::shim::fence(Ordering::SeqCst);
                                wake(1);
                            }
                            continue;
                        }
                        flags.announce(me);
                        if queues[me].load(Ordering::SeqCst) > 0 {
                            flags.end(me);
                            continue;
                        }
                        if flags.try_quiesce() {
                            flags.end(me);
                            for index in 0..WORKERS {
                                wake(index);
                            }
                            break;
                        }
                        thread::park();
                        flags.end(me);
                        if flags.is_quiesced() {
                            break;
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        assert_eq!(handled.load(Ordering::SeqCst), 2, "an item was left behind");
    });
}

/// A goroutine refused a stack while the worker that caches stacks goes to sleep: the refusing
/// worker queues it, fences and wakes whichever worker sleeps; the other announces its sleep and
/// then looks at the queue (see `idle.rs`). One of them sees the other: the cache is handed over
/// and nobody sleeps beside the waiting goroutine.
#[test]
fn a_goroutine_refused_a_stack_wakes_a_worker_going_to_sleep_with_cached_stacks() {
    loom::model(|| {
        let flags = Arc::new(IdleFlags::new(2));
        let waiting_for_stack = Arc::new(AtomicUsize::new(0));
        let handed_over = Arc::new(AtomicUsize::new(0));
        let caching_worker = {
            let (flags, waiting, handed) = (
                Arc::clone(&flags),
                Arc::clone(&waiting_for_stack),
                Arc::clone(&handed_over),
            );
            thread::spawn(move || {
                loop {
                    if waiting.load(Ordering::SeqCst) > 0 {
                        break;
                    }
                    flags.announce(1);
                    if waiting.load(Ordering::SeqCst) > 0 {
                        flags.end(1);
                        break;
                    }
                    thread::park();
                    flags.end(1);
                }
                handed.store(1, Ordering::SeqCst);
            })
        };
        let caching_thread = caching_worker.thread().clone();
        waiting_for_stack.fetch_add(1, Ordering::SeqCst);
        loom::sync::atomic::fence(Ordering::SeqCst);
        if flags.wake(1) {
            caching_thread.unpark();
        }
        caching_worker.join().unwrap();
        assert_eq!(handed_over.load(Ordering::SeqCst), 1);
    });
}

/// `block_on_future`'s flag: a waker on another thread sets it and unparks the poller, which
/// takes it after each poll and parks only when it was not set. Whatever the interleaving, the
/// poller sees the wake and what the waker wrote before it.
#[test]
fn a_wake_between_poll_and_park_is_not_lost() {
    loom::model(|| {
        let flag = Arc::new(crate::wake_flag::WakeFlag::new());
        let result = Arc::new(AtomicUsize::new(0));
        let poller = {
            let (flag, result) = (Arc::clone(&flag), Arc::clone(&result));
            thread::spawn(move || {
                // Poll: not ready yet. Then wait for the wake as `block_on_future` does.
                while !flag.take() {
                    thread::park();
                }
                assert_eq!(
                    result.load(Ordering::Relaxed),
                    42,
                    "the wake published the result"
                );
            })
        };
        let poller_thread = poller.thread().clone();
        result.store(42, Ordering::Relaxed);
        flag.set();
        poller_thread.unpark();
        poller.join().unwrap();
    });
}
