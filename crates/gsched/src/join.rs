//! Join handles: a goroutine's result, waited for by a goroutine or a thread.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use crate::park::{Unparker, current_unparker, park_with_reason};
use crate::scheduler::task::{Body, DROPPED_AT_SHUTDOWN, Panic, abort_with};
use crate::scheduler::task_ref::TaskRef;

/// Where a goroutine's result meets whoever joins it.
pub(crate) struct Packet<T> {
    slot: Mutex<Slot<T>>,
    /// `DONE` once the result is in (or was dropped for nobody); `DETACHED` once the handle is
    /// gone. Each side sets its bit with one read-modify-write, so whichever comes second sees
    /// the other's bit and drops the result: exactly one of them does.
    state: AtomicU8,
    /// Receives the panic payload nobody joined, when the packet goes away.
    unjoined_panic: Option<Box<dyn Fn(Panic) + Send + Sync>>,
}

struct Slot<T> {
    result: Option<std::thread::Result<T>>,
    waiter: Option<Unparker>,
}

const DONE: u8 = 1;
const DETACHED: u8 = 2;

impl<T> Packet<T> {
    pub(crate) fn new(unjoined_panic: Option<Box<dyn Fn(Panic) + Send + Sync>>) -> Self {
        Packet {
            slot: Mutex::new(Slot {
                result: None,
                waiter: None,
            }),
            state: AtomicU8::new(0),
            unjoined_panic,
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Slot<T>> {
        self.slot
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Stores the goroutine's result for its joiner. With nobody left to join, the result is
    /// dropped here instead, in the caller: the goroutine itself, where a destructor may park
    /// (see [`Packet::detach`]).
    pub(crate) fn complete(&self, result: std::thread::Result<T>) {
        let state = self.state.load(Ordering::Acquire);
        if state & DONE != 0 {
            return;
        }
        if state & DETACHED != 0 {
            // No handle, so no joiner and no waiter: nothing to store.
            self.state.fetch_or(DONE, Ordering::AcqRel);
            self.drop_unjoined(result);
            return;
        }
        let waiter = {
            let mut slot = self.slot();
            slot.result = Some(result);
            slot.waiter.take()
        };
        let previous = self.state.fetch_or(DONE, Ordering::AcqRel);
        if let Some(waiter) = waiter {
            waiter.unpark();
        }
        if previous & DETACHED != 0 {
            self.drop_detached();
        }
    }

    /// The join handle is dropped: a result already there is dropped now, by the handle's
    /// owner; a later one by the goroutine that produces it. Either way it is dropped where
    /// a destructor may block, never on a worker between goroutines.
    fn detach(&self) {
        if self.state.fetch_or(DETACHED, Ordering::AcqRel) & DONE != 0 {
            self.drop_detached();
        }
    }

    /// The side that set its bit second drops the stored result.
    fn drop_detached(&self) {
        let result = self.slot().result.take();
        if let Some(result) = result {
            self.drop_unjoined(result);
        }
    }

    /// Drops a result nobody will join: a panic payload goes to the scope when there is one.
    fn drop_unjoined(&self, result: std::thread::Result<T>) {
        match (result, &self.unjoined_panic) {
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

    pub(crate) fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) & DONE != 0
    }

    /// Waits for the result. The waiter is registered under the same lock that `complete`
    /// stores the result under, so either the joiner finds the result or `complete` finds the
    /// waiter.
    pub(crate) fn wait(&self) -> std::thread::Result<T> {
        self.wait_unless(|| false)
            .expect("only `stop` ends the wait early")
    }

    /// As `wait`, but gives up (`None`) once `stop` holds after a wake-up; whoever makes it
    /// hold then unparks the waiter.
    pub(crate) fn wait_unless(&self, stop: impl Fn() -> bool) -> Option<std::thread::Result<T>> {
        loop {
            {
                let mut slot = self.slot();
                if let Some(result) = slot.result.take() {
                    return Some(result);
                }
                slot.waiter = Some(current_unparker());
            }
            if stop() {
                return None;
            }
            park_with_reason("join");
        }
    }
}

impl<T> Drop for Packet<T> {
    fn drop(&mut self) {
        let result = self
            .slot
            .get_mut()
            .unwrap_or_else(|poison| poison.into_inner())
            .result
            .take();
        if let Some(result) = result {
            self.drop_unjoined(result);
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
            packet: Packet::new(None),
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
        self.packet
            .complete(joinable_result(panic::catch_unwind(AssertUnwindSafe(
                function,
            ))));
    }

    fn abandon(&self) {
        self.packet.complete(Err(Box::new(DROPPED_AT_SHUTDOWN)));
    }

    unsafe fn discard(&self, why: Panic) -> bool {
        // SAFETY: nobody runs the goroutine (the contract).
        let function = unsafe { (*self.function.get()).take() };
        let had_function = function.is_some();
        // The closure's captures may panic when dropped: that too reaches the joiner.
        let dropped = panic::catch_unwind(AssertUnwindSafe(move || drop(function)));
        if had_function {
            self.packet.complete(Err(match dropped {
                Ok(()) => why,
                Err(payload) => payload,
            }));
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

/// Where a join handle finds its packet: inside the task (`go`), or shared with a scoped body.
pub(crate) enum PacketRef<T> {
    InTask(TaskRef<dyn Joinable<T>>),
    Shared(Arc<Packet<T>>),
}

impl<T> PacketRef<T> {
    fn get(&self) -> &Packet<T> {
        match self {
            PacketRef::InTask(task) => task.body.packet(),
            PacketRef::Shared(packet) => packet,
        }
    }
}

/// Completes the packet when the goroutine's body is dropped without having run to the end
/// (the runtime shut down first), so that a joiner is not left waiting.
pub(crate) struct Completer<T> {
    pub(crate) packet: Arc<Packet<T>>,
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        if !self.packet.is_done() {
            let payload: Panic = Box::new(DROPPED_AT_SHUTDOWN);
            self.packet.complete(Err(payload));
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
        let result = self.packet.get().wait();
        // The result is taken: nothing is left for `drop` to detach.
        self.joined = true;
        result
    }

    /// As `join`, for `block_on`: gives up (`None`) when `stop` holds after a wake-up.
    pub(crate) fn join_unless(mut self, stop: impl Fn() -> bool) -> Option<std::thread::Result<T>> {
        let result = self.packet.get().wait_unless(stop)?;
        self.joined = true;
        Some(result)
    }

    /// Whether the goroutine has finished.
    pub fn is_finished(&self) -> bool {
        self.packet.get().is_done()
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
            self.packet.get().detach();
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
