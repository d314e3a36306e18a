//! The coroutine's side of a switch: `Yielder::suspend`, and the forced unwind it raises when
//! its coroutine is dropped or unwound.

use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::panic;
use std::ptr;

use crate::arch;
use crate::coroutine::Invariant;

/// The payload that unwinds a suspended coroutine's stack when it is dropped or
/// [`unwound`](crate::Coroutine::unwind).
pub(crate) struct ForcedUnwind;

/// Whether `payload` is the one a coroutine's stack unwinds with when the coroutine is dropped
/// or [`unwound`](crate::Coroutine::unwind) while suspended.
///
/// A body that catches panics (`catch_unwind`) catches this one too; it can use this test to
/// tell "my coroutine is being torn down" from a real panic, and it must let the unwind go on
/// (`resume_unwind`), or the coroutine suspends again mid-unwind and its stack is leaked.
///
/// ```
/// use std::panic::{self, AssertUnwindSafe};
/// use ctxswitch::{Coroutine, is_forced_unwind};
///
/// let mut co = Coroutine::<(), (), ()>::new(|yielder, ()| {
///     let caught = panic::catch_unwind(AssertUnwindSafe(|| yielder.suspend(())));
///     if let Err(payload) = caught {
///         assert!(is_forced_unwind(&*payload));
///         panic::resume_unwind(payload);
///     }
/// });
/// co.resume(());
/// drop(co);
/// ```
pub fn is_forced_unwind(payload: &(dyn Any + Send)) -> bool {
    payload.is::<ForcedUnwind>()
}

/// A suspended coroutine's handle to its resumer, given to the body by reference.
///
/// It is the coroutine's link slot itself (see the backend docs), so suspending costs no lookup.
/// It is neither `Send` nor `Sync`: it belongs to the coroutine's stack.
#[repr(transparent)]
pub struct Yielder<Input, Yield> {
    link: Cell<usize>,
    /// Invariant in both: a value handed across a suspension must keep exactly its lifetime.
    marker: PhantomData<Invariant<(Input, Yield)>>,
}

impl<Input, Yield> Yielder<Input, Yield> {
    /// Suspends the coroutine, handing `value` to the caller of [`Coroutine::resume`](crate::Coroutine::resume); returns
    /// the input of the next `resume`.
    ///
    /// When the coroutine is dropped while suspended here, this call does not return: it
    /// unwinds the body so that its destructors run. A body that catches that unwind with
    /// `catch_unwind` must let it continue (`resume_unwind`).
    pub fn suspend(&self, value: Yield) -> Input {
        let value = ManuallyDrop::new(value);
        let link = self.link.as_ptr();
        // SAFETY: `link` is the link slot of the coroutine running on this stack, so the flags
        // word lies in the same stack's reserved header, written by `with_stack` and
        // `skip_fp_control` before the coroutine started; `value` stays in place until the
        // resumer has moved it out, before it resumes us again.
        let input = unsafe {
            // The flags word, in the stack's reserved header two words below the link, says
            // which protocol the resumer switched in with (see `Coroutine::skip_fp_control`).
            let flags = link.byte_sub(arch::FLAGS_OFFSET - arch::LINK_OFFSET).read();
            if flags & arch::SKIP_FP_CONTROL == 0 {
                arch::switch_yield::<true>(ptr::from_ref(&value) as usize, link)
            } else {
                arch::switch_yield::<false>(ptr::from_ref(&value) as usize, link)
            }
        };
        if input == 0 {
            panic::resume_unwind(Box::new(ForcedUnwind));
        }
        // SAFETY: a non-zero word is the input that `resume` keeps in place across the switch
        // and hands over exactly once.
        unsafe { take_value(input) }
    }
}

impl<Input, Yield> fmt::Debug for Yielder<Input, Yield> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Yielder").finish_non_exhaustive()
    }
}

/// Moves the value handed over at address `word` out of the other side's stack.
///
/// The sender wraps the value in `ManuallyDrop`, so it is moved, never dropped, there. Reading
/// it in place, rather than taking it out of an `Option`, keeps the switch free of writes to the
/// other stack.
///
/// # Safety
///
/// `word` is the address of a live `ManuallyDrop<T>` that its owner hands over exactly once and
/// never uses again.
pub(crate) unsafe fn take_value<T>(word: usize) -> T {
    // SAFETY: as the caller guarantees; `ManuallyDrop<T>` has the layout of `T`.
    unsafe { ptr::read(word as *const T) }
}
