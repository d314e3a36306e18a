//! Segmented stack growth: continue on a fresh segment when the current stack runs low.
//!
//! ```
//! fn depth(n: u64) -> u64 {
//!     if n == 0 {
//!         return 0;
//!     }
//!     // Every few levels, make sure at least 32 KiB remain; if not, continue on a new
//!     // 256 KiB segment.
//!     gstack::maybe_grow(32 * 1024, 256 * 1024, || depth(n - 1) + 1)
//! }
//! assert_eq!(depth(100_000), 100_000);
//! ```

use ctxswitch::{Stack, on_stack};

use crate::pool::StackPool;
use crate::registry;

/// The address of a local variable: the stack pointer, to within this frame.
#[inline(always)]
fn approximate_sp() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

/// Bytes left on the current stack below the caller, or `None` when the current stack is
/// neither the thread's own nor one that gstack made (or was told of with
/// [`set_current_stack`]).
#[inline]
pub fn remaining_stack() -> Option<usize> {
    let sp = approximate_sp();
    registry::bounds_of(sp).map(|(limit, _)| sp - limit)
}

/// Runs `f` here when at least `red_zone` bytes of stack remain, and otherwise on a fresh
/// guarded segment of `segment_size` bytes (see [`grow`]). On a stack gstack cannot measure it
/// grows, to be safe.
///
/// # Panics
///
/// As [`grow`] when a segment is needed and none can be had; a panic in `f` propagates.
#[inline]
pub fn maybe_grow<R, F: FnOnce() -> R>(red_zone: usize, segment_size: usize, f: F) -> R {
    match remaining_stack() {
        Some(left) if left >= red_zone => f(),
        _ => grow(segment_size, f),
    }
}

/// Runs `f` on a fresh guarded segment of `segment_size` usable bytes and returns its value.
/// Segments come from a pool per size and go back to it; a panic in `f` propagates, after the
/// segment is back.
///
/// # Panics
///
/// When no segment can be had (the map budget is spent, or the kernel refuses), with that
/// error's message: continuing on the current stack could overflow it.
pub fn grow<R, F: FnOnce() -> R>(segment_size: usize, f: F) -> R {
    let pool = StackPool::shared(segment_size);
    let mut segment = pool
        .get()
        .unwrap_or_else(|err| panic!("gstack: cannot grow the stack: {err}"));
    let thread = std::thread::current();
    segment.set_label(
        0,
        &format!(
            "stack segment of thread '{}'",
            thread.name().unwrap_or("<unnamed>")
        ),
    );
    let (limit, base) = (segment.limit(), segment.base());
    let outer = registry::current();
    let result = on_stack(&mut segment, move || {
        registry::set_current(limit, base);
        f()
    });
    registry::restore_current(outer);
    result
}

/// Declares the stack the calling thread now runs on, for a coroutine library whose stacks
/// gstack did not make: call it right after switching to such a stack, so that
/// [`remaining_stack`] and [`maybe_grow`] can measure it.
///
/// Bounds that are wrong make `maybe_grow` grow too early or too late; on a guarded stack,
/// too late ends in the guard page, never in other memory.
pub fn set_current_stack(limit: usize, base: usize) {
    registry::set_current(limit, base);
}
