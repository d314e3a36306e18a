//! The few system calls std does not offer in the form a non-blocking runtime needs.

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// `accept4` with the new socket non-blocking and close-on-exec at once (std's `accept` needs
/// a second call to make it non-blocking), for TCP listeners.
pub(crate) fn accept_inet(listener: RawFd) -> io::Result<(OwnedFd, SocketAddr)> {
    let mut storage = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` has room for any address and `len` says how much.
    let fd = unsafe {
        libc::accept4(
            listener,
            storage.as_mut_ptr().cast(),
            &mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `accept4` returned a new fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: the kernel wrote an address of at most `len` bytes into zeroed storage.
    let addr = unsafe { inet_addr(storage.assume_init_ref()) }?;
    Ok((fd, addr))
}

/// The IPv4 or IPv6 address in `storage`.
///
/// # Safety
///
/// `storage` holds a `sockaddr_in` or `sockaddr_in6` as its family says.
unsafe fn inet_addr(storage: &libc::sockaddr_storage) -> io::Result<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a `sockaddr_in`, and storage is large
            // and aligned enough for it.
            let addr = unsafe { &*std::ptr::from_ref(storage).cast::<libc::sockaddr_in>() };
            Ok(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
                u16::from_be(addr.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for `sockaddr_in6`.
            let addr = unsafe { &*std::ptr::from_ref(storage).cast::<libc::sockaddr_in6>() };
            Ok(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(addr.sin6_addr.s6_addr),
                u16::from_be(addr.sin6_port),
                addr.sin6_flowinfo,
                addr.sin6_scope_id,
            )))
        }
        family => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("accept returned an address of family {family}"),
        )),
    }
}

/// `send` with `MSG_NOSIGNAL`: a write to a closed peer fails with `BrokenPipe` instead of
/// raising SIGPIPE (std's `UnixStream` writes with `write(2)`).
pub(crate) fn send_nosignal(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes.
    let sent = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
    if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(sent as usize)
    }
}

/// Whether an accept error means the process or system is out of descriptors or memory: the
/// connection stays queued, so retrying at once would spin.
pub(crate) fn is_resource_exhaustion(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// `sendmsg` of `bufs` with `MSG_NOSIGNAL`: a vectored write that never raises SIGPIPE.
pub(crate) fn sendmsg_nosignal(fd: RawFd, bufs: &[std::io::IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: an all-zero `msghdr` is valid (no name, no control data).
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    // `IoSlice` is ABI-compatible with `iovec` on Unix (std documents it).
    message.msg_iov = bufs.as_ptr().cast_mut().cast();
    message.msg_iovlen = bufs.len().min(libc::c_int::MAX as usize) as _;
    // SAFETY: `message` points to `bufs`, valid for the call; the kernel only reads them.
    let sent = unsafe { libc::sendmsg(fd, &message, libc::MSG_NOSIGNAL) };
    if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(sent as usize)
    }
}

/// Sets `IP_MULTICAST_IF`: the interface, by its IPv4 address, that multicast datagrams leave
/// by.
pub(crate) fn set_multicast_if_v4(fd: RawFd, interface: &Ipv4Addr) -> io::Result<()> {
    let addr = libc::in_addr {
        s_addr: u32::from_ne_bytes(interface.octets()),
    };
    // SAFETY: `addr` is a live `in_addr` of the length given, which `IP_MULTICAST_IF` accepts.
    let done = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            (&raw const addr).cast(),
            size_of::<libc::in_addr>() as libc::socklen_t,
        )
    };
    if done < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `IP_MULTICAST_IF`.
pub(crate) fn multicast_if_v4(fd: RawFd) -> io::Result<Ipv4Addr> {
    let mut addr = MaybeUninit::<libc::in_addr>::zeroed();
    let mut len = size_of::<libc::in_addr>() as libc::socklen_t;
    // SAFETY: `addr` has room for the `in_addr` that `IP_MULTICAST_IF` writes, and `len` says so.
    let done = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            addr.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if done < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zeroed, then written by the kernel: every bit pattern is an `in_addr`.
    let addr = unsafe { addr.assume_init() };
    Ok(Ipv4Addr::from(addr.s_addr.to_ne_bytes()))
}
