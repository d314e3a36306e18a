#![doc = include_str!("../README.md")]

mod arch;
mod coroutine;
mod fp_control;
mod on_stack;
mod send;
mod stack;
mod thread_exit;
mod yielder;

pub use coroutine::{Coroutine, CoroutineResult};
pub use fp_control::FpControl;
pub use on_stack::on_stack;
pub use send::SendCoroutine;
pub use stack::{
    DEFAULT_STACK_SIZE, DefaultStack, MIN_STACK_SIZE, Stack, StackTooSmall, page_size,
};
pub use yielder::{Yielder, is_forced_unwind};
