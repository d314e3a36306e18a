//! A box whose memory comes from the slab.

use std::alloc::Layout;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// Owns a `T` in a slab block, as `Box<T>` owns one on the global heap.
pub(crate) struct SlabBox<T> {
    value: NonNull<T>,
    marker: PhantomData<T>,
}

// SAFETY: as `Box<T>`: the box owns its value alone.
unsafe impl<T: Send> Send for SlabBox<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for SlabBox<T> {}

impl<T> SlabBox<T> {
    pub(crate) fn new(value: T) -> Self {
        let block = super::alloc(Layout::new::<T>()).cast::<T>();
        // SAFETY: the block is fresh, sized and aligned for a `T`.
        unsafe { block.write(value) };
        SlabBox {
            value: block,
            marker: PhantomData,
        }
    }
}

impl<T> Deref for SlabBox<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the box owns a live `T`.
        unsafe { self.value.as_ref() }
    }
}

impl<T> DerefMut for SlabBox<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the box owns a live `T`, and `&mut self` makes this the only access.
        unsafe { self.value.as_mut() }
    }
}

impl<T> Drop for SlabBox<T> {
    fn drop(&mut self) {
        // SAFETY: the box owns a live `T` in a block of its layout from `alloc`, and is going
        // away.
        unsafe {
            std::ptr::drop_in_place(self.value.as_ptr());
            super::dealloc(self.value.cast(), Layout::new::<T>());
        }
    }
}
