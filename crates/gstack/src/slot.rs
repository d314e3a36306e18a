//! Guard-region slots of one size: where they are carved, and where they wait once released.
//!
//! Each slot size (a stack size rounded up to whole pages) has a class: the region it carves new
//! slots from, a list of slots given back whose pages are not released yet, a list of cold
//! slots, whose pages were released and whose guards are in place, and a list of bare slots,
//! which gave back their page tables too. Taking a slot pops the first list (its pages are
//! still resident), then the cold one (most recently released first: its page tables are still
//! there), then the bare one, putting its guard back, and carves a new slot, installing its
//! guard, only when all are empty; a full region is followed by a new one. Pools keep their
//! warm stacks in front of this (see `pool.rs`).
//!
//! Pages are released in batches of up to `RELEASE_BATCH` slots spanning at most
//! `RELEASE_BATCH_BYTES`, sorted, with neighbouring slots in one `madvise` (their guard markers
//! survive it): each call flushes the TLB of every CPU the process runs on, so a burst of a
//! million goroutines ending would otherwise pay a million shootdowns. [`release_pending`]
//! releases what is left of each batch; gsched calls it when a worker goes idle, and a program
//! that uses pools without gsched may call it after a burst.
//!
//! A guard marker lives in a page-table page, so a cold slot keeps its share of page tables
//! (about `slot size / 512` bytes). [`return_page_tables`] takes the slots that stayed cold
//! since its previous call, and wherever they fill whole page-table spans (2 MiB with 4-KiB
//! pages), removes their guards and empties the span, which frees its page table; those slots
//! become bare. gsched's monitor calls it every second, so a slot beyond the warm cache gives
//! its page tables back after one to two seconds unused, and a slot reused sooner keeps them.

use std::fmt;
use std::sync::{Mutex, MutexGuard};

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
    /// Released slots, guards in place.
    cold: Mutex<ColdSlots>,
    /// Slots whose guards were removed with their page tables (see [`return_page_tables`]).
    bare: Mutex<Vec<usize>>,
    /// The rest of the region new slots are carved from: `next..end`.
    fresh: Mutex<(usize, usize)>,
}

/// Cold slots, most recently released last, and how many at the front have stayed cold since
/// the last [`return_page_tables`].
#[derive(Default)]
struct ColdSlots {
    slots: Vec<usize>,
    unused_since_pass: usize,
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
        cold: Mutex::default(),
        bare: Mutex::new(Vec::new()),
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

/// Gives back the page tables of slots that stayed cold (released and unused) since the
/// previous call, in every class; returns how many slots gave theirs back (see the module
/// docs). A slot gives back its page table only with every slot that shares it, and loses its
/// guard marker meanwhile: taking it again puts the marker back (one system call).
///
/// gsched's monitor calls this every second; a program that uses pools without gsched may call
/// it on a timer of its own, whose period is then how long a slot stays cold before. A call
/// made while another is under way returns 0 at once, and so does every call on a kernel that
/// keeps the page tables `MADV_DONTNEED` empties (one without Linux's `PT_RECLAIM`, which
/// x86_64 has since 6.14): there, removing guards would give nothing back.
///
/// ```
/// let first = gstack::return_page_tables();
/// // Slots released since the first call are not taken in the second.
/// let second = gstack::return_page_tables();
/// println!("{first} then {second} slots gave back their page tables");
/// ```
pub fn return_page_tables() -> usize {
    static UNDER_WAY: Mutex<()> = Mutex::new(());
    let _pass = match UNDER_WAY.try_lock() {
        Ok(pass) => pass,
        Err(std::sync::TryLockError::Poisoned(poison)) => poison.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return 0,
    };
    if !page_tables_returnable() {
        return 0;
    }
    let classes: Vec<&'static SlotClass> = CLASSES
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .clone();
    classes.into_iter().map(SlotClass::return_page_tables).sum()
}

/// Bytes of address space one page-table page maps: a page of 8-byte entries, each mapping a
/// page (2 MiB with 4-KiB pages).
fn page_table_span() -> usize {
    let page = page_size();
    page * (page / 8)
}

/// Whether this kernel frees a page-table page that `MADV_DONTNEED` empties (Linux's
/// `PT_RECLAIM`: x86_64 since 6.14). Without it, removing guard markers would give nothing
/// back, so [`return_page_tables`] does nothing. Probed once: touching a page in each of 32
/// page-table spans of a scratch mapping and releasing them must shrink the process's page
/// tables (`VmPTE`) by at least half of those 32 pages, in one of three tries (other threads
/// may grow page tables meanwhile); any doubt answers no.
#[doc(hidden)]
pub fn page_tables_returnable() -> bool {
    static FREED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FREED.get_or_init(|| (0..3).any(|_| empty_page_tables_freed()))
}

/// One try of [`page_tables_returnable`]'s probe.
fn empty_page_tables_freed() -> bool {
    const SPANS: usize = 32;
    let (page, span) = (page_size(), page_table_span());
    let len = (SPANS + 1) * span;
    let Ok(mapping) = crate::sys::map_lazily(len) else {
        return false;
    };
    let first = (mapping as usize).next_multiple_of(span);
    for index in 0..SPANS {
        // SAFETY: a byte of the private mapping made above, which nothing else uses.
        unsafe { ((first + index * span) as *mut u8).write_volatile(1) };
    }
    let before = crate::budget::page_tables_kib();
    // SAFETY: whole pages of the mapping made above, holding nothing needed.
    unsafe { crate::sys::release_pages(first, SPANS * span) };
    let after = crate::budget::page_tables_kib();
    // SAFETY: exactly the scratch mapping made above, used by nothing else.
    unsafe { libc::munmap(mapping, len) };
    matches!((before, after), (Some(before), Some(after))
        if before.saturating_sub(after) * 1024 >= SPANS * page / 2)
}

impl SlotClass {
    fn pending(&self) -> MutexGuard<'_, Vec<usize>> {
        self.pending
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn cold(&self) -> MutexGuard<'_, ColdSlots> {
        self.cold
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn bare(&self) -> MutexGuard<'_, Vec<usize>> {
        self.bare
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// A slot of this class, counted against the stack limit: one given back and not released
    /// yet if any, else a cold one, else a bare one with its guard installed again, else a new
    /// one with its guard installed.
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
        let cold = {
            let mut cold = self.cold();
            let start = cold.slots.pop();
            cold.unused_since_pass = cold.unused_since_pass.min(cold.slots.len());
            start
        };
        let start = match cold {
            Some(start) => start,
            None => {
                let bare = self.bare().pop();
                match bare {
                    Some(start) => self.guard_bare(start)?,
                    None => self.carve()?,
                }
            }
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

    /// Puts the guard of a bare slot back.
    #[cold]
    fn guard_bare(&self, start: usize) -> Result<usize, TakeError> {
        // SAFETY: the guard page of a bare slot, taken off the bare list under its lock: a
        // slot of a region this crate owns that nothing uses.
        match unsafe { crate::sys::install_guard(start, page_size()) } {
            Ok(()) => Ok(start),
            Err(err) => {
                self.bare().push(start);
                if err.raw_os_error() == Some(libc::EINVAL) {
                    region::disable();
                    Err(TakeError::Unavailable)
                } else {
                    Err(TakeError::Stack(StackError::Os(err)))
                }
            }
        }
    }

    /// This class's part of [`return_page_tables`].
    fn return_page_tables(&self) -> usize {
        let mut unused = {
            let mut cold = self.cold();
            let unused_len = cold.unused_since_pass.min(cold.slots.len());
            let unused = cold.slots.drain(..unused_len).collect::<Vec<_>>();
            // What is left was released since the last pass: unused from now on, unless taken
            // (or released only after this point, behind it).
            cold.unused_since_pass = cold.slots.len();
            unused
        };
        unused.sort_unstable();
        let span = page_table_span();
        let mut bare = Vec::new();
        let mut kept = Vec::with_capacity(unused.len());
        let mut run = 0;
        while run < unused.len() {
            let mut end = run + 1;
            while end < unused.len() && unused[end] == unused[end - 1] + self.slot_size {
                end += 1;
            }
            let run_start = unused[run];
            let run_end = unused[end - 1] + self.slot_size;
            let spans = run_start.next_multiple_of(span)..run_end / span * span;
            let emptied = !spans.is_empty() && {
                // SAFETY: `spans` lies inside the neighbouring slots `run_start..run_end`, all
                // released and off every list, so nobody holds or can take them meanwhile;
                // private anonymous memory never unmapped.
                unsafe { crate::sys::remove_guards_and_release(spans.start, spans.len()) }
            };
            for &start in &unused[run..end] {
                // A slot whose guard page lies in emptied spans is bare now (taking it installs
                // its guard again, whether or not the removal itself succeeded); the others of
                // the run keep their guards.
                if emptied && spans.contains(&start) {
                    bare.push(start);
                } else {
                    kept.push(start);
                }
            }
            run = end;
        }
        let returned = bare.len();
        self.bare().extend(bare);
        let mut cold = self.cold();
        cold.unused_since_pass += kept.len();
        cold.slots.splice(0..0, kept);
        returned
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

// SAFETY: `limit..base` lies inside the slot this value alone holds (taken off the pending, the
// cold or the bare list, or carved, under a lock), in a region that is never unmapped:
// read-write, page aligned below and 64-byte aligned above, with the guard marker on the page
// right below `limit` installed when the slot was carved or taken off the bare list (the marker
// survives page releases, and only `return_page_tables` removes it, from slots it moves to the
// bare list). The label above `base` is outside the range.
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
        self.cold().slots.extend(batch);
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
