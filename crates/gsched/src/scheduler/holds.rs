//! A count of holds on a shared owner, taken and given back in batches, whose holders together
//! own one reference to the owner: the goroutines' hold on their runtime (see `runtime_ref.rs`).
//!
//! A goroutine must keep its runtime alive (a waker or a join handle may outlive the runtime's
//! last handle), but an `Arc` clone per goroutine is a locked read-modify-write at its spawn
//! and another at its end, on one cache line that every worker shares. Workers instead take
//! holds from this count a batch at a time and deal them out to the goroutines they spawn
//! without any atomic; a goroutine that ends on a worker of its runtime gives its hold back to
//! that worker the same way. Only a worker's batch, or a hold taken or dropped off the
//! runtime's workers, touches the count. When the count leaves zero its adder takes one
//! reference to the owner for all holders, and whoever brings it back to zero drops that
//! reference: the adder must hold a reference of its own while it adds, so the owner cannot
//! die between a count that reached zero and the reference taken again.
//!
//! The loom model `holds_keep_their_owner_alive_until_the_last_is_given_back` checks it.

use crate::shim::{AtomicUsize, Ordering, fence};

pub(crate) struct Holds(AtomicUsize);

impl Holds {
    pub(crate) fn new() -> Self {
        Holds(AtomicUsize::new(0))
    }

    /// Takes `holds` more holds; true if there were none: the caller, which holds a reference
    /// to the owner of its own, then takes one more for all the holders.
    #[inline]
    pub(crate) fn add(&self, holds: usize) -> bool {
        // Relaxed, as `Arc::clone`: the caller's own reference keeps the owner alive now.
        let previous = self.0.fetch_add(holds, Ordering::Relaxed);
        if previous > isize::MAX as usize {
            // As `Arc` does: an overflowing count would free the owner while it is in use.
            std::process::abort();
        }
        previous == 0
    }

    /// Gives back `holds` holds; true if they were the last: the caller then drops the
    /// holders' reference to the owner, everything done through any hold having happened
    /// before.
    #[inline]
    pub(crate) fn remove(&self, holds: usize) -> bool {
        // Release, then acquire for the last, as `Arc`'s drop: every use through a hold
        // happens before the reference goes.
        if self.0.fetch_sub(holds, Ordering::Release) != holds {
            return false;
        }
        fence(Ordering::Acquire);
        true
    }

    /// The holds taken and not given back, for tests.
    #[cfg(test)]
    pub(crate) fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}
