//! Unix domain sockets: std's `UnixListener`, `UnixStream` and `UnixDatagram` for goroutines.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::os::unix::net::{self, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::readiness::Direction;
use crate::socket::{AcceptBackoff, Socket};
use crate::sys;

/// A Unix domain socket server: `std::os::unix::net::UnixListener` for goroutines.
///
/// ```
/// use std::io::{Read, Write};
///
/// let dir = std::env::temp_dir().join(format!("gnet-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("listener.sock");
/// gsched::run(move || {
///     let listener = gnet::UnixListener::bind(&path).unwrap();
///     let server = gsched::go(move || {
///         let (mut conn, _) = listener.accept().unwrap();
///         conn.write_all(b"hi").unwrap();
///     });
///     let mut client = gnet::UnixStream::connect(&path).unwrap();
///     let mut reply = String::new();
///     client.read_to_string(&mut reply).unwrap();
///     assert_eq!(reply, "hi");
///     server.join().unwrap();
///     std::fs::remove_file(&path).unwrap();
/// });
/// ```
pub struct UnixListener {
    socket: Arc<Socket<net::UnixListener>>,
    backoff: Arc<AcceptBackoff>,
}

impl UnixListener {
    /// Binds to the socket file at `path`, which must not exist.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        let listener = net::UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        Ok(UnixListener::from_nonblocking(listener))
    }

    fn from_nonblocking(listener: net::UnixListener) -> UnixListener {
        UnixListener {
            socket: Arc::new(Socket::new(listener)),
            backoff: Arc::default(),
        }
    }

    /// Waits for a connection; out of descriptors, as [`TcpListener::accept`](crate::TcpListener::accept).
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (stream, addr) = self
            .socket
            .accept(&self.backoff, |listener| listener.accept())?;
        stream.set_nonblocking(true)?;
        Ok((UnixStream::from_nonblocking(stream), addr))
    }

    /// An endless iterator of `accept` results.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// A second handle to the same listener.
    pub fn try_clone(&self) -> io::Result<UnixListener> {
        Ok(UnixListener {
            socket: Arc::clone(&self.socket),
            backoff: Arc::clone(&self.backoff),
        })
    }

    /// The deadline of `accept`; `None` removes it.
    pub fn set_deadline(&self, deadline: impl Into<Option<Instant>>) {
        self.socket.set_deadline(Direction::Read, deadline.into());
    }

    /// Stops listening for every handle, as [`TcpListener::close`](crate::TcpListener::close).
    /// Connections queued and not yet accepted are ended too (their clients read the end of
    /// the stream, or a reset if they had sent data), as Go's `Close` does: for a TCP listener
    /// the kernel's shutdown resets them, for a Unix one it only refuses new ones. Out of
    /// descriptors (`EMFILE`), the rest stay queued until the last handle is dropped.
    pub fn close(&self) {
        self.socket.close(|listener| {
            // SAFETY: `shutdown` on the listener's own open fd, to end a plain thread's poll.
            unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RD) };
            // Nothing joins the queue once it is shut for reading: this empties it for good.
            while listener.accept().is_ok() {}
        });
    }
}

/// The iterator of [`UnixListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a UnixListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<UnixStream>;

    fn next(&mut self) -> Option<io::Result<UnixStream>> {
        Some(self.listener.accept().map(|(stream, _)| stream))
    }
}

/// A Unix domain stream: `std::os::unix::net::UnixStream` for goroutines. Writes to a closed
/// peer fail with `BrokenPipe` (they never raise SIGPIPE).
pub struct UnixStream {
    socket: Arc<Socket<net::UnixStream>>,
}

impl UnixStream {
    /// Connects to the socket file at `path`. A listener whose queue is full makes it fail
    /// with `WouldBlock`, as Go's `Dial` does.
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        let connected = mio::net::UnixStream::connect(path)?;
        // SAFETY: the fd comes out of the mio stream, which gives up its ownership.
        let stream = unsafe { net::UnixStream::from_raw_fd(connected.into_raw_fd()) };
        Ok(UnixStream::from_nonblocking(stream))
    }

    /// Two connected streams.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = net::UnixStream::pair()?;
        a.set_nonblocking(true)?;
        b.set_nonblocking(true)?;
        Ok((
            UnixStream::from_nonblocking(a),
            UnixStream::from_nonblocking(b),
        ))
    }

    fn from_nonblocking(stream: net::UnixStream) -> UnixStream {
        UnixStream {
            socket: Arc::new(Socket::new(stream)),
        }
    }

    /// Shuts down reading, writing or both, waking goroutines waiting on the stream.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.socket.get().shutdown(how)?;
        self.socket.wake_waiters();
        Ok(())
    }

    /// Closes the stream for every handle, as [`TcpStream::close`](crate::TcpStream::close).
    pub fn close(&self) {
        self.socket.close(|stream| {
            let _ = stream.shutdown(Shutdown::Both);
        });
    }

    /// A second handle to the same stream.
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        Ok(UnixStream {
            socket: Arc::clone(&self.socket),
        })
    }
}

impl Read for &UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Not `read_stream`: a Unix stream read also stops short after passed descriptors or
        // changed credentials, with more queued behind.
        let len = buf.len();
        let read = self.socket.read(|mut stream| stream.read(buf));
        self.socket.closed_if_ended(len, read)
    }
}

impl Write for &UnixStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.socket.write_stream(buf.len(), |stream| {
            sys::send_nosignal(stream.as_raw_fd(), buf)
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for UnixStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A Unix domain datagram socket: `std::os::unix::net::UnixDatagram` for goroutines.
pub struct UnixDatagram {
    socket: Arc<Socket<net::UnixDatagram>>,
}

impl UnixDatagram {
    /// Binds to the socket file at `path`.
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        let socket = net::UnixDatagram::bind(path)?;
        socket.set_nonblocking(true)?;
        Ok(UnixDatagram::from_nonblocking(socket))
    }

    /// A socket bound to no address.
    pub fn unbound() -> io::Result<UnixDatagram> {
        let socket = net::UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(UnixDatagram::from_nonblocking(socket))
    }

    /// Two connected sockets.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = net::UnixDatagram::pair()?;
        a.set_nonblocking(true)?;
        b.set_nonblocking(true)?;
        Ok((
            UnixDatagram::from_nonblocking(a),
            UnixDatagram::from_nonblocking(b),
        ))
    }

    fn from_nonblocking(socket: net::UnixDatagram) -> UnixDatagram {
        UnixDatagram {
            socket: Arc::new(Socket::new(socket)),
        }
    }

    /// Sets the default destination of `send` and the only source `recv` accepts.
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        self.socket.get().connect(path)
    }

    /// Sends to the connected address.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.socket.write(|socket| socket.send(buf))
    }

    /// Receives from the connected address; after `shutdown(Read)`, returns 0 once nothing
    /// is queued, as std's blocking socket does.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.read(|socket| match socket.recv(buf) {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock && self.socket.is_read_shut() => {
                Ok(0)
            }
            received => received,
        })
    }

    /// Sends to the socket at `path`.
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let path = path.as_ref();
        self.socket.write(|socket| socket.send_to(buf, path))
    }

    /// Receives a datagram and its source; after `shutdown(Read)`, fails with `NotConnected`
    /// once nothing is queued (a non-blocking datagram socket would wait for good).
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.socket.read(|socket| match socket.recv_from(buf) {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock && self.socket.is_read_shut() => {
                Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the socket is shut down for reading",
                ))
            }
            received => received,
        })
    }

    /// Shuts down reading, writing or both, waking goroutines waiting on the socket.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.socket.get().shutdown(how)?;
        if how != Shutdown::Write {
            self.socket.mark_read_shut();
        }
        self.socket.wake_waiters();
        Ok(())
    }

    /// A second handle to the same socket.
    pub fn try_clone(&self) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            socket: Arc::clone(&self.socket),
        })
    }

    /// Closes the socket for every handle: goroutines waiting on it fail with "use of closed
    /// network connection", and so does every later call.
    pub fn close(&self) {
        self.socket.close(|socket| {
            let _ = socket.shutdown(Shutdown::Both);
        });
    }
}

crate::socket::forward_to_std!(UnixListener {
    /// The address it listens on.
    fn local_addr() -> io::Result<SocketAddr>;
    /// The pending `SO_ERROR`, cleared.
    fn take_error() -> io::Result<Option<io::Error>>;
});

crate::socket::forward_to_std!(UnixStream {
    /// The local address.
    fn local_addr() -> io::Result<SocketAddr>;
    /// The peer's address.
    fn peer_addr() -> io::Result<SocketAddr>;
    /// The pending `SO_ERROR`, cleared.
    fn take_error() -> io::Result<Option<io::Error>>;
});

crate::socket::forward_to_std!(UnixDatagram {
    /// The local address.
    fn local_addr() -> io::Result<SocketAddr>;
    /// The connected address.
    fn peer_addr() -> io::Result<SocketAddr>;
    /// The pending `SO_ERROR`, cleared.
    fn take_error() -> io::Result<Option<io::Error>>;
});

crate::socket::std_conversions!(UnixListener, net::UnixListener, from_nonblocking);
crate::socket::std_conversions!(UnixStream, net::UnixStream, from_nonblocking);
crate::socket::std_conversions!(UnixDatagram, net::UnixDatagram, from_nonblocking);

crate::socket::fd_traits!(UnixListener, UnixStream, UnixDatagram);
crate::socket::timeouts_and_deadlines!(UnixStream, UnixDatagram);
