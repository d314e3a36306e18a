//! Join handles: a goroutine's result, waited for by a goroutine or a thread.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use crate::park::{Unparker, current_unparker, park_with_reason};
use crate::result_slot::ResultSlot;
use crate::scheduler::task::{Body, DROPPED_AT_SHUTDOWN, Panic, abort_with};
use crate::scheduler::task_ref::TaskRef;

/// Where a goroutine's result meets whoever joins it (see `result_slot.rs`).
pub(crate) struct Packet<T> {
    slot: ResultSlot<std::thread::Result<T>, Unparker>,
}

/// Receives the panic payload of a goroutine nobody joined.
pub(crate) type UnjoinedPanic = dyn Fn(Panic) + Send + Sync;

impl<T> Packet<T> {
    pub(crate) fn new() -> Self {
        Packet {
            slot: ResultSlot::new(),
        }
    }

    /// Stores the goroutine's result for its joiner. With nobody left to join, the result is
    /// dropped here instead, in the caller: the goroutine itself, where a destructor may park
    /// (see [`Packet::detach`]).
    ///
    /// # Safety
    ///
    /// One completer at a time: the goroutine's body, or whoever ends it unrun.
    pub(crate) unsafe fn complete(
        &self,
        result: std::thread::Result<T>,
        unjoined: Option<&UnjoinedPanic>,
    ) {
        // SAFETY: one completer (the caller's contract).
        let completion = unsafe { self.slot.complete(result) };
        if let Some(waiter) = completion.wake {
            waiter.unpark();
        }
        if let Some(result) = completion.unwanted {
            drop_unjoined(result, unjoined);
        }
    }

    /// The join handle is dropped: a result already there is dropped now, by the handle's
    /// owner; a later one by the goroutine that produces it. Either way it is dropped where
    /// a destructor may block, never on a worker between goroutines.
    ///
    /// # Safety
    ///
    /// Called by the handle's owner, once, after any wait.
    unsafe fn detach(&self, unjoined: Option<&UnjoinedPanic>) {
        // SAFETY: the caller's contract.
        if let Some(result) = unsafe { self.slot.detach() } {
            drop_unjoined(result, unjoined);
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.slot.is_done()
    }

    /// As `wait`, but gives up (`None`) once `stop` holds after a wake-up; whoever makes it
    /// hold then unparks the waiter.
    ///
    /// # Safety
    ///
    /// Called by the handle's owner, once.
    unsafe fn wait_unless(&self, stop: impl Fn() -> bool) -> Option<std::thread::Result<T>> {
        // SAFETY: the handle's owner registers once (the caller's contract).
        if unsafe { self.slot.register(current_unparker()) } {
            while !self.slot.is_done() {
                if stop() {
                    return None;
                }
                park_with_reason("join");
            }
        }
        // SAFETY: the handle's owner, and the result is in.
        let result = unsafe { self.slot.take() };
        Some(result.expect("a finished goroutine's result is taken once"))
    }
}

/// Drops a result nobody will join: a panic payload goes to `unjoined` when there is one (a
/// scope's).
fn drop_unjoined<T>(result: std::thread::Result<T>, unjoined: Option<&UnjoinedPanic>) {
    match (result, unjoined) {
        (Err(payload), Some(report)) => report(payload),
        (result, _) => {
            // A destructor that panics must not unwind the goroutine's runtime code; std
            // aborts in the same place for a thread's result.
            if panic::catch_unwind(AssertUnwindSafe(move || drop(result))).is_err() {
                abort_with(
                    "a goroutine's result or panic payload panicked when dropped, with \
                     nobody joining it",
                );
            }
        }
    }
}

impl<T> Drop for Packet<T> {
    fn drop(&mut self) {
        if let Some(result) = self.slot.leftover() {
            drop_unjoined(result, None);
        }
    }
}

/// Whether a payload caught with `catch_unwind` is the unwind a runtime's shutdown sends through
/// a parked goroutine to run its destructors, rather than a panic. Code that catches panics
/// inside goroutines (to hand them on, as an error group does) must let this one go on at once
/// with `resume_unwind`: the goroutine is being torn down.
///
/// ```
/// let caught = std::panic::catch_unwind(|| panic!("a real panic")).unwrap_err();
/// assert!(!gsched::is_shutdown_unwind(&*caught));
/// ```
pub fn is_shutdown_unwind(payload: &(dyn std::any::Any + Send)) -> bool {
    ctxswitch::is_forced_unwind(payload)
}

/// A goroutine's outcome as its joiner sees it: the forced unwind of shutdown reads as
/// [`DROPPED_AT_SHUTDOWN`], not as ctxswitch's private payload.
pub(crate) fn joinable_result<T>(result: std::thread::Result<T>) -> std::thread::Result<T> {
    match result {
        Err(payload) if ctxswitch::is_forced_unwind(&*payload) => {
            Err(Box::new(DROPPED_AT_SHUTDOWN))
        }
        other => other,
    }
}

/// A `go` goroutine's body: its function, then the packet its result goes to, inline in the
/// task, so that spawning allocates once.
pub(crate) struct JoinSlot<F, T> {
    function: UnsafeCell<Option<F>>,
    packet: Packet<T>,
}

impl<F, T> JoinSlot<F, T> {
    pub(crate) fn new(function: F) -> Self {
        JoinSlot {
            function: UnsafeCell::new(Some(function)),
            packet: Packet::new(),
        }
    }
}

// SAFETY: the function is taken only by the runner, or at shutdown when nobody runs (the
// contracts of `Body`); the packet is `Sync` for a `Send` result.
unsafe impl<F: Send, T: Send> Sync for JoinSlot<F, T> {}

impl<F, T> Body for JoinSlot<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    unsafe fn run(&self) {
        // SAFETY: only the runner touches the function (the contract).
        let function = unsafe { (*self.function.get()).take() };
        let function = function.expect("a goroutine's body runs once");
        let result = joinable_result(panic::catch_unwind(AssertUnwindSafe(function)));
        // SAFETY: the runner completes the goroutine that ran, once.
        unsafe { self.packet.complete(result, None) };
    }

    fn abandon(&self) {
        // SAFETY: the goroutine is parked for good (the contract), so its body never completes.
        unsafe {
            self.packet
                .complete(Err(Box::new(DROPPED_AT_SHUTDOWN)), None)
        };
    }

    unsafe fn discard(&self, why: Panic) -> bool {
        // SAFETY: nobody runs the goroutine (the contract).
        let function = unsafe { (*self.function.get()).take() };
        let had_function = function.is_some();
        // The closure's captures may panic when dropped: that too reaches the joiner.
        let dropped = panic::catch_unwind(AssertUnwindSafe(move || drop(function)));
        if had_function {
            let why = match dropped {
                Ok(()) => why,
                Err(payload) => payload,
            };
            // SAFETY: nobody runs the goroutine (the contract), and it had not run: the only
            // completer.
            unsafe { self.packet.complete(Err(why), None) };
        }
        had_function
    }
}

/// The result side of a task's body, for its join handle.
pub(crate) trait Joinable<T>: Send + Sync {
    fn packet(&self) -> &Packet<T>;
}

impl<F: Send, T: Send> Joinable<T> for JoinSlot<F, T> {
    fn packet(&self) -> &Packet<T> {
        &self.packet
    }
}

/// A scoped goroutine's packet, shared by its body and its handle, and where its panic goes
/// when nobody joins it.
pub(crate) struct SharedPacket<T> {
    pub(crate) packet: Packet<T>,
    pub(crate) unjoined: Box<UnjoinedPanic>,
}

/// Where a join handle finds its packet: inside the task (`go`), or shared with a scoped body.
pub(crate) enum PacketRef<T> {
    InTask(TaskRef<dyn Joinable<T>>),
    Shared(Arc<SharedPacket<T>>),
}

impl<T> PacketRef<T> {
    fn get(&self) -> (&Packet<T>, Option<&UnjoinedPanic>) {
        match self {
            PacketRef::InTask(task) => (task.body.packet(), None),
            PacketRef::Shared(shared) => (&shared.packet, Some(&*shared.unjoined)),
        }
    }
}

/// A scoped goroutine's side of its packet: completes it with the body's result, or, when the
/// body is dropped without having run to the end (the runtime shut down first), with a payload
/// saying so, so that a joiner is not left waiting.
pub(crate) struct Completer<T> {
    pub(crate) shared: Arc<SharedPacket<T>>,
}

impl<T> Completer<T> {
    pub(crate) fn complete(self, result: std::thread::Result<T>) {
        // SAFETY: the completer is the body's, which completes once, from the one thread that
        // runs or drops it; its `drop` then finds the packet done.
        unsafe {
            self.shared
                .packet
                .complete(result, Some(&*self.shared.unjoined));
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        if !self.shared.packet.is_done() {
            let payload: Panic = Box::new(DROPPED_AT_SHUTDOWN);
            // SAFETY: as in `complete`: the body never completed, and is gone.
            unsafe {
                self.shared
                    .packet
                    .complete(Err(payload), Some(&*self.shared.unjoined));
            }
        }
    }
}

/// An owned permission to join a goroutine: [`join`](JoinHandle::join) waits for it and returns
/// its value, or its panic payload. Dropping the handle detaches the goroutine.
pub struct JoinHandle<T> {
    pub(crate) packet: PacketRef<T>,
    pub(crate) id: u64,
    pub(crate) name: Option<Arc<str>>,
    /// Not `Sync`, like `std::thread::JoinHandle` is in spirit: one joiner.
    pub(crate) marker: PhantomData<*const ()>,
    /// `join` took the result.
    pub(crate) joined: bool,
}

// SAFETY: the handle only moves the right to wait for a `Send` result.
unsafe impl<T: Send> Send for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    /// Waits for the goroutine to finish: parks the calling goroutine, or blocks the calling
    /// thread. Returns the goroutine's value, or the payload it panicked with.
    ///
    /// # Errors
    ///
    /// The goroutine's panic payload; if the runtime shut down before the goroutine finished,
    /// a payload saying so.
    pub fn join(mut self) -> std::thread::Result<T> {
        crate::checkpoint();
        let (packet, _) = self.packet.get();
        // SAFETY: the handle is the packet's one owner, and `join` consumes it.
        let result = unsafe { packet.wait_unless(|| false) };
        // The result is taken: nothing is left for `drop` to detach.
        self.joined = true;
        result.expect("only `stop` ends the wait early")
    }

    /// As `join`, for `block_on`: gives up (`None`) when `stop` holds after a wake-up.
    pub(crate) fn join_unless(mut self, stop: impl Fn() -> bool) -> Option<std::thread::Result<T>> {
        let (packet, _) = self.packet.get();
        // SAFETY: the handle is the packet's one owner, and this consumes it (a wait that
        // gives up drops it, which detaches).
        let result = unsafe { packet.wait_unless(stop) }?;
        self.joined = true;
        Some(result)
    }

    /// Whether the goroutine has finished.
    pub fn is_finished(&self) -> bool {
        self.packet.get().0.is_done()
    }

    /// The goroutine's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The goroutine's name, if it was given one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if !self.joined {
            let (packet, unjoined) = self.packet.get();
            // SAFETY: the handle is the packet's one owner, going away.
            unsafe { packet.detach(unjoined) };
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("finished", &self.is_finished())
            .finish()
    }
}
