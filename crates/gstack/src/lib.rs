//! Goroutine stacks.
//!
//! [`GuardedStack`] is a stack of its own anonymous mapping, committed page by page as it is
//! touched, with an inaccessible guard page below it so that an overflow faults instead of
//! corrupting memory. It implements [`ctxswitch::Stack`] and works under any coroutine library
//! that can take a stack by its addresses.
//!
//! Each guarded stack costs two kernel memory mappings, and the kernel caps a process at
//! `vm.max_map_count` mappings (65530 by default). Stacks are therefore counted against a budget
//! ([`stack_limit`], [`stacks_in_use`]); past it, allocation returns
//! [`StackError::MapLimit`], whose message names the limit and the ways out, never a crash.

mod budget;
mod guarded;

pub use budget::{
    MAPPINGS_PER_STACK, StackError, max_map_count, process_map_count, set_stack_limit, stack_limit,
    stacks_in_use,
};
pub use guarded::{DEFAULT_STACK_SIZE, GuardedStack};
