//! The budget of kernel memory mappings that guarded stacks may use.
//!
//! Every guarded stack costs two mappings (the guard page and the usable range), and the kernel
//! refuses new mappings past `vm.max_map_count` (65530 by default). Past that point `mmap` and
//! `mprotect` fail with `ENOMEM`, and so does every other allocation that needs a mapping, in
//! any thread: glibc's malloc, thread stacks, the dynamic loader. The budget therefore stops
//! stacks well before the kernel would, leaving headroom for the rest of the process, and turns
//! the limit into an error that says what to do.

use std::fmt;
use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Mappings each guarded stack costs.
pub const MAPPINGS_PER_STACK: usize = 2;

/// Mappings left to the rest of the process: its own maps at start-up plus this many.
const HEADROOM_MAPPINGS: usize = 4096;

/// The kernel's default `vm.max_map_count`, assumed when the file cannot be read.
const DEFAULT_MAX_MAP_COUNT: usize = 65530;

/// Stacks alive now.
static STACKS_IN_USE: AtomicUsize = AtomicUsize::new(0);
/// The most stacks allowed at once; 0 until first computed.
static STACK_LIMIT: AtomicUsize = AtomicUsize::new(0);

/// Why no stack could be had.
#[derive(Debug)]
#[non_exhaustive]
pub enum StackError {
    /// The map budget is spent: another stack would bring the process too close to
    /// `vm.max_map_count`.
    MapLimit {
        /// The kernel's `vm.max_map_count`.
        max_map_count: usize,
        /// The number of stacks the budget allows at once.
        stack_limit: usize,
        /// Stacks alive when the request was refused.
        stacks_in_use: usize,
    },
    /// Every stack of a dense region is on loan.
    RegionFull {
        /// The number of stacks in the region.
        stacks: usize,
    },
    /// The kernel refused the mapping or its protection; the OS error says why.
    Os(std::io::Error),
}

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StackError::MapLimit {
                max_map_count,
                stack_limit,
                stacks_in_use,
            } => write!(
                f,
                "goroutine stack limit reached: {stacks_in_use} guarded stacks are in use and \
                 the budget allows {stack_limit} (each costs {MAPPINGS_PER_STACK} memory maps; \
                 vm.max_map_count is {max_map_count}). Raise the limit with \
                 `sysctl -w vm.max_map_count=N`, or opt into the dense stack policy, which \
                 carves many stacks from one mapping"
            ),
            StackError::RegionFull { stacks } => write!(
                f,
                "all {stacks} stacks of the dense region are in use; make a larger region"
            ),
            StackError::Os(err) => write!(f, "failed to map a goroutine stack: {err}"),
        }
    }
}

impl std::error::Error for StackError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StackError::MapLimit { .. } | StackError::RegionFull { .. } => None,
            StackError::Os(err) => Some(err),
        }
    }
}

/// The kernel's `vm.max_map_count`, or its default when it cannot be read.
pub fn max_map_count() -> usize {
    fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(DEFAULT_MAX_MAP_COUNT)
}

/// The number of mappings the process holds now (lines of `/proc/self/maps`), if readable.
pub fn process_map_count() -> Option<usize> {
    fs::read_to_string("/proc/self/maps")
        .ok()
        .map(|maps| maps.lines().count())
}

/// The number of guarded stacks allowed alive at once.
///
/// Computed on first use from `vm.max_map_count`, less the mappings the process already holds
/// and a headroom of 4096 mappings for everything else, divided by two mappings per stack. Under
/// the default limit that is a little under 30,000 stacks.
pub fn stack_limit() -> usize {
    match STACK_LIMIT.load(Ordering::Relaxed) {
        0 => {
            let used = process_map_count().unwrap_or(0);
            let free = max_map_count().saturating_sub(used + HEADROOM_MAPPINGS);
            let limit = (free / MAPPINGS_PER_STACK).max(1);
            // A concurrent first use computes the same figure; either store is fine, and an
            // explicit `set_stack_limit` that raced ahead wins.
            match STACK_LIMIT.compare_exchange(0, limit, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => limit,
                Err(current) => current,
            }
        }
        limit => limit,
    }
}

/// Sets the number of guarded stacks allowed alive at once, for example to leave more maps to
/// the rest of the program, or to test the limit. Stacks already alive are not affected; a limit
/// above what the kernel allows only moves the error to the kernel's `ENOMEM`.
///
/// # Panics
///
/// When `limit` is zero.
pub fn set_stack_limit(limit: usize) {
    assert!(limit > 0, "gstack: the stack limit must be at least 1");
    STACK_LIMIT.store(limit, Ordering::Relaxed);
}

/// Guarded stacks alive now.
pub fn stacks_in_use() -> usize {
    STACKS_IN_USE.load(Ordering::Relaxed)
}

/// One stack's claim on the budget, given back on drop.
#[derive(Debug)]
pub(crate) struct BudgetClaim(());

impl BudgetClaim {
    /// Claims room for one more stack.
    pub(crate) fn acquire() -> Result<Self, StackError> {
        let limit = stack_limit();
        let mut in_use = STACKS_IN_USE.load(Ordering::Relaxed);
        loop {
            if in_use >= limit {
                return Err(StackError::MapLimit {
                    max_map_count: max_map_count(),
                    stack_limit: limit,
                    stacks_in_use: in_use,
                });
            }
            match STACKS_IN_USE.compare_exchange_weak(
                in_use,
                in_use + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(BudgetClaim(())),
                Err(current) => in_use = current,
            }
        }
    }
}

impl Drop for BudgetClaim {
    fn drop(&mut self) {
        STACKS_IN_USE.fetch_sub(1, Ordering::Relaxed);
    }
}
