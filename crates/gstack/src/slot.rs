//! Guard-region slots of one size: where they are carved, and where they wait once released.
//!
//! Each slot size (a stack size rounded up to whole pages) has a class: the region it carves new
//! slots from, a list of slots given back whose pages are not released yet, and a list of cold
//! slots, whose pages were released and whose guards are in place. Taking a slot pops the first
//! list (its pages are still resident), then the cold one (most recently released first: its
//! page tables are still there), and carves a new slot, installing its guard, only when both
//! are empty; a full region is followed by a new one. Pools keep their warm stacks in front of
//! this (see `pool.rs`).
//!
//! Pages are released in batches of up to `RELEASE_BATCH` slots spanning at most
//! `RELEASE_BATCH_BYTES`, sorted, with neighbouring slots in one `madvise` (their guard markers
//! survive it): each call flushes the TLB of every CPU the process runs on, so a burst of a
//! million goroutines ending would otherwise pay a million shootdowns. [`release_pending`]
//! releases what is left of each batch; gsched calls it when a worker goes idle, and a program
//! that uses pools without gsched may call it after a burst.

use std::fmt;
use std::sync::Mutex;

use ctxswitch::{Stack, page_size};

use crate::budget::{SlotClaim, StackError};
use crate::label::{LABEL_SIZE, Label};
use crate::region;

/// The largest stack size accepted, in bytes: 1 GiB, Go's limit on 64-bit targets. Stacks are
/// reserved address space and cost memory only where touched.
pub const MAX_STACK_SIZE: usize = 1 << 30;

/// What a stack of `size` bytes gets: `size` rounded up to whole pages.
///
/// # Errors
///
/// [`StackError::InvalidSize`] when `size` is below [`ctxswitch::MIN_STACK_SIZE`] (no coroutine
/// fits) or above [`MAX_STACK_SIZE`].
pub fn check_stack_size(size: usize) -> Result<usize, StackError> {
    if (ctxswitch::MIN_STACK_SIZE..=MAX_STACK_SIZE).contains(&size) {
        Ok(size.next_multiple_of(page_size()))
    } else {
        Err(StackError::InvalidSize {
            requested: size,
            min: ctxswitch::MIN_STACK_SIZE,
            max: MAX_STACK_SIZE,
        })
    }
}

/// The slots of one size.
pub(crate) struct SlotClass {
    /// The page-rounded stack size asked for, which overflow reports name.
    stack_size: usize,
    /// Guard page + `stack_size` + top page (see `region.rs`).
    slot_size: usize,
    /// Slots given back whose pages are not released yet, last given back last; at most a
    /// batch (see `batch_len`).
    pending: Mutex<Vec<usize>>,
    /// Released slots, guards in place, most recently released last.
    cold: Mutex<Vec<usize>>,
    /// The rest of the region new slots are carved from: `next..end`.
    fresh: Mutex<(usize, usize)>,
}

/// Why no slot was taken.
pub(crate) enum TakeError {
    /// Guard regions cannot serve this request (the table is full, or the kernel refused a
    /// guard marker): use a mapping per stack.
    Unavailable,
    /// The stack limit is reached, or the kernel refused memory.
    Stack(StackError),
}

/// Slots whose pages are released together (see the module docs), at most.
const RELEASE_BATCH: usize = 64;

/// The most stack bytes a class's pending batch spans: large stacks are released in smaller
/// batches (one at a time past 16 MiB), so that what waits for release stays small.
const RELEASE_BATCH_BYTES: usize = 16 << 20;

/// Every class made so far.
static CLASSES: Mutex<Vec<&'static SlotClass>> = Mutex::new(Vec::new());

/// The class of slots for stacks of `stack_size` bytes, a page multiple from
/// [`check_stack_size`]; made on first use and kept for the life of the process.
pub(crate) fn class(stack_size: usize) -> &'static SlotClass {
    let mut classes = CLASSES.lock().unwrap_or_else(|poison| poison.into_inner());
    if let Some(class) = classes.iter().find(|class| class.stack_size == stack_size) {
        return class;
    }
    let class = Box::leak(Box::new(SlotClass {
        stack_size,
        slot_size: stack_size + 2 * page_size(),
        pending: Mutex::new(Vec::new()),
        cold: Mutex::new(Vec::new()),
        fresh: Mutex::new((0, 0)),
    }));
    classes.push(class);
    class
}

/// Releases the pages of every slot given back and not released yet, in every class: what
/// the last, partial batch of each class holds. Returns how many slots it released.
///
/// ```
/// let released = gstack::release_pending();
/// assert_eq!(gstack::release_pending(), 0, "nothing is left after a call, {released} before");
/// ```
pub fn release_pending() -> usize {
    let classes: Vec<&'static SlotClass> = CLASSES
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .clone();
    classes
        .into_iter()
        .map(|class| {
            let batch = std::mem::take(&mut *class.pending());
            let released = batch.len();
            class.release(batch);
            released
        })
        .sum()
}

impl SlotClass {
    fn pending(&self) -> std::sync::MutexGuard<'_, Vec<usize>> {
        self.pending
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// A slot of this class, counted against the stack limit: one given back and not released
    /// yet if any, else a cold one, else a new one with its guard installed.
    pub(crate) fn take(&'static self) -> Result<SlotStack, TakeError> {
        let claim = SlotClaim::acquire().map_err(TakeError::Stack)?;
        let pending = self.pending().pop();
        if let Some(start) = pending {
            let slot = SlotStack {
                class: self,
                start,
                _claim: claim,
            };
            // A released slot's label is zero; this one's pages were not released.
            slot.label().clear();
            return Ok(slot);
        }
        let cold = self
            .cold
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .pop();
        let start = match cold {
            Some(start) => start,
            None => self.carve()?,
        };
        Ok(SlotStack {
            class: self,
            start,
            _claim: claim,
        })
    }

    /// Carves a new slot and installs its guard.
    #[cold]
    fn carve(&self) -> Result<usize, TakeError> {
        let start = {
            let mut fresh = self
                .fresh
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            if fresh.1 - fresh.0 < self.slot_size {
                let region = region::reserve(self.slot_size, self.stack_size)
                    .map_err(TakeError::Stack)?
                    .ok_or(TakeError::Unavailable)?;
                *fresh = (region.start, region.end);
            }
            let start = fresh.0;
            fresh.0 += self.slot_size;
            start
        };
        // SAFETY: the first page of a slot just carved from a region of private anonymous
        // memory this crate owns; nothing uses the slot yet.
        match unsafe { crate::sys::install_guard(start, page_size()) } {
            Ok(()) => Ok(start),
            // The slot is left unused (address space only). EINVAL here means this region
            // cannot carry guard markers after all (a process that locks its memory): stop
            // using guard regions.
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => {
                region::disable();
                Err(TakeError::Unavailable)
            }
            Err(err) => Err(TakeError::Stack(StackError::Os(err))),
        }
    }
}

/// A stack in a guard-region slot, counted against the stack limit. Dropping it gives the slot
/// back: it waits in its class's pending batch, whose release frees its pages (the guard
/// stays) and makes it cold.
pub(crate) struct SlotStack {
    class: &'static SlotClass,
    /// The slot's first byte: its guard page.
    start: usize,
    _claim: SlotClaim,
}

impl SlotStack {
    fn end(&self) -> usize {
        self.start + self.class.slot_size
    }

    /// The label overflow reports read.
    pub(crate) fn label(&self) -> &'static Label {
        // SAFETY: `end()` ends a slot of a published region.
        unsafe { region::label_at(self.end()) }
    }

    /// The guard page's address range.
    pub(crate) fn guard_range(&self) -> std::ops::Range<usize> {
        self.start..self.start + page_size()
    }
}

// SAFETY: `limit..base` lies inside the slot this value alone holds (taken off the pending or
// the cold list, or carved, under a lock), in a region that is never unmapped: read-write, page aligned below and
// 64-byte aligned above, with the guard marker installed on the page right below `limit` when
// the slot was carved (the marker survives page releases). The label above `base` is outside
// the range.
unsafe impl Stack for SlotStack {
    #[inline]
    fn base(&self) -> usize {
        self.end() - LABEL_SIZE
    }

    #[inline]
    fn limit(&self) -> usize {
        self.start + page_size()
    }
}

impl SlotClass {
    /// How many slots of this class are released together.
    fn batch_len(&self) -> usize {
        (RELEASE_BATCH_BYTES / self.slot_size).clamp(1, RELEASE_BATCH)
    }

    /// Releases the pages of the slots `batch` (given back, held by nobody) and makes them
    /// cold: neighbouring slots in one call, guard pages between them included.
    fn release(&self, mut batch: Vec<usize>) {
        if batch.is_empty() {
            return;
        }
        batch.sort_unstable();
        let page = page_size();
        let mut run_start = batch[0];
        let mut run_end = run_start + self.slot_size;
        for &start in &batch[1..] {
            if start == run_end {
                run_end += self.slot_size;
                continue;
            }
            release_run(run_start, run_end, page);
            run_start = start;
            run_end = start + self.slot_size;
        }
        release_run(run_start, run_end, page);
        self.cold
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .extend(batch);
    }
}

/// Releases the pages of the neighbouring slots `start..end`, all but the first guard page.
fn release_run(start: usize, end: usize, page: usize) {
    // Above the first guard lie the slots' stacks, labels (zeroed with the rest, as a cold
    // slot's should be) and the guard pages between them, whose markers survive the call.
    // SAFETY: the slots of `start..end` were given back and nobody holds them (they are on no
    // list but the batch being released), in private anonymous memory never unmapped.
    unsafe { crate::sys::release_pages(start + page, end - start - page) };
}

impl Drop for SlotStack {
    fn drop(&mut self) {
        let batch = {
            let mut pending = self.class.pending();
            pending.push(self.start);
            if pending.len() < self.class.batch_len() {
                return;
            }
            std::mem::take(&mut *pending)
        };
        self.class.release(batch);
    }
}

impl fmt::Debug for SlotStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlotStack")
            .field("base", &format_args!("{:#x}", self.base()))
            .field("size", &self.size())
            .finish()
    }
}
