//! Which memory belongs to which stack.
//!
//! Two views of the same facts:
//!
//! - Guard slots: a fixed array of the guard-page ranges of stacks with mappings of their own
//!   ([`GuardedStack`](crate::GuardedStack)) and their labels, written with atomics so that the
//!   overflow handler can read it from a signal handler without locks or allocation. Stacks in
//!   guard regions need no entry here: the handler finds them from the region table
//!   (`region.rs`) by arithmetic.
//! - The stack map: stack ranges ordered by address, behind a read-write lock, to find the stack
//!   that holds a given stack pointer (for [`remaining_stack`](crate::remaining_stack)).
//!
//! Each thread caches the bounds of the stack it last found itself on. A generation counter,
//! bumped whenever a range leaves the map, invalidates every cache at once, so a cached range is
//! never trusted after its memory could have been unmapped and reused.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};

use crate::label::Label;

/// Guarded stacks with mappings of their own whose overflow can be named. Past this many alive
/// at once, an overflow of an unregistered stack still faults on its guard page but is reported
/// as a plain SIGSEGV. (Guard-region stacks are found from their region instead; see
/// `region.rs`.)
const GUARD_SLOTS: usize = 65536;

/// One registered guard page, readable from a signal handler.
struct GuardSlot {
    /// Start of the guard page; 0 while the slot is free.
    guard_start: AtomicUsize,
    guard_end: AtomicUsize,
    /// Usable size of the stack above the guard, in bytes.
    stack_size: AtomicUsize,
    label: Label,
}

impl GuardSlot {
    const fn new() -> Self {
        GuardSlot {
            guard_start: AtomicUsize::new(0),
            guard_end: AtomicUsize::new(0),
            stack_size: AtomicUsize::new(0),
            label: Label::new(),
        }
    }
}

static GUARDS: [GuardSlot; GUARD_SLOTS] = [const { GuardSlot::new() }; GUARD_SLOTS];

/// Slots handed back, and the first never-used slot.
static FREE_GUARDS: Mutex<(Vec<u32>, usize)> = Mutex::new((Vec::new(), 0));

/// Registers a guard page; `None` when every slot is taken.
pub(crate) fn register_guard(guard: std::ops::Range<usize>, stack_size: usize) -> Option<u32> {
    let index = {
        let mut free = FREE_GUARDS
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        match free.0.pop() {
            Some(index) => index,
            None if free.1 < GUARD_SLOTS => {
                free.1 += 1;
                u32::try_from(free.1 - 1).expect("GUARD_SLOTS fits in u32")
            }
            None => return None,
        }
    };
    let slot = &GUARDS[index as usize];
    slot.label.set(0, "");
    slot.stack_size.store(stack_size, Ordering::Relaxed);
    slot.guard_end.store(guard.end, Ordering::Relaxed);
    slot.guard_start.store(guard.start, Ordering::Release);
    Some(index)
}

/// The label of a registered guard slot.
pub(crate) fn guard_label(index: u32) -> &'static Label {
    &GUARDS[index as usize].label
}

pub(crate) fn unregister_guard(index: u32) {
    GUARDS[index as usize]
        .guard_start
        .store(0, Ordering::Release);
    let mut free = FREE_GUARDS
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    free.0.push(index);
}

/// The label and stack size of the registered guard page that contains `addr`.
/// Async-signal-safe: atomics only.
pub(crate) fn find_guard(addr: usize) -> Option<(&'static Label, usize)> {
    GUARDS
        .iter()
        .find(|slot| {
            let start = slot.guard_start.load(Ordering::Acquire);
            start != 0 && start <= addr && addr < slot.guard_end.load(Ordering::Relaxed)
        })
        .map(|slot| (&slot.label, slot.stack_size.load(Ordering::Relaxed)))
}

/// How to find a stack's limit from a pointer into its range.
#[derive(Clone, Copy, Debug)]
pub(crate) enum StackRange {
    /// One stack: `limit..` up to the map key.
    Single { limit: usize },
    /// Equal slots carved from one region (see `DenseStacks` and `region.rs`): slot `i`'s stack
    /// covers
    /// `first_limit + i * slot_size .. first_base + i * slot_size`.
    Carved {
        start: usize,
        first_limit: usize,
        first_base: usize,
        slot_size: usize,
    },
}

/// Ranges by their end address.
static STACK_MAP: RwLock<BTreeMap<usize, StackRange>> = RwLock::new(BTreeMap::new());
/// Bumped whenever a range leaves the map.
static GENERATION: AtomicU64 = AtomicU64::new(0);

pub(crate) fn insert_range(end: usize, range: StackRange) {
    STACK_MAP
        .write()
        .unwrap_or_else(|poison| poison.into_inner())
        .insert(end, range);
}

pub(crate) fn remove_range(end: usize) {
    STACK_MAP
        .write()
        .unwrap_or_else(|poison| poison.into_inner())
        .remove(&end);
    GENERATION.fetch_add(1, Ordering::Release);
}

/// The bounds `(limit, base)` of a registered stack that contains `sp`.
fn lookup(sp: usize) -> Option<(usize, usize)> {
    let map = STACK_MAP
        .read()
        .unwrap_or_else(|poison| poison.into_inner());
    let (&end, &range) = map.range(sp + 1..).next()?;
    match range {
        StackRange::Single { limit } => (limit <= sp).then_some((limit, end)),
        StackRange::Carved {
            start,
            first_limit,
            first_base,
            slot_size,
        } => {
            let index = sp.checked_sub(start)? / slot_size;
            let limit = first_limit + index * slot_size;
            let base = first_base + index * slot_size;
            (limit <= sp && sp < base).then_some((limit, base))
        }
    }
}

#[derive(Clone, Copy)]
struct CachedBounds {
    limit: usize,
    base: usize,
    generation: u64,
}

thread_local! {
    /// The stack this thread last found itself on.
    static CURRENT: Cell<CachedBounds> = const {
        Cell::new(CachedBounds { limit: 0, base: 0, generation: u64::MAX })
    };
    /// This thread's own stack, as the thread library reports it; (0, 0) until first asked.
    static THREAD_STACK: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// The bounds `(limit, base)` of the stack that holds `sp`, if it is a registered stack or the
/// thread's own.
#[inline]
pub(crate) fn bounds_of(sp: usize) -> Option<(usize, usize)> {
    let cached = CURRENT.with(Cell::get);
    if cached.limit <= sp
        && sp < cached.base
        && cached.generation == GENERATION.load(Ordering::Acquire)
    {
        return Some((cached.limit, cached.base));
    }
    bounds_slow(sp)
}

#[cold]
fn bounds_slow(sp: usize) -> Option<(usize, usize)> {
    let generation = GENERATION.load(Ordering::Acquire);
    let (limit, base) = lookup(sp).or_else(|| {
        let (limit, base) = thread_stack();
        (limit <= sp && sp < base).then_some((limit, base))
    })?;
    CURRENT.with(|current| {
        current.set(CachedBounds {
            limit,
            base,
            generation,
        })
    });
    Some((limit, base))
}

/// The thread's cached stack, to restore after running on another one.
#[derive(Clone, Copy)]
pub(crate) struct SavedBounds(CachedBounds);

pub(crate) fn current() -> SavedBounds {
    SavedBounds(CURRENT.with(Cell::get))
}

pub(crate) fn restore_current(saved: SavedBounds) {
    CURRENT.with(|current| current.set(saved.0));
}

/// Declares the bounds of the stack the thread runs on now.
pub(crate) fn set_current(limit: usize, base: usize) {
    CURRENT.with(|current| {
        current.set(CachedBounds {
            limit,
            base,
            generation: GENERATION.load(Ordering::Acquire),
        })
    });
}

/// The current thread's own stack `(limit, base)`, with one page of margin above the lowest
/// address the thread library reports.
fn thread_stack() -> (usize, usize) {
    let known = THREAD_STACK.with(Cell::get);
    if known != (0, 0) {
        return known;
    }
    let bounds = query_thread_stack().unwrap_or((0, 0));
    THREAD_STACK.with(|cell| cell.set(bounds));
    bounds
}

fn query_thread_stack() -> Option<(usize, usize)> {
    let mut attr = std::mem::MaybeUninit::<libc::pthread_attr_t>::uninit();
    // SAFETY: `pthread_getattr_np` initialises `attr` for the calling thread; on success it is
    // destroyed below, after `pthread_attr_getstack` read the stack from it.
    unsafe {
        if libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()) != 0 {
            return None;
        }
        let mut addr = std::ptr::null_mut();
        let mut size = 0;
        let status = libc::pthread_attr_getstack(attr.as_ptr(), &mut addr, &mut size);
        libc::pthread_attr_destroy(attr.as_mut_ptr());
        if status != 0 {
            return None;
        }
        let low = addr as usize + ctxswitch::page_size();
        Some((low, addr as usize + size))
    }
}
