//! Goroutine stacks: guarded, pooled, lazily committed, with segmented growth and overflow
//! reports.
//!
//! - [`StackPool`]: guarded stacks of one size, reused through a per-thread cache and a bounded
//!   global queue, with the memory of a burst given back as its stacks return. Its stacks
//!   implement [`ctxswitch::Stack`], so they work under any coroutine library that can take a
//!   stack by its addresses. Where they come from is the backend ([`stack_backend`]):
//!   - **Guard regions** (Linux 6.13+, the default wherever the kernel has them): stacks are
//!     slots of a few large `MAP_NORESERVE` reservations, each slot with a guard marker
//!     (`MADV_GUARD_INSTALL`) on the page below its stack, installed once when the slot is first
//!     handed out and kept through reuse and page release. A whole region is one kernel
//!     mapping, so a million guarded stacks cost a few dozen mappings of the kernel's
//!     `vm.max_map_count` (65530 by default), and each costs only the pages it touches (plus
//!     its share of page tables: one 4 KiB page-table page per 2 MiB of slots, about 528 bytes
//!     per 256-KiB stack and 144 per 64-KiB one).
//!   - **A mapping per stack** (the fallback, where `madvise` refuses guard markers with
//!     `EINVAL`): each stack is a [`GuardedStack`], its own mapping with a `PROT_NONE` guard
//!     page below.
//! - The map budget, used by the fallback: each [`GuardedStack`] costs two kernel mappings, and
//!   the kernel caps a process at `vm.max_map_count`. They are counted ([`map_budget`],
//!   [`stacks_in_use`]); past the budget, allocation returns [`StackError::MapLimit`], whose
//!   message names the limit and the ways out, never a crash. A program can also cap every
//!   stack, guard-region ones included, with [`set_stack_limit`].
//! - Memory after a burst: a pool keeps a bounded warm cache ([`StackPoolBuilder`] sets it;
//!   see [Memory after a burst](#memory-after-a-burst)), and every stack returned beyond it
//!   gives its pages back to the kernel.
//! - Stack sizes are checked where they are given ([`check_stack_size`],
//!   [`StackPoolBuilder::build`]): below [`ctxswitch::MIN_STACK_SIZE`] or above
//!   [`MAX_STACK_SIZE`] is a [`StackError::InvalidSize`], anything between is rounded up to
//!   whole pages. Guard-region stacks get most of a page more than asked for: the slot's top
//!   page holds its 64-byte overflow label above the stack.
//! - [`DenseStacks`]: the `unsafe` opt-in for more stacks than the map limit allows, kept only
//!   for kernels **without** guard regions (see [The dense policy](#the-dense-policy)).
//! - [`install_overflow_handler`]: an overflow that hits a guard page, of either backend, is
//!   reported as `goroutine stack overflow: goroutine 7 ("name"), stack of 256 KiB` before the
//!   process aborts.
//! - [`maybe_grow`] and [`grow`]: run deep code on fresh segments when the current stack runs
//!   low, on the main thread, on OS threads and inside coroutines.
//!
//! # Memory after a burst
//!
//! A pool keeps at most `thread_cache` whole stacks per thread (16 by default) and
//! `global_capacity` stacks with their top `warm_bytes` committed in a global queue (256 stacks
//! of 16 KiB by default, 4 MiB): enough to serve the goroutines that come and go without a
//! system call, small beside a burst. A stack returned beyond that goes back to the backend:
//! a guard-region slot has every page released (its guard marker stays, so reuse needs no
//! system call), and a [`GuardedStack`] is unmapped.
//!
//! Pages are released with `MADV_DONTNEED`, not `MADV_FREE`. `MADV_DONTNEED` frees the memory
//! in the call: resident memory drops as the burst's stacks come back, deterministically, which
//! is what a user, a benchmark or a container's memory limit sees. `MADV_FREE` only marks pages
//! reclaimable; they stay in the process's resident size until the kernel is short of memory,
//! so nothing visible comes back after a burst. What it saves (the fault and zeroing when a
//! stack is soon reused) is what the warm cache is for, and a stack reused from a cold slot
//! faults in only the pages it touches.
//!
//! Page tables stay: a slot's guard marker lives in its page-table page, so every slot a burst
//! ever used keeps its share (about `stack size / 512` bytes: 528 B for a 256-KiB stack, 144 B
//! for a 64-KiB one), visible as `VmPTE` in `/proc/self/status`, not in `VmRSS`. Reusing those
//! slots costs nothing more.
//!
//! # The dense policy
//!
//! [`DenseStacks`] exists because, with a mapping per stack, the kernel's map limit caps
//! guarded stacks near 30,000. Where the kernel has guard regions, the default pool is as dense
//! (one mapping per few GiB of stacks, one touched page per parked goroutine) and every stack
//! is guarded, so the dense policy gives nothing for its `unsafe` contract: it stays only for
//! kernels without guard regions and should go when the fallback does. It is not marked
//! deprecated: on those kernels it is still the only way past the map limit without raising
//! the sysctl. A runtime should offer it only where [`stack_backend`] is
//! [`StackBackend::MappingPerStack`].

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
pub use slot::{MAX_STACK_SIZE, check_stack_size};

/// Guard regions reserved so far in this process (each one kernel mapping), for tests and
/// measurements.
#[doc(hidden)]
pub fn guard_region_count() -> usize {
    region::region_count()
}
