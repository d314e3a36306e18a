//! loom models of the protocols in `readiness.rs` and `wake_state.rs`:
//! `RUSTFLAGS="--cfg goroutines_loom" cargo test --release -p gnet --lib`.

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

use crate::readiness::{Direction, IoState, Ready};
use crate::wake_state::WakeState;

/// An operation that found the socket not ready, against the poller's event: the operation
/// either sees the event, or is woken by it; it never sleeps through it.
#[test]
fn an_event_racing_a_wait_is_never_lost() {
    loom::model(|| {
        let io = Arc::new(IoState::default());
        let arrived = Arc::new(AtomicBool::new(false));
        let poller = {
            let (io, arrived) = (Arc::clone(&io), Arc::clone(&arrived));
            thread::spawn(move || {
                // The data arrives, then the poller reports it.
                arrived.store(true, Ordering::SeqCst);
                io.set_ready(Ready::READABLE);
            })
        };
        // The operation: its call finds no data unless it arrived; then step 1 and step 2.
        loop {
            let seen = io.snapshot();
            if arrived.load(Ordering::SeqCst) {
                break;
            }
            if io.clear(Direction::Read, seen) {
                io.wait(Direction::Read, seen, None);
            }
        }
        poller.join().unwrap();
    });
}

/// A deadline change or a close (`wake_all`) racing an operation about to wait: it is never
/// slept through either.
#[test]
fn a_wake_all_racing_a_wait_is_never_lost() {
    loom::model(|| {
        let io = Arc::new(IoState::default());
        let closed = Arc::new(AtomicBool::new(false));
        let closer = {
            let (io, closed) = (Arc::clone(&io), Arc::clone(&closed));
            thread::spawn(move || {
                closed.store(true, Ordering::SeqCst);
                io.wake_all();
            })
        };
        loop {
            let seen = io.snapshot();
            if closed.load(Ordering::SeqCst) {
                break;
            }
            if io.clear(Direction::Write, seen) {
                io.wait(Direction::Write, seen, None);
            }
        }
        closer.join().unwrap();
    });
}

/// A short read clears the ready bit while an event for new data races it: either the clear
/// fails (the tick moved) or the event sets the bit again afterwards; the next operation, which
/// waits when the bit is clear, is woken.
#[test]
fn a_short_read_racing_new_data_loses_no_wakeup() {
    loom::model(|| {
        let io = Arc::new(IoState::default());
        io.set_ready(Ready::READABLE);
        let more = Arc::new(AtomicBool::new(false));
        let seen = io.snapshot();
        // The short read took everything there was, before the new data.
        let poller = {
            let (io, more) = (Arc::clone(&io), Arc::clone(&more));
            thread::spawn(move || {
                more.store(true, Ordering::SeqCst);
                io.set_ready(Ready::READABLE);
            })
        };
        io.clear_drained(Direction::Read, seen);
        // The next read: it waits while the bit is clear, and reads once it is set.
        loop {
            let seen = io.snapshot();
            if seen.is_ready(Direction::Read) {
                if more.load(Ordering::SeqCst) {
                    break;
                }
                // Set by the first event only: the read finds nothing and waits properly.
                if io.clear(Direction::Read, seen) {
                    io.wait(Direction::Read, seen, None);
                }
                continue;
            }
            io.wait(Direction::Read, seen, None);
        }
        poller.join().unwrap();
    });
}

/// The eventfd as `epoll_wait` sees it: a write leaves an event that one poll takes.
struct EventFd {
    pending: Mutex<bool>,
    written: Condvar,
}

impl EventFd {
    fn new() -> EventFd {
        EventFd {
            pending: Mutex::new(false),
            written: Condvar::new(),
        }
    }

    fn write(&self) {
        *self.pending.lock().unwrap() = true;
        self.written.notify_all();
    }

    /// A poll that waits: returns once an event is there, taking it.
    fn wait(&self) {
        let mut pending = self.pending.lock().unwrap();
        while !*pending {
            pending = self.written.wait(pending).unwrap();
        }
        *pending = false;
    }

    /// A poll that does not wait: takes the event if there is one.
    fn take(&self) {
        *self.pending.lock().unwrap() = false;
    }
}

/// A waker that publishes work and notifies, against the worker that looks for work and then
/// waits in `epoll_wait`, while the monitor's passing poll may take the eventfd's event first:
/// the worker never sleeps with the work unseen (`Poller::wait`).
#[test]
fn a_worker_waiting_in_its_poller_is_always_woken() {
    loom::model(|| {
        let state = Arc::new(WakeState::new());
        let eventfd = Arc::new(EventFd::new());
        let poll_lock = Arc::new(Mutex::new(()));
        let work = Arc::new(AtomicBool::new(false));
        let waker = {
            let (state, eventfd, work) =
                (Arc::clone(&state), Arc::clone(&eventfd), Arc::clone(&work));
            thread::spawn(move || {
                work.store(true, Ordering::SeqCst);
                if state.notify() {
                    eventfd.write();
                }
            })
        };
        let monitor = {
            let (eventfd, poll_lock) = (Arc::clone(&eventfd), Arc::clone(&poll_lock));
            thread::spawn(move || {
                if let Ok(_polling) = poll_lock.try_lock() {
                    eventfd.take();
                }
            })
        };
        while !work.load(Ordering::SeqCst) {
            if state.begin_wait() {
                let _polling = poll_lock.lock().unwrap();
                if !state.notified() {
                    eventfd.wait();
                }
            }
            state.end_wait();
        }
        waker.join().unwrap();
        monitor.join().unwrap();
    });
}
