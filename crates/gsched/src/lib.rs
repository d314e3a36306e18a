#![cfg_attr(goroutines_loom, allow(dead_code))]
//! Goroutines for Rust: an M:N scheduler of stackful green threads.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//!
//! gsched::run(|| {
//!     // go: a goroutine; join: the join point.
//!     let hello = gsched::go(|| "hello");
//!     assert_eq!(hello.join().unwrap(), "hello");
//!
//!     // Fork-join that borrows from the caller.
//!     let mut parts = [0u64; 8];
//!     gsched::scope(|s| {
//!         for (i, part) in parts.iter_mut().enumerate() {
//!             s.go(move || *part = (i as u64 * 1000..(i as u64 + 1) * 1000).sum());
//!         }
//!     });
//!     assert_eq!(parts.iter().sum::<u64>(), (0..8000).sum());
//!
//!     // Sleeping parks the goroutine, not the worker.
//!     gsched::sleep(std::time::Duration::from_millis(1));
//! });
//! ```
//!
//! # Sound by default
//!
//! A stackful goroutine's stack can hold `!Send` values and borrows of thread-locals across a
//! blocking call, and the compiler cannot see them. So a goroutine may be stolen by another
//! worker only before it first runs; once it has run, it always resumes on the same worker
//! thread. [`Builder::migratable`] is the `unsafe` opt-in to Go's full migration.
//!
//! # Panics
//!
//! A panic in a goroutine is caught at its entry and handed to whoever joins it, as
//! `std::thread` does. Nothing a goroutine does, and no setting it asks for, unwinds a worker:
//! a stack that cannot be had reaches the goroutine's [`JoinHandle::join`] as an error, bad
//! settings are refused where they are given ([`BuildError`] from
//! [`RuntimeBuilder::build`], [`SpawnError`] from [`Builder::spawn`]; [`go`] panics at the
//! caller's line), and a result or panic payload that panics when dropped unjoined aborts the
//! process with a message, where std aborts for a thread.
//!
//! A goroutine may wait in the middle of unwinding a panic (a destructor that locks a mutex or
//! sends on a channel); the other goroutines of its worker keep running meanwhile. std counts
//! panics per thread, and stable Rust offers no way to count them per goroutine, so while such
//! a goroutine is parked, the others on its worker read `std::thread::panicking() == true`,
//! and a `std::sync::MutexGuard` taken before and dropped then poisons its mutex (gsync's locks
//! do not poison). This lasts only while a goroutine is parked mid-unwind.
//!
//! # Shutdown
//!
//! Dropping a [`Runtime`] (or [`Runtime::shutdown`]) drops goroutines that never ran and
//! unwinds the parked ones on their workers, so their destructors run; their joiners get
//! "dropped at runtime shutdown". A goroutine waiting in [`scope`] is unwound only after every
//! goroutine of its scope has finished, because they borrow its frame. What cannot be unwound
//! (a goroutine that catches the unwind and carries on, a destructor that waits for something
//! that never comes, and the scope owners of such goroutines) is leaked, never freed under a
//! borrower, and listed in the [`ShutdownReport`]. So is a goroutine that parked while its
//! worker counted a panic in flight: it may be waiting inside a destructor of that panic, where
//! a second unwind would abort the process, and std's per-thread count cannot tell it from a
//! neighbour's. A destructor that waits during shutdown is resumed when something wakes it,
//! including a timer due within a second; one that waits longer is leaked. The joiner of a
//! leaked goroutine is told it was dropped at shutdown.
//!
//! # Nesting runtimes
//!
//! A runtime may be built and used inside a goroutine of another: [`Runtime::block_on`] and
//! [`Runtime::spawn`] always run on the runtime they are called on, and the calling goroutine
//! parks while it waits. [`go`] inside a goroutine spawns on that goroutine's own runtime.
//! Dropping the last handle to a runtime inside one of its own goroutines finishes the shutdown
//! on a new thread.
//!
//! # Parking
//!
//! Everything that blocks parks the goroutine and lets its worker run others: [`park`],
//! [`park_timeout`], [`sleep`], [`JoinHandle::join`]. The same calls block the thread when made
//! outside a goroutine. [`current_unparker`] gives the handle that wakes the caller.

// Under `--cfg goroutines_loom` only the modeled protocols are built, on loom's types.
#[cfg(all(test, goroutines_loom))]
mod loom_models;
mod scheduler;
mod shim;
mod slab;

#[cfg(not(goroutines_loom))]
mod blocking;
#[cfg(not(goroutines_loom))]
mod join;
#[cfg(not(goroutines_loom))]
mod park;
#[cfg(not(goroutines_loom))]
mod procs;
#[cfg(not(goroutines_loom))]
mod runtime;
#[cfg(not(goroutines_loom))]
mod scope;

#[cfg(not(goroutines_loom))]
pub use api::*;

#[cfg(not(goroutines_loom))]
mod api {
    pub use crate::blocking::{blocking, checkpoint};
    pub use crate::join::JoinHandle;
    pub use crate::park::{
        Unparker, current_unparker, in_goroutine, park, park_timeout, park_until, park_with_reason,
        park_with_reason_until, sleep, sleep_until, yield_now,
    };
    pub use crate::procs::{PROCS_VAR, ProcsError, available_cpus};
    pub use crate::runtime::spawn::{Builder, MAX_STACK_SIZE, MIN_STACK_SIZE, SpawnError, go};
    pub use crate::runtime::{BuildError, Runtime, RuntimeBuilder, ShutdownReport, run};
    pub use crate::scheduler::shared::num_goroutines;
    pub use crate::scope::{Scope, ScopedJoinHandle, scope};

    /// The calling goroutine: its id and name.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Goroutine {
        id: u64,
        name: Option<std::sync::Arc<str>>,
    }

    impl Goroutine {
        /// The goroutine's id, unique in the process.
        pub fn id(&self) -> u64 {
            self.id
        }

        /// The goroutine's name, if it was given one.
        pub fn name(&self) -> Option<&str> {
            self.name.as_deref()
        }
    }

    /// The goroutine the caller runs in, or `None` on a plain thread.
    pub fn current() -> Option<Goroutine> {
        crate::scheduler::WorkerLocal::with_current(|local| {
            local.current_task().map(|task| Goroutine {
                id: task.id,
                name: task.name.clone(),
            })
        })
        .flatten()
    }
}
