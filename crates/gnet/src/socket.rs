//! What every socket type shares: a non-blocking std socket, its registration with a worker's
//! poller (made when a goroutine first has to wait on it), its deadlines and its closed flag.
//!
//! Every operation runs the same loop: try the system call; on `WouldBlock`, wait for the
//! direction to become ready, through the poller from a goroutine or through `poll(2)` from a
//! plain thread; then try again, until the call completes, the deadline passes or the socket
//! is closed.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::deadline::{Deadlines, timed_out};
use crate::poller::{Pollers, Registration};
use crate::readiness::Direction;
use crate::sys;

/// The longest a plain thread sleeps in `poll(2)` before it looks at the socket's closed flag
/// and deadlines again: closing a datagram socket wakes no `poll(2)`.
const THREAD_POLL_SLICE: Duration = Duration::from_millis(50);

/// The error of an operation on a socket that [`close`](crate::TcpStream::close) closed, with
/// Go's text.
pub(crate) fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "use of closed network connection",
    )
}

/// The error of an operation on a socket first waited on in a runtime that has shut down
/// since: nobody polls for it any more.
fn retired() -> io::Error {
    io::Error::other(
        "gnet: the socket was first waited on in a runtime that has shut down; use a socket \
         within one runtime",
    )
}

/// A non-blocking socket and what waiting on it needs.
pub(crate) struct Socket<T: AsRawFd> {
    /// Dropped before `io`, so that the socket leaves its poller before its fd is closed.
    registration: OnceLock<Registration>,
    closed: AtomicBool,
    /// Shut down for reading (datagram sockets, whose receive would wait for good then).
    read_shut: AtomicBool,
    pub(crate) deadlines: Deadlines,
    io: T,
}

impl<T: AsRawFd> Socket<T> {
    /// Wraps `io`, which must be in non-blocking mode already.
    pub(crate) fn new(io: T) -> Socket<T> {
        Socket {
            registration: OnceLock::new(),
            closed: AtomicBool::new(false),
            read_shut: AtomicBool::new(false),
            deadlines: Deadlines::default(),
            io,
        }
    }

    /// The std socket, for calls that never block (addresses, options).
    pub(crate) fn get(&self) -> &T {
        &self.io
    }

    /// Takes the std socket out, leaving the poller.
    pub(crate) fn into_inner(self) -> T {
        let Socket {
            registration, io, ..
        } = self;
        drop(registration);
        io
    }

    /// A listener's accept: waits out `backoff`, runs `op` until it does not block, and lets
    /// `backoff` see the outcome. A connection taken off the queue by a call already past the
    /// closed check when `close` ran is ended (dropped), as `close` ends every queued one.
    pub(crate) fn accept<C>(
        &self,
        backoff: &AcceptBackoff,
        op: impl FnMut(&T) -> io::Result<C>,
    ) -> io::Result<C> {
        backoff.wait(self);
        let accepted = backoff.record(self.read(op))?;
        if self.is_closed() {
            return Err(closed());
        }
        Ok(accepted)
    }

    /// Runs `op` until it does not block, waiting for the socket to become readable.
    pub(crate) fn read<R>(&self, op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.run(Direction::Read, op, |_| false)
    }

    /// Runs `op` until it does not block, waiting for the socket to become writable.
    pub(crate) fn write<R>(&self, op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.run(Direction::Write, op, |_| false)
    }

    /// As [`read`](Self::read), for a stream read into `len` bytes: one that returns fewer
    /// emptied the socket's queue, so the next read waits for the poller's word first instead
    /// of trying a call that would fail with `WouldBlock`.
    pub(crate) fn read_stream(
        &self,
        len: usize,
        op: impl FnMut(&T) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let read = self.run(Direction::Read, op, |&n| n > 0 && n < len);
        self.closed_if_ended(len, read)
    }

    /// The end of stream that `close`'s shutdown makes for a read of `len` bytes already past
    /// the closed check is the close, not the peer's: the read fails as every read after the
    /// close does.
    pub(crate) fn closed_if_ended(&self, len: usize, read: io::Result<usize>) -> io::Result<usize> {
        match read {
            Ok(0) if len > 0 && self.is_closed() => Err(closed()),
            read => read,
        }
    }

    /// As [`read_stream`](Self::read_stream), for a write of `len` bytes: one that wrote fewer
    /// filled the socket's buffer.
    pub(crate) fn write_stream(
        &self,
        len: usize,
        op: impl FnMut(&T) -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.run(Direction::Write, op, |&n| n < len)
    }

    /// The loop every operation runs (see the module docs). `drained` says whether a result
    /// shows the direction is not ready any more, as a short read does.
    fn run<R>(
        &self,
        direction: Direction,
        mut op: impl FnMut(&T) -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> io::Result<R> {
        let by_timeout = self
            .deadlines
            .timeout(direction)
            .and_then(|timeout| Instant::now().checked_add(timeout));
        let in_goroutine = gsched::in_goroutine();
        loop {
            let registered = self
                .registration
                .get()
                .filter(|_| in_goroutine)
                .map(|registration| (registration, registration.io.snapshot()));
            if self.closed.load(Ordering::Acquire) {
                return Err(closed());
            }
            let limit = self.deadlines.limit(direction, by_timeout);
            if limit.is_some_and(|limit| Instant::now() >= limit) {
                return Err(timed_out());
            }
            // The poller has not seen the direction ready since it was last found not to be:
            // the call would fail, so wait first.
            if let Some((registration, seen)) = registered
                && !seen.is_ready(direction)
            {
                if registration.is_retired() {
                    return Err(retired());
                }
                registration.io.wait(direction, seen, limit);
                continue;
            }
            match op(&self.io) {
                Ok(result) => {
                    if let Some((registration, seen)) = registered
                        && drained(&result)
                    {
                        registration.io.clear_drained(direction, seen);
                    }
                    return Ok(result);
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                // A call already past the closed check when `close` ran meets the shutdown
                // (`EINVAL` from a listener, `EPIPE` from a stream): it fails as every call
                // after the close does.
                Err(_) if self.is_closed() => return Err(closed()),
                Err(err) => return Err(err),
            }
            if !in_goroutine {
                self.poll_thread(direction, limit)?;
                continue;
            }
            match (self.registration()?, registered) {
                (Some(registration), Some((_, seen))) => {
                    if registration.is_retired() {
                        return Err(retired());
                    }
                    if registration.io.clear(direction, seen) {
                        registration.io.wait(direction, seen, limit);
                    }
                }
                // Registered just now: the registration reports what is ready already.
                (Some(_), None) => {}
                // The runtime has another driver: wait as a thread would, a slice at a time.
                (None, _) => self.poll_thread(direction, limit)?,
            }
        }
    }

    /// The socket's registration, made now with the calling goroutine's worker's poller if it
    /// has none; `None` where the runtime runs a driver other than gnet's.
    fn registration(&self) -> io::Result<Option<&Registration>> {
        if let Some(registration) = self.registration.get() {
            return Ok(Some(registration));
        }
        let (Some(pollers), Some(worker)) = (pollers()?, gsched::driver::current_worker()) else {
            return Ok(None);
        };
        let registration = pollers.worker(worker).register(self.io.as_raw_fd())?;
        // A goroutine on another worker may have registered it meanwhile: its registration
        // stands, and this one leaves this worker's poller as it drops.
        let _ = self.registration.set(registration);
        Ok(self.registration.get())
    }

    /// A plain thread's wait: `poll(2)` on the fd, for at most one slice.
    fn poll_thread(&self, direction: Direction, limit: Option<Instant>) -> io::Result<()> {
        let events = match direction {
            Direction::Read => libc::POLLIN,
            Direction::Write => libc::POLLOUT,
        };
        let slice = match limit {
            Some(limit) => limit
                .saturating_duration_since(Instant::now())
                .min(THREAD_POLL_SLICE),
            None => THREAD_POLL_SLICE,
        };
        let millis = i32::try_from(slice.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        let mut fd = libc::pollfd {
            fd: self.io.as_raw_fd(),
            events,
            revents: 0,
        };
        // SAFETY: `fd` is one valid `pollfd`, and the count says one.
        let polled = unsafe { libc::poll(&mut fd, 1, millis) };
        if polled < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
        Ok(())
    }

    /// Sets a deadline and lets waiting operations look at it.
    pub(crate) fn set_deadline(&self, direction: Direction, deadline: Option<Instant>) {
        self.deadlines.set_deadline(direction, deadline);
        self.wake_waiters();
    }

    pub(crate) fn set_timeout(
        &self,
        direction: Direction,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        self.deadlines.set_timeout(direction, timeout)
    }

    /// Marks the socket closed, runs `shut` (a `shutdown(2)` that wakes threads in `poll(2)`)
    /// and wakes every waiting goroutine; they fail with "use of closed network connection".
    /// The fd itself is closed when the last handle is dropped, so that a number reused by a
    /// new socket never meets an operation meant for this one. True the first time.
    pub(crate) fn close(&self, shut: impl FnOnce(&T)) -> bool {
        if self.closed.swap(true, Ordering::AcqRel) {
            return false;
        }
        shut(&self.io);
        self.wake_waiters();
        true
    }

    /// Lets waiting operations look at the socket again (after a shutdown, for example).
    pub(crate) fn wake_waiters(&self) {
        if let Some(registration) = self.registration.get() {
            registration.io.wake_all();
        }
    }

    pub(crate) fn mark_read_shut(&self) {
        self.read_shut.store(true, Ordering::Release);
    }

    pub(crate) fn is_read_shut(&self) -> bool {
        self.read_shut.load(Ordering::Acquire)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }
}

/// The calling runtime's pollers, installed if it has none; `None` on a plain thread or where
/// the runtime has a driver of another kind.
fn pollers() -> io::Result<Option<std::sync::Arc<Pollers>>> {
    match gsched::driver::install(Pollers::new) {
        Some(Ok(pollers)) => Ok(Some(pollers)),
        Some(Err(err)) => Err(err),
        None => Ok(None),
    }
}

/// The error of a name that resolved to no address, as std's.
pub(crate) fn no_addresses() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "could not resolve to any addresses",
    )
}

/// Keeps an accept loop from spinning while the process is out of file descriptors: the
/// pending connection stays queued and the listener stays readable, so each retry would fail
/// at once.
#[derive(Default)]
pub(crate) struct AcceptBackoff {
    /// Nanoseconds to wait before the next accept; zero after a success.
    delay: AtomicU64,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

impl AcceptBackoff {
    /// Before an accept: waits out the delay that the last failure set, if any, but not past
    /// `deadline`, and not past a close, which it looks for every [`THREAD_POLL_SLICE`].
    pub(crate) fn wait<T: AsRawFd>(&self, listener: &Socket<T>) {
        let nanos = self.delay.load(Ordering::Relaxed);
        if nanos == 0 {
            return;
        }
        let delay_end = Instant::now() + Duration::from_nanos(nanos);
        while !listener.is_closed() {
            // The deadline is read again each slice: it may be set meanwhile.
            let end = listener
                .deadlines
                .deadline(Direction::Read)
                .map_or(delay_end, |deadline| deadline.min(delay_end));
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            gsched::sleep(left.min(THREAD_POLL_SLICE));
        }
    }

    /// After an accept: a failure for want of descriptors or memory doubles the delay, a
    /// success ends it.
    pub(crate) fn record<T>(&self, accepted: io::Result<T>) -> io::Result<T> {
        match &accepted {
            Ok(_) => {
                if self.delay.load(Ordering::Relaxed) != 0 {
                    self.delay.store(0, Ordering::Relaxed);
                }
            }
            Err(err) if sys::is_resource_exhaustion(err) => {
                let last = Duration::from_nanos(self.delay.load(Ordering::Relaxed));
                let next = (last * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
                self.delay.store(
                    u64::try_from(next.as_nanos()).unwrap_or(u64::MAX),
                    Ordering::Relaxed,
                );
            }
            Err(_) => {}
        }
        accepted
    }
}

/// Methods that never block, forwarded to the std socket under the same names and signatures:
/// each entry is `/// docs` then `fn name(arg: Type, ...) -> Output;`.
macro_rules! forward_to_std {
    ($gnet:ty { $($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)* }) => {
        impl $gnet {
            $(
                $(#[$doc])*
                pub fn $name(&self, $($arg: $ty),*) -> $out {
                    self.socket.get().$name($($arg),*)
                }
            )*
        }
    };
}
pub(crate) use forward_to_std;

/// `From` both ways between a gnet socket type and its std counterpart. Into gnet: the socket
/// is made non-blocking. Back to std: blocking again, unless other handles from `try_clone`
/// live: then the std socket is a duplicate of the descriptor, and stays non-blocking, since
/// that mode belongs to the open file the handles share and they need it (a blocking read
/// through them would stop a worker).
macro_rules! std_conversions {
    ($gnet:ty, $std:ty, $from_nonblocking:ident) => {
        impl From<$std> for $gnet {
            /// # Panics
            ///
            /// If the socket cannot be made non-blocking (`fcntl` fails only on an invalid
            /// descriptor).
            fn from(socket: $std) -> $gnet {
                socket
                    .set_nonblocking(true)
                    .expect("gnet: cannot make the socket non-blocking");
                <$gnet>::$from_nonblocking(socket)
            }
        }

        impl From<$gnet> for $std {
            /// # Panics
            ///
            /// If other handles to the socket exist and its descriptor cannot be duplicated
            /// (the process is out of descriptors).
            fn from(socket: $gnet) -> $std {
                match std::sync::Arc::try_unwrap(socket.socket) {
                    Ok(socket) => {
                        let socket = socket.into_inner();
                        socket
                            .set_nonblocking(false)
                            .expect("gnet: cannot make the socket blocking");
                        socket
                    }
                    Err(shared) => shared
                        .get()
                        .try_clone()
                        .expect("gnet: cannot duplicate the socket's descriptor"),
                }
            }
        }
    };
}
pub(crate) use std_conversions;

/// `AsRawFd`, `AsFd` and `Debug` for a gnet socket type.
macro_rules! fd_traits {
    ($($ty:ty),*) => {$(
        impl std::os::fd::AsRawFd for $ty {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.socket.raw_fd()
            }
        }

        impl std::os::fd::AsFd for $ty {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(self.socket.get())
            }
        }

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("fd", &self.socket.raw_fd())
                    .field("local", &self.local_addr().ok())
                    .field("closed", &self.socket.is_closed())
                    .finish()
            }
        }
    )*};
}
pub(crate) use fd_traits;

/// std's timeouts and Go's deadlines, the same on every socket type: an `impl` block of
/// `set_read_timeout`, `set_write_timeout`, `read_timeout`, `write_timeout`, `set_deadline`,
/// `set_read_deadline` and `set_write_deadline` over the type's `socket` field.
macro_rules! timeouts_and_deadlines {
    ($($ty:ty),*) => {$(
        impl $ty {
            /// The longest each read (or receive) may wait; `None`: no limit. A zero duration
            /// is refused, as std's.
            pub fn set_read_timeout(
                &self,
                timeout: Option<std::time::Duration>,
            ) -> std::io::Result<()> {
                self.socket.set_timeout(crate::readiness::Direction::Read, timeout)
            }

            /// The longest each write (or send) may wait; `None`: no limit.
            pub fn set_write_timeout(
                &self,
                timeout: Option<std::time::Duration>,
            ) -> std::io::Result<()> {
                self.socket.set_timeout(crate::readiness::Direction::Write, timeout)
            }

            /// See [`set_read_timeout`](Self::set_read_timeout).
            pub fn read_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
                Ok(self.socket.deadlines.timeout(crate::readiness::Direction::Read))
            }

            /// See [`set_write_timeout`](Self::set_write_timeout).
            pub fn write_timeout(&self) -> std::io::Result<Option<std::time::Duration>> {
                Ok(self.socket.deadlines.timeout(crate::readiness::Direction::Write))
            }

            /// The read and write deadlines at once (Go's `SetDeadline`); `None` removes them.
            pub fn set_deadline(&self, deadline: impl Into<Option<std::time::Instant>>) {
                let deadline = deadline.into();
                self.set_read_deadline(deadline);
                self.set_write_deadline(deadline);
            }

            /// The point in time after which reads (or receives) fail with `TimedOut`, those
            /// waiting now included (Go's `SetReadDeadline`); `None` removes it.
            pub fn set_read_deadline(&self, deadline: impl Into<Option<std::time::Instant>>) {
                self.socket
                    .set_deadline(crate::readiness::Direction::Read, deadline.into());
            }

            /// As [`set_read_deadline`](Self::set_read_deadline), for writes (or sends).
            pub fn set_write_deadline(&self, deadline: impl Into<Option<std::time::Instant>>) {
                self.socket
                    .set_deadline(crate::readiness::Direction::Write, deadline.into());
            }
        }
    )*};
}
pub(crate) use timeouts_and_deadlines;

#[cfg(all(test, not(goroutines_loom)))]
mod tests {
    use super::*;

    fn listener() -> Socket<std::net::TcpListener> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Socket::new(listener)
    }

    #[test]
    fn a_call_that_meets_a_close_made_after_its_check_fails_as_closed() {
        let socket = listener();
        let err = socket
            .read(|listener| {
                socket.close(|listener| {
                    // SAFETY: `shutdown` on the listener's own open fd.
                    unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RD) };
                });
                sys::accept_inet(listener.as_raw_fd())
            })
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotConnected);
        assert_eq!(err.to_string(), "use of closed network connection");
    }

    #[test]
    fn a_read_that_meets_a_close_made_after_its_check_fails_as_closed() {
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = std::net::TcpStream::connect(server.local_addr().unwrap()).unwrap();
        stream.set_nonblocking(true).unwrap();
        let socket = Socket::new(stream);
        let mut buf = [0; 8];
        let err = socket
            .read_stream(buf.len(), |mut stream| {
                socket.close(|stream| stream.shutdown(std::net::Shutdown::Both).unwrap());
                io::Read::read(&mut stream, &mut buf)
            })
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotConnected);
    }

    #[test]
    fn a_closed_listener_does_not_wait_out_its_accept_backoff() {
        let socket = listener();
        let backoff = AcceptBackoff::default();
        for _ in 0..10 {
            let _ = backoff.record::<()>(Err(io::Error::from_raw_os_error(libc::EMFILE)));
        }
        socket.close(|_| {});
        let start = Instant::now();
        backoff.wait(&socket);
        assert!(
            start.elapsed() < MAX_BACKOFF / 2,
            "waited {:?} after the close",
            start.elapsed()
        );
    }

    #[test]
    fn other_errors_pass_through_while_open() {
        let socket = listener();
        let err = socket
            .read::<()>(|_| Err(io::Error::from(io::ErrorKind::InvalidInput)))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
