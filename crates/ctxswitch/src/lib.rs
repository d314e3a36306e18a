//! Stackful coroutines on a hand-written context switch.
//!
//! A [`Coroutine`] runs a closure on a stack of its own. The closure can suspend itself from
//! anywhere in its call tree with [`Yielder::suspend`], handing a value out; [`Coroutine::resume`]
//! continues it, handing a value in. This is the building block of green threads: `gsched` runs
//! goroutines as coroutines on `gstack`'s stacks.
//!
//! ```
//! use ctxswitch::{Coroutine, CoroutineResult};
//!
//! let mut fib = Coroutine::new(|yielder, ()| {
//!     let (mut a, mut b) = (0u64, 1u64);
//!     for _ in 0..10 {
//!         yielder.suspend(a);
//!         (a, b) = (b, a + b);
//!     }
//!     "done"
//! });
//! let mut seen = Vec::new();
//! while let CoroutineResult::Yield(n) = fib.resume(()) {
//!     seen.push(n);
//! }
//! assert_eq!(seen, [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]);
//! ```
//!
//! # What it guarantees
//!
//! - A panic in the body is caught at the coroutine's entry and re-raised by `resume`, with its
//!   original payload.
//! - Dropping a suspended coroutine unwinds its stack, so every destructor on it runs
//!   ([`Coroutine::unwind`] does the same step by step, for destructors that suspend).
//!   Dropping a finished or never-started one just frees it. What cannot be unwound soundly
//!   is leaked, never reused (see [`Coroutine`]'s "Dropping").
//! - Resuming a finished coroutine panics with a clear message; a stack below
//!   [`MIN_STACK_SIZE`] is refused with [`StackTooSmall`].
//! - Backtraces taken inside a coroutine (`std::backtrace`, a debugger, `perf`) walk through its
//!   frames and on into the code that resumed it.
//! - Coroutines are not `Send` (see [`Coroutine`] for why and for the way out).
//!
//! # Targets
//!
//! The switch is hand-written for x86_64 System V (Linux and other Unixes) and saves exactly
//! what that ABI makes callee-saved, including MXCSR and the x87 control word. Every other
//! architecture uses boost.context's switch through the `context` crate, which the
//! `portable-backend` feature also selects on x86_64. Tested: x86_64 Linux, with both backends.
//! The crate needs a Unix (`mmap`) for [`DefaultStack`].

mod arch;
mod coroutine;
mod on_stack;
mod send;
mod stack;
mod thread_exit;
mod yielder;

pub use coroutine::{Coroutine, CoroutineResult};
pub use on_stack::on_stack;
pub use send::SendCoroutine;
pub use stack::{
    DEFAULT_STACK_SIZE, DefaultStack, MIN_STACK_SIZE, Stack, StackTooSmall, page_size,
};
pub use yielder::{Yielder, is_forced_unwind};
