//! TCP over loopback: echo, placement, deadlines, close, reset, half-close, descriptor reuse
//! and shutdown with parked sockets.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gnet::{TcpListener, TcpStream};
use gsched::{Builder, Runtime};
use testkit::within;

fn runtime(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().unwrap()
}

/// An echo server on a fresh port, each connection on a goroutine on the workers in turn,
/// which records the worker that served it.
fn echo_server(served_on: Arc<Mutex<HashSet<usize>>>) -> (SocketAddr, gsched::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = gsched::go(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let served_on = Arc::clone(&served_on);
            Builder::new()
                .round_robin()
                .spawn(move || {
                    served_on
                        .lock()
                        .unwrap()
                        .insert(gsched::driver::current_worker().unwrap());
                    let mut buf = [0; 256];
                    loop {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if conn.write_all(&buf[..n]).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                })
                .unwrap();
        }
    });
    (addr, server)
}

#[test]
fn goroutines_echo_over_many_connections_and_every_worker_serves() {
    within(Duration::from_secs(60), || {
        let rt = runtime(2);
        rt.block_on(|| {
            let served_on = Arc::new(Mutex::new(HashSet::new()));
            let (addr, _server) = echo_server(Arc::clone(&served_on));
            let clients: Vec<_> = (0..64)
                .map(|client| {
                    gsched::go(move || {
                        let mut conn = TcpStream::connect(addr).unwrap();
                        conn.set_nodelay(true).unwrap();
                        for round in 0..50u32 {
                            let message = format!("client {client} round {round}");
                            conn.write_all(message.as_bytes()).unwrap();
                            let mut reply = vec![0; message.len()];
                            conn.read_exact(&mut reply).unwrap();
                            assert_eq!(reply, message.as_bytes());
                        }
                    })
                })
                .collect();
            for client in clients {
                client.join().unwrap();
            }
            assert_eq!(
                served_on.lock().unwrap().len(),
                2,
                "connections were served on one worker only"
            );
        });
    });
}

#[test]
fn a_plain_thread_talks_to_a_goroutine_server_and_blocks_as_std_would() {
    within(Duration::from_secs(30), || {
        let rt = runtime(1);
        let (addr, server) = rt.block_on(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server = gsched::go(move || {
                let (mut conn, peer) = listener.accept().unwrap();
                assert_eq!(conn.peer_addr().unwrap(), peer);
                let mut line = [0; 5];
                conn.read_exact(&mut line).unwrap();
                conn.write_all(&line).unwrap();
            });
            (addr, server)
        });
        // A plain thread, while the runtime's goroutine waits in `accept`.
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.write_all(b"plain").unwrap();
        let mut reply = [0; 5];
        conn.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"plain");
        server.join().unwrap();
    });
}

#[test]
fn read_timeouts_and_deadlines_fail_with_timed_out() {
    within(Duration::from_secs(30), || {
        let rt = runtime(1);
        rt.block_on(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let conn = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (_server_side, _) = listener.accept().unwrap();
            let mut buf = [0; 8];

            // std's per-call timeout.
            conn.set_read_timeout(Some(Duration::from_millis(30)))
                .unwrap();
            assert_eq!(
                conn.read_timeout().unwrap(),
                Some(Duration::from_millis(30))
            );
            let started = Instant::now();
            let err = (&conn).read(&mut buf).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::TimedOut);
            assert!(started.elapsed() >= Duration::from_millis(30));
            assert_eq!(
                conn.set_read_timeout(Some(Duration::ZERO))
                    .unwrap_err()
                    .kind(),
                io::ErrorKind::InvalidInput
            );
            conn.set_read_timeout(None).unwrap();

            // Go's deadline: one in the past fails at once.
            conn.set_read_deadline(Instant::now() - Duration::from_millis(1));
            let err = (&conn).read(&mut buf).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::TimedOut);

            // A deadline set while a goroutine waits reaches it.
            conn.set_read_deadline(None);
            let conn = Arc::new(conn);
            let reader = {
                let conn = Arc::clone(&conn);
                gsched::go(move || {
                    let mut buf = [0; 8];
                    (&*conn).read(&mut buf).map_err(|err| err.kind())
                })
            };
            gsched::sleep(Duration::from_millis(20));
            let set_at = Instant::now();
            conn.set_read_deadline(Instant::now() + Duration::from_millis(20));
            assert_eq!(reader.join().unwrap(), Err(io::ErrorKind::TimedOut));
            assert!(set_at.elapsed() >= Duration::from_millis(20));

            // Writes have their own deadline.
            conn.set_write_deadline(Instant::now() - Duration::from_millis(1));
            assert_eq!(
                (&*conn).write(b"x").unwrap_err().kind(),
                io::ErrorKind::TimedOut
            );
        });
    });
}

#[test]
fn accept_has_a_deadline_too() {
    within(Duration::from_secs(30), || {
        let rt = runtime(1);
        rt.block_on(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_deadline(Instant::now() + Duration::from_millis(20));
            assert_eq!(
                listener.accept().unwrap_err().kind(),
                io::ErrorKind::TimedOut
            );
        });
    });
}

#[test]
fn close_wakes_a_goroutine_blocked_on_the_socket_with_an_error() {
    within(Duration::from_secs(30), || {
        let rt = runtime(2);
        rt.block_on(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let conn = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (_server_side, _) = listener.accept().unwrap();
            let reader_handle = conn.try_clone().unwrap();
            let reader = gsched::go(move || {
                let mut buf = [0; 8];
                (&reader_handle).read(&mut buf).unwrap_err()
            });
            gsched::sleep(Duration::from_millis(20));
            conn.close();
            let err = reader.join().unwrap();
            assert_eq!(err.kind(), io::ErrorKind::NotConnected);
            assert_eq!(err.to_string(), "use of closed network connection");
            assert_eq!(
                (&conn).write(b"late").unwrap_err().kind(),
                io::ErrorKind::NotConnected
            );

            // The same for a goroutine in `accept`.
            let acceptor_handle = listener.try_clone().unwrap();
            let acceptor = gsched::go(move || acceptor_handle.accept().map(|_| ()).unwrap_err());
            gsched::sleep(Duration::from_millis(20));
            listener.close();
            assert_eq!(acceptor.join().unwrap().kind(), io::ErrorKind::NotConnected);
        });
    });
}

#[test]
fn a_peer_reset_is_connection_reset_and_a_write_to_a_closed_peer_fails() {
    within(Duration::from_secs(30), || {
        let rt = runtime(1);
        rt.block_on(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let conn = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (server_side, _) = listener.accept().unwrap();
            let reader = gsched::go(move || {
                let mut buf = [0; 8];
                (&server_side).read(&mut buf).unwrap_err().kind()
            });
            gsched::sleep(Duration::from_millis(10));
            // SO_LINGER 0: closing sends RST.
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: a valid socket, and `linger` is the option's type and size.
            let set = unsafe {
                libc::setsockopt(
                    std::os::fd::AsRawFd::as_raw_fd(&conn),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    std::ptr::from_ref(&linger).cast(),
                    size_of::<libc::linger>() as libc::socklen_t,
                )
            };
            assert_eq!(set, 0);
            drop(conn);
            assert_eq!(reader.join().unwrap(), io::ErrorKind::ConnectionReset);

            // Writing to a peer that closed: the error comes back (no SIGPIPE).
            let conn = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (server_side, _) = listener.accept().unwrap();
            drop(server_side);
            let err = loop {
                match (&conn).write_all(&[0; 1024]) {
                    Ok(_) => gsched::sleep(Duration::from_millis(1)),
                    Err(err) => break err,
                }
            };
            assert!(
                matches!(
                    err.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ),
                "{err:?}"
            );
        });
    });
}

#[test]
fn half_close_works_both_ways() {
    within(Duration::from_secs(30), || {
        let rt = runtime(2);
        rt.block_on(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server = gsched::go(move || {
                let (mut conn, _) = listener.accept().unwrap();
                let mut request = Vec::new();
                conn.read_to_end(&mut request).unwrap();
                conn.write_all(&request).unwrap();
                conn.shutdown(Shutdown::Write).unwrap();
            });
            let mut conn = TcpStream::connect(addr).unwrap();
            conn.write_all(b"request").unwrap();
            conn.shutdown(Shutdown::Write).unwrap();
            let mut reply = Vec::new();
            conn.read_to_end(&mut reply).unwrap();
            assert_eq!(reply, b"request");
            server.join().unwrap();
        });
    });
}

/// Sockets opened and closed in quick succession reuse descriptor numbers; an event or a
/// waiter of a closed one must never reach its successor.
#[test]
fn reused_descriptors_never_wake_the_wrong_goroutine() {
    within(Duration::from_secs(60), || {
        let rt = runtime(2);
        rt.block_on(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            for round in 0..300u32 {
                let client = TcpStream::connect(addr).unwrap();
                let (server_side, _) = listener.accept().unwrap();
                let reader = gsched::go(move || {
                    let mut buf = [0; 4];
                    let mut server_side = server_side;
                    server_side.read_exact(&mut buf).map(|()| buf)
                });
                if round % 2 == 0 {
                    gsched::yield_now();
                }
                (&client).write_all(&round.to_le_bytes()).unwrap();
                assert_eq!(reader.join().unwrap().unwrap(), round.to_le_bytes());
                drop(client);
            }
        });
    });
}

/// Dropping a runtime unwinds its goroutines parked on sockets: their sockets close (the peer
/// reads end of file), and the drop returns.
#[test]
fn shutdown_unwinds_goroutines_parked_on_sockets_and_closes_their_sockets() {
    within(Duration::from_secs(30), || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let rt = runtime(2);
        let parked = Arc::new(AtomicUsize::new(0));
        for _ in 0..8 {
            let parked = Arc::clone(&parked);
            rt.spawn(move || {
                let mut conn = TcpStream::connect(addr).unwrap();
                parked.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0; 1];
                let _ = conn.read(&mut buf);
                unreachable!("nobody writes");
            });
        }
        let peers: Vec<_> = (0..8).map(|_| listener.accept().unwrap().0).collect();
        while parked.load(Ordering::SeqCst) < 8 {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Each has counted itself just before its read: wait for all eight to be parked in it.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let dump = rt.dump().to_string();
            if dump.matches("[IO wait]").count() == 8 {
                break;
            }
            assert!(Instant::now() < deadline, "{dump}");
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(rt);
        for mut peer in peers {
            peer.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut buf = [0; 1];
            assert_eq!(peer.read(&mut buf).unwrap(), 0, "the socket was not closed");
        }
    });
}
