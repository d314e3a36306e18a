//! Corners found in review: each of these hung or misbehaved before its fix.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use gnet::{TcpListener, TcpStream, UnixDatagram};
use gsched::Runtime;
use testkit::within;

fn runtime() -> Runtime {
    Runtime::builder().workers(1).build().unwrap()
}

fn connected_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

/// Converting one handle back to std while a clone lives leaves the shared descriptor
/// non-blocking: the clone's deadline still works (a blocking descriptor would stop the worker
/// in `read` for good).
#[test]
fn a_std_socket_taken_from_a_cloned_stream_leaves_the_clone_working() {
    within(Duration::from_secs(30), || {
        runtime().block_on(|| {
            let (client, _server) = connected_pair();
            let clone = client.try_clone().unwrap();
            let std_socket: std::net::TcpStream = client.into();
            clone.set_read_deadline(Instant::now() + Duration::from_millis(30));
            let mut buf = [0; 4];
            assert_eq!(
                (&clone).read(&mut buf).unwrap_err().kind(),
                io::ErrorKind::TimedOut
            );
            drop(std_socket);
        });
    });
}

/// A socket first waited on in a runtime that has shut down fails in the next one, instead of
/// waiting for a poller nobody polls.
#[test]
fn a_socket_outliving_its_runtime_fails_instead_of_hanging() {
    within(Duration::from_secs(30), || {
        let (client, server) = runtime().block_on(|| {
            let (client, server) = connected_pair();
            // Registers the socket with this runtime's poller.
            client.set_read_deadline(Instant::now() + Duration::from_millis(5));
            assert!((&client).read(&mut [0; 4]).is_err());
            client.set_read_deadline(None);
            (client, server)
        });
        let err = runtime().block_on(move || {
            let mut buf = [0; 4];
            let err = (&client).read(&mut buf).unwrap_err();
            drop(server);
            err
        });
        assert!(err.to_string().contains("shut down"), "{err}");
    });
}

/// Urgent data stops a read short of what is queued; the next read still gets the rest.
#[test]
fn a_read_stopped_at_urgent_data_is_not_taken_for_an_empty_queue() {
    within(Duration::from_secs(30), || {
        runtime().block_on(|| {
            let (mut client, server) = connected_pair();
            // Registered (and drained) before the data comes.
            server.set_read_deadline(Instant::now() + Duration::from_millis(5));
            assert!((&server).read(&mut [0; 4]).is_err());
            server.set_read_deadline(Instant::now() + Duration::from_secs(5));
            client.write_all(b"hello").unwrap();
            // SAFETY: a send of one valid byte on an open socket.
            let sent =
                unsafe { libc::send(client.as_raw_fd(), b"!".as_ptr().cast(), 1, libc::MSG_OOB) };
            assert_eq!(sent, 1);
            client.write_all(b"world").unwrap();
            gsched::sleep(Duration::from_millis(20));
            let mut received = Vec::new();
            let mut buf = [0; 64];
            while received.len() < 10 {
                let n = (&server).read(&mut buf).unwrap();
                received.extend_from_slice(&buf[..n]);
            }
            assert_eq!(received, b"helloworld");
        });
    });
}

/// After `shutdown(Read)`, a datagram receive returns 0 as std's does, instead of waiting.
#[test]
fn a_datagram_socket_shut_for_reading_returns_instead_of_waiting() {
    within(Duration::from_secs(30), || {
        runtime().block_on(|| {
            let (a, _b) = UnixDatagram::pair().unwrap();
            let reader = a.try_clone().unwrap();
            let waiting = gsched::go(move || reader.recv(&mut [0; 8]));
            gsched::sleep(Duration::from_millis(10));
            a.shutdown(Shutdown::Read).unwrap();
            assert_eq!(waiting.join().unwrap().unwrap(), 0);
            assert_eq!(a.recv(&mut [0; 8]).unwrap(), 0);
        });
    });
}

/// Empty buffers read and write nothing, at once, as std's do.
#[test]
fn empty_reads_and_writes_return_at_once() {
    within(Duration::from_secs(30), || {
        runtime().block_on(|| {
            let (client, _server) = connected_pair();
            assert_eq!((&client).read(&mut []).unwrap(), 0);
            assert_eq!((&client).write(&[]).unwrap(), 0);
        });
    });
}
