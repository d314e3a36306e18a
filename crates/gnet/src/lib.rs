#![doc = include_str!("../README.md")]
#![cfg_attr(goroutines_loom, allow(dead_code))]

// Under `--cfg goroutines_loom` only the modeled protocols are built, on loom's types.
#[cfg(all(test, goroutines_loom))]
mod loom_models;
mod readiness;
mod shim;
mod wake_state;

#[cfg(not(goroutines_loom))]
mod addr;
#[cfg(not(goroutines_loom))]
mod deadline;
#[cfg(not(goroutines_loom))]
mod poller;
#[cfg(not(goroutines_loom))]
mod socket;
#[cfg(not(goroutines_loom))]
mod sys;
#[cfg(not(goroutines_loom))]
mod tcp;
#[cfg(not(goroutines_loom))]
mod udp;
#[cfg(not(goroutines_loom))]
mod unix;

#[cfg(not(goroutines_loom))]
pub use addr::ToSocketAddrs;
#[cfg(not(goroutines_loom))]
pub use tcp::{Incoming, TcpListener, TcpStream};
#[cfg(not(goroutines_loom))]
pub use udp::UdpSocket;
#[cfg(not(goroutines_loom))]
pub use unix::{Incoming as UnixIncoming, UnixDatagram, UnixListener, UnixStream};
