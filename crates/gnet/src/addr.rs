//! Addresses to bind and connect to, resolved off the workers only when a lookup is needed.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// What [`TcpStream::connect`](crate::TcpStream::connect), the `bind`s and
/// [`UdpSocket::send_to`](crate::UdpSocket::send_to) take: the forms of
/// `std::net::ToSocketAddrs`. Addresses and IP literals cost nothing; a host name is looked up
/// (`getaddrinfo`, which blocks its thread) through `gsched::blocking`, off the workers.
///
/// Sealed: implemented for `SocketAddr`, `SocketAddrV4`, `SocketAddrV6`, `(IpAddr, u16)`,
/// `(Ipv4Addr, u16)`, `(Ipv6Addr, u16)`, `&[SocketAddr]`, `str`, `String`, `(&str, u16)`,
/// `(String, u16)`, and references to any of them.
///
/// ```
/// use gnet::ToSocketAddrs;
///
/// let literal = "127.0.0.1:8080".to_socket_addrs().unwrap();
/// assert_eq!(literal, vec!["127.0.0.1:8080".parse().unwrap()]);
/// let named = ("localhost", 8080).to_socket_addrs().unwrap();
/// assert!(named.iter().all(|addr| addr.port() == 8080));
/// ```
pub trait ToSocketAddrs: sealed::Sealed {
    /// The addresses, in the order to try them.
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>>;
}

mod sealed {
    pub trait Sealed {}
}

/// A name that needs a lookup: `getaddrinfo` through the blocking pool from a goroutine.
fn look_up<A: std::net::ToSocketAddrs + Sync + ?Sized>(addr: &A) -> io::Result<Vec<SocketAddr>> {
    gsched::blocking(|| std::net::ToSocketAddrs::to_socket_addrs(addr).map(Iterator::collect))
}

macro_rules! direct {
    ($($ty:ty),*) => {$(
        impl sealed::Sealed for $ty {}
        impl ToSocketAddrs for $ty {
            fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
                Ok(vec![SocketAddr::from(*self)])
            }
        }
    )*};
}
direct!(
    SocketAddr,
    SocketAddrV4,
    SocketAddrV6,
    (IpAddr, u16),
    (Ipv4Addr, u16),
    (Ipv6Addr, u16)
);

impl sealed::Sealed for &[SocketAddr] {}
impl ToSocketAddrs for &[SocketAddr] {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        Ok(self.to_vec())
    }
}

impl sealed::Sealed for str {}
impl ToSocketAddrs for str {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        match self.parse::<SocketAddr>() {
            Ok(addr) => Ok(vec![addr]),
            Err(_) => look_up(self),
        }
    }
}

impl sealed::Sealed for String {}
impl ToSocketAddrs for String {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        self.as_str().to_socket_addrs()
    }
}

impl sealed::Sealed for (&str, u16) {}
impl ToSocketAddrs for (&str, u16) {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        let (host, port) = *self;
        match host.parse::<IpAddr>() {
            Ok(ip) => Ok(vec![SocketAddr::new(ip, port)]),
            Err(_) => look_up(&(host, port)),
        }
    }
}

impl sealed::Sealed for (String, u16) {}
impl ToSocketAddrs for (String, u16) {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        (self.0.as_str(), self.1).to_socket_addrs()
    }
}

impl<T: ToSocketAddrs + ?Sized> sealed::Sealed for &T {}
impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {
    fn to_socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        (**self).to_socket_addrs()
    }
}
