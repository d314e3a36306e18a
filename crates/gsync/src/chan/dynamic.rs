//! `Select`: a select whose cases are chosen at run time, any number of them (Go's
//! `reflect.Select`, crossbeam's `Select`). It runs on the engine behind `select!`.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::mem::{MaybeUninit, align_of, size_of};
use std::time::{Duration, Instant};

use smallvec::SmallVec;

use super::errors::{RecvError, SendError};
use super::select::{CaseOps, CaseSlot, RecvCase, SelectMode, SendCase, run_select};
use super::{Receiver, Sender};

/// A select built case by case at run time: add receive and send cases, then run it once with
/// [`select`](Self::select), [`try_select`](Self::try_select) or
/// [`select_timeout`](Self::select_timeout). As with `select!`, exactly one ready case runs,
/// chosen uniformly at random among the ready ones; the others do nothing (their send values
/// are dropped).
///
/// ```
/// use gsync::{Select, chan};
///
/// let channels: Vec<_> = (0..100).map(|_| chan::<usize>(1)).collect();
/// channels[42].0.send(42).unwrap();
///
/// let mut select = Select::new();
/// let cases: Vec<_> = channels.iter().map(|(_, rx)| select.recv(rx)).collect();
/// let selected = select.select();
/// let fired = cases.into_iter().find(|case| case.index() == selected.index()).unwrap();
/// assert_eq!(selected.recv(fired), Ok(42));
/// ```
#[derive(Default)]
pub struct Select<'a> {
    /// The common select of a few cases allocates nothing.
    cases: SmallVec<[Entry<'a>; 4]>,
}

/// A receive case of a [`Select`], to read its outcome with [`Selected::recv`].
pub struct RecvOp<T> {
    index: usize,
    marker: PhantomData<fn() -> T>,
}

/// A send case of a [`Select`], to read its outcome with [`Selected::send`].
pub struct SendOp<T> {
    index: usize,
    marker: PhantomData<fn() -> T>,
}

impl<T> RecvOp<T> {
    /// The case's position among the select's cases, in the order they were added.
    pub fn index(&self) -> usize {
        self.index
    }
}

impl<T> SendOp<T> {
    /// The case's position among the select's cases, in the order they were added.
    pub fn index(&self) -> usize {
        self.index
    }
}

/// The case that ran, and its outcome.
pub struct Selected<'a> {
    index: usize,
    case: Entry<'a>,
}

impl Selected<'_> {
    /// The position of the case that ran.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The outcome of the receive case `op`, which is the one that ran: the value, or
    /// `Err(RecvError)` if its channel is closed and drained.
    ///
    /// # Panics
    ///
    /// If `op` is not the case that ran.
    #[inline]
    pub fn recv<T: 'static>(self, op: RecvOp<T>) -> Result<T, RecvError> {
        self.outcome_of(op.index)
    }

    /// The outcome of the send case `op`, which is the one that ran: `Ok`, or the value back
    /// if its channel is closed.
    ///
    /// # Panics
    ///
    /// If `op` is not the case that ran.
    #[inline]
    pub fn send<T: 'static>(self, op: SendOp<T>) -> Result<(), SendError<T>> {
        self.outcome_of(op.index)
    }

    fn outcome_of<O: 'static>(mut self, index: usize) -> O {
        assert_eq!(
            index, self.index,
            "Select: case {index} did not run; case {} did",
            self.index
        );
        let mut outcome: Option<O> = None;
        self.case.case_mut().take_outcome(&mut outcome);
        outcome.expect("an operation handle belongs to the select that made it")
    }
}

impl fmt::Debug for Selected<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Selected")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// A case of either kind, its element type erased.
trait DynCase {
    fn ops(&self) -> &dyn CaseOps;
    fn ops_mut(&mut self) -> &mut dyn CaseOps;
    /// Moves the outcome into `out`, an `Option` of this case's outcome type; leaves `out`
    /// alone if it is of another type.
    fn take_outcome(&mut self, out: &mut dyn Any);
}

impl<T: 'static> DynCase for RecvCase<'_, T> {
    fn ops(&self) -> &dyn CaseOps {
        self
    }

    fn ops_mut(&mut self) -> &mut dyn CaseOps {
        self
    }

    fn take_outcome(&mut self, out: &mut dyn Any) {
        if let Some(out) = out.downcast_mut::<Option<Result<T, RecvError>>>() {
            *out = Some(RecvCase::take_outcome(self));
        }
    }
}

impl<T: 'static> DynCase for SendCase<'_, T> {
    fn ops(&self) -> &dyn CaseOps {
        self
    }

    fn ops_mut(&mut self) -> &mut dyn CaseOps {
        self
    }

    fn take_outcome(&mut self, out: &mut dyn Any) {
        if let Some(out) = out.downcast_mut::<Option<Result<(), SendError<T>>>>() {
            *out = Some(SendCase::take_outcome(self));
        }
    }
}

/// Room for a case stored inline: a receive or send case of an element up to 8 bytes fits, so
/// the common select allocates nothing. Larger ones are boxed.
type Storage = [MaybeUninit<u64>; 5];

/// One case of a `Select`, stored inline when it fits (see `Storage`), with the functions
/// that view it as a `DynCase` and drop it, made for its concrete type.
struct Entry<'a> {
    storage: Storage,
    view: unsafe fn(*mut u8) -> *mut (dyn DynCase + 'a),
    drop: unsafe fn(*mut u8),
    /// Not `Send` or `Sync`, as the boxed case it stands for.
    marker: PhantomData<*mut (dyn DynCase + 'a)>,
}

/// # Safety
///
/// `storage` holds a live `C`.
unsafe fn view_inline<'a, C: DynCase + 'a>(storage: *mut u8) -> *mut (dyn DynCase + 'a) {
    storage.cast::<C>()
}

/// # Safety
///
/// `storage` holds a live `C`, which is not used again.
unsafe fn drop_inline<C>(storage: *mut u8) {
    // SAFETY: as the caller guarantees.
    unsafe { std::ptr::drop_in_place(storage.cast::<C>()) }
}

/// # Safety
///
/// `storage` holds a live `Box<C>`.
unsafe fn view_boxed<'a, C: DynCase + 'a>(storage: *mut u8) -> *mut (dyn DynCase + 'a) {
    // SAFETY: as the caller guarantees.
    let boxed = unsafe { &mut *storage.cast::<Box<C>>() };
    &mut **boxed as *mut C
}

impl<'a> Entry<'a> {
    fn new<C: DynCase + 'a>(case: C) -> Self {
        let mut storage: Storage = [MaybeUninit::uninit(); 5];
        let fits =
            size_of::<C>() <= size_of::<Storage>() && align_of::<C>() <= align_of::<Storage>();
        if fits {
            // SAFETY: the storage is large and aligned enough for a `C` (checked above), and
            // nothing else is in it.
            unsafe { storage.as_mut_ptr().cast::<C>().write(case) };
            Entry {
                storage,
                view: view_inline::<C>,
                drop: drop_inline::<C>,
                marker: PhantomData,
            }
        } else {
            // SAFETY: a `Box` fits the storage's size and alignment, which is otherwise empty.
            unsafe { storage.as_mut_ptr().cast::<Box<C>>().write(Box::new(case)) };
            Entry {
                storage,
                view: view_boxed::<C>,
                drop: drop_inline::<Box<C>>,
                marker: PhantomData,
            }
        }
    }

    fn case(&self) -> &(dyn DynCase + 'a) {
        // SAFETY: `view` was made for what `storage` holds, which lives until `drop`; the
        // view only reads through the pointer here.
        unsafe { &*(self.view)(self.storage.as_ptr().cast_mut().cast()) }
    }

    fn case_mut(&mut self) -> &mut (dyn DynCase + 'a) {
        // SAFETY: as in `case`, with the entry borrowed mutably.
        unsafe { &mut *(self.view)(self.storage.as_mut_ptr().cast()) }
    }
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        // SAFETY: `drop` was made for what `storage` holds, dropped once, here.
        unsafe { (self.drop)(self.storage.as_mut_ptr().cast()) }
    }
}

impl CaseSlot for Entry<'_> {
    fn ops(&self) -> &dyn CaseOps {
        self.case().ops()
    }

    fn ops_mut(&mut self) -> &mut dyn CaseOps {
        self.case_mut().ops_mut()
    }
}

impl<'a> Select<'a> {
    /// A select with no cases yet.
    #[inline]
    pub fn new() -> Self {
        Select {
            cases: SmallVec::new(),
        }
    }

    /// Adds a receive from `receiver`.
    #[inline]
    pub fn recv<T: 'static>(&mut self, receiver: &'a Receiver<T>) -> RecvOp<T> {
        let index = self.cases.len();
        self.cases
            .push(Entry::new(RecvCase::new(Some(receiver.channel()))));
        RecvOp {
            index,
            marker: PhantomData,
        }
    }

    /// Adds a send of `value` on `sender`.
    #[inline]
    pub fn send<T: 'static>(&mut self, sender: &'a Sender<T>, value: T) -> SendOp<T> {
        let index = self.cases.len();
        self.cases
            .push(Entry::new(SendCase::new(Some(sender.channel()), value)));
        SendOp {
            index,
            marker: PhantomData,
        }
    }

    /// The cases added so far.
    pub fn len(&self) -> usize {
        self.cases.len()
    }

    /// Whether no case was added.
    pub fn is_empty(&self) -> bool {
        self.cases.is_empty()
    }

    /// Parks until a case can run, and runs it. With no cases, parks forever, as Go's empty
    /// `select {}`.
    #[inline]
    pub fn select(mut self) -> Selected<'a> {
        self.run(SelectMode::Block)
            .expect("a blocking select returns only with a case")
    }

    /// Runs a case that can run now, if any (a `select` with `default`).
    #[inline]
    pub fn try_select(mut self) -> Option<Selected<'a>> {
        self.run(SelectMode::NonBlocking)
    }

    /// As [`select`](Self::select), giving up after `timeout`.
    pub fn select_timeout(mut self, timeout: Duration) -> Option<Selected<'a>> {
        self.run(SelectMode::after(timeout))
    }

    /// As [`select`](Self::select), giving up at `deadline`.
    pub fn select_deadline(mut self, deadline: Instant) -> Option<Selected<'a>> {
        self.run(SelectMode::Deadline(deadline))
    }

    /// Runs the select in place: the cases stay where they are, the fired one moves out.
    #[inline]
    fn run(&mut self, mode: SelectMode) -> Option<Selected<'a>> {
        let index = run_select(&mut self.cases, mode)?;
        Some(Selected {
            index,
            case: self.cases.swap_remove(index),
        })
    }
}

impl fmt::Debug for Select<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Select")
            .field("cases", &self.cases.len())
            .finish()
    }
}

impl<T> fmt::Debug for RecvOp<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvOp")
            .field("index", &self.index)
            .finish()
    }
}

impl<T> fmt::Debug for SendOp<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendOp")
            .field("index", &self.index)
            .finish()
    }
}
