//! Counted references to a goroutine's task, whose memory comes from the spawning worker's slab.
//!
//! `Arc` cannot take its memory from anywhere but the global allocator on stable Rust, so the
//! count lives in the task's header and this type does what `Arc` would: the last reference
//! drops the task and gives its block back. A reference may view the task through any trait
//! its body implements (`dyn Body` for the scheduler, `dyn Joinable<T>` for a join handle);
//! every view reaches the same count and frees the same block.

use std::alloc::Layout;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{Ordering, fence};

use super::inbox::{Link, Linked};
use super::task::{Body, Task, TaskLink, abort_with};
use crate::slab;

/// A counted reference to a task, seen as `Task<B>`.
pub(crate) struct TaskRef<B: ?Sized = dyn Body> {
    task: NonNull<Task<B>>,
    /// Owns a `Task<B>`, for the drop checker and for auto traits.
    marker: PhantomData<Task<B>>,
}

// SAFETY: as `Arc<Task<B>>`: the task is shared, so it must be `Sync`, and the last reference
// drops it wherever it is, so it must be `Send`.
unsafe impl<B: ?Sized> Send for TaskRef<B> where Task<B>: Send + Sync {}
// SAFETY: as above.
unsafe impl<B: ?Sized> Sync for TaskRef<B> where Task<B>: Send + Sync {}

impl<B: Body> TaskRef<B> {
    /// Moves `task` into a block of the current worker's slab (or the shared one), with one
    /// reference: this one.
    pub(crate) fn new(task: Task<B>) -> Self {
        debug_assert_eq!(task.refs.load(Ordering::Relaxed), 1);
        let block = slab::alloc(Layout::new::<Task<B>>()).cast::<Task<B>>();
        // SAFETY: the block is fresh, sized and aligned for a `Task<B>`.
        unsafe { block.write(task) };
        TaskRef {
            task: block,
            marker: PhantomData,
        }
    }
}

impl<B: ?Sized> TaskRef<B> {
    /// The task's address, which stays valid while any reference lives.
    #[inline]
    pub(crate) fn as_ptr(&self) -> *const Task<B> {
        self.task.as_ptr()
    }

    /// Another reference to the task at `task`.
    ///
    /// # Safety
    ///
    /// `task` came from [`TaskRef::as_ptr`] of a reference that is alive now.
    #[inline]
    pub(crate) unsafe fn clone_from_ptr(task: *const Task<B>) -> Self {
        // SAFETY: a live reference keeps the task alive (the caller's contract).
        let task = unsafe { NonNull::new_unchecked(task.cast_mut()) };
        let reference = TaskRef {
            task,
            marker: PhantomData,
        };
        reference.increment();
        reference
    }

    /// The same reference, seen through a trait the body implements.
    ///
    /// # Safety
    ///
    /// `convert` only unsizes the pointer (`|task| task` to a `dyn` type the body implements):
    /// the result points to the same task, and its metadata describes the same body, since the
    /// drop and the layout used to free the block come from it.
    #[inline]
    pub(crate) unsafe fn view<V: ?Sized>(
        self,
        convert: impl FnOnce(NonNull<Task<B>>) -> NonNull<Task<V>>,
    ) -> TaskRef<V> {
        let task = convert(self.task);
        debug_assert_eq!(task.cast::<u8>(), self.task.cast::<u8>());
        std::mem::forget(self);
        TaskRef {
            task,
            marker: PhantomData,
        }
    }

    /// Gives up the reference a started goroutine holds to itself (see [`QueueRef`]), through
    /// another reference that keeps the task alive.
    ///
    /// # Safety
    ///
    /// The goroutine started, and its own reference has not been given up: this one is not
    /// the last. Once only, by whoever finishes the goroutine or gives its entry back.
    #[inline]
    pub(crate) unsafe fn release_started(&self) {
        let previous = self.refs.fetch_sub(1, Ordering::Release);
        debug_assert!(
            previous > 1,
            "a started goroutine's own reference was the last"
        );
    }

    #[inline]
    fn increment(&self) {
        // Relaxed, as `Arc::clone`: a new reference is made from an existing one, which already
        // orders everything before it.
        let previous = self.refs.fetch_add(1, Ordering::Relaxed);
        if previous > isize::MAX as usize {
            abort_with("a goroutine's reference count overflowed");
        }
    }
}

impl<B: ?Sized> Deref for TaskRef<B> {
    type Target = Task<B>;

    #[inline]
    fn deref(&self) -> &Task<B> {
        // SAFETY: the task lives while this reference does.
        unsafe { self.task.as_ref() }
    }
}

impl<B: ?Sized> Clone for TaskRef<B> {
    #[inline]
    fn clone(&self) -> Self {
        self.increment();
        TaskRef {
            task: self.task,
            marker: PhantomData,
        }
    }
}

impl<B: ?Sized> Drop for TaskRef<B> {
    #[inline]
    fn drop(&mut self) {
        // Release, then acquire before freeing, as `Arc`: every use of the task through any
        // reference happens before the drop.
        let previous = self.refs.fetch_sub(1, Ordering::Release);
        debug_assert_ne!(previous, 0, "a goroutine's task was released twice");
        if previous != 1 {
            return;
        }
        fence(Ordering::Acquire);
        // SAFETY: this was the last reference; the task was written by `TaskRef::new` into a
        // block of exactly its layout, which `Layout::for_value` recovers through any view.
        unsafe {
            let layout = Layout::for_value(self.task.as_ref());
            std::ptr::drop_in_place(self.task.as_ptr());
            slab::dealloc(self.task.cast(), layout);
        }
    }
}

/// A goroutine's place in the run queues, and its runner's handle while it runs it: the one
/// entry a goroutine has while it is `QUEUED` (see `state.rs`).
///
/// The entry of a goroutine that has not started holds a reference to its task. A started
/// goroutine holds one reference to itself instead: the one its entry held when it started
/// (passed on as its home is set, see `Task::set_home`), kept until its runner is done with it
/// after it finished (`QueueRef::release_finished`, or `release_started` in shutdown), and for
/// good when shutdown leaks it. The entries of a started goroutine hold none, so waking a parked
/// goroutine and running it again touch no reference count. That is sound because such a
/// goroutine has one entry at most, and finishes only in the hands of the runner that holds
/// it, or of shutdown, which claims only goroutines without one and holds a counted reference
/// while it finishes them.
pub(crate) struct QueueRef(ManuallyDrop<TaskRef>);

impl QueueRef {
    /// The entry of a goroutine that has not started, holding `task`'s reference.
    #[inline]
    pub(crate) fn unstarted(task: TaskRef) -> Self {
        debug_assert!(task.home().is_none(), "a new goroutine has not started");
        QueueRef(ManuallyDrop::new(task))
    }

    /// The entry of a started goroutine that the caller has just moved into `SCHEDULED` and
    /// `QUEUED` (an `unpark` that found it parked).
    ///
    /// # Safety
    ///
    /// The goroutine has started and not finished, and the caller's move gives it its one
    /// entry, this one.
    #[inline]
    pub(crate) unsafe fn woken(task: &Task) -> Self {
        debug_assert!(task.home().is_some(), "only a started goroutine is woken");
        QueueRef(ManuallyDrop::new(TaskRef {
            task: NonNull::from(task),
            marker: PhantomData,
        }))
    }

    /// The entry of a started goroutine given back to the queues by a holder of a counted
    /// reference (shutdown), which gives that reference up.
    ///
    /// # Safety
    ///
    /// As for [`QueueRef::woken`]: the goroutine started, has not finished, and the caller gives
    /// it its one entry.
    #[inline]
    pub(crate) unsafe fn requeue(task: TaskRef) -> Self {
        // SAFETY: the caller's contract is `woken`'s; dropping `task` below is not the last
        // reference, since the goroutine's own keeps it (it started and has not finished).
        unsafe { Self::woken(&task) }
    }

    /// A counted reference to the goroutine, for a holder that may outlive the entry.
    #[inline]
    pub(crate) fn counted(&self) -> TaskRef {
        TaskRef::clone(&self.0)
    }

    /// Gives up the reference the goroutine held to itself, after it finished: the task is
    /// freed here if nothing else refers to it.
    ///
    /// # Safety
    ///
    /// The goroutine started and ran to its end (or failed to) in the hands of the caller, who
    /// holds this entry and does not touch the task afterwards.
    #[inline]
    pub(crate) unsafe fn release_finished(self) {
        let mut entry = ManuallyDrop::new(self);
        // SAFETY: `entry` is never used or dropped again; the reference it gives up is the
        // goroutine's own (the caller's contract).
        unsafe { ManuallyDrop::drop(&mut entry.0) };
    }
}

impl Deref for QueueRef {
    type Target = TaskRef;

    #[inline]
    fn deref(&self) -> &TaskRef {
        &self.0
    }
}

impl Drop for QueueRef {
    #[inline]
    fn drop(&mut self) {
        // A started goroutine's entry holds no reference (see the type's docs); its home was
        // set before the goroutine could be queued again, by a move that this thread acquired.
        if self.0.home().is_none() {
            // SAFETY: the entry of a goroutine that has not started holds a reference, dropped
            // once, here.
            unsafe { ManuallyDrop::drop(&mut self.0) };
        }
    }
}

// SAFETY: the link is the first field of the `repr(C)` `TaskLink` that begins the `repr(C)`
// task, so it is at the task's address; the entry keeps the task alive and in place until
// `from_link` takes it back (the reference it holds, or the started goroutine's own), and
// `TaskLink::task` rebuilds the same `dyn Body` pointer.
unsafe impl Linked for QueueRef {
    #[inline]
    fn into_link(self) -> NonNull<Link> {
        // A cast of the task pointer, not a reference to the field: the pointer keeps its
        // provenance over the whole task, which `from_link` rebuilds.
        let link = self.0.task.cast::<Link>();
        std::mem::forget(self);
        link
    }

    #[inline]
    unsafe fn from_link(link: NonNull<Link>) -> Self {
        QueueRef(ManuallyDrop::new(TaskRef {
            // SAFETY: the link is that of a task kept alive by the entry `into_link` gave up
            // (the caller's contract).
            task: unsafe { TaskLink::task(link) },
            marker: PhantomData,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier, Mutex};
    use std::time::Duration;

    use crate::{Builder, Runtime, Unparker, current_unparker};

    /// Parks until `flag` is set, whatever wakes it spuriously.
    fn park_until(flag: &AtomicUsize, value: usize) {
        while flag.load(Ordering::Acquire) < value {
            crate::park();
        }
    }

    /// Every way a goroutine is queued again (woken by a goroutine of its worker, of another
    /// worker, by a plain thread, by its timer; yielding; migratable; unwound at shutdown) gives
    /// its task back in the end: the runtime, which every task keeps, is freed with the last.
    #[test]
    fn every_task_is_freed_however_it_was_queued() {
        let runtime = Runtime::builder().workers(2).build().unwrap();
        let weak = Arc::downgrade(&runtime.shared);
        let outside: Arc<Mutex<Vec<Unparker>>> = Arc::default();
        let steps = Arc::new(AtomicUsize::new(0));
        let waiting = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(Barrier::new(2));
        // Parked at shutdown, unwound there.
        let forever = runtime.spawn({
            let started = Arc::clone(&started);
            move || {
                started.wait();
                loop {
                    crate::park();
                }
            }
        });
        started.wait();
        runtime.block_on({
            let (outside, steps, waiting) = (outside.clone(), steps.clone(), waiting.clone());
            move || {
                let mut handles = Vec::new();
                for round in 1..=200 {
                    // Woken by this goroutine, on its worker or another, and by a plain thread.
                    let (steps_in, waiting_in, outside_in) =
                        (steps.clone(), waiting.clone(), outside.clone());
                    let spawn = |builder: Builder| {
                        let (steps_in, waiting_in, outside_in) =
                            (steps_in.clone(), waiting_in.clone(), outside_in.clone());
                        builder
                            .spawn(move || {
                                outside_in.lock().unwrap().push(current_unparker());
                                waiting_in.fetch_add(1, Ordering::Release);
                                park_until(&steps_in, round);
                                crate::yield_now();
                                crate::sleep(Duration::from_micros(50));
                            })
                            .unwrap()
                    };
                    handles.push(spawn(Builder::new().same_worker()));
                    handles.push(spawn(Builder::new().spread()));
                    // SAFETY: the goroutine holds nothing bound to its thread.
                    handles.push(spawn(unsafe { Builder::new().migratable() }));
                    while waiting.load(Ordering::Acquire) < 3 * round {
                        crate::yield_now();
                    }
                    steps.store(round, Ordering::Release);
                    let unparkers = std::mem::take(&mut *outside.lock().unwrap());
                    let (by_goroutine, by_thread) = unparkers.split_at(round % 3);
                    for unparker in by_goroutine {
                        unparker.unpark();
                    }
                    let by_thread = by_thread.to_vec();
                    std::thread::spawn(move || by_thread.iter().for_each(Unparker::unpark))
                        .join()
                        .unwrap();
                }
                for handle in handles {
                    handle.join().unwrap();
                }
            }
        });
        let report = runtime.shutdown();
        assert_eq!(report.leaked.len(), 1, "{:?}", report.leaked);
        assert!(forever.join().is_err(), "the parked goroutine was unwound");
        assert!(weak.upgrade().is_none(), "every task gave its runtime back");
    }
}
