//! Counted references to a goroutine's task, whose memory comes from the spawning worker's slab.
//!
//! `Arc` cannot take its memory from anywhere but the global allocator on stable Rust, so the
//! count lives in the task's header and this type does what `Arc` would: the last reference
//! drops the task and gives its block back. A reference may view the task through any trait
//! its body implements (`dyn Body` for the scheduler, `dyn Joinable<T>` for a join handle);
//! every view reaches the same count and frees the same block.

use std::alloc::Layout;
use std::marker::PhantomData;
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

// SAFETY: the link is the first field of the `repr(C)` `TaskLink` that begins the `repr(C)`
// task, so it is at the task's address; the given-up reference keeps the task alive and in
// place until `from_link` takes that reference back, and `TaskLink::task` rebuilds the same
// `dyn Body` pointer.
unsafe impl Linked for TaskRef {
    #[inline]
    fn into_link(self) -> NonNull<Link> {
        // A cast of the task pointer, not a reference to the field: the pointer keeps its
        // provenance over the whole task, which `from_link` rebuilds.
        let link = self.task.cast::<Link>();
        std::mem::forget(self);
        link
    }

    #[inline]
    unsafe fn from_link(link: NonNull<Link>) -> Self {
        TaskRef {
            // SAFETY: the link is that of a task kept alive by the reference `into_link` gave
            // up (the caller's contract).
            task: unsafe { TaskLink::task(link) },
            marker: PhantomData,
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
        if self.refs.fetch_sub(1, Ordering::Release) != 1 {
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
