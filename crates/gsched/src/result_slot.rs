//! Where a goroutine's result meets its join handle: one state word and two cells, so that
//! finishing a goroutine and joining or dropping its handle each take one read-modify-write and
//! no lock.
//!
//! The completer (the goroutine, or whoever ends it unrun) writes the result, then sets `DONE`.
//! The handle's owner either registers a waiter, then sets `WAITING`, and takes the result once
//! it sees `DONE`; or sets `DETACHED`. Each cell has one writer at a time, handed over by the
//! bits: the result is the completer's until `DONE` and the handle owner's after it; the waiter
//! is the handle owner's until `WAITING` and the completer's after it. Whichever of `DONE` and
//! `DETACHED` comes second sees the other and drops the result, so exactly one side does.

use crate::shim::{AtomicU8, Ordering, UnsafeCell};

const DONE: u8 = 1;
const DETACHED: u8 = 2;
const WAITING: u8 = 4;

pub(crate) struct ResultSlot<T, W> {
    state: AtomicU8,
    result: UnsafeCell<Option<T>>,
    waiter: UnsafeCell<Option<W>>,
}

// SAFETY: the cells are handed between the completer and the handle's owner by the state word's
// read-modify-writes, with acquire/release ordering (see the module docs); the result and the
// waiter move between threads, so both must be `Send`.
unsafe impl<T: Send, W: Send> Sync for ResultSlot<T, W> {}

/// What the completer does after [`ResultSlot::complete`].
pub(crate) struct Completion<T, W> {
    /// The handle's owner waits: wake it.
    pub(crate) wake: Option<W>,
    /// Nobody will take the result (the handle was dropped, or a result was already in): the
    /// completer drops it.
    pub(crate) unwanted: Option<T>,
}

impl<T, W> ResultSlot<T, W> {
    pub(crate) fn new() -> Self {
        ResultSlot {
            state: AtomicU8::new(0),
            result: UnsafeCell::new(None),
            waiter: UnsafeCell::new(None),
        }
    }

    /// Whether the result is in (or was dropped for nobody).
    #[inline]
    pub(crate) fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) & DONE != 0
    }

    /// Hands `result` to the handle's owner.
    ///
    /// # Safety
    ///
    /// One completer at a time: the goroutine finishing, or the runner ending it unrun.
    pub(crate) unsafe fn complete(&self, result: T) -> Completion<T, W> {
        let state = self.state.load(Ordering::Acquire);
        if state & DONE != 0 {
            return Completion {
                wake: None,
                unwanted: Some(result),
            };
        }
        if state & DETACHED != 0 {
            // No handle, so nobody to read the result: nothing to store. A waiter registered
            // before the handle went away (a wait that gave up) is dropped, not woken.
            let previous = self.state.fetch_or(DONE, Ordering::AcqRel);
            // SAFETY: as below: `WAITING` hands the cell over, and only this call sets `DONE`.
            let waiter = (previous & WAITING != 0)
                .then(|| self.waiter.with_mut(|cell| unsafe { (*cell).take() }));
            drop(waiter);
            return Completion {
                wake: None,
                unwanted: Some(result),
            };
        }
        // SAFETY: before `DONE` the result cell is the completer's alone (the module docs), and
        // there is one completer (the contract).
        self.result.with_mut(|cell| unsafe { *cell = Some(result) });
        let previous = self.state.fetch_or(DONE, Ordering::AcqRel);
        let wake = (previous & WAITING != 0)
            .then(|| {
                // SAFETY: `WAITING` was set after the waiter was written (release), and the
                // handle's owner leaves the cell alone from then on; `DONE` is set once, by
                // this call, so only this call takes the waiter.
                self.waiter.with_mut(|cell| unsafe { (*cell).take() })
            })
            .flatten();
        let unwanted = (previous & DETACHED != 0)
            .then(|| {
                // SAFETY: `DETACHED` was set before `DONE`: the handle's owner saw no result and
                // never touches the cell again, so it is the completer's.
                self.result.with_mut(|cell| unsafe { (*cell).take() })
            })
            .flatten();
        Completion { wake, unwanted }
    }

    /// Registers `waiter` to be woken by `complete`; false (and `waiter` is dropped) when the
    /// result is already in.
    ///
    /// # Safety
    ///
    /// Called by the handle's owner, at most once, and not after `detach`.
    pub(crate) unsafe fn register(&self, waiter: W) -> bool {
        if self.is_done() {
            return false;
        }
        // SAFETY: `WAITING` is not set (one registration, the contract): the cell is the
        // handle owner's alone.
        self.waiter.with_mut(|cell| unsafe { *cell = Some(waiter) });
        if self.state.fetch_or(WAITING, Ordering::AcqRel) & DONE != 0 {
            // The completer came first and saw no `WAITING`: the cell is still ours.
            // SAFETY: as above.
            drop(self.waiter.with_mut(|cell| unsafe { (*cell).take() }));
            return false;
        }
        true
    }

    /// The result, once `DONE` is set; `None` before.
    ///
    /// # Safety
    ///
    /// Called by the handle's owner, not after `detach`.
    pub(crate) unsafe fn take(&self) -> Option<T> {
        if !self.is_done() {
            return None;
        }
        // SAFETY: after `DONE` (acquired) the result cell is the handle owner's.
        self.result.with_mut(|cell| unsafe { (*cell).take() })
    }

    /// The handle goes away: the result, when it is already in, for the caller to drop.
    ///
    /// # Safety
    ///
    /// Called by the handle's owner, once.
    pub(crate) unsafe fn detach(&self) -> Option<T> {
        if self.state.fetch_or(DETACHED, Ordering::AcqRel) & DONE == 0 {
            return None;
        }
        // SAFETY: `DONE` came first (acquired): the cell is the handle owner's.
        self.result.with_mut(|cell| unsafe { (*cell).take() })
    }

    /// A result nobody took, as the slot goes away.
    pub(crate) fn leftover(&mut self) -> Option<T> {
        self.result.get_mut().take()
    }
}
