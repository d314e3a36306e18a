#![doc = include_str!("../README.md")]

pub use gsched::*;

/// Go's `sync` package, channels and `select!`, `context`, `errgroup` and `semaphore`: the
/// [`gsync`] crate (package `goroutines-sync`).
#[cfg(feature = "sync")]
pub use gsync as sync;

/// Sockets that park goroutines: the [`gnet`] crate.
#[cfg(feature = "net")]
pub use gnet as net;
