#![doc = include_str!("../README.md")]

mod budget;
mod dense;
mod grow;
mod guarded;
mod label;
mod overflow;
mod pool;
mod region;
mod registry;
mod slot;
mod sys;

pub use budget::{
    MAPPINGS_PER_STACK, StackError, map_budget, max_map_count, process_map_count, set_stack_limit,
    stack_limit, stacks_in_use,
};
pub use dense::{DenseStack, DenseStacks};
pub use grow::{grow, maybe_grow, remaining_stack, set_current_stack};
pub use guarded::{GOROUTINE_STACK_SIZE, GuardedStack};
pub use overflow::{ensure_alt_stack, install_overflow_handler};
pub use pool::{
    DEFAULT_GLOBAL_CAPACITY, DEFAULT_THREAD_CACHE, DEFAULT_WARM_BYTES, MAX_CACHED_STACKS,
    PooledStack, StackPool, StackPoolBuilder,
};
#[doc(hidden)]
pub use region::force_mapping_per_stack;
pub use region::{StackBackend, stack_backend};
#[doc(hidden)]
pub use slot::page_tables_returnable;
pub use slot::{MAX_STACK_SIZE, check_stack_size, release_pending, return_page_tables};

/// Guard regions reserved so far in this process (each one kernel mapping), for tests and
/// measurements.
#[doc(hidden)]
pub fn guard_region_count() -> usize {
    region::region_count()
}
