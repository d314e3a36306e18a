//! One stack, one mapping, one guard page.

use std::fmt;
use std::io;

use ctxswitch::{Stack, page_size};

use crate::budget::{BudgetClaim, StackError};
use crate::registry::{self, StackRange};

/// The default usable size of a goroutine stack: 64 KiB of address space.
///
/// Only the pages a goroutine touches are committed, so the size costs address space and page
/// tables, not memory: a goroutine that parks at once holds one page whatever the size, but
/// the kernel keeps a page-table page per 2 MiB of address space that holds a touched page.
/// With guard regions a 64 KiB stack's slot is 72 KiB, so parked goroutines cost one 4 KiB
/// page-table page per 28 stacks, against one per 8 at 256 KiB (about 145 bytes a goroutine
/// against 530). 64 KiB covers what ordinary Rust does without thinking: formatting and
/// panicking use a few KiB, collections and iterator chains a few more, moderate recursion tens
/// of KiB, and a 64 KiB buffer on the stack (the largest UDP datagram): a pool's stack has most
/// of a page more than its size on either backend, of which gsched keeps 128 bytes for the
/// goroutine's coroutine. Deeper code runs in [`maybe_grow`](crate::maybe_grow) segments or
/// asks for a larger stack; an overflow never corrupts memory: it is reported, naming the
/// goroutine, and the process aborts. Go starts smaller because its compiler can move stacks;
/// a Rust stack cannot move, so it is reserved at full size up front.
pub const GOROUTINE_STACK_SIZE: usize = 64 * 1024;

/// A goroutine stack: an anonymous mapping reserved without committing memory, with an
/// inaccessible guard page below the usable range, counted against the map budget.
///
/// This is what a [`StackPool`](crate::StackPool) hands out on a kernel without guard regions
/// (see [`stack_backend`](crate::stack_backend)); it works standalone on any kernel, at two
/// kernel mappings per stack.
///
/// ```
/// use ctxswitch::{Coroutine, CoroutineResult, Stack};
/// use gstack::GuardedStack;
///
/// let stack = GuardedStack::new(gstack::GOROUTINE_STACK_SIZE)?;
/// let mut co = Coroutine::<(), (), u32, GuardedStack>::with_stack(stack, |_, ()| 7)?;
/// assert_eq!(co.resume(()), CoroutineResult::Return(7));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct GuardedStack {
    /// Start of the mapping: the guard page.
    mapping: *mut u8,
    /// Length of the mapping, guard page included.
    len: usize,
    /// This stack's slot among the guard pages the overflow handler knows, if one was free.
    guard_slot: Option<u32>,
    /// Whether the range is in the stack map (set once construction completed).
    in_map: bool,
    _claim: BudgetClaim,
}

// SAFETY: the mapping is plain memory owned by this value, usable from any thread.
unsafe impl Send for GuardedStack {}
// SAFETY: shared references only read the two addresses.
unsafe impl Sync for GuardedStack {}

impl GuardedStack {
    /// Maps a stack with at least `size` usable bytes (rounded up to whole pages) above a guard
    /// page.
    ///
    /// # Errors
    ///
    /// [`StackError::MapLimit`] when the map budget is spent (see [`stack_limit`]), and
    /// [`StackError::Os`] when the kernel refuses the mapping or its protection; nothing leaks
    /// either way.
    ///
    /// [`stack_limit`]: crate::stack_limit
    pub fn new(size: usize) -> Result<Self, StackError> {
        GuardedStack::with_top_page(size, false)
    }

    /// As [`GuardedStack::new`], with one page more at the top when `top_page` is set (reported
    /// as `size`), as a pool slot has: a pool's stacks give the same room on either backend.
    pub(crate) fn with_top_page(size: usize, top_page: bool) -> Result<Self, StackError> {
        let claim = BudgetClaim::acquire()?;
        let page = page_size();
        let too_large = || StackError::Os(io::Error::from(io::ErrorKind::InvalidInput));
        let usable = size
            .max(page)
            .checked_next_multiple_of(page)
            .ok_or_else(too_large)?;
        let len = usable
            .checked_add(page * (1 + usize::from(top_page)))
            .ok_or_else(too_large)?;
        let mapping = crate::sys::map_lazily(len).map_err(StackError::Os)?;
        // Built before `mprotect`, so that its failure still unmaps.
        let mut stack = GuardedStack {
            mapping: mapping.cast(),
            len,
            guard_slot: None,
            in_map: false,
            _claim: claim,
        };
        // SAFETY: the first page lies inside the mapping owned by `stack`, unused so far.
        unsafe { crate::sys::protect_guard(mapping) }.map_err(StackError::Os)?;
        stack.guard_slot = registry::register_guard(stack.guard_range(), usable);
        registry::insert_range(
            stack.base(),
            StackRange::Single {
                limit: stack.limit(),
            },
        );
        stack.in_map = true;
        Ok(stack)
    }

    /// Names what runs on this stack, for the overflow report: `goroutine <id> ("<name>")`, or
    /// just the name when `id` is 0. Names longer than 48 bytes are cut.
    pub fn set_label(&self, id: u64, name: &str) {
        if let Some(index) = self.guard_slot {
            registry::guard_label(index).set(id, name);
        }
    }

    /// Forgets the label, as a stack going back to a pool should.
    pub(crate) fn clear_label(&self) {
        if let Some(index) = self.guard_slot {
            registry::guard_label(index).clear();
        }
    }

    /// The guard page's address range: a fault in it is an overflow of this stack.
    pub fn guard_range(&self) -> std::ops::Range<usize> {
        let start = self.mapping as usize;
        start..start + page_size()
    }
}

impl Drop for GuardedStack {
    fn drop(&mut self) {
        if let Some(index) = self.guard_slot {
            registry::unregister_guard(index);
        }
        if self.in_map {
            registry::remove_range(self.base());
        }
        // SAFETY: exactly the mapping this value created and owns.
        unsafe { libc::munmap(self.mapping.cast(), self.len) };
    }
}

// SAFETY: `limit..base` is the read-write part of a mapping owned by this value alone, page
// aligned, never moved, with the PROT_NONE guard page right below `limit`.
unsafe impl Stack for GuardedStack {
    #[inline]
    fn base(&self) -> usize {
        self.mapping as usize + self.len
    }

    #[inline]
    fn limit(&self) -> usize {
        self.mapping as usize + page_size()
    }
}

impl fmt::Debug for GuardedStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedStack")
            .field("base", &format_args!("{:#x}", self.base()))
            .field("size", &self.size())
            .finish()
    }
}
