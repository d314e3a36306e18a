//! How many stacks may be alive at once: the map budget of stacks that cost kernel mappings,
//! and an optional limit set by the program on every stack.
//!
//! A stack with a mapping of its own ([`GuardedStack`](crate::GuardedStack), the fallback where
//! the kernel lacks guard regions) costs two mappings (the guard page and the usable range), and
//! the kernel refuses new mappings past `vm.max_map_count` (65530 by default). Past that point
//! `mmap` and `mprotect` fail with `ENOMEM`, and so does every other allocation that needs a
//! mapping, in any thread: glibc's malloc, thread stacks, the dynamic loader. The map budget
//! therefore stops such stacks well before the kernel would, leaving headroom for the rest of
//! the process, and turns the limit into an error that says what to do.
//!
//! A stack in a guard region costs no mapping (a whole region is one), so the map budget does not
//! apply to it; only a limit set with [`set_stack_limit`] does.

use std::fmt;
use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Mappings each stack with a mapping of its own costs.
pub const MAPPINGS_PER_STACK: usize = 2;

/// Mappings left to the rest of the process: its own maps at start-up plus this many.
const HEADROOM_MAPPINGS: usize = 4096;

/// The kernel's default `vm.max_map_count`, assumed when the file cannot be read.
const DEFAULT_MAX_MAP_COUNT: usize = 65530;

/// Stacks alive now, of every kind.
static STACKS_IN_USE: AtomicUsize = AtomicUsize::new(0);
/// Stacks alive now that cost mappings of their own.
static MAPPED_IN_USE: AtomicUsize = AtomicUsize::new(0);
/// The process's page tables (`VmPTE` in `/proc/self/status`) in KiB, if readable.
pub(crate) fn page_tables_kib() -> Option<usize> {
    fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("VmPTE:"))
        .and_then(|value| value.trim().strip_suffix("kB")?.trim().parse().ok())
}

/// The most stacks with mappings of their own allowed at once; 0 until first computed.
static MAP_BUDGET: AtomicUsize = AtomicUsize::new(0);
/// The limit set by [`set_stack_limit`]; 0 while none is.
static SET_LIMIT: AtomicUsize = AtomicUsize::new(0);

/// Why no stack could be had.
#[derive(Debug)]
#[non_exhaustive]
pub enum StackError {
    /// The stack budget is spent: another stack would bring the process too close to
    /// `vm.max_map_count`, or past the limit set with [`set_stack_limit`]. A runtime can wait
    /// for a stack to be freed.
    MapLimit {
        /// The kernel's `vm.max_map_count`.
        max_map_count: usize,
        /// The number of stacks the budget allows at once.
        stack_limit: usize,
        /// Stacks alive when the request was refused (of those the budget counts).
        stacks_in_use: usize,
        /// Mappings the refused stack would have cost: [`MAPPINGS_PER_STACK`] for a stack with
        /// a mapping of its own, 0 for a stack in a guard region (refused by a limit set with
        /// [`set_stack_limit`]).
        mappings_per_stack: usize,
    },
    /// A stack size outside what the crate accepts; sizes within are rounded up to whole pages.
    InvalidSize {
        /// The size asked for, in bytes.
        requested: usize,
        /// The smallest size accepted ([`ctxswitch::MIN_STACK_SIZE`]).
        min: usize,
        /// The largest size accepted ([`MAX_STACK_SIZE`](crate::MAX_STACK_SIZE)).
        max: usize,
    },
    /// A pool cache bound above what a pool accepts.
    CacheSize {
        /// The number of stacks asked for.
        requested: usize,
        /// The most accepted ([`MAX_CACHED_STACKS`](crate::MAX_CACHED_STACKS)).
        max: usize,
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
                stack_limit,
                stacks_in_use,
                mappings_per_stack: 0,
                ..
            } => write!(
                f,
                "goroutine stack limit reached: {stacks_in_use} stacks are in use and the limit \
                 set with `gstack::set_stack_limit` allows {stack_limit}. Stacks in guard \
                 regions cost no memory maps: raise the limit, or let fewer goroutines block at \
                 once"
            ),
            StackError::MapLimit {
                max_map_count,
                stack_limit,
                stacks_in_use,
                ..
            } => write!(
                f,
                "goroutine stack limit reached: {stacks_in_use} guarded stacks are in use and \
                 the budget allows {stack_limit} (each costs {MAPPINGS_PER_STACK} memory maps; \
                 vm.max_map_count is {max_map_count}). Raise the limit with \
                 `sysctl -w vm.max_map_count=N`, run on a kernel with guard regions (Linux \
                 6.13+), where pooled stacks need no mapping each, or opt into the dense stack \
                 policy, which carves many stacks from one mapping"
            ),
            StackError::RegionFull { stacks } => write!(
                f,
                "all {stacks} stacks of the dense region are in use; make a larger region"
            ),
            StackError::InvalidSize {
                requested,
                min,
                max,
            } => write!(
                f,
                "a goroutine stack of {requested} bytes is outside the accepted sizes, \
                 {min} to {max} bytes (sizes within are rounded up to whole pages)"
            ),
            StackError::CacheSize { requested, max } => write!(
                f,
                "a stack cache of {requested} stacks is more than a pool keeps (at most {max})"
            ),
            StackError::Os(err) => write!(f, "failed to map a goroutine stack: {err}"),
        }
    }
}

impl std::error::Error for StackError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StackError::MapLimit { .. }
            | StackError::RegionFull { .. }
            | StackError::InvalidSize { .. }
            | StackError::CacheSize { .. } => None,
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

/// The most stacks with mappings of their own (the fallback's [`GuardedStack`]s, and dense
/// regions) allowed alive at once, when no limit is set with [`set_stack_limit`].
///
/// Computed on first use from `vm.max_map_count`, less the mappings the process already holds
/// and a headroom of 4096 mappings for everything else, divided by two mappings per stack. Under
/// the default limit that is a little under 30,000 stacks.
///
/// [`GuardedStack`]: crate::GuardedStack
pub fn map_budget() -> usize {
    match MAP_BUDGET.load(Ordering::Relaxed) {
        0 => {
            let used = process_map_count().unwrap_or(0);
            let free = max_map_count().saturating_sub(used + HEADROOM_MAPPINGS);
            let budget = (free / MAPPINGS_PER_STACK).max(1);
            // A concurrent first use computes nearly the same figure; the first store wins.
            match MAP_BUDGET.compare_exchange(0, budget, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => budget,
                Err(current) => current,
            }
        }
        budget => budget,
    }
}

/// The most stacks allowed alive at once: the limit set with [`set_stack_limit`] if any;
/// otherwise, where the kernel has guard regions (see [`stack_backend`]), `usize::MAX` (pooled
/// stacks cost no mappings, only the memory they touch), and elsewhere the [`map_budget`].
///
/// Stacks with mappings of their own stay under the [`map_budget`] whatever this says, unless a
/// limit was set.
///
/// [`stack_backend`]: crate::stack_backend
pub fn stack_limit() -> usize {
    match SET_LIMIT.load(Ordering::Relaxed) {
        0 if crate::region::supported() => usize::MAX,
        0 => map_budget(),
        limit => limit,
    }
}

/// Sets the number of stacks allowed alive at once, of every kind, for example to leave more
/// maps to the rest of the program, to bound memory, or to test the limit. It replaces the
/// [`map_budget`] for stacks with mappings of their own. Stacks already alive are not affected;
/// a limit above what the kernel allows only moves the error to the kernel's `ENOMEM`.
///
/// # Panics
///
/// When `limit` is zero.
pub fn set_stack_limit(limit: usize) {
    assert!(limit > 0, "gstack: the stack limit must be at least 1");
    SET_LIMIT.store(limit, Ordering::Relaxed);
}

/// Stacks alive now, of every kind: stacks with mappings of their own, and guard-region stacks
/// on loan or kept warm by a pool (a slot whose pages were released does not count).
pub fn stacks_in_use() -> usize {
    STACKS_IN_USE.load(Ordering::Relaxed)
}

/// Adds one to `counter` unless it has reached `limit`; on refusal, the count it had.
fn increment_below(counter: &AtomicUsize, limit: usize) -> Result<(), usize> {
    let mut in_use = counter.load(Ordering::Relaxed);
    loop {
        if in_use >= limit {
            return Err(in_use);
        }
        match counter.compare_exchange_weak(
            in_use,
            in_use + 1,
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => return Ok(()),
            Err(current) => in_use = current,
        }
    }
}

/// One claim on the budget of a stack with mappings of its own, given back on drop.
#[derive(Debug)]
pub(crate) struct BudgetClaim(());

impl BudgetClaim {
    /// Claims room for one more stack with mappings of its own.
    pub(crate) fn acquire() -> Result<Self, StackError> {
        let refused = |stack_limit, stacks_in_use| StackError::MapLimit {
            max_map_count: max_map_count(),
            stack_limit,
            stacks_in_use,
            mappings_per_stack: MAPPINGS_PER_STACK,
        };
        match SET_LIMIT.load(Ordering::Relaxed) {
            0 => {
                let budget = map_budget();
                increment_below(&MAPPED_IN_USE, budget).map_err(|n| refused(budget, n))?;
                STACKS_IN_USE.fetch_add(1, Ordering::Relaxed);
            }
            limit => {
                increment_below(&STACKS_IN_USE, limit).map_err(|n| refused(limit, n))?;
                MAPPED_IN_USE.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(BudgetClaim(()))
    }
}

impl Drop for BudgetClaim {
    fn drop(&mut self) {
        MAPPED_IN_USE.fetch_sub(1, Ordering::Relaxed);
        STACKS_IN_USE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One guard-region slot's claim on the stack limit, given back on drop.
#[derive(Debug)]
pub(crate) struct SlotClaim(());

impl SlotClaim {
    /// Claims room for one more guard-region stack: always granted unless a limit was set.
    pub(crate) fn acquire() -> Result<Self, StackError> {
        match SET_LIMIT.load(Ordering::Relaxed) {
            0 => {
                STACKS_IN_USE.fetch_add(1, Ordering::Relaxed);
            }
            limit => {
                increment_below(&STACKS_IN_USE, limit).map_err(|stacks_in_use| {
                    StackError::MapLimit {
                        max_map_count: max_map_count(),
                        stack_limit: limit,
                        stacks_in_use,
                        mappings_per_stack: 0,
                    }
                })?;
            }
        }
        Ok(SlotClaim(()))
    }
}

impl Drop for SlotClaim {
    fn drop(&mut self) {
        STACKS_IN_USE.fetch_sub(1, Ordering::Relaxed);
    }
}
