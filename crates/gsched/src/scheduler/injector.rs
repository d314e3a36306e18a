//! The global queue of goroutines that no worker's own queue took.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_queue::{ArrayQueue, SegQueue};

use super::Padded;

/// Goroutines in the ring first: a fixed ring allocates nothing, where an unbounded queue
/// allocates a block every few dozen pushes on one thread and frees it on another, contending
/// on the allocator's lock. Only when the ring is full do items go to the unbounded overflow,
/// and while the overflow holds anything every push goes there too, so that items leave in the
/// order they came.
///
/// Pushes and pops are counted, so that a worker can hold a goroutine that yields until what
/// waited here before it had a turn (see [`Injector::has_served`]).
pub(crate) struct Injector<T> {
    ring: ArrayQueue<T>,
    overflow: SegQueue<T>,
    pushed: Padded<AtomicU64>,
    popped: Padded<AtomicU64>,
}

impl<T> Injector<T> {
    pub(crate) fn new(ring_capacity: usize) -> Self {
        Injector {
            ring: ArrayQueue::new(ring_capacity),
            overflow: SegQueue::new(),
            pushed: Padded(AtomicU64::new(0)),
            popped: Padded(AtomicU64::new(0)),
        }
    }

    pub(crate) fn push(&self, item: T) {
        if !self.overflow.is_empty() {
            self.overflow.push(item);
        } else if let Err(item) = self.ring.push(item) {
            self.overflow.push(item);
        }
        self.pushed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn pop(&self) -> Option<T> {
        let item = self.ring.pop().or_else(|| {
            if self.overflow.is_empty() {
                None
            } else {
                self.overflow.pop()
            }
        })?;
        self.popped.fetch_add(1, Ordering::Relaxed);
        Some(item)
    }

    /// A mark of what has been pushed so far, for [`Injector::has_served`].
    pub(crate) fn mark(&self) -> u64 {
        self.pushed.load(Ordering::Relaxed)
    }

    /// Whether as many items left as had come when `mark` was taken, or none is left: what
    /// waited then had its turn (the queue is first in, first out, so near enough those very
    /// items).
    pub(crate) fn has_served(&self, mark: u64) -> bool {
        self.popped.load(Ordering::Relaxed) >= mark || self.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.ring.len() + self.overflow.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ring.is_empty() && self.overflow.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::Injector;

    #[test]
    fn items_leave_in_the_order_they_came_across_ring_and_overflow() {
        let injector = Injector::new(4);
        for item in 0..10 {
            injector.push(item);
        }
        assert_eq!(injector.len(), 10);
        let mut out: Vec<i32> = (0..3).filter_map(|_| injector.pop()).collect();
        // The ring has room again, but the overflow still holds older items.
        injector.push(10);
        out.extend(std::iter::from_fn(|| injector.pop()));
        assert_eq!(out, (0..=10).collect::<Vec<_>>());
        assert!(injector.is_empty());
    }

    #[test]
    fn a_mark_is_served_once_what_came_before_it_left() {
        let injector = Injector::new(2);
        for item in 0..4 {
            injector.push(item);
        }
        let mark = injector.mark();
        injector.push(4);
        for expected in 0..4 {
            assert!(!injector.has_served(mark), "{expected} items left of 4");
            assert_eq!(injector.pop(), Some(expected));
        }
        assert!(injector.has_served(mark));
        assert!(Injector::<u8>::new(2).has_served(0));
    }
}
