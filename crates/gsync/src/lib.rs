#![cfg_attr(goroutines_loom, allow(dead_code))]
#![doc = include_str!("../README.md")]

mod cond;
#[cfg(not(goroutines_loom))]
mod context;
#[cfg(not(goroutines_loom))]
mod errgroup;
mod lock_cell;
mod locker;
mod mutex;
mod once;
mod raw;
mod rwmutex;
#[cfg(not(goroutines_loom))]
mod semaphore;
mod shim;
mod waiter;
mod waitgroup;

pub mod chan;

#[cfg(all(test, goroutines_loom))]
mod loom_models;

pub use chan::{
    Receiver, RecvError, RecvOp, RecvTimeoutError, Select, Selected, SendError, SendOp,
    SendTimeoutError, Sender, TryRecvError, TrySendError, chan,
};
#[cfg(not(goroutines_loom))]
pub use chan::{after, tick};
pub use cond::Cond;
#[cfg(not(goroutines_loom))]
pub use context::{CancelFn, Context, ContextError};
#[cfg(not(goroutines_loom))]
pub use errgroup::ErrGroup;
pub use locker::{Locker, RLocker};
pub use mutex::{Mutex, MutexGuard};
pub use once::Once;
pub use rwmutex::{RwMutex, RwMutexReadGuard, RwMutexWriteGuard};
#[cfg(not(goroutines_loom))]
pub use semaphore::Semaphore;
pub use waitgroup::WaitGroup;
