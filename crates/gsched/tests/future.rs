//! `block_on_future`: a future polled on a goroutine, woken from another thread.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// Ready once another thread sets its value; that thread wakes the last waker it was given.
#[derive(Clone, Default)]
struct Handoff(Arc<Mutex<(Option<u32>, Option<Waker>)>>);

impl Handoff {
    fn complete_later(&self, value: u32, after: Duration) {
        let shared = self.0.clone();
        std::thread::spawn(move || {
            std::thread::sleep(after);
            let waker = {
                let mut state = shared.lock().unwrap();
                state.0 = Some(value);
                state.1.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        });
    }
}

impl Future for Handoff {
    type Output = u32;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        let mut state = self.0.lock().unwrap();
        match state.0 {
            Some(value) => Poll::Ready(value),
            None => {
                state.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

#[test]
fn a_goroutine_parks_on_a_future_while_its_worker_runs_others() {
    let rt = gsched::Runtime::builder().workers(1).build().unwrap();
    let (sum, other_ran) = rt.block_on(|| {
        let handoff = Handoff::default();
        handoff.complete_later(7, Duration::from_millis(30));
        // One worker: the other goroutine runs only if the waiting one parked.
        let other = gsched::go(|| 35);
        let value = gsched::block_on_future(handoff);
        (value + other.join().unwrap(), true)
    });
    assert_eq!(sum, 42);
    assert!(other_ran);
}

#[test]
fn a_plain_thread_blocks_on_a_future() {
    let handoff = Handoff::default();
    handoff.complete_later(5, Duration::from_millis(10));
    assert_eq!(gsched::block_on_future(handoff), 5);
    assert_eq!(gsched::block_on_future(async { 1 + 1 }), 2);
}

/// Ready once `flag` is set, waking itself on every poll until then (a cooperative yield).
struct SpinUntil(Arc<std::sync::atomic::AtomicBool>);

impl Future for SpinUntil {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.load(std::sync::atomic::Ordering::Acquire) {
            return Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[test]
fn a_future_that_wakes_itself_lets_the_goroutines_of_its_worker_run() {
    // One worker: the goroutine that sets the flag runs only if the polling loop yields.
    testkit::within(Duration::from_secs(30), || {
        let rt = gsched::Runtime::builder().workers(1).build().unwrap();
        rt.block_on(|| {
            let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let setter = gsched::go({
                let flag = flag.clone();
                move || flag.store(true, std::sync::atomic::Ordering::Release)
            });
            gsched::block_on_future(SpinUntil(flag));
            setter.join().unwrap();
        });
    });
}
