//! The safe coroutine API over the raw switch.
//!
//! Longer than this crate's other files (about 730 lines, most of them docs and `SAFETY`
//! arguments): the states a coroutine moves through, resume, unwind and drop are one state
//! machine whose invariants read best together.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::mem::{self, ManuallyDrop};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;

use crate::arch;
use crate::fp_control::FpControl;
use crate::send::SendCoroutine;
use crate::stack::{DefaultStack, MIN_STACK_SIZE, Stack, StackTooSmall};
use crate::thread_exit;
use crate::yielder::{ForcedUnwind, Yielder, take_value};

/// What [`Coroutine::resume`] returns: the body suspended with a value, or it returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CoroutineResult<Yield, Return> {
    /// The body called [`Yielder::suspend`] with this value.
    Yield(Yield),
    /// The body returned this value; the coroutine is finished.
    Return(Return),
}

impl<Yield, Return> CoroutineResult<Yield, Return> {
    /// The yielded value, if the body suspended.
    pub fn into_yield(self) -> Option<Yield> {
        match self {
            CoroutineResult::Yield(value) => Some(value),
            CoroutineResult::Return(_) => None,
        }
    }

    /// The returned value, if the body finished.
    pub fn into_return(self) -> Option<Return> {
        match self {
            CoroutineResult::Yield(_) => None,
            CoroutineResult::Return(value) => Some(value),
        }
    }
}

/// What a coroutine handed back at a switch.
///
/// On the wire it is the address of a `Yield` when the coroutine suspended, or of a
/// `std::thread::Result<Return>` when it finished (the backend reports which), moved out once
/// by the resumer, in place on the coroutine's stack.
enum Outcome<Yield, Return> {
    Yield(Yield),
    Return(Return),
    Panic(Box<dyn Any + Send>),
}

/// Where a coroutine stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Never resumed; the closure still sits at `closure` on the stack.
    NotStarted { sp: usize },
    /// Suspended in `Yielder::suspend`; `panicking` when the thread counted a panic at the
    /// switch, which may be the coroutine's own: it may have suspended inside a destructor
    /// that runs during that panic's unwind, where a second unwind would abort the process.
    Suspended { sp: usize, panicking: bool },
    /// Being unwound by [`Coroutine::unwind`], and suspended again by code that ran during the
    /// unwind (a destructor that waits).
    Unwinding { sp: usize },
    /// Returned, panicked or unwound: its stack holds nothing live.
    Finished,
}

/// A stackful coroutine: a closure that runs on a stack of its own and can suspend itself
/// anywhere in its call tree.
///
/// ```
/// use ctxswitch::{Coroutine, CoroutineResult};
///
/// let mut counter = Coroutine::new(|yielder, start: u32| {
///     let mut n = start;
///     loop {
///         n += yielder.suspend(n);
///     }
/// });
/// assert_eq!(counter.resume(10), CoroutineResult::<u32, ()>::Yield(10));
/// assert_eq!(counter.resume(5), CoroutineResult::Yield(15));
/// ```
///
/// # Threads
///
/// A coroutine is neither `Send` nor `Sync`. Its stack may hold values that must stay on one
/// thread (an `Rc`, a `MutexGuard`, a borrow of a thread-local) across a suspension, and the
/// compiler cannot see them, so moving a started coroutine to another thread is unsound in
/// general:
///
/// ```compile_fail
/// let co = ctxswitch::Coroutine::<(), (), ()>::new(|_, ()| ());
/// std::thread::spawn(move || drop(co));
/// ```
///
/// A runtime that knows more (say, it only moves coroutines that have not started, or whose
/// bodies it controls) uses [`Coroutine::assume_send`].
///
/// # Lifetimes
///
/// A body may keep its input, or a value it yields, across a suspension, so `Coroutine` is
/// invariant in `Input`, `Yield` and `Return`: a coroutine made for short-lived inputs cannot
/// pass for one that takes `'static` ones.
///
/// ```compile_fail
/// use ctxswitch::Coroutine;
///
/// fn extend<'a>(co: Coroutine<&'a str, (), ()>) -> Coroutine<&'static str, (), ()> {
///     co
/// }
/// ```
///
/// ```compile_fail
/// use ctxswitch::Coroutine;
///
/// fn shorten<'a>(co: Coroutine<(), &'static str, ()>) -> Coroutine<(), &'a str, ()> {
///     co
/// }
/// ```
///
/// Its values and its stack are `'static`: a coroutine may be forgotten (`mem::forget` is
/// safe) while its frames still share what they borrowed with other threads (a
/// `std::thread::scope` started inside it never joins then), so nothing it holds may borrow
/// from its creator.
///
/// ```compile_fail
/// fn borrows<'a>() -> ctxswitch::Coroutine<&'a str, (), ()> {
///     ctxswitch::Coroutine::new(|_, _input: &'a str| ())
/// }
/// ```
///
/// The stack is owned: a borrowed stack would end its borrow when the coroutine is forgotten
/// (`mem::forget` is safe) while frames on it are still referenced, so `&mut S` is not a
/// [`Stack`].
///
/// ```compile_fail
/// let mut stack = ctxswitch::DefaultStack::new(64 * 1024).unwrap();
/// let co = ctxswitch::Coroutine::<(), (), ()>::with_stack(&mut stack, |_, ()| ());
/// ```
///
/// # Dropping
///
/// Dropping a suspended coroutine unwinds its stack: the pending [`Yielder::suspend`] panics
/// with a private payload (see [`is_forced_unwind`](crate::is_forced_unwind)) and every destructor on the stack runs.
/// Two cases leak the stack instead, and say so on stderr, because unwinding would be unsound or
/// impossible:
///
/// - Code that runs during the unwind suspends again (it caught the unwind, or a destructor
///   waits). Use [`Coroutine::unwind`] to drive such an unwind step by step.
/// - The coroutine is dropped while its thread destroys its thread-locals (it lives in a
///   thread-local, or in something one owns): a frame may hold a reference from
///   `LocalKey::with` into a thread-local that is already gone. The thread's exit is detected
///   with a thread-local registered after the first slice of the first coroutine that suspends
///   on the thread, which is destroyed before every thread-local first used up to then. A
///   thread-local first used later, by a coroutine stored in a thread-local first used earlier,
///   is outside what stable Rust lets a library observe: keep such coroutines out of
///   thread-locals, or finish them before the thread exits.
///
/// A panic unwinds only its own coroutine's stack, but std counts panics per thread: while a
/// coroutine is suspended in the middle of unwinding (a destructor waits), other code on the
/// same thread reads `std::thread::panicking() == true`, and a `std::sync::MutexGuard` dropped
/// there poisons its mutex.
pub struct Coroutine<Input, Yield, Return, S: Stack = DefaultStack> {
    stack: ManuallyDrop<S>,
    state: State,
    /// Address of the closure on the stack, valid while `NotStarted`.
    closure: usize,
    /// Drops the closure of a coroutine that never started.
    drop_closure: unsafe fn(*mut u8),
    /// Frames on the stack may still be live and never will be unwound: the stack is never
    /// freed or handed back.
    leaked: bool,
    /// Switches preserve the floating-point control (see [`Coroutine::skip_fp_control`]).
    save_fp: bool,
    marker: PhantomData<CoroutineMarker<Input, Yield, Return>>,
}

/// Invariance in the value types, and `*mut ()` for neither `Send` nor `Sync` (see
/// [`Coroutine`]'s docs).
type CoroutineMarker<Input, Yield, Return> = (Invariant<(Input, Yield, Return)>, *mut ());

/// A marker type invariant in `T` that is `Send` and `Sync` whatever `T` is.
pub(crate) type Invariant<T> = fn(T) -> T;

impl<Input, Yield, Return> Coroutine<Input, Yield, Return, DefaultStack> {
    /// Creates a coroutine on a fresh [`DefaultStack`] of the default size.
    ///
    /// # Panics
    ///
    /// When the stack cannot be mapped (out of memory or of `vm.max_map_count`), with the OS
    /// error; use [`Coroutine::with_stack`] to handle that as an error.
    pub fn new<F>(body: F) -> Self
    where
        F: FnOnce(&Yielder<Input, Yield>, Input) -> Return + 'static,
        Input: 'static,
        Yield: 'static,
        Return: 'static,
    {
        let stack = DefaultStack::with_default_size()
            .unwrap_or_else(|err| panic!("ctxswitch: failed to allocate a coroutine stack: {err}"));
        match Self::with_stack(stack, body) {
            Ok(coroutine) => coroutine,
            Err(err) => panic!("ctxswitch: {err}"),
        }
    }
}

impl<Input, Yield, Return, S: Stack> Coroutine<Input, Yield, Return, S> {
    /// Creates a coroutine that runs `body` on `stack`. Nothing runs until the first
    /// [`resume`](Self::resume), whose input becomes `body`'s second argument.
    ///
    /// The closure is stored on the stack itself, so creating a coroutine allocates nothing.
    ///
    /// # Errors
    ///
    /// [`StackTooSmall`], carrying the stack back, when the stack is smaller than
    /// [`MIN_STACK_SIZE`] plus the closure's size.
    pub fn with_stack<F>(stack: S, body: F) -> Result<Self, StackTooSmall<S>>
    where
        F: FnOnce(&Yielder<Input, Yield>, Input) -> Return + 'static,
        Input: 'static,
        Yield: 'static,
        Return: 'static,
        S: 'static,
    {
        let align = mem::align_of::<F>().max(16);
        let required = MIN_STACK_SIZE + arch::HEADER_SIZE + mem::size_of::<F>() + align;
        if stack.size() < required {
            return Err(StackTooSmall { stack, required });
        }
        let base = stack.base();
        let closure = (base - arch::HEADER_SIZE - mem::size_of::<F>()) & !(align - 1);
        // SAFETY: `closure` is aligned for `F` and lies inside the stack, which the size check
        // proves has room for the header, the closure and `MIN_STACK_SIZE` below it.
        let sp = unsafe {
            (closure as *mut F).write(body);
            ((base - arch::FLAGS_OFFSET) as *mut usize).write(0);
            arch::init_stack(
                base,
                closure,
                coroutine_entry::<F, Input, Yield, Return>,
                stack.limit(),
            )
        };
        Ok(Coroutine {
            stack: ManuallyDrop::new(stack),
            state: State::NotStarted { sp },
            closure,
            drop_closure: drop_in_place_erased::<F>,
            leaked: false,
            save_fp: true,
            marker: PhantomData,
        })
    }

    /// Makes this coroutine's switches leave the floating-point control state alone, for a
    /// resumer that preserves it itself, at less cost than every switch does.
    ///
    /// A switch looks like a call to both sides, and the calling convention makes the
    /// floating-point control state callee-saved (on x86_64 System V, MXCSR's control bits and
    /// the x87 control word: rounding mode, exception masks, flush-to-zero): code on either side
    /// may rely on it being what it was before the switch. By default both sides of every switch
    /// save and restore it, which costs a few nanoseconds of a switch of a few nanoseconds. After
    /// this call they do not, and the resumer takes the convention's promise over.
    ///
    /// Dropping the coroutine or taking its stack back ([`into_stack`](Self::into_stack)) still
    /// preserves the caller's state: those unwinds are rare and the coroutine does it itself.
    /// The portable backend always preserves the state; this call changes nothing there.
    ///
    /// ```
    /// use ctxswitch::{Coroutine, FpControl};
    ///
    /// let mut co = Coroutine::<(), u32, ()>::new(|yielder, ()| {
    ///     for i in 0.. {
    ///         yielder.suspend(i);
    ///     }
    /// });
    /// // SAFETY: the resumer below checks the state after every resume and puts its own back,
    /// // and gives the coroutine its own back before the next resume.
    /// unsafe { co.skip_fp_control() };
    /// let mine = FpControl::current();
    /// let mut theirs = None;
    /// for _ in 0..3 {
    ///     if let Some(state) = theirs.take() {
    ///         FpControl::restore(state);
    ///     }
    ///     co.resume(());
    ///     let now = FpControl::current();
    ///     if now != mine {
    ///         theirs = Some(now);
    ///         mine.restore();
    ///     }
    /// }
    /// ```
    ///
    /// # Safety
    ///
    /// After every [`resume`](Self::resume) and [`unwind`](Self::unwind) (one that panics
    /// included), the caller puts back its own floating-point control state if the coroutine
    /// left another ([`FpControl::current`](crate::FpControl::current) compared with the
    /// caller's, [`FpControl::restore`](crate::FpControl::restore)), and before the next resume
    /// it gives the coroutine back the state it left; or the caller knows that neither side
    /// ever changes the state.
    ///
    /// Dropping a suspended coroutine, or [`into_stack`](Self::into_stack) on one, unwinds it
    /// under the dropper's state (the dropper's own is kept across that unwind): where the
    /// coroutine's destructors depend on the mode it had set, restore its state first.
    ///
    /// # Panics
    ///
    /// When the coroutine has started: its suspended side switched with the other protocol.
    pub unsafe fn skip_fp_control(&mut self) {
        assert!(
            !self.started(),
            "ctxswitch: skip_fp_control on a coroutine that has started"
        );
        self.save_fp = false;
        // SAFETY: the flags word lies in the stack's reserved header (`with_stack`), which no
        // frame uses.
        unsafe {
            ((self.stack.base() - arch::FLAGS_OFFSET) as *mut usize).write(arch::SKIP_FP_CONTROL);
        }
    }

    /// Whether the coroutine's switches preserve the floating-point control state (see
    /// [`skip_fp_control`](Self::skip_fp_control)).
    pub fn saves_fp_control(&self) -> bool {
        self.save_fp
    }

    /// Runs the coroutine until it suspends or returns, handing it `input`.
    ///
    /// # Panics
    ///
    /// When the coroutine has already finished (returned or panicked). A panic in the body is
    /// re-raised here with its original payload, and finishes the coroutine.
    /// When the coroutine is being unwound ([`unwind`](Self::unwind) goes on with it).
    #[inline]
    pub fn resume(&mut self, input: Input) -> CoroutineResult<Yield, Return> {
        let sp = match self.state {
            State::Suspended { sp, .. } => sp,
            State::NotStarted { sp } => {
                let input = ManuallyDrop::new(input);
                let outcome = self.switch_in(ptr::from_ref(&input) as usize, sp);
                thread_exit::arm();
                return match outcome {
                    Outcome::Yield(value) => CoroutineResult::Yield(value),
                    Outcome::Return(value) => CoroutineResult::Return(value),
                    Outcome::Panic(payload) => panic::resume_unwind(payload),
                };
            }
            State::Unwinding { .. } => {
                panic!("ctxswitch: resumed a coroutine that is being unwound; use `unwind`")
            }
            State::Finished => panic!("ctxswitch: resumed a coroutine that has already finished"),
        };
        let input = ManuallyDrop::new(input);
        match self.switch_in(ptr::from_ref(&input) as usize, sp) {
            Outcome::Yield(value) => CoroutineResult::Yield(value),
            Outcome::Return(value) => CoroutineResult::Return(value),
            Outcome::Panic(payload) => panic::resume_unwind(payload),
        }
    }

    /// Unwinds the coroutine's stack, as dropping it does, but lets code that runs during the
    /// unwind suspend.
    ///
    /// The first call makes the pending [`Yielder::suspend`] panic with the payload that
    /// [`is_forced_unwind`](crate::is_forced_unwind) recognizes, so every destructor on the stack runs. When one of them
    /// suspends (it waits for something), this returns `Some` with the yielded value and the
    /// coroutine stays suspended mid-unwind; call `unwind` again, when whatever it waits for is
    /// ready, to go on: `input` is what that suspension returns. `None` means the coroutine is
    /// finished: unwound, or it returned (the body caught the unwind and returned normally).
    /// A coroutine that never started just drops its closure.
    ///
    /// ```
    /// use ctxswitch::Coroutine;
    ///
    /// struct WaitsOnDrop<'a>(&'a ctxswitch::Yielder<u32, &'static str>);
    /// impl Drop for WaitsOnDrop<'_> {
    ///     fn drop(&mut self) {
    ///         let answer = self.0.suspend("waiting in a destructor");
    ///         assert_eq!(answer, 7);
    ///     }
    /// }
    ///
    /// let mut co = Coroutine::<u32, &'static str, ()>::new(|yielder, _| {
    ///     let _guard = WaitsOnDrop(yielder);
    ///     yielder.suspend("parked");
    /// });
    /// co.resume(0);
    /// assert_eq!(co.unwind(0), Some("waiting in a destructor"));
    /// assert_eq!(co.unwind(7), None);
    /// assert!(co.done());
    /// ```
    ///
    /// # Panics
    ///
    /// When the body, having caught the unwind, panics with another payload: that payload is
    /// re-raised here, as [`resume`](Self::resume) does, and the coroutine is finished.
    ///
    /// A coroutine that cannot be unwound soundly (see [`can_unwind`](Self::can_unwind)) is
    /// leaked instead, with a message on stderr, and this returns `None`: it is finished, and
    /// its stack is never freed.
    pub fn unwind(&mut self, input: Input) -> Option<Yield> {
        let outcome = match self.state {
            State::Finished => return None,
            State::NotStarted { .. } | State::Suspended { .. } if !self.can_unwind() => {
                drop(input);
                match self.finish() {
                    Ok(()) => {}
                    Err(Unfinished::Leak(reason)) => self.leak(reason),
                    Err(Unfinished::Panic(payload)) => panic::resume_unwind(payload),
                }
                return None;
            }
            State::NotStarted { .. } => {
                drop(input);
                let _ = self.finish();
                return None;
            }
            State::Suspended { sp, .. } => {
                drop(input);
                self.switch_in(0, sp)
            }
            State::Unwinding { sp } => {
                let input = ManuallyDrop::new(input);
                self.switch_in(ptr::from_ref(&input) as usize, sp)
            }
        };
        match outcome {
            Outcome::Yield(value) => {
                if let State::Suspended { sp, .. } = self.state {
                    self.state = State::Unwinding { sp };
                }
                Some(value)
            }
            Outcome::Return(value) => {
                drop(value);
                None
            }
            Outcome::Panic(payload) if payload.is::<ForcedUnwind>() => None,
            Outcome::Panic(payload) => panic::resume_unwind(payload),
        }
    }

    /// Whether the coroutine suspended again while [`unwind`](Self::unwind) was unwinding it.
    pub fn is_unwinding(&self) -> bool {
        matches!(self.state, State::Unwinding { .. })
    }

    /// Whether dropping or [`unwind`](Self::unwind)ing the coroutine would unwind it (or drop
    /// its unstarted closure) rather than leak it. A suspended coroutine cannot be unwound when
    /// it suspended while its thread counted a panic (it may be inside a destructor run by that
    /// panic, where a second unwind aborts the process), or while its thread destroys its
    /// thread-locals; one already being unwound is driven on by `unwind`, never dropped.
    pub fn can_unwind(&self) -> bool {
        match self.state {
            State::NotStarted { .. } | State::Finished | State::Unwinding { .. } => true,
            State::Suspended { panicking, .. } => !panicking && !thread_exit::in_progress(),
        }
    }

    /// Whether the coroutine's stack was leaked because it could not be unwound.
    pub fn is_leaked(&self) -> bool {
        self.leaked
    }

    #[cold]
    fn leak(&mut self, reason: &str) {
        self.state = State::Finished;
        self.leaked = true;
        leak_report(reason);
    }

    /// Whether the coroutine has finished: it returned, panicked, or was unwound.
    pub fn done(&self) -> bool {
        self.state == State::Finished
    }

    /// Whether the coroutine has been resumed at least once.
    pub fn started(&self) -> bool {
        !matches!(self.state, State::NotStarted { .. })
    }

    /// The stack the coroutine runs on.
    pub fn stack(&self) -> &S {
        &self.stack
    }

    /// Takes the stack back for reuse, first unwinding the body if it is suspended (as drop
    /// does) or dropping the closure if it never ran.
    ///
    /// # Panics
    ///
    /// When the body suspends again while being unwound, or the coroutine was left mid-unwind
    /// by [`unwind`](Self::unwind): its frames are live, so the stack is leaked, not returned.
    pub fn into_stack(self) -> S {
        let mut this = ManuallyDrop::new(self);
        match this.finish() {
            Ok(()) if !this.leaked => {}
            Ok(()) => panic!("ctxswitch: the coroutine's stack was leaked"),
            Err(Unfinished::Leak(reason)) => panic!("ctxswitch: {reason}; its stack is leaked"),
            Err(Unfinished::Panic(payload)) => panic::resume_unwind(payload),
        }
        // SAFETY: `this` is never used or dropped again, and the finished coroutine holds
        // nothing on the stack any more.
        unsafe { ManuallyDrop::take(&mut this.stack) }
    }

    /// Declares that this coroutine may move to other threads.
    ///
    /// # Safety
    ///
    /// Everything the coroutine holds across a suspension, in its closure, its inputs, yields and
    /// return value, and every frame of its stack, must be safe to use from whichever thread
    /// resumes or drops it next. In particular the body must not keep `!Send` values (an `Rc`, a
    /// `MutexGuard`) or references to thread-locals alive across [`Yielder::suspend`], and the
    /// stack type must be `Send`. Runtimes meet this by moving only coroutines that have not
    /// started, or by pinning each started coroutine to one thread.
    pub unsafe fn assume_send(self) -> SendCoroutine<Input, Yield, Return, S> {
        SendCoroutine(self)
    }

    /// Switches into the coroutine with `arg` and returns what it handed back.
    #[inline]
    fn switch_in(&mut self, arg: usize, sp: usize) -> Outcome<Yield, Return> {
        // SAFETY: `sp` is the state of this coroutine, which is not running (`&mut self`), on
        // the stack we own.
        let (word, next) = unsafe {
            if self.save_fp {
                arch::switch_and_link::<true>(arg, sp, self.stack.base())
            } else {
                arch::switch_and_link::<false>(arg, sp, self.stack.base())
            }
        };
        // The coroutine hands back the address of a slot that stays in place on its stack until
        // it is resumed again or the stack is reused; the slot's type follows from whether it
        // suspended (`Yielder::suspend`) or finished (`coroutine_entry`).
        match next {
            Some(sp) => {
                self.state = State::Suspended {
                    sp,
                    panicking: std::thread::panicking(),
                };
                // SAFETY: a suspended coroutine handed over a `Yield`, as above.
                Outcome::Yield(unsafe { take_value::<Yield>(word) })
            }
            None => {
                self.state = State::Finished;
                // SAFETY: a finished coroutine handed over a `thread::Result<Return>`.
                match unsafe { take_value::<std::thread::Result<Return>>(word) } {
                    Ok(value) => Outcome::Return(value),
                    Err(payload) => Outcome::Panic(payload),
                }
            }
        }
    }

    /// As `switch_in`, putting back the caller's floating-point control state if the
    /// coroutine skips it and left another (see `skip_fp_control`).
    fn switch_in_preserving_fp(&mut self, arg: usize, sp: usize) -> Outcome<Yield, Return> {
        if self.save_fp {
            return self.switch_in(arg, sp);
        }
        let caller = FpControl::current();
        let outcome = self.switch_in(arg, sp);
        if FpControl::current() != caller {
            caller.restore();
        }
        outcome
    }

    /// Brings the coroutine to `Finished` without running any more of its body than the
    /// destructors that unwinding runs. `Err` when frames on the stack are still live, so the
    /// stack must never be reused or freed, or when the body, having caught the unwind,
    /// panicked with another payload.
    fn finish(&mut self) -> Result<(), Unfinished> {
        let leak = |reason: &'static str| Err(Unfinished::Leak(reason));
        match self.state {
            State::Finished => Ok(()),
            State::NotStarted { .. } => {
                self.state = State::Finished;
                // SAFETY: the closure was written at `closure` and, never started, still lives
                // there; the state change above ensures it is dropped once.
                unsafe { (self.drop_closure)(self.closure as *mut u8) };
                Ok(())
            }
            State::Unwinding { .. } => {
                leak("a coroutine was dropped in the middle of being unwound")
            }
            State::Suspended {
                panicking: true, ..
            } => leak(
                "a coroutine that suspended while its thread was panicking was dropped; \
                 it may be inside a destructor of that panic, where unwinding it again would \
                 abort, so it is not unwound",
            ),
            State::Suspended { .. } if thread_exit::in_progress() => leak(
                "a suspended coroutine was dropped while its thread destroyed its \
                 thread-locals, which its frames may borrow; it is not unwound",
            ),
            State::Suspended { sp, .. } => match self.switch_in_preserving_fp(0, sp) {
                Outcome::Return(value) => {
                    drop(value);
                    Ok(())
                }
                Outcome::Panic(payload) if payload.is::<ForcedUnwind>() => Ok(()),
                Outcome::Panic(payload) => Err(Unfinished::Panic(payload)),
                Outcome::Yield(value) => {
                    drop(value);
                    leak("a coroutine suspended again while being unwound")
                }
            },
        }
    }
}

/// Why `finish` could not simply free the stack.
enum Unfinished {
    /// Frames may be live: leak the stack.
    Leak(&'static str),
    /// The body caught the unwind, then panicked with this; the stack is free.
    Panic(Box<dyn Any + Send>),
}

impl<Input, Yield, Return, S: Stack> Drop for Coroutine<Input, Yield, Return, S> {
    fn drop(&mut self) {
        match self.finish() {
            Ok(()) if self.leaked => {}
            // SAFETY: the coroutine is finished and is never used again.
            Ok(()) => unsafe { ManuallyDrop::drop(&mut self.stack) },
            // Frames on the stack may still be live: the stack stays in its `ManuallyDrop`,
            // leaked, so they are never overwritten or unmapped.
            Err(Unfinished::Leak(reason)) => self.leak(reason),
            Err(Unfinished::Panic(payload)) => {
                // SAFETY: the body has finished; its stack holds nothing live.
                unsafe { ManuallyDrop::drop(&mut self.stack) };
                // A destructor must not unwind for it (it may run during another unwind).
                if panic::catch_unwind(AssertUnwindSafe(move || drop(payload))).is_err() {
                    leak_report("a coroutine's panic payload panicked when dropped");
                }
                leak_report_payload();
            }
        }
    }
}

/// Says that a body panicked while being unwound on drop; its payload is dropped.
#[cold]
fn leak_report_payload() {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "ctxswitch: a coroutine caught its unwind on drop and panicked; the payload is dropped"
    );
}

/// Says on stderr that a coroutine's stack was leaked; a destructor must not panic for it.
#[cold]
fn leak_report(reason: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "ctxswitch: {reason}; its stack is leaked"
    );
}

impl<Input, Yield, Return, S: Stack> fmt::Debug for Coroutine<Input, Yield, Return, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::NotStarted { .. } => "not started",
            State::Suspended { .. } => "suspended",
            State::Unwinding { .. } => "unwinding",
            State::Finished => "finished",
        };
        f.debug_struct("Coroutine")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

/// # Safety
///
/// `ptr` points to a live `F` that is not used again.
unsafe fn drop_in_place_erased<F>(ptr: *mut u8) {
    // SAFETY: as the caller guarantees.
    unsafe { ptr::drop_in_place(ptr.cast::<F>()) }
}

/// The first function on every coroutine stack, jumped to by the backend's start trampoline.
///
/// # Safety
///
/// Called once per coroutine by the backend, with the word from `resume`, the stack's link slot
/// and the address of the closure that `with_stack` wrote.
unsafe extern "C" fn coroutine_entry<F, Input, Yield, Return>(
    arg: usize,
    link: *mut usize,
    closure: *mut u8,
) -> !
where
    F: FnOnce(&Yielder<Input, Yield>, Input) -> Return,
{
    // SAFETY: the link slot is a word on this stack that outlives the body; `Yielder` is a
    // transparent `Cell<usize>` over it.
    let yielder = unsafe { &*link.cast::<Yielder<Input, Yield>>() };
    // SAFETY: the closure was written by `with_stack` and is read exactly once, here; `finish`
    // no longer drops it once the state left `NotStarted`.
    let body = unsafe { closure.cast::<F>().read() };
    // SAFETY: the first switch in always comes from `resume` (a never-started coroutine is
    // finished without switching), which hands over a live `Input`.
    let input = unsafe { take_value::<Input>(arg) };
    let outcome = ManuallyDrop::new(panic::catch_unwind(AssertUnwindSafe(move || {
        body(yielder, input)
    })));
    // SAFETY: nothing with a destructor is left on this stack but `outcome`, which the resumer
    // moves out before the stack can be reused.
    unsafe { arch::switch_and_reset(ptr::from_ref(&outcome) as usize, link) }
}
