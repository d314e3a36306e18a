//! Picks exactly one backend for the target.
//!
//! Every backend provides the same five operations on raw words:
//!
//! - `init_stack(base, obj, entry)` prepares a stack so that the first `switch_and_link` into it
//!   calls `entry(arg, link, obj)`, where `entry` never returns.
//! - `switch_and_link::<SAVE_FP>(arg, sp, base)` enters a coroutine whose saved state is `sp`,
//!   records the caller in the coroutine's link slot (`base - LINK_OFFSET`), and returns the word
//!   passed back together with the coroutine's new state, or `None` when it finished. Both sides
//!   of one coroutine's switches use the same `SAVE_FP`: whether the switch preserves the
//!   floating-point control itself.
//! - `switch_yield::<SAVE_FP>(arg, link)` suspends the running coroutine back to the context in
//!   its link slot and returns the word passed by the next `switch_and_link`.
//! - `switch_and_reset(arg, link)` leaves the coroutine for good.
//! - `on_stack(arg, base, f)` calls `f(arg)` with the stack pointer at `base`.
//!
//! Layout shared by all backends, from the stack base down:
//!
//! ```text
//! base - 8    entry function (read once, by the first switch)
//! base - 16   link: where the current resumer is saved while the coroutine runs
//! base - 24   backend scratch word
//! base - 32   flags: whether switches preserve the floating-point control (`SAVE_FP`)
//! below       the closure, 16-byte aligned, then the coroutine's own frames
//! ```

/// Offset of the link slot below the stack base.
pub(crate) const LINK_OFFSET: usize = 16;
/// Offset of the flags word below the stack base: read by the suspending side, which has only
/// the link slot to go by.
pub(crate) const FLAGS_OFFSET: usize = 32;
/// In the flags word: switches leave the floating-point control alone.
pub(crate) const SKIP_FP_CONTROL: usize = 1;
/// Bytes above the closure reserved for the words in the layout above.
pub(crate) const HEADER_SIZE: usize = 32;

/// The signature of a coroutine's entry function: `(argument, link slot, closure)`.
pub(crate) type EntryFn = unsafe extern "C" fn(usize, *mut usize, *mut u8) -> !;
/// The signature of a function run by `on_stack`.
pub(crate) type StackCallFn = unsafe extern "C" fn(*mut u8);

#[cfg(all(target_arch = "x86_64", not(feature = "portable-backend")))]
mod x86_64;
#[cfg(all(target_arch = "x86_64", not(feature = "portable-backend")))]
pub(crate) use x86_64::*;

#[cfg(any(not(target_arch = "x86_64"), feature = "portable-backend"))]
mod portable;
#[cfg(any(not(target_arch = "x86_64"), feature = "portable-backend"))]
pub(crate) use portable::*;

#[cfg(not(unix))]
compile_error!("ctxswitch supports Unix targets only: stacks are mmap'ed");
