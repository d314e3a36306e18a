//! Calling an async library from goroutines: `gsched::block_on_future` polls the future on the
//! goroutine and parks it between wake-ups, so the worker runs other goroutines meanwhile.
//! Here the "library" is a runtime-agnostic future that a timer thread completes; a library
//! that needs tokio's reactor would be called the same way inside `tokio_handle.enter()`, with
//! a multi-thread tokio runtime driving its I/O.
//!
//! `cargo run --example async_library -p goroutines-sync`

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// An async "fetch" that completes on another thread after `delay`.
fn fetch(key: u32, delay: Duration) -> impl Future<Output = String> {
    #[derive(Default)]
    struct State {
        value: Option<String>,
        waker: Option<Waker>,
    }
    struct Fetch(Arc<Mutex<State>>);
    impl Future for Fetch {
        type Output = String;
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<String> {
            let mut state = self.0.lock().unwrap();
            match state.value.take() {
                Some(value) => Poll::Ready(value),
                None => {
                    state.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        }
    }
    let state = Arc::new(Mutex::new(State::default()));
    let completer = state.clone();
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        let waker = {
            let mut state = completer.lock().unwrap();
            state.value = Some(format!("value of {key}"));
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    });
    Fetch(state)
}

fn main() {
    gsched::run(|| {
        let handles: Vec<_> = (0..8)
            .map(|key| {
                gsched::go(move || gsched::block_on_future(fetch(key, Duration::from_millis(10))))
            })
            .collect();
        for handle in handles {
            println!("{}", handle.join().unwrap());
        }
    });
}
