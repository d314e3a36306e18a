//! The global queue of goroutines that no worker's own queue took.

use crossbeam_queue::{ArrayQueue, SegQueue};

/// Goroutines in the ring first: a fixed ring allocates nothing, where an unbounded queue
/// allocates a block every few dozen pushes on one thread and frees it on another, contending
/// on the allocator's lock. Only when the ring is full do items go to the unbounded overflow,
/// and while the overflow holds anything every push goes there too, so that items leave in the
/// order they came.
pub(crate) struct Injector<T> {
    ring: ArrayQueue<T>,
    overflow: SegQueue<T>,
}

impl<T> Injector<T> {
    pub(crate) fn new(ring_capacity: usize) -> Self {
        Injector {
            ring: ArrayQueue::new(ring_capacity),
            overflow: SegQueue::new(),
        }
    }

    pub(crate) fn push(&self, item: T) {
        if !self.overflow.is_empty() {
            self.overflow.push(item);
            return;
        }
        if let Err(item) = self.ring.push(item) {
            self.overflow.push(item);
        }
    }

    pub(crate) fn pop(&self) -> Option<T> {
        self.ring.pop().or_else(|| {
            if self.overflow.is_empty() {
                None
            } else {
                self.overflow.pop()
            }
        })
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
}
