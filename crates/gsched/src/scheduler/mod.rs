//! The scheduler: workers, run queues, stealing, sleeping and waking, timers and shutdown.
//!
//! # Shape (Go's)
//!
//! Each worker owns a bounded queue of goroutines that have not run yet (`fresh`, stealable:
//! a started goroutine never moves, see the crate docs), an inbox of started goroutines that
//! were woken and belong to it (`ready`), a `runnext` slot for the goroutine woken by the one
//! running now, and its timers. Goroutines spawned from outside, and overflow from full `fresh`
//! queues, go to the global injector. Every 61st scheduling tick a worker looks at the injector
//! and its timers first, and `runnext` yields to the queues after a few consecutive turns, so
//! nothing starves.
//!
//! # Where things live
//!
//! | module | what |
//! | --- | --- |
//! | `shared` | what every worker and goroutine of one runtime share: queues, sleep flags, stack policy, spawning and waking |
//! | `worker` | a worker's own state and loop: pop, run a goroutine until it switches out |
//! | `steal_policy` | when a worker may take goroutines waiting on another (the steal grace, and the kernel's word on whether that worker's thread is busy or waiting for a CPU) |
//! | `idle` | spinning, sleeping and waking, with the no-lost-wake-up argument |
//! | `blocking_pool` | the threads that run `blocking` calls |
//! | `monitor` | the monitor thread (Go's sysmon): time slices, stuck workers, the stall report, schedtrace |
//! | `deadlock` | the monitor's deadlock report |
//! | `dump` | collecting the goroutine dump from the workers, and the counters behind `Runtime::metrics` |
//! | `timers` | each worker's timer heap; `timer_word` decides which of a timer and a wake-up retires a timed park |
//! | `shutdown` | unwinding what is left, scope owners after their borrowers |
//! | `stacks` | the stack policy and what happens when stacks run out |
//! | `task`, `task_ref`, `state` | a goroutine's header, the counted reference to it (its memory comes from the worker's slab, see `crate::slab`) and its uncounted place in the run queues, and its scheduling state machine |
//! | `injector`, `steal` | the global queue and stealing half of a worker's unstarted goroutines |
//! | `inbox` | a worker's inbox: the started goroutines woken for it, pushed from any thread with one exchange |
//! | `runtime_ref`, `holds` | a goroutine's counted hold on its runtime, taken and given back by workers in batches |
//!
//! `holds`, `idle`, `inbox`, `state`, `steal` and `timer_word` hold the protocols that the loom models check, and
//! are built on the loom shim under `--cfg goroutines_loom`; the rest is not built then.
//!
//! `driver` is where an idle worker waits: its thread's park, or the runtime's
//! [`Driver`](crate::driver::Driver) once a library installed one.

pub(crate) mod holds;
pub(crate) mod idle;
pub(crate) mod inbox;
pub(crate) mod state;
pub(crate) mod steal;
pub(crate) mod timer_word;

#[cfg(not(goroutines_loom))]
pub(crate) mod blocking_pool;
#[cfg(not(goroutines_loom))]
pub(crate) mod deadlock;
#[cfg(not(goroutines_loom))]
pub(crate) mod driver;
#[cfg(not(goroutines_loom))]
pub(crate) mod dump;
#[cfg(not(goroutines_loom))]
pub(crate) mod injector;
#[cfg(not(goroutines_loom))]
pub(crate) mod monitor;
#[cfg(not(goroutines_loom))]
pub(crate) mod runtime_ref;
#[cfg(not(goroutines_loom))]
pub(crate) mod shared;
#[cfg(not(goroutines_loom))]
pub(crate) mod shutdown;
#[cfg(not(goroutines_loom))]
pub(crate) mod stacks;
#[cfg(not(goroutines_loom))]
pub(crate) mod steal_policy;
#[cfg(not(goroutines_loom))]
pub(crate) mod task;
#[cfg(not(goroutines_loom))]
pub(crate) mod task_ref;
#[cfg(not(goroutines_loom))]
mod timers;
#[cfg(not(goroutines_loom))]
pub(crate) mod worker;

#[cfg(not(goroutines_loom))]
pub(crate) use shared::{RuntimeShared, live, next_goroutine_id};
#[cfg(not(goroutines_loom))]
pub(crate) use worker::{WorkerLocal, worker_main};

/// A value on a cache line (two, against adjacent-line prefetch) of its own.
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}
