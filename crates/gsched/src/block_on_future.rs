//! Running a future to completion on the calling goroutine (or thread): the bridge that lets
//! goroutines call runtime-agnostic async libraries.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::park::{Unparker, current_unparker, park_with_reason};
use crate::wake_flag::WakeFlag;

/// Polls `future` on the calling goroutine until it is ready, parking the goroutine between
/// wake-ups (its worker runs other goroutines meanwhile); from a plain thread, it blocks the
/// thread. The future's `Waker` unparks the caller, from any thread.
///
/// The future runs here, not on an executor: a library whose futures need a runtime's reactor
/// (tokio's sockets and timers) needs that runtime running on threads of its own, entered
/// around the call: `let _entered = tokio_handle.enter(); gsched::block_on_future(fut)` with a
/// multi-thread tokio runtime, whose threads drive its I/O and wake this future.
///
/// ```
/// use std::future::Future;
/// use std::pin::Pin;
/// use std::task::{Context, Poll};
///
/// /// Ready after being polled `left` more times, waking itself each time.
/// struct Countdown { left: u32 }
///
/// impl Future for Countdown {
///     type Output = &'static str;
///     fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<&'static str> {
///         if self.left == 0 {
///             return Poll::Ready("liftoff");
///         }
///         self.left -= 1;
///         cx.waker().wake_by_ref();
///         Poll::Pending
///     }
/// }
///
/// gsched::run(|| {
///     assert_eq!(gsched::block_on_future(Countdown { left: 3 }), "liftoff");
/// });
/// // From a plain thread too.
/// assert_eq!(gsched::block_on_future(async { 6 * 7 }), 42);
/// ```
pub fn block_on_future<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let signal = Arc::new(Signal {
        woken: WakeFlag::new(),
        unparker: current_unparker(),
    });
    let waker = Waker::from(Arc::clone(&signal));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        // A future that wakes itself while it waits for another goroutine of this worker
        // (a cooperative yield) would otherwise poll forever without letting it run.
        crate::checkpoint();
        // A wake between the poll and here is kept in `woken`, and an unpark before the park
        // makes the park return: no wake-up is lost (see `wake_flag.rs`).
        while !signal.woken.take() {
            park_with_reason("future");
        }
    }
}

/// The waker's state: set, then unpark the caller.
struct Signal {
    woken: WakeFlag,
    unparker: Unparker,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.set();
        self.unparker.unpark();
    }
}
