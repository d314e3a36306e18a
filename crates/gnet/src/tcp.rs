//! TCP: a listener and a stream with std's shapes, whose blocking calls park the goroutine.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ToSocketAddrs;
use crate::readiness::Direction;
use crate::socket::{AcceptBackoff, Socket, no_addresses};
use crate::sys;

/// A TCP socket server, listening for connections: `std::net::TcpListener` for goroutines.
///
/// `accept` parks the calling goroutine until a connection comes (a plain thread blocks). Each
/// connection is typically served by a goroutine of its own; spawn those with
/// `gsched::Builder::new().round_robin()` so that every worker serves its share.
///
/// ```
/// use std::io::{Read, Write};
///
/// gsched::run(|| {
///     let listener = gnet::TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     let server = gsched::go(move || {
///         let (mut conn, _) = listener.accept().unwrap();
///         let mut buf = [0; 5];
///         conn.read_exact(&mut buf).unwrap();
///         conn.write_all(&buf).unwrap();
///     });
///     let mut client = gnet::TcpStream::connect(addr).unwrap();
///     client.write_all(b"hello").unwrap();
///     let mut echo = [0; 5];
///     client.read_exact(&mut echo).unwrap();
///     assert_eq!(&echo, b"hello");
///     server.join().unwrap();
/// });
/// ```
pub struct TcpListener {
    socket: Arc<Socket<std::net::TcpListener>>,
    backoff: Arc<AcceptBackoff>,
}

impl TcpListener {
    /// Binds to `addr` (a host name is looked up off the workers), trying each address in turn, as std does.
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        let mut last = None;
        for addr in addr.to_socket_addrs()? {
            match std::net::TcpListener::bind(addr) {
                Ok(listener) => {
                    listener.set_nonblocking(true)?;
                    return Ok(TcpListener::from_nonblocking(listener));
                }
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(no_addresses))
    }

    fn from_nonblocking(listener: std::net::TcpListener) -> TcpListener {
        TcpListener {
            socket: Arc::new(Socket::new(listener)),
            backoff: Arc::default(),
        }
    }

    /// Waits for a connection. Out of file descriptors (`EMFILE`, `ENFILE`), the error comes
    /// back, and the next call first waits a while (5 ms, doubling up to 1 s until an accept
    /// succeeds), so a loop that retries at once does not spin.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (fd, addr) = self.socket.accept(&self.backoff, |listener| {
            sys::accept_inet(listener.as_raw_fd())
        })?;
        let stream = std::net::TcpStream::from(fd);
        Ok((TcpStream::from_nonblocking(stream), addr))
    }

    /// An endless iterator of `accept` results.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// A second handle to the same listener (shared, not a new file descriptor).
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        Ok(TcpListener {
            socket: Arc::clone(&self.socket),
            backoff: Arc::clone(&self.backoff),
        })
    }

    /// The deadline of `accept` (Go's `SetDeadline` on a listener); `None` removes it.
    pub fn set_deadline(&self, deadline: impl Into<Option<Instant>>) {
        self.socket.set_deadline(Direction::Read, deadline.into());
    }

    /// Stops listening, as Go's `Close`: a goroutine waiting in `accept` on any handle fails
    /// with "use of closed network connection", and so does every later call. The descriptor
    /// is closed when the last handle is dropped.
    pub fn close(&self) {
        self.socket.close(|listener| {
            // SAFETY: `shutdown` on the listener's own open fd; on Linux it makes a pending
            // `accept` (in a plain thread's poll) return.
            unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RD) };
        });
    }
}

/// The iterator of [`TcpListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(stream, _)| stream))
    }
}

/// A TCP connection: `std::net::TcpStream` for goroutines.
///
/// Reads and writes park the calling goroutine until the socket is ready (a plain thread
/// blocks). `&TcpStream` implements `Read` and `Write` too, and [`try_clone`](Self::try_clone)
/// gives a second handle, so one goroutine can read while another writes. Timeouts
/// (`set_read_timeout`, per call, as std's) and deadlines (`set_read_deadline`, a point in
/// time, as Go's) fail a call that waits too long with `io::ErrorKind::TimedOut`.
pub struct TcpStream {
    socket: Arc<Socket<std::net::TcpStream>>,
}

impl TcpStream {
    /// Connects to `addr` (a host name is looked up off the workers), trying each address in turn.
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        let mut last = None;
        for addr in addr.to_socket_addrs()? {
            match TcpStream::connect_addr(addr, None) {
                Ok(stream) => return Ok(stream),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(no_addresses))
    }

    /// Connects to `addr`, failing with `TimedOut` after `timeout` (std's `connect_timeout`).
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        TcpStream::connect_addr(*addr, Instant::now().checked_add(timeout))
    }

    fn connect_addr(addr: SocketAddr, deadline: Option<Instant>) -> io::Result<TcpStream> {
        let connecting = mio::net::TcpStream::connect(addr)?;
        // SAFETY: the fd comes out of the mio stream, which gives up its ownership.
        let stream = unsafe { std::net::TcpStream::from_raw_fd(connecting.into_raw_fd()) };
        let stream = TcpStream::from_nonblocking(stream);
        stream.socket.set_deadline(Direction::Write, deadline);
        let connected = stream.socket.write(|stream| {
            if let Some(err) = stream.take_error()? {
                return Err(err);
            }
            match stream.peer_addr() {
                Ok(_) => Ok(()),
                // Not connected yet: the connect is still in progress.
                Err(err) if err.kind() == io::ErrorKind::NotConnected => {
                    Err(io::ErrorKind::WouldBlock.into())
                }
                Err(err) => Err(err),
            }
        });
        stream.socket.set_deadline(Direction::Write, None);
        connected.map(|()| stream)
    }

    fn from_nonblocking(stream: std::net::TcpStream) -> TcpStream {
        TcpStream {
            socket: Arc::new(Socket::new(stream)),
        }
    }

    /// Shuts down reading, writing or both, waking goroutines waiting on the socket: a read
    /// then returns 0 (end of file), a write fails with `BrokenPipe`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.socket.get().shutdown(how)?;
        self.socket.wake_waiters();
        Ok(())
    }

    /// Closes the connection for every handle, as Go's `Close`: goroutines waiting on it fail
    /// with "use of closed network connection", and so does every later call. The descriptor
    /// is closed when the last handle is dropped.
    pub fn close(&self) {
        self.socket.close(|stream| {
            let _ = stream.shutdown(Shutdown::Both);
        });
    }

    /// Receives without taking the data off the queue.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len();
        let peeked = self.socket.read(|stream| stream.peek(buf));
        self.socket.closed_if_ended(len, peeked)
    }

    /// A second handle to the same connection, sharing its deadlines and its close (not a new
    /// file descriptor).
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Ok(TcpStream {
            socket: Arc::clone(&self.socket),
        })
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // As std's: an empty buffer reads nothing, at once.
        if buf.is_empty() {
            return Ok(0);
        }
        let len = buf.len();
        self.socket.read_stream(len, |mut stream| stream.read(buf))
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let len = bufs.iter().map(|buf| buf.len()).sum();
        let read = self.socket.read(|mut stream| stream.read_vectored(bufs));
        self.socket.closed_if_ended(len, read)
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.socket
            .write_stream(buf.len(), |mut stream| stream.write(buf))
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let len = bufs.iter().map(|buf| buf.len()).sum();
        if len == 0 {
            return Ok(0);
        }
        // `sendmsg` with MSG_NOSIGNAL: std's `writev` could raise SIGPIPE.
        self.socket.write_stream(len, |stream| {
            sys::sendmsg_nosignal(stream.as_raw_fd(), bufs)
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        (&*self).read_vectored(bufs)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

crate::socket::forward_to_std!(TcpListener {
    /// The address it listens on.
    fn local_addr() -> io::Result<SocketAddr>;
    /// Sets `IP_TTL`.
    fn set_ttl(ttl: u32) -> io::Result<()>;
    /// `IP_TTL`.
    fn ttl() -> io::Result<u32>;
    /// The pending `SO_ERROR`, cleared.
    fn take_error() -> io::Result<Option<io::Error>>;
});

crate::socket::forward_to_std!(TcpStream {
    /// The remote address.
    fn peer_addr() -> io::Result<SocketAddr>;
    /// The local address.
    fn local_addr() -> io::Result<SocketAddr>;
    /// Sets `TCP_NODELAY`.
    fn set_nodelay(nodelay: bool) -> io::Result<()>;
    /// `TCP_NODELAY`.
    fn nodelay() -> io::Result<bool>;
    /// Sets `IP_TTL`.
    fn set_ttl(ttl: u32) -> io::Result<()>;
    /// `IP_TTL`.
    fn ttl() -> io::Result<u32>;
    /// The pending `SO_ERROR`, cleared.
    fn take_error() -> io::Result<Option<io::Error>>;
});

crate::socket::std_conversions!(TcpStream, std::net::TcpStream, from_nonblocking);
crate::socket::std_conversions!(TcpListener, std::net::TcpListener, from_nonblocking);

crate::socket::fd_traits!(TcpListener, TcpStream);
crate::socket::timeouts_and_deadlines!(TcpStream);
