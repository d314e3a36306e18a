//! Guard-region slots of one size: where they are carved, and where they wait once released.
//!
//! Each slot size (a stack size rounded up to whole pages) has a class: the region it carves new
//! slots from, and a list of cold slots, whose pages were released and whose guards are in
//! place. Taking a slot pops the cold list (most recently released first: its page tables are
//! still there), and carves a new slot, installing its guard, only when the list is empty; a
//! full region is followed by a new one. Giving a slot back releases its pages and pushes it on
//! the cold list. Pools keep their warm stacks in front of this (see `pool.rs`).

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

/// The class of slots for stacks of `stack_size` bytes, a page multiple from
/// [`check_stack_size`]; made on first use and kept for the life of the process.
pub(crate) fn class(stack_size: usize) -> &'static SlotClass {
    static CLASSES: Mutex<Vec<&'static SlotClass>> = Mutex::new(Vec::new());
    let mut classes = CLASSES.lock().unwrap_or_else(|poison| poison.into_inner());
    if let Some(class) = classes.iter().find(|class| class.stack_size == stack_size) {
        return class;
    }
    let class = Box::leak(Box::new(SlotClass {
        stack_size,
        slot_size: stack_size + 2 * page_size(),
        cold: Mutex::new(Vec::new()),
        fresh: Mutex::new((0, 0)),
    }));
    classes.push(class);
    class
}

impl SlotClass {
    /// A slot of this class, counted against the stack limit: a cold one if any, else a new one
    /// with its guard installed.
    pub(crate) fn take(&'static self) -> Result<SlotStack, TakeError> {
        let claim = SlotClaim::acquire().map_err(TakeError::Stack)?;
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

/// A stack in a guard-region slot, counted against the stack limit. Dropping it releases its
/// pages (the guard stays) and makes the slot cold.
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

// SAFETY: `limit..base` lies inside the slot this value alone holds (taken off the cold list or
// carved under a lock), in a region that is never unmapped: read-write, page aligned below and
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

impl Drop for SlotStack {
    fn drop(&mut self) {
        let body = self.limit();
        // SAFETY: everything above the guard is this slot's own stack and label, in a region of
        // private anonymous memory; nothing runs on the stack while it is being dropped, and the
        // label is cleared (zeroed) with the rest, as a cold slot's should be.
        unsafe { crate::sys::release_pages(body, self.end() - body) };
        self.class
            .cold
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .push(self.start);
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
