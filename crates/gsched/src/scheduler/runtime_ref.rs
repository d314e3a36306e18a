//! A goroutine's counted reference to its runtime, without a read-modify-write per goroutine
//! where it is spawned and ends on the runtime's workers (see `holds.rs`).

use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::Arc;

use super::{RuntimeShared, WorkerLocal};

/// Holds a worker takes from its runtime's count at a time.
const BATCH: usize = 256;

/// Holds a worker keeps before it gives a batch back, so that a worker that ends more
/// goroutines than it spawns does not gather them all.
const KEPT: usize = 2 * BATCH;

/// A hold on a runtime, keeping it alive as an `Arc` clone would.
pub(crate) struct RuntimeRef {
    /// From `Arc::as_ptr`: the provenance `Arc::decrement_strong_count` needs.
    runtime: NonNull<RuntimeShared>,
}

// SAFETY: as `Arc<RuntimeShared>`, which is `Send` and `Sync` (checked below): the hold only
// gives shared access, and gives the hold back from whichever thread drops it.
unsafe impl Send for RuntimeRef {}
// SAFETY: as above.
unsafe impl Sync for RuntimeRef {}

const _: () = {
    const fn shared_across_threads<T: Send + Sync>() {}
    shared_across_threads::<RuntimeShared>();
};

impl RuntimeRef {
    /// A hold on `runtime`: from the current worker's batch on one of `runtime`'s workers,
    /// else one taken from the count.
    #[inline]
    pub(crate) fn new(runtime: &Arc<RuntimeShared>) -> Self {
        let from_worker = WorkerLocal::with_current(|local| {
            if !Arc::ptr_eq(&local.shared, runtime) {
                return false;
            }
            let mut holds = local.runtime_holds.get();
            if holds == 0 {
                take(runtime, BATCH);
                holds = BATCH;
            }
            local.runtime_holds.set(holds - 1);
            true
        });
        if from_worker != Some(true) {
            take(runtime, 1);
        }
        RuntimeRef {
            runtime: arc_ptr(runtime),
        }
    }

    /// Gives back a worker's batch when its worker stops.
    ///
    /// # Safety
    ///
    /// `holds` is what the worker of `runtime` had in hand, and no longer has.
    pub(crate) unsafe fn give_back_batch(runtime: &Arc<RuntimeShared>, holds: usize) {
        if holds > 0 {
            // SAFETY: the holds are the caller's to give (the contract).
            unsafe { give_back(arc_ptr(runtime), holds) };
        }
    }
}

/// The runtime's address as the `Arc` gives it, which `Arc::decrement_strong_count` takes.
fn arc_ptr(runtime: &Arc<RuntimeShared>) -> NonNull<RuntimeShared> {
    // SAFETY: an `Arc`'s pointer is never null.
    unsafe { NonNull::new_unchecked(Arc::as_ptr(runtime).cast_mut()) }
}

/// Takes `holds` holds on `runtime` through the caller's own reference.
fn take(runtime: &Arc<RuntimeShared>, holds: usize) {
    if runtime.task_holds.add(holds) {
        // The holders' one reference, dropped by `give_back` when the count is back at zero.
        std::mem::forget(Arc::clone(runtime));
    }
}

/// Gives `holds` holds on the runtime at `runtime` back; true if they were the last, and the
/// holders' reference went.
///
/// # Safety
///
/// The caller owns `holds` holds on a live runtime and does not use them afterwards; `runtime`
/// came from `arc_ptr`.
unsafe fn give_back(runtime: NonNull<RuntimeShared>, holds: usize) -> bool {
    // SAFETY: the runtime lives while the caller's holds do.
    let last = unsafe { runtime.as_ref() }.task_holds.remove(holds);
    if last {
        // SAFETY: the count is back at zero: the reference `take` forgot when the count left
        // zero is the holders', and theirs is gone; the pointer is the `Arc`'s own.
        unsafe { Arc::decrement_strong_count(runtime.as_ptr()) };
    }
    last
}

impl Deref for RuntimeRef {
    type Target = RuntimeShared;

    #[inline]
    fn deref(&self) -> &RuntimeShared {
        // SAFETY: the hold keeps the runtime alive.
        unsafe { self.runtime.as_ref() }
    }
}

impl Drop for RuntimeRef {
    #[inline]
    fn drop(&mut self) {
        let runtime = self.runtime.as_ptr().cast_const();
        let kept = WorkerLocal::with_current(|local| {
            if !std::ptr::eq(Arc::as_ptr(&local.shared), runtime) {
                return false;
            }
            let mut holds = local.runtime_holds.get() + 1;
            if holds > KEPT {
                // SAFETY: a batch of the worker's holds, which it gives up here; the worker's
                // own reference keeps the runtime alive meanwhile.
                let last = unsafe { give_back(self.runtime, BATCH) };
                // The cell keeps more than a batch, so this never lets the runtime go (nor runs
                // its drop inside this borrow of the worker).
                debug_assert!(
                    !last,
                    "a worker's cell keeps holds after giving a batch back"
                );
                holds -= BATCH;
            }
            local.runtime_holds.set(holds);
            true
        });
        if kept != Some(true) {
            // SAFETY: this hold, given back once.
            unsafe { give_back(self.runtime, 1) };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::Runtime;

    #[test]
    fn the_runtime_lives_until_its_last_goroutine_is_dropped() {
        let runtime = Runtime::builder().workers(2).build().unwrap();
        let weak = Arc::downgrade(&runtime.shared);
        let finished = Arc::new(AtomicUsize::new(0));
        fn counted(finished: &Arc<AtomicUsize>, value: usize) -> impl FnOnce() -> usize + use<> {
            let finished = Arc::clone(finished);
            move || {
                finished.fetch_add(1, Ordering::Relaxed);
                value
            }
        }
        // Spawned from outside: one hold each, taken from the count.
        let mut handles: Vec<_> = (0..3)
            .map(|i| runtime.spawn(counted(&finished, i)))
            .collect();
        assert!(runtime.shared.task_holds.count() >= 3);
        // Spawned by goroutines: from their workers' batches, more than one batch's worth.
        let all = Arc::clone(&finished);
        handles.extend(runtime.block_on(move || {
            let inner: Vec<_> = (0..1000).map(|i| crate::go(counted(&all, i))).collect();
            while all.load(Ordering::Relaxed) < 1003 {
                crate::yield_now();
            }
            inner
        }));
        drop(runtime);
        // The join handles keep their goroutines' tasks, and so the runtime's shared state.
        assert!(weak.upgrade().is_some());
        let sum: usize = handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .sum();
        assert_eq!(sum, 3 + 999 * 1000 / 2);
        assert!(weak.upgrade().is_none(), "the last hold let the runtime go");
    }
}
