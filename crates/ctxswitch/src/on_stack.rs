//! Running a closure on another stack: the step segmented stack growth is built on.

use std::panic::{self, AssertUnwindSafe};
use std::ptr;

use crate::arch;
use crate::stack::{MIN_STACK_SIZE, Stack};

/// Runs `f` on `stack` and returns its value; a panic in `f` propagates to the caller.
///
/// Segmented stack growth is built on this: when the current stack runs low, continue on a fresh
/// one.
///
/// ```
/// use ctxswitch::{DefaultStack, on_stack};
///
/// let mut stack = DefaultStack::new(256 * 1024)?;
/// let sum = on_stack(&mut stack, || (1..=100u64).sum::<u64>());
/// assert_eq!(sum, 5050);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Panics
///
/// When `stack` is smaller than [`MIN_STACK_SIZE`].
pub fn on_stack<S: Stack + ?Sized, F: FnOnce() -> R, R>(stack: &mut S, f: F) -> R {
    assert!(
        stack.size() >= MIN_STACK_SIZE,
        "ctxswitch: on_stack needs a stack of at least {MIN_STACK_SIZE} bytes, got {}",
        stack.size()
    );
    let mut call = StackCall {
        f: Some(f),
        result: None,
    };
    // SAFETY: `&mut S` gives us the stack alone for the call; `run_stack_call` catches every
    // panic, so nothing unwinds through the switch; `call` outlives the call.
    unsafe {
        arch::on_stack(
            ptr::from_mut(&mut call).cast(),
            stack.base(),
            run_stack_call::<F, R>,
            stack.limit(),
        );
    }
    match call.result.expect("on_stack: the function did not run") {
        Ok(value) => value,
        Err(payload) => panic::resume_unwind(payload),
    }
}

struct StackCall<F, R> {
    f: Option<F>,
    result: Option<std::thread::Result<R>>,
}

/// # Safety
///
/// `call` points to a live `StackCall<F, R>` used by nobody else during the call.
unsafe extern "C" fn run_stack_call<F: FnOnce() -> R, R>(call: *mut u8) {
    // SAFETY: as the caller guarantees.
    let call = unsafe { &mut *call.cast::<StackCall<F, R>>() };
    let f = call.f.take().expect("on_stack: the function ran twice");
    call.result = Some(panic::catch_unwind(AssertUnwindSafe(f)));
}
