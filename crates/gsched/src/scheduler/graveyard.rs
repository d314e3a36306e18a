//! Finished goroutines go back to the worker that spawned them, in batches, to be freed there:
//! the allocator then reuses their memory for the next spawn without taking a lock, where a free
//! on another thread would contend with this one's allocations.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::task::Task;
use super::worker::WorkerLocal;

/// Batches of finished goroutines a worker holds for freeing at most.
pub(super) const GRAVEYARD_CAPACITY: usize = 64;

/// Finished goroutines sent back to their spawning worker at once.
pub(super) const BURIAL_BATCH: usize = 32;

impl WorkerLocal {
    /// Drops a finished goroutine's last handle where its memory is best freed: on the worker
    /// that spawned it (see `WorkerShared::graveyard`), in batches.
    pub(super) fn bury(&self, task: Arc<Task>) {
        let origin = task.spawned_on.load(Ordering::Relaxed);
        if origin == self.index
            || origin >= self.shared.workers.len()
            || Arc::strong_count(&task) != 1
        {
            return;
        }
        let mut burials = self.burials.borrow_mut();
        let batch = &mut burials[origin];
        if batch.capacity() == 0 {
            batch.reserve_exact(BURIAL_BATCH);
        }
        batch.push(task);
        if batch.len() == BURIAL_BATCH {
            let full = std::mem::take(batch);
            drop(burials);
            // A full graveyard means its worker is not spawning: free here instead.
            let _ = self.shared.workers[origin].graveyard.push(full);
        }
    }

    /// Sends back every partial batch of finished goroutines, and frees what was sent here:
    /// before the worker idles, so that memory does not wait on the next spawn.
    pub(super) fn flush_burials(&self) {
        let batches: Vec<(usize, Vec<Arc<Task>>)> = self
            .burials
            .borrow_mut()
            .iter_mut()
            .enumerate()
            .filter(|(_, batch)| !batch.is_empty())
            .map(|(origin, batch)| (origin, std::mem::take(batch)))
            .collect();
        for (origin, batch) in batches {
            let _ = self.shared.workers[origin].graveyard.push(batch);
        }
        self.returned.borrow_mut().clear();
        while self.shared.workers[self.index].graveyard.pop().is_some() {}
    }

    /// Frees two finished goroutines that this worker spawned, for each new spawn: the
    /// allocator hands their memory straight back.
    pub(super) fn free_returned(&self) {
        let mut returned = self.returned.borrow_mut();
        if returned.is_empty()
            && let Some(batch) = self.shared.workers[self.index].graveyard.pop()
        {
            *returned = batch;
        }
        returned.pop();
        returned.pop();
    }
}
