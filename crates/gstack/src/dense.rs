//! Dense stacks: many stacks carved from one mapping, for more parked goroutines than the
//! kernel's map limit allows guarded stacks with a mapping each. Kept only for kernels without
//! guard regions (see the crate docs, "The dense policy").
//!
//! Layout, from low to high addresses, for slots of `slot_size` bytes starting at `S`:
//!
//! ```text
//! guard page | slot 0 | slot 1 | ... | slot n-1 | tail page
//!
//! one slot boundary, S(i+1):
//!   ... stack i's frames ...  | S(i+1) | top 3 KiB of stack i | canary i+1 | gap | stack i+1 ...
//!                                       ^ base(i) = S(i+1) + 3 KiB          ^ limit(i+1)
//! ```
//!
//! Each stack's base sits 3 KiB into the next slot's first page, and the next stack's canary
//! right above it, so the page a parked goroutine's top frames live in also holds its
//! neighbour's canary: a stack whose goroutine parks within 3 KiB costs one resident page.
//! The whole region costs two mappings (its guard page and the rest), however many stacks it
//! holds.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_queue::ArrayQueue;
use ctxswitch::{Stack, page_size};

use crate::budget::{BudgetClaim, StackError};
use crate::registry::{self, StackRange};

/// Bytes of each stack's top that live in the next slot's first page.
const TOP_OFFSET: usize = 3 * 1024;
/// Bytes between a stack's canary and its limit: the canary (16) and an untouched gap (240).
const CANARY_GAP: usize = 256;

struct DenseRegion {
    mapping: *mut u8,
    len: usize,
    /// `S(0) + TOP_OFFSET`: stack `i` covers `first + i * slot + CANARY_GAP .. first + (i + 1) * slot`.
    first: usize,
    slot_size: usize,
    count: usize,
    canary: [u64; 2],
    fresh: AtomicUsize,
    free: ArrayQueue<u32>,
    _claim: BudgetClaim,
}

// SAFETY: the region is plain memory; slots are handed out to one owner at a time through the
// atomic `fresh` counter and the lock-free `free` queue.
unsafe impl Send for DenseRegion {}
// SAFETY: as above.
unsafe impl Sync for DenseRegion {}

impl DenseRegion {
    fn limit(&self, index: usize) -> usize {
        self.first + index * self.slot_size + CANARY_GAP
    }

    fn base(&self, index: usize) -> usize {
        self.first + (index + 1) * self.slot_size
    }

    fn canary_ptr(&self, index: usize) -> *mut [u64; 2] {
        (self.limit(index) - CANARY_GAP) as *mut [u64; 2]
    }
}

impl Drop for DenseRegion {
    fn drop(&mut self) {
        registry::remove_range(self.base(self.count - 1));
        // SAFETY: exactly the mapping this region created; no stack of it is on loan (each
        // holds an `Arc` to the region).
        unsafe { libc::munmap(self.mapping.cast(), self.len) };
    }
}

/// Many stacks carved from one mapping: the `unsafe` opt-in for more goroutines than
/// `vm.max_map_count` allows guarded stacks (about 30,000 by default) on a kernel without guard
/// regions. Where the kernel has them ([`stack_backend`](crate::stack_backend)), a
/// [`StackPool`](crate::StackPool) is as dense and guards every stack: use it instead.
///
/// ```
/// use ctxswitch::{Coroutine, CoroutineResult};
/// use gstack::{DenseStack, DenseStacks};
///
/// // SAFETY: the coroutine below uses far less than 64 KiB of stack.
/// let stacks = unsafe { DenseStacks::new(64 * 1024, 1000)? };
/// let mut co = Coroutine::<(), (), u8, DenseStack>::with_stack(stacks.get()?, |_, ()| 1)?;
/// assert_eq!(co.resume(()), CoroutineResult::Return(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct DenseStacks {
    region: Arc<DenseRegion>,
}

impl DenseStacks {
    /// Reserves `count` stacks of `slot_size` bytes each (rounded up to whole pages; each stack
    /// gets `slot_size - 256` usable bytes) in one mapping, committing nothing yet.
    ///
    /// # Safety
    ///
    /// Nothing below a dense stack's limit is protected: the slot below belongs to another
    /// stack. The caller promises that code running on these stacks never needs more than a
    /// stack's usable size.
    ///
    /// What is caught: every stack has a 16-byte canary right below its limit, checked when the
    /// stack is returned (dropped) and whenever [`DenseStack::check_canary`] runs (a runtime
    /// calls it each time a goroutine is switched out). A clobbered canary aborts the process
    /// with a message naming the stack. This catches an overflow that runs linearly through the
    /// 240 bytes below the limit, but only after the fact.
    ///
    /// What is not caught: a frame that skips over the canary (a large local array) writes
    /// straight into the neighbouring stack; corruption of the neighbour's frames happens before
    /// any check sees it, and can surface there first as wrong results or a crash; and an
    /// overflow that stops within the gap and returns is caught only if it touched the canary.
    /// Use guarded stacks ([`GuardedStack`](crate::GuardedStack)) wherever the map limit
    /// allows.
    ///
    /// # Errors
    ///
    /// [`StackError::MapLimit`] when the map budget is spent, [`StackError::Os`] when the
    /// kernel refuses the mapping; nothing leaks either way.
    pub unsafe fn new(slot_size: usize, count: usize) -> Result<Self, StackError> {
        let invalid = |what: &str| {
            StackError::Os(io::Error::new(
                io::ErrorKind::InvalidInput,
                what.to_string(),
            ))
        };
        if count == 0 || count > u32::MAX as usize {
            return Err(invalid(
                "dense stacks: count must be between 1 and 2^32 - 1",
            ));
        }
        let page = page_size();
        let slot_size = slot_size.next_multiple_of(page);
        if slot_size < ctxswitch::MIN_STACK_SIZE + CANARY_GAP {
            return Err(invalid(
                "dense stacks: slot size below ctxswitch::MIN_STACK_SIZE + 256",
            ));
        }
        let len = slot_size
            .checked_mul(count)
            .and_then(|slots| slots.checked_add(2 * page))
            .ok_or_else(|| invalid("dense stacks: region size overflows"))?;
        let claim = BudgetClaim::acquire()?;
        let mapping = crate::sys::map_lazily(len).map_err(StackError::Os)?;
        let seed = mapping as u64 ^ 0x9e37_79b9_7f4a_7c15;
        let region = DenseRegion {
            mapping: mapping.cast(),
            len,
            first: mapping as usize + page + TOP_OFFSET,
            slot_size,
            count,
            canary: [seed.rotate_left(17), !seed],
            fresh: AtomicUsize::new(0),
            free: ArrayQueue::new(count),
            _claim: claim,
        };
        registry::insert_range(
            region.base(count - 1),
            StackRange::Carved {
                start: region.first,
                first_limit: region.limit(0),
                first_base: region.base(0),
                slot_size,
            },
        );
        // SAFETY: the first page lies inside the mapping `region` owns (which unmaps it if this
        // fails), unused so far.
        unsafe { crate::sys::protect_guard(mapping) }.map_err(StackError::Os)?;
        Ok(DenseStacks {
            region: Arc::new(region),
        })
    }

    /// A free stack of the region.
    ///
    /// # Errors
    ///
    /// [`StackError::RegionFull`] when all of the region's stacks are on loan.
    pub fn get(&self) -> Result<DenseStack, StackError> {
        let region = &self.region;
        let index = match region.free.pop() {
            Some(index) => index as usize,
            None => {
                let index = region.fresh.fetch_add(1, Ordering::Relaxed);
                if index >= region.count {
                    region.fresh.fetch_sub(1, Ordering::Relaxed);
                    return Err(StackError::RegionFull {
                        stacks: region.count,
                    });
                }
                // SAFETY: the canary lies in this slot's gap, which nothing else uses.
                unsafe { region.canary_ptr(index).write(region.canary) };
                index
            }
        };
        Ok(DenseStack {
            region: Arc::clone(region),
            index,
        })
    }

    /// The usable size of each stack in bytes.
    pub fn stack_size(&self) -> usize {
        self.region.slot_size - CANARY_GAP
    }

    /// The number of stacks in the region.
    pub fn capacity(&self) -> usize {
        self.region.count
    }
}

impl fmt::Debug for DenseStacks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DenseStacks")
            .field("stack_size", &self.stack_size())
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

/// One stack of a [`DenseStacks`] region; dropping it checks its canary and frees the slot.
pub struct DenseStack {
    region: Arc<DenseRegion>,
    index: usize,
}

impl DenseStack {
    /// Whether the canary below this stack's limit is intact.
    pub fn canary_intact(&self) -> bool {
        // SAFETY: the canary was written when the slot was first handed out and lies in this
        // slot's gap.
        unsafe { self.region.canary_ptr(self.index).read_volatile() == self.region.canary }
    }

    /// Aborts the process with a message naming this stack if its canary was overwritten: a
    /// goroutine ran past the stack's limit into the next one. Runtimes call this each time a
    /// goroutine on a dense stack is switched out.
    pub fn check_canary(&self) {
        if !self.canary_intact() {
            eprintln!(
                "goroutine stack overflow: dense stack {} of {} KiB overran its limit; the \
                 neighbouring stack may be corrupted. Use guarded stacks, or larger dense slots.",
                self.index,
                (self.region.slot_size - CANARY_GAP) / 1024
            );
            std::process::abort();
        }
    }
}

// SAFETY: `limit..base` is this slot's stack, handed to this value alone until it is dropped,
// inside a mapping kept alive by the `Arc`. The missing guard page is the documented duty of
// the caller of the `unsafe` `DenseStacks::new`.
unsafe impl Stack for DenseStack {
    fn base(&self) -> usize {
        self.region.base(self.index)
    }

    fn limit(&self) -> usize {
        self.region.limit(self.index)
    }
}

impl Drop for DenseStack {
    fn drop(&mut self) {
        self.check_canary();
        // The queue has room for every slot, so this never fails.
        let _ = self.region.free.push(self.index as u32);
    }
}

impl fmt::Debug for DenseStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DenseStack")
            .field("index", &self.index)
            .field("base", &format_args!("{:#x}", self.base()))
            .finish()
    }
}
