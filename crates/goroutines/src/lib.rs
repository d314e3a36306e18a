// The README's example uses every layer; a build without some of them documents the root only,
// so that its doc tests still compile.
#![cfg_attr(all(feature = "sync", feature = "net"), doc = include_str!("../README.md"))]
#![cfg_attr(not(all(feature = "sync", feature = "net")), doc = include_str!("root_only.md"))]

pub use gsched::*;

/// Go's `sync` package, channels and `select!`, `context`, `errgroup` and `semaphore`: the
/// [`gsync`] crate (package `goroutines-sync`).
#[cfg(feature = "sync")]
pub use gsync as sync;

/// Sockets that park goroutines: the [`gnet`] crate.
#[cfg(feature = "net")]
pub use gnet as net;
