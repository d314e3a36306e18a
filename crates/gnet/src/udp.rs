//! UDP: `std::net::UdpSocket` for goroutines.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use crate::ToSocketAddrs;
use crate::socket::Socket;

/// A UDP socket. Receives park the calling goroutine until a datagram comes (a plain thread
/// blocks); sends park while the socket's buffer is full.
///
/// ```
/// gsched::run(|| {
///     let a = gnet::UdpSocket::bind("127.0.0.1:0").unwrap();
///     let b = gnet::UdpSocket::bind("127.0.0.1:0").unwrap();
///     let b_addr = b.local_addr().unwrap();
///     let receiver = gsched::go(move || {
///         let mut buf = [0; 16];
///         let (len, from) = b.recv_from(&mut buf).unwrap();
///         (buf[..len].to_vec(), from)
///     });
///     a.send_to(b"ping", b_addr).unwrap();
///     let (data, from) = receiver.join().unwrap();
///     assert_eq!(data, b"ping");
///     assert_eq!(from, a.local_addr().unwrap());
/// });
/// ```
pub struct UdpSocket {
    socket: Arc<Socket<std::net::UdpSocket>>,
}

impl UdpSocket {
    /// Binds to `addr` (a host name is looked up off the workers), trying each address in turn.
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        let mut last = None;
        for addr in addr.to_socket_addrs()? {
            match std::net::UdpSocket::bind(addr) {
                Ok(socket) => {
                    socket.set_nonblocking(true)?;
                    return Ok(UdpSocket::from_nonblocking(socket));
                }
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(crate::socket::no_addresses))
    }

    fn from_nonblocking(socket: std::net::UdpSocket) -> UdpSocket {
        UdpSocket {
            socket: Arc::new(Socket::new(socket)),
        }
    }

    /// Sets the default destination of `send` and the only source `recv` accepts.
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        let mut last = None;
        for addr in addr.to_socket_addrs()? {
            match self.socket.get().connect(addr) {
                Ok(()) => return Ok(()),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(crate::socket::no_addresses))
    }

    /// Sends to the connected address.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.socket.write(|socket| socket.send(buf))
    }

    /// Receives from the connected address.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.read(|socket| socket.recv(buf))
    }

    /// Receives from the connected address without taking the datagram off the queue.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.read(|socket| socket.peek(buf))
    }

    /// Sends to `addr` (a host name is looked up off the workers; the first address is used, as std does).
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let addr = addr
            .to_socket_addrs()?
            .into_iter()
            .next()
            .ok_or_else(crate::socket::no_addresses)?;
        self.socket.write(|socket| socket.send_to(buf, addr))
    }

    /// Receives a datagram and its source.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.socket.read(|socket| socket.recv_from(buf))
    }

    /// As `recv_from`, leaving the datagram on the queue.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.socket.read(|socket| socket.peek_from(buf))
    }

    /// A second handle to the same socket (shared, not a new file descriptor).
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            socket: Arc::clone(&self.socket),
        })
    }

    /// Sets `IP_MULTICAST_IF`: multicast datagrams sent here leave by the interface with the
    /// IPv4 address `interface` (`Ipv4Addr::LOCALHOST` keeps them on this host).
    pub fn set_multicast_if_v4(&self, interface: &Ipv4Addr) -> io::Result<()> {
        crate::sys::set_multicast_if_v4(self.socket.raw_fd(), interface)
    }

    /// `IP_MULTICAST_IF`: the address of the interface multicast datagrams leave by
    /// (`Ipv4Addr::UNSPECIFIED`: the system's choice).
    pub fn multicast_if_v4(&self) -> io::Result<Ipv4Addr> {
        crate::sys::multicast_if_v4(self.socket.raw_fd())
    }

    /// Closes the socket for every handle, as Go's `Close`: goroutines waiting on it fail with
    /// "use of closed network connection", and so does every later call.
    pub fn close(&self) {
        self.socket.close(|_| {});
    }
}

crate::socket::forward_to_std!(UdpSocket {
    /// The local address.
    fn local_addr() -> io::Result<SocketAddr>;
    /// The connected address.
    fn peer_addr() -> io::Result<SocketAddr>;
    /// Sets `SO_BROADCAST`.
    fn set_broadcast(broadcast: bool) -> io::Result<()>;
    /// `SO_BROADCAST`.
    fn broadcast() -> io::Result<bool>;
    /// Sets `IP_TTL`.
    fn set_ttl(ttl: u32) -> io::Result<()>;
    /// `IP_TTL`.
    fn ttl() -> io::Result<u32>;
    /// The pending `SO_ERROR`, cleared.
    fn take_error() -> io::Result<Option<io::Error>>;
    /// Joins the IPv4 multicast group `multiaddr` on the interface with address `interface`
    /// (`Ipv4Addr::UNSPECIFIED`: the system's choice), as Go's `ListenMulticastUDP` does.
    fn join_multicast_v4(multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()>;
    /// Leaves an IPv4 multicast group joined with `join_multicast_v4`.
    fn leave_multicast_v4(multiaddr: &Ipv4Addr, interface: &Ipv4Addr) -> io::Result<()>;
    /// Joins the IPv6 multicast group `multiaddr` on the interface with index `interface` (0:
    /// the system's choice).
    fn join_multicast_v6(multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()>;
    /// Leaves an IPv6 multicast group joined with `join_multicast_v6`.
    fn leave_multicast_v6(multiaddr: &Ipv6Addr, interface: u32) -> io::Result<()>;
    /// Sets `IP_MULTICAST_LOOP`: whether this host's own multicast datagrams come back to it.
    fn set_multicast_loop_v4(multicast_loop_v4: bool) -> io::Result<()>;
    /// `IP_MULTICAST_LOOP`.
    fn multicast_loop_v4() -> io::Result<bool>;
    /// Sets `IP_MULTICAST_TTL`: how many hops multicast datagrams go (1: this subnet).
    fn set_multicast_ttl_v4(multicast_ttl_v4: u32) -> io::Result<()>;
    /// `IP_MULTICAST_TTL`.
    fn multicast_ttl_v4() -> io::Result<u32>;
    /// Sets `IPV6_MULTICAST_LOOP`.
    fn set_multicast_loop_v6(multicast_loop_v6: bool) -> io::Result<()>;
    /// `IPV6_MULTICAST_LOOP`.
    fn multicast_loop_v6() -> io::Result<bool>;
});

crate::socket::std_conversions!(UdpSocket, std::net::UdpSocket, from_nonblocking);

crate::socket::fd_traits!(UdpSocket);
crate::socket::timeouts_and_deadlines!(UdpSocket);
