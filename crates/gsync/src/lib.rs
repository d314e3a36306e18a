#![cfg_attr(goroutines_loom, allow(dead_code))]
//! Go's synchronization for goroutines and threads alike: [`Mutex`], [`RwMutex`], [`WaitGroup`],
//! [`Once`], [`Cond`], and channels ([`chan`]) with [`select!`].
//!
//! Every primitive parks the calling goroutine when it must wait, so its worker thread runs other
//! goroutines meanwhile; called from a plain OS thread, it blocks the thread. Nothing needs a
//! runtime to be running.
//!
//! ```
//! use gsync::{Mutex, WaitGroup, chan};
//!
//! let wg = WaitGroup::new();
//! for salutation in ["hello", "greetings", "good day"] {
//!     wg.go(move || println!("{salutation}"));
//! }
//! wg.wait();
//!
//! let (tx, rx) = chan::<()>(0); // unbuffered, like make(chan struct{})
//! gsched::go(move || tx.send(()).unwrap());
//! rx.recv().unwrap();
//!
//! let count = Mutex::new(0);
//! gsched::scope(|s| {
//!     for _ in 0..5 {
//!         s.go(|| *count.lock() += 1);
//!     }
//! });
//! assert_eq!(*count.lock(), 5);
//! ```
//!
//! # Sharing the worker
//!
//! Every operation that can complete without blocking (`try_*`, the fast paths of send, receive
//! and lock, `select!` with `default`, `WaitGroup::done`) passes a preemption checkpoint
//! ([`gsched::checkpoint`]): once the calling goroutine has used up its time slice, it yields
//! there, so a goroutine spinning on `select!` with `default` shares its worker as in Go. So do
//! not hold a `std::sync::Mutex` guard or a thread-local `RefCell` borrow across any call of
//! this crate: a goroutine run meanwhile on the same thread may want it.
//!
//! # Verified
//!
//! The waiting protocols (the lock word and wait queue of each primitive, the channel handoff,
//! `select`'s claim) run unchanged on loom's model checker under the workspace's
//! `goroutines_loom` cfg: `cargo xtask test` runs the models.

mod cond;
mod lock_cell;
mod locker;
mod mutex;
mod once;
mod raw;
mod rwmutex;
mod shim;
mod waiter;
mod waitgroup;

pub mod chan;

#[cfg(all(test, goroutines_loom))]
mod loom_models;

pub use chan::{
    Receiver, RecvError, RecvTimeoutError, SendError, SendTimeoutError, Sender, TryRecvError,
    TrySendError, chan,
};
#[cfg(not(goroutines_loom))]
pub use chan::{after, tick};
pub use cond::Cond;
pub use locker::{Locker, RLocker};
pub use mutex::{Mutex, MutexGuard};
pub use once::Once;
pub use rwmutex::{RwMutex, RwMutexReadGuard, RwMutexWriteGuard};
pub use waitgroup::WaitGroup;
