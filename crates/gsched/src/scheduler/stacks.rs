//! Where goroutine stacks come from, and what the runtime says when they run out.

use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use ctxswitch::{FpControl, Stack};
use gstack::{DenseStack, DenseStacks, PooledStack, StackError, StackPool};

use super::task::GoroutineCoroutine;

/// The smallest goroutine stack a runtime or a goroutine accepts, in bytes: ctxswitch's minimum
/// (room for the unwinder) plus room for the goroutine's entry frame and its closure, and the
/// top bytes that hold its coroutine. Guarded stacks are then rounded up to whole pages.
pub const MIN_STACK_SIZE: usize = ctxswitch::MIN_STACK_SIZE + 256 + HOUSING;

/// The top bytes of every goroutine stack, above the part the goroutine runs on, that hold its
/// coroutine (see [`HousedCoroutine`]).
const HOUSING: usize = 128;

const _: () = assert!(
    size_of::<Housing>() <= HOUSING && align_of::<Housing>() <= 16,
    "a goroutine's coroutine fits the top of its stack"
);

/// The largest goroutine stack a runtime or a goroutine accepts, in bytes (Go's limit on 64-bit
/// targets). Stacks are reserved address space, committed as they are touched.
pub const MAX_STACK_SIZE: usize = 1 << 30;

// A goroutine's header keeps its stack size in 32 bits.
const _: () = assert!(MAX_STACK_SIZE <= u32::MAX as usize);

/// Where goroutine stacks come from.
pub(crate) enum StackPolicy {
    /// Guarded stacks from gstack's shared pools, one per stack size; the pool of the default
    /// size is kept at hand, so the common case takes no lock.
    Guarded { default_pool: StackPool },
    /// Stacks carved from one region (the `unsafe` opt-in).
    Dense { stacks: DenseStacks },
}

impl StackPolicy {
    /// The stack size of a goroutine that asks for none.
    pub(crate) fn default_size(&self) -> usize {
        match self {
            StackPolicy::Guarded { default_pool } => default_pool.stack_size(),
            StackPolicy::Dense { stacks } => stacks.stack_size(),
        }
    }

    /// The stack size a goroutine asking for `requested` bytes gets, or (`Err`) the largest it
    /// could have asked for.
    pub(crate) fn check_goroutine_stack(&self, requested: usize) -> Result<usize, usize> {
        let (max, given) = match self {
            StackPolicy::Guarded { .. } => (MAX_STACK_SIZE, requested),
            StackPolicy::Dense { stacks } => (stacks.stack_size(), stacks.stack_size()),
        };
        if (MIN_STACK_SIZE..=max).contains(&requested) {
            Ok(given)
        } else {
            Err(max)
        }
    }

    /// Hands the calling worker's cached stacks to the pool's shared queue, where goroutines
    /// waiting for a stack on other workers can have them; how many moved.
    pub(super) fn release_thread_cache(&self) -> usize {
        match self {
            StackPolicy::Guarded { default_pool } => default_pool.release_thread_cache(),
            StackPolicy::Dense { .. } => 0,
        }
    }

    /// Whether a stack may be had now without one coming back first: under the stack limit, or
    /// one waits in the shared queue.
    pub(super) fn may_have_stack(&self) -> bool {
        match self {
            StackPolicy::Guarded { default_pool } => {
                gstack::stacks_in_use() < gstack::stack_limit() || default_pool.global_len() > 0
            }
            StackPolicy::Dense { .. } => false,
        }
    }

    pub(super) fn get(&self, size: usize) -> Result<GoroutineStack, StackError> {
        match self {
            StackPolicy::Guarded { default_pool } if default_pool.stack_size() == size => {
                default_pool.get().map(GoroutineStack::guarded)
            }
            StackPolicy::Guarded { .. } => {
                StackPool::shared(size).get().map(GoroutineStack::guarded)
            }
            StackPolicy::Dense { stacks } => stacks.get().map(GoroutineStack::dense),
        }
    }
}

/// A goroutine's stack under either policy, with its bounds, which every resume reads, taken
/// once. The coroutine runs below `base`; the `HOUSING` bytes above it hold the coroutine.
pub(crate) struct GoroutineStack {
    /// `HOUSING` bytes below the top of the memory.
    base: usize,
    limit: usize,
    memory: StackMemory,
}

enum StackMemory {
    Guarded(PooledStack),
    Dense(DenseStack),
}

impl GoroutineStack {
    fn guarded(stack: PooledStack) -> Self {
        GoroutineStack {
            base: stack.base() - HOUSING,
            limit: stack.limit(),
            memory: StackMemory::Guarded(stack),
        }
    }

    fn dense(stack: DenseStack) -> Self {
        GoroutineStack {
            base: stack.base() - HOUSING,
            limit: stack.limit(),
            memory: StackMemory::Dense(stack),
        }
    }

    pub(super) fn set_label(&self, id: u64, name: &str) {
        if let StackMemory::Guarded(stack) = &self.memory {
            stack.set_label(id, name);
        }
    }

    /// Aborts with a report if a dense stack's canary was overwritten.
    #[inline]
    pub(crate) fn check(&self) {
        if let StackMemory::Dense(stack) = &self.memory {
            stack.check_canary();
        }
    }
}

// SAFETY: the bounds are copied, at creation, from the stack this value owns alone, whose own
// `Stack` implementation makes the promises (alignment, memory nothing else uses, a guard page
// below, or for dense stacks the runtime builder's `unsafe` contract), less the housing at the
// top (a multiple of 16, and `MIN_STACK_SIZE` leaves ctxswitch's minimum below it); that memory
// lives outside this value and its bounds never change while the stack exists.
unsafe impl Stack for GoroutineStack {
    #[inline]
    fn base(&self) -> usize {
        self.base
    }

    #[inline]
    fn limit(&self) -> usize {
        self.limit
    }
}

/// A goroutine's coroutine, kept in the housing at the top of its own stack rather than on the
/// heap: the stack's top page is resident while the goroutine lives anyway, so a parked
/// goroutine costs its coroutine's size less, and starting one allocates nothing more.
pub(crate) struct HousedCoroutine {
    housing: NonNull<Housing>,
}

/// What the top of a started goroutine's stack holds.
struct Housing {
    coroutine: GoroutineCoroutine,
    /// The floating-point control state the goroutine left when it last switched out, where it
    /// differs from its worker's (see `WorkerLocal::resume`): its switches skip that state.
    fp_control: Option<FpControl>,
}

impl HousedCoroutine {
    pub(crate) fn new(coroutine: GoroutineCoroutine) -> Self {
        let housing = NonNull::new(coroutine.stack().base as *mut Housing)
            .expect("a stack's housing is not at address 0");
        // SAFETY: the housing (above `base`, 16-aligned, large enough) is memory the coroutine's
        // own stack holds alone and never runs on; `drop` moves the coroutine out before the
        // stack can go away.
        unsafe {
            housing.write(Housing {
                coroutine,
                fp_control: None,
            });
        }
        HousedCoroutine { housing }
    }

    /// The floating-point control state to give the goroutine back before it resumes, if it
    /// left one other than its worker's.
    #[inline]
    pub(crate) fn take_fp_control(&mut self) -> Option<FpControl> {
        // SAFETY: the housing holds a live value until `drop`, and `&mut self` makes this the
        // only access.
        unsafe { self.housing.as_mut() }.fp_control.take()
    }

    /// Keeps the floating-point control state the goroutine left, for its next resume.
    #[inline]
    pub(crate) fn keep_fp_control(&mut self, state: FpControl) {
        // SAFETY: as in `take_fp_control`.
        unsafe { self.housing.as_mut() }.fp_control = Some(state);
    }
}

impl HousedCoroutine {
    /// The stack of a coroutine that ran to its end, for another goroutine.
    ///
    /// # Panics
    ///
    /// As [`ctxswitch::Coroutine::into_stack`], when the coroutine has not finished.
    pub(crate) fn into_stack(self) -> GoroutineStack {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: the housing holds a live coroutine, moved out once here; `this` is never
        // dropped, so nothing reads the housing again before the stack is reused.
        let housing = unsafe { this.housing.as_ptr().read() };
        housing.coroutine.into_stack()
    }
}

impl Deref for HousedCoroutine {
    type Target = GoroutineCoroutine;

    #[inline]
    fn deref(&self) -> &GoroutineCoroutine {
        // SAFETY: the housing holds a live coroutine until `drop`.
        unsafe { &self.housing.as_ref().coroutine }
    }
}

impl DerefMut for HousedCoroutine {
    #[inline]
    fn deref_mut(&mut self) -> &mut GoroutineCoroutine {
        // SAFETY: as above, and `&mut self` makes this the only access.
        unsafe { &mut self.housing.as_mut().coroutine }
    }
}

impl Drop for HousedCoroutine {
    fn drop(&mut self) {
        // SAFETY: the housing holds a live coroutine, read out once here: dropping it may give
        // its stack (and so the housing) back, so it is dropped from here, not in place.
        drop(unsafe { self.housing.as_ptr().read() });
    }
}

/// Threads in this process, from `/proc/self/status`.
pub(super) fn process_threads() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()
}

#[cold]
pub(super) fn report_stack_exhaustion(policy: &StackPolicy) {
    use std::io::Write;
    let message = match policy {
        StackPolicy::Guarded { .. } => match gstack::stack_backend() {
            gstack::StackBackend::GuardRegions => format!(
                "gsched: no goroutine can make progress: every goroutine stack is held by a \
                 parked goroutine, and {} stacks is the most this process allows \
                 (`gstack::set_stack_limit`). Raise the limit, or let fewer goroutines block at \
                 once. The runtime keeps waiting.",
                gstack::stack_limit()
            ),
            _ => format!(
                "gsched: no goroutine can make progress: every goroutine stack is held by a \
                 parked goroutine, and {} stacks is the most the kernel's map limit allows \
                 (vm.max_map_count = {}; this kernel has no guard regions, so each stack costs \
                 two mappings). Raise it with `sysctl -w vm.max_map_count=N`, use smaller or \
                 dense stacks, or let fewer goroutines block at once. The runtime keeps waiting.",
                gstack::map_budget().min(gstack::stack_limit()),
                gstack::max_map_count()
            ),
        },
        StackPolicy::Dense { stacks } => format!(
            "gsched: no goroutine can make progress: every goroutine stack is held by a parked \
             goroutine, and the runtime's dense region holds {} stacks. Build the runtime with \
             more dense stacks, or let fewer goroutines block at once. The runtime keeps \
             waiting.",
            stacks.capacity()
        ),
    };
    // A closed stderr must not unwind the worker.
    let _ = writeln!(std::io::stderr(), "{message}");
}
