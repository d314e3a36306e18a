//! The list of blocks that threads other than a chunk's owner freed.
//!
//! Any thread pushes; only the owner takes, and it takes the whole list at once. With no
//! single-block pop there is no ABA: a pushed block is not reused until the owner has taken it,
//! and a take leaves the list empty, so a pusher's compare-exchange can only succeed against a
//! head that is still on the list.

use crate::shim::{AtomicPtr, Ordering};

/// A free block: its first word links it to the next one.
#[repr(C)]
pub(crate) struct FreeBlock {
    pub(crate) next: *mut FreeBlock,
}

/// Blocks freed by other threads, waiting for the owner.
pub(crate) struct RemoteFrees {
    head: AtomicPtr<FreeBlock>,
}

impl RemoteFrees {
    pub(crate) fn new() -> Self {
        RemoteFrees {
            head: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// Hands `block` to the owner.
    ///
    /// # Safety
    ///
    /// `block` points to at least a pointer's worth of writable memory, suitably aligned, that
    /// the caller gives up: nothing else reads or writes it until the owner takes it.
    pub(crate) unsafe fn push(&self, block: *mut FreeBlock) {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: the caller owns the block until the exchange below publishes it.
            unsafe { (*block).next = head };
            // Release: the owner's take sees the link, and everything the freeing thread did
            // with the block before it, such as dropping the value that lived there.
            match self
                .head
                .compare_exchange_weak(head, block, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(current) => head = current,
            }
        }
    }

    /// Takes every block pushed so far, as a linked list (null when there is none). Only the
    /// owner calls it.
    pub(crate) fn take_all(&self) -> *mut FreeBlock {
        if self.head.load(Ordering::Relaxed).is_null() {
            return std::ptr::null_mut();
        }
        self.head.swap(std::ptr::null_mut(), Ordering::Acquire)
    }
}
