//! Taking half of another worker's goroutines that have not started yet.

/// A bounded run queue any thread may push to and pop from.
pub(crate) trait RunQueue<T> {
    /// Adds `item` at the back, or hands it back when the queue is full.
    fn push(&self, item: T) -> Result<(), T>;
    /// Takes the item at the front.
    fn pop(&self) -> Option<T>;
    /// Items queued now (a snapshot).
    fn len(&self) -> usize;
}

#[cfg(not(goroutines_loom))]
impl<T> RunQueue<T> for crossbeam_queue::ArrayQueue<T> {
    fn push(&self, item: T) -> Result<(), T> {
        crossbeam_queue::ArrayQueue::push(self, item)
    }

    fn pop(&self) -> Option<T> {
        crossbeam_queue::ArrayQueue::pop(self)
    }

    fn len(&self) -> usize {
        crossbeam_queue::ArrayQueue::len(self)
    }
}

/// Takes one item from `victim` to run now and moves up to half of the rest to `mine`; an item
/// that finds `mine` full goes to `overflow`. Every item taken from `victim` ends in exactly one
/// of the three places.
pub(crate) fn steal_half<T, Q: RunQueue<T>>(
    victim: &Q,
    mine: &Q,
    mut overflow: impl FnMut(T),
) -> Option<T> {
    let first = victim.pop()?;
    for _ in 0..victim.len() / 2 {
        match victim.pop() {
            Some(item) => {
                if let Err(item) = mine.push(item) {
                    overflow(item);
                }
            }
            None => break,
        }
    }
    Some(first)
}
