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

    /// The task's address as a pointer that keeps the provenance of the whole block, for an
    /// uncounted entry that may free the task through it in the end (see [`QueueRef`]).
    #[inline]
    pub(crate) fn as_non_null(&self) -> NonNull<Task<B>> {
        self.task
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

    /// Gives up the reference a goroutine holds to itself (see [`QueueRef`]), through another
    /// reference that keeps the task alive.
    ///
    /// # Safety
    ///
    /// The goroutine ended in the caller's hands, and its own reference has not been given up:
    /// this one is not the last. Once only.
    #[inline]
    pub(crate) unsafe fn release_own(&self) {
        let previous = self.refs.fetch_sub(1, Ordering::Release);
        debug_assert!(previous > 1, "a goroutine's own reference was the last");
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
        // Tests see a freed task as one that never started, as a block taken again would be.
        #[cfg(test)]
        self.forget_home();
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
/// Entries hold no reference. A goroutine holds one reference to itself instead, from its spawn
/// (the spawner's, passed on in [`QueueRef::spawned`]) until whoever ends it is done with it:
/// its runner after it finished, or whoever drops it unstarted (a failed start, shutdown), with
/// [`QueueRef::release`] or [`TaskRef::release_own`]; a goroutine that shutdown leaks keeps it
/// for good. So queueing, waking and running a goroutine touch no reference count, and dropping
/// an entry does nothing: it never reads the task, which, once a migratable goroutine is
/// parked, another worker may wake, run to its end and free while the worker that parked it
/// still holds its entry. That is sound because a goroutine has one entry at most, and ends
/// only in the hands of the holder of that entry, or of shutdown, which claims only goroutines
/// without one and holds a counted reference while it ends them.
pub(crate) struct QueueRef(ManuallyDrop<TaskRef>);

impl QueueRef {
    /// The first entry of a new goroutine: `task`'s reference becomes the goroutine's own.
    #[inline]
    pub(crate) fn spawned(task: TaskRef) -> Self {
        debug_assert!(task.home().is_none(), "a new goroutine has not started");
        QueueRef(ManuallyDrop::new(task))
    }

    /// The entry of a goroutine that the caller has just moved into `SCHEDULED` and `QUEUED`
    /// (an `unpark` that found it parked).
    ///
    /// # Safety
    ///
    /// The goroutine has not ended (its own reference keeps `task` alive), and the caller's move
    /// gives it its one entry, this one.
    /// `task` keeps the provenance of the task's whole block (`TaskRef::as_non_null`), since
    /// the entry may free the task through it in the end.
    #[inline]
    pub(crate) unsafe fn woken(task: NonNull<Task>) -> Self {
        QueueRef(ManuallyDrop::new(TaskRef {
            task,
            marker: PhantomData,
        }))
    }

    /// The entry of a goroutine given back to the queues by a holder of a counted reference
    /// (shutdown, a timer), which gives that reference up.
    ///
    /// # Safety
    ///
    /// As for [`QueueRef::woken`].
    #[inline]
    pub(crate) unsafe fn requeue(task: TaskRef) -> Self {
        // SAFETY: the caller's contract is `woken`'s; dropping `task` below is not the last
        // reference, since the goroutine's own keeps it (it has not ended).
        unsafe { Self::woken(task.as_non_null()) }
    }

    /// A counted reference to the goroutine, for a holder that may outlive the entry.
    #[inline]
    pub(crate) fn counted(&self) -> TaskRef {
        TaskRef::clone(&self.0)
    }

    /// Gives up the goroutine's own reference: the task is freed here if nothing else refers to
    /// it.
    ///
    /// # Safety
    ///
    /// The goroutine ended in the hands of the caller, who holds this entry: it ran to its end,
    /// or it never started and was discarded (its joiner told). The caller does not touch the
    /// task afterwards, and nobody releases it again.
    #[inline]
    pub(crate) unsafe fn release(self) {
        let mut entry = self;
        // SAFETY: `entry` is never used again (a `QueueRef` has no drop of its own); the
        // reference it gives up is the goroutine's own (the caller's contract).
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

// SAFETY: the link is the first field of the `repr(C)` `TaskLink` that begins the `repr(C)`
// task, so it is at the task's address; the goroutine's own reference keeps the task alive and
// in place while it is queued (it cannot end before its entry is taken back), and
// `TaskLink::task` rebuilds the same `dyn Body` pointer.
unsafe impl Linked for QueueRef {
    #[inline]
    fn into_link(self) -> NonNull<Link> {
        // A cast of the task pointer, not a reference to the field: the pointer keeps its
        // provenance over the whole task, which `from_link` rebuilds.
        self.0.task.cast::<Link>()
    }

    #[inline]
    unsafe fn from_link(link: NonNull<Link>) -> Self {
        QueueRef(ManuallyDrop::new(TaskRef {
            // SAFETY: the link is that of a queued task, kept alive by its own reference (the
            // caller's contract).
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

    /// A task released twice aborts the process (a debug assertion on a worker), so each test
    /// runs in a child: true in the child, which goes on with the test; in the parent, runs the
    /// child and checks that it passed.
    fn is_child(test: &str) -> bool {
        const CHILD: testkit::ChildTest = testkit::ChildTest::new("GSCHED_TASK_REF_CHILD");
        let name = format!("scheduler::task_ref::tests::{test}");
        if CHILD.is_child(&name) {
            return true;
        }
        let output = CHILD.run(&name).output();
        assert!(
            output.status.success(),
            "child: {}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        false
    }

    /// Parks until `flag` is set, whatever wakes it spuriously.
    fn park_until(flag: &AtomicUsize, value: usize) {
        while flag.load(Ordering::Acquire) < value {
            crate::park();
        }
    }

    /// Migratable goroutines parked on one worker are woken, run to their end and freed on the
    /// other while new goroutines take their blocks: the worker that parked one lets go of its
    /// entry without reading the task (a read there once found a reused block, and released a
    /// new goroutine's reference).
    #[test]
    fn migratable_goroutines_freed_elsewhere_are_freed_once() {
        if !is_child("migratable_goroutines_freed_elsewhere_are_freed_once") {
            return;
        }
        const GOROUTINES: usize = 200;
        // SAFETY: the goroutines hold nothing bound to their thread.
        let runtime = unsafe { Runtime::builder().workers(2).migratable_goroutines() }
            .build()
            .unwrap();
        let weak = Arc::downgrade(&runtime.shared);
        runtime
            .shared
            .pause_after_park
            .store(true, Ordering::Relaxed);
        runtime.block_on(|| {
            type Parked = Vec<(Arc<AtomicUsize>, Unparker)>;
            let parked: Arc<Mutex<Parked>> = Arc::default();
            let finished = Arc::new(AtomicUsize::new(0));
            let waker = Builder::new()
                .spread()
                .spawn({
                    let (parked, finished) = (parked.clone(), finished.clone());
                    move || {
                        while finished.load(Ordering::Acquire) < GOROUTINES {
                            for (flag, unparker) in std::mem::take(&mut *parked.lock().unwrap()) {
                                flag.store(1, Ordering::Release);
                                unparker.unpark();
                            }
                            crate::yield_now();
                        }
                    }
                })
                .unwrap();
            for _ in 0..GOROUTINES {
                let (parked, finished) = (parked.clone(), finished.clone());
                drop(crate::go(move || {
                    let flag = Arc::new(AtomicUsize::new(0));
                    parked
                        .lock()
                        .unwrap()
                        .push((flag.clone(), current_unparker()));
                    park_until(&flag, 1);
                    finished.fetch_add(1, Ordering::Release);
                }));
                drop(crate::go(|| ()));
            }
            waker.join().unwrap();
        });
        drop(runtime);
        assert!(weak.upgrade().is_none(), "every task gave its runtime back");
    }

    /// Every way a goroutine is queued again (woken by a goroutine of its worker, of another
    /// worker, by a plain thread, by its timer; yielding; migratable; unwound at shutdown) gives
    /// its task back in the end: the runtime, which every task keeps, is freed with the last.
    #[test]
    fn every_task_is_freed_however_it_was_queued() {
        if !is_child("every_task_is_freed_however_it_was_queued") {
            return;
        }
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
        // Both workers busy until shutdown has begun, with goroutines queued behind them that
        // shutdown drops unstarted.
        let release = Arc::new(AtomicUsize::new(0));
        let blocking = Arc::new(AtomicUsize::new(0));
        let blockers: Vec<_> = (0..2)
            .map(|_| {
                let (release, blocking) = (Arc::clone(&release), Arc::clone(&blocking));
                runtime.spawn(move || {
                    blocking.fetch_add(1, Ordering::AcqRel);
                    while release.load(Ordering::Acquire) == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                })
            })
            .collect();
        while blocking.load(Ordering::Acquire) < 2 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let unstarted: Vec<_> = (0..10).map(|_| runtime.spawn(|| ())).collect();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            release.store(1, Ordering::Release);
        });
        let report = runtime.shutdown();
        releaser.join().unwrap();
        let never_ran = report
            .leaked
            .iter()
            .filter(|line| line.contains("never ran"))
            .count();
        assert!(never_ran > 0, "{:?}", report.leaked);
        assert_eq!(report.leaked.len(), 1 + never_ran, "{:?}", report.leaked);
        assert!(forever.join().is_err(), "the parked goroutine was unwound");
        blockers
            .into_iter()
            .for_each(|handle| handle.join().unwrap());
        let refused = unstarted
            .into_iter()
            .map(|handle| handle.join())
            .filter(Result::is_err)
            .count();
        assert_eq!(
            refused, never_ran,
            "each dropped goroutine's joiner is told"
        );
        assert!(weak.upgrade().is_none(), "every task gave its runtime back");
    }
}
