//! Guard regions: large reservations carved into guarded stack slots, and the table the overflow
//! handler reads to find a slot from a fault address.
//!
//! Linux 6.13 added guard markers (`madvise(MADV_GUARD_INSTALL)`): a page that faults on any
//! touch, installed in the page tables without splitting the mapping. A region is one
//! `MAP_NORESERVE` mapping of a few GiB, so however many guarded stacks it holds, it costs one
//! kernel mapping (against `vm.max_map_count`) and only the pages stacks touch.
//!
//! # Layout
//!
//! A region is an array of equal slots; stack sizes that round to the same number of pages share
//! a slot size, and each slot size has regions of its own (see `slot.rs`).
//!
//! ```text
//! region start                                                                   region end
//! | slot 0 | slot 1 | ... | slot n-1 |
//!
//! one slot, from low to high addresses (slot_size = page + stack_size + page):
//! | guard page | stack_size bytes of stack ...   | top page: stack ... | label (64 B) |
//!              ^ limit                                                 ^ base
//! ```
//!
//! - The guard page at the bottom carries a guard marker, installed once when the slot is first
//!   handed out. It stays through reuse and through `MADV_DONTNEED` of the rest of the slot.
//! - The top page holds the slot's [`Label`] in its last 64 bytes, right above the stack's
//!   base. A parked goroutine's frames live in that page anyway, so the label costs no memory;
//!   releasing the slot's pages clears it with the rest. The extra page keeps the usable stack
//!   at least the size asked for.
//! - Regions are never unmapped: a slot whose stack is returned has its pages released and
//!   waits for reuse with its guard in place. This keeps the table append-only, which is what
//!   lets a signal handler read it without locks.
//!
//! # The table
//!
//! A fixed static array of region descriptors (start, length, slot size, stack size), appended
//! under a lock and published with a release store of the start. The overflow handler scans the
//! published entries with atomic loads only, finds the region that holds the fault address, and
//! computes the slot and whether the address is in its guard page by arithmetic.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use ctxswitch::page_size;

use crate::budget::StackError;
use crate::label::{LABEL_SIZE, Label};
use crate::registry::{self, StackRange};

/// Where a pool's new stacks come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StackBackend {
    /// Slots of a few large reservations, each with a guard marker below it (Linux 6.13+):
    /// guarded, and no kernel mapping per stack.
    GuardRegions,
    /// A mapping per stack with a `PROT_NONE` guard page ([`GuardedStack`]), two kernel mappings
    /// each, under the [`map_budget`](crate::map_budget).
    ///
    /// [`GuardedStack`]: crate::GuardedStack
    MappingPerStack,
}

const UNKNOWN: u8 = 0;
const REGIONS: u8 = 1;
const FALLBACK: u8 = 2;

/// The backend, decided once (probed on first use).
static BACKEND: AtomicU8 = AtomicU8::new(UNKNOWN);

/// The backend that [`StackPool`](crate::StackPool)s use for new stacks: guard regions where
/// the kernel has them, a mapping per stack elsewhere. Probed once, on first use, by installing
/// a guard marker in a scratch mapping.
pub fn stack_backend() -> StackBackend {
    if supported() {
        StackBackend::GuardRegions
    } else {
        StackBackend::MappingPerStack
    }
}

/// Whether new pooled stacks come from guard regions.
pub(crate) fn supported() -> bool {
    match BACKEND.load(Ordering::Relaxed) {
        REGIONS => true,
        FALLBACK => false,
        _ => {
            let found = if probe() { REGIONS } else { FALLBACK };
            // A concurrent probe finds the same; a forced fallback that raced ahead wins.
            match BACKEND.compare_exchange(UNKNOWN, found, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => found == REGIONS,
                Err(current) => current == REGIONS,
            }
        }
    }
}

/// Whether guard regions can serve stacks here: a 64-bit target (regions are sized in GiB),
/// memory overcommit that honours `MAP_NORESERVE` (under `vm.overcommit_memory = 2` each
/// region would be charged in full), and a guard marker that the kernel both accepts and
/// enforces in a scratch mapping. Any doubt means the fallback, which works everywhere.
fn probe() -> bool {
    if cfg!(not(target_pointer_width = "64")) || strict_overcommit() {
        return false;
    }
    let page = page_size();
    let Ok(mapping) = crate::sys::map_lazily(2 * page) else {
        return false;
    };
    // SAFETY: the first page of a private anonymous mapping made just now, holding nothing.
    let installed = unsafe { crate::sys::install_guard(mapping as usize, page) }.is_ok();
    // An emulator may accept the advice and do nothing (qemu-user returns 0 for any advice it
    // does not know): check that the page really refuses access, by asking the kernel to read
    // it, which fails with EFAULT instead of faulting.
    let enforced = installed && crate::sys::refuses_access(mapping as usize);
    // SAFETY: exactly the scratch mapping made above, used by nothing else.
    unsafe { libc::munmap(mapping, 2 * page) };
    enforced
}

/// Whether the kernel charges every private writable mapping in full (`vm.overcommit_memory`
/// is 2).
fn strict_overcommit() -> bool {
    std::fs::read_to_string("/proc/sys/vm/overcommit_memory").is_ok_and(|mode| mode.trim() == "2")
}

/// Test support: makes pools take new stacks from a mapping per stack from now on, as on a
/// kernel without guard regions, so that tests (in a process of their own) exercise the
/// fallback. Stacks already handed out or cached stay what they are.
#[doc(hidden)]
pub fn force_mapping_per_stack() {
    BACKEND.store(FALLBACK, Ordering::Relaxed);
}

/// Stops using guard regions for new stacks: a real region refused its guard marker (a kernel
/// feature turned off, or a process that locks its memory).
pub(crate) fn disable() {
    BACKEND.store(FALLBACK, Ordering::Relaxed);
}

/// Bytes of address space reserved per region: costs nothing until touched, and 4 GiB holds
/// about 15,000 stacks of 256 KiB or 60,000 of 64 KiB.
// Only ever used on 64-bit targets (see `probe`); the cast keeps 32-bit builds compiling.
const REGION_BYTES: usize = (4u64 << 30) as usize;
/// The fewest slots a region holds, for stacks so large that `REGION_BYTES` holds fewer.
pub(crate) const MIN_REGION_SLOTS: usize = 16;
/// Regions the table holds: at least 4 TiB of address space in all (64 times what a million
/// 64-KiB stacks take). Past that, pools fall back to a mapping per stack.
const MAX_REGIONS: usize = 1024;

/// One region, readable from a signal handler.
struct RegionEntry {
    /// First slot's address; 0 until the entry is published.
    start: AtomicUsize,
    len: AtomicUsize,
    slot_size: AtomicUsize,
    /// The stack size reports name (the page-rounded size asked for).
    stack_size: AtomicUsize,
}

static TABLE: [RegionEntry; MAX_REGIONS] = [const {
    RegionEntry {
        start: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
        slot_size: AtomicUsize::new(0),
        stack_size: AtomicUsize::new(0),
    }
}; MAX_REGIONS];
/// Entries in use; only grows.
static REGION_COUNT: AtomicUsize = AtomicUsize::new(0);
/// Serialises appends to the table.
static APPEND: Mutex<()> = Mutex::new(());

/// Regions reserved so far.
pub(crate) fn region_count() -> usize {
    REGION_COUNT.load(Ordering::Acquire)
}

/// Reserves a new region of slots of `slot_size` bytes for stacks of `stack_size` and publishes
/// it; returns its address range, or `None` when the table is full.
///
/// Asks for `REGION_BYTES` (at least `MIN_REGION_SLOTS` slots), and halves the request while the
/// kernel refuses it for lack of address space or commit (`RLIMIT_AS`, strict overcommit).
pub(crate) fn reserve(
    slot_size: usize,
    stack_size: usize,
) -> Result<Option<std::ops::Range<usize>>, StackError> {
    let _append = APPEND.lock().unwrap_or_else(|poison| poison.into_inner());
    let index = REGION_COUNT.load(Ordering::Relaxed);
    if index == MAX_REGIONS {
        return Ok(None);
    }
    let mut slots = (REGION_BYTES / slot_size).max(MIN_REGION_SLOTS);
    let (start, len) = loop {
        let Some(len) = slots.checked_mul(slot_size) else {
            return Ok(None);
        };
        match crate::sys::map_lazily(len) {
            Ok(mapping) => break (mapping as usize, len),
            Err(err) if err.raw_os_error() == Some(libc::ENOMEM) && slots > 1 => slots /= 2,
            Err(err) => return Err(StackError::Os(err)),
        }
    };
    let entry = &TABLE[index];
    entry.len.store(len, Ordering::Relaxed);
    entry.slot_size.store(slot_size, Ordering::Relaxed);
    entry.stack_size.store(stack_size, Ordering::Relaxed);
    // Publishes the fields above to a handler that loads `start` with Acquire.
    entry.start.store(start, Ordering::Release);
    REGION_COUNT.store(index + 1, Ordering::Release);
    let page = page_size();
    // For `remaining_stack`: slot `i`'s stack is `limit(i)..base(i)`.
    registry::insert_range(
        start + len - LABEL_SIZE,
        StackRange::Carved {
            start,
            first_limit: start + page,
            first_base: start + slot_size - LABEL_SIZE,
            slot_size,
        },
    );
    Ok(Some(start..start + len))
}

/// The label of the slot whose top ends at `slot_end`.
///
/// # Safety
///
/// `slot_end` is the end of a slot of a published region (regions are never unmapped, so the
/// reference lives as long as the process).
pub(crate) unsafe fn label_at(slot_end: usize) -> &'static Label {
    // The last `LABEL_SIZE` bytes of a slot are read-write memory of a region that is never
    // unmapped, aligned (slots are page aligned and `LABEL_SIZE` is 64), and used for nothing
    // but the label.
    // SAFETY: as just said; `Label` is made of atomics only, so any bytes there (zero for a
    // page never touched or just released) are a valid label, and shared access is sound.
    unsafe { &*((slot_end - LABEL_SIZE) as *const Label) }
}

/// The label and stack size of the region slot whose guard page holds `addr`.
/// Async-signal-safe: atomic loads and arithmetic only.
pub(crate) fn find_guard(addr: usize) -> Option<(&'static Label, usize)> {
    let count = REGION_COUNT.load(Ordering::Acquire);
    TABLE[..count].iter().find_map(|entry| {
        let start = entry.start.load(Ordering::Acquire);
        let offset = addr.checked_sub(start)?;
        if start == 0 || offset >= entry.len.load(Ordering::Relaxed) {
            return None;
        }
        let slot_size = entry.slot_size.load(Ordering::Relaxed);
        // `page_size` is a cached atomic here: it was read when the region was reserved.
        if offset % slot_size >= page_size() {
            return None;
        }
        let slot_end = start + (offset / slot_size + 1) * slot_size;
        // SAFETY: `slot_end` ends a slot of this published region.
        let label = unsafe { label_at(slot_end) };
        Some((label, entry.stack_size.load(Ordering::Relaxed)))
    })
}
