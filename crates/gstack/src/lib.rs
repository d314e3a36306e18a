//! Goroutine stacks: guarded, pooled, lazily committed, with segmented growth and overflow
//! reports.
//!
//! - [`GuardedStack`]: a stack of its own anonymous mapping, committed page by page as it is
//!   touched, with an inaccessible guard page below it so that an overflow faults instead of
//!   corrupting memory. It implements [`ctxswitch::Stack`], and works under any coroutine
//!   library that can take a stack by its addresses.
//! - [`StackPool`]: reuse of guarded stacks through a per-thread cache and a bounded global
//!   queue; cold pages go back to the kernel.
//! - The map budget: each guarded stack costs two kernel memory mappings, and the kernel caps a
//!   process at `vm.max_map_count` (65530 by default). Stacks are counted ([`stack_limit`],
//!   [`stacks_in_use`]); past the budget, allocation returns [`StackError::MapLimit`], whose
//!   message names the limit and the ways out, never a crash.
//! - [`DenseStacks`]: the `unsafe` opt-in for more stacks than the map limit allows: many
//!   stacks carved from one mapping, checked by canaries instead of guard pages.
//! - [`install_overflow_handler`]: an overflow that hits a guard page is reported as
//!   `goroutine stack overflow: goroutine 7 ("name"), stack of 256 KiB` before the process
//!   aborts.
//! - [`maybe_grow`] and [`grow`]: run deep code on fresh segments when the current stack runs
//!   low, on the main thread, on OS threads and inside coroutines.

mod budget;
mod dense;
mod grow;
mod guarded;
mod overflow;
mod pool;
mod registry;
mod sys;

pub use budget::{
    MAPPINGS_PER_STACK, StackError, max_map_count, process_map_count, set_stack_limit, stack_limit,
    stacks_in_use,
};
pub use dense::{DenseStack, DenseStacks};
pub use grow::{grow, maybe_grow, remaining_stack, set_current_stack};
pub use guarded::{GOROUTINE_STACK_SIZE, GuardedStack};
pub use overflow::{ensure_alt_stack, install_overflow_handler};
pub use pool::{
    DEFAULT_GLOBAL_CAPACITY, DEFAULT_THREAD_CACHE, DEFAULT_WARM_BYTES, PooledStack, StackPool,
};
