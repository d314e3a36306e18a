//! UDP and Unix domain sockets: datagrams, streams, timeouts, close, and no SIGPIPE.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use gnet::{UdpSocket, UnixDatagram, UnixListener, UnixStream};
use gsched::Runtime;
use testkit::within;

fn runtime(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().unwrap()
}

/// A fresh directory for socket files, removed by the caller's `remove_dir_all`.
fn socket_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gnet-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn udp_datagrams_go_both_ways_between_goroutines() {
    within(Duration::from_secs(30), || {
        let rt = runtime(2);
        rt.block_on(|| {
            let server = UdpSocket::bind("127.0.0.1:0").unwrap();
            let addr = server.local_addr().unwrap();
            let echo = gsched::go(move || {
                let mut buf = [0; 64];
                for _ in 0..100 {
                    let (len, from) = server.recv_from(&mut buf).unwrap();
                    server.send_to(&buf[..len], from).unwrap();
                }
            });
            let client = UdpSocket::bind("127.0.0.1:0").unwrap();
            client.connect(addr).unwrap();
            assert_eq!(client.peer_addr().unwrap(), addr);
            for round in 0..100u32 {
                client.send(&round.to_le_bytes()).unwrap();
                let mut reply = [0; 4];
                assert_eq!(client.recv(&mut reply).unwrap(), 4);
                assert_eq!(u32::from_le_bytes(reply), round);
            }
            echo.join().unwrap();
        });
    });
}

#[test]
fn udp_receive_timeout_close_and_conversion() {
    within(Duration::from_secs(30), || {
        let rt = runtime(1);
        rt.block_on(|| {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            socket
                .set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            let started = Instant::now();
            let mut buf = [0; 8];
            assert_eq!(
                socket.recv_from(&mut buf).unwrap_err().kind(),
                io::ErrorKind::TimedOut
            );
            assert!(started.elapsed() >= Duration::from_millis(20));
            socket.set_read_timeout(None).unwrap();

            let receiver = {
                let socket = socket.try_clone().unwrap();
                gsched::go(move || {
                    let mut buf = [0; 8];
                    socket.recv_from(&mut buf).unwrap_err().kind()
                })
            };
            gsched::sleep(Duration::from_millis(10));
            socket.close();
            assert_eq!(receiver.join().unwrap(), io::ErrorKind::NotConnected);

            let std_socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let addr = std_socket.local_addr().unwrap();
            let socket = UdpSocket::from(std_socket);
            assert_eq!(socket.local_addr().unwrap(), addr);
            let back: std::net::UdpSocket = socket.into();
            back.set_read_timeout(Some(Duration::from_millis(1)))
                .unwrap();
            // Blocking again: a receive with no datagram waits for its timeout.
            assert!(matches!(
                back.recv(&mut [0; 1]).unwrap_err().kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ));
        });
    });
}

#[test]
fn unix_streams_echo_and_half_close() {
    within(Duration::from_secs(30), || {
        let dir = socket_dir("stream");
        let path = dir.join("echo.sock");
        let rt = runtime(2);
        rt.block_on({
            let path = path.clone();
            move || {
                let listener = UnixListener::bind(&path).unwrap();
                let server = gsched::go(move || {
                    for _ in 0..4 {
                        let (mut conn, _) = listener.accept().unwrap();
                        gsched::go(move || {
                            let mut request = Vec::new();
                            conn.read_to_end(&mut request).unwrap();
                            conn.write_all(&request).unwrap();
                        });
                    }
                });
                let clients: Vec<_> = (0..4)
                    .map(|client| {
                        let path = path.clone();
                        gsched::go(move || {
                            let mut conn = UnixStream::connect(&path).unwrap();
                            let message = vec![client as u8; 100_000];
                            let writer = conn.try_clone().unwrap();
                            let sent = message.clone();
                            // A message larger than the socket buffer: the writer parks until
                            // the server reads, while this goroutine reads the echo.
                            let writing = gsched::go(move || {
                                (&writer).write_all(&sent).unwrap();
                                writer.shutdown(Shutdown::Write).unwrap();
                            });
                            let mut reply = Vec::new();
                            conn.read_to_end(&mut reply).unwrap();
                            writing.join().unwrap();
                            assert_eq!(reply, message);
                        })
                    })
                    .collect();
                for client in clients {
                    client.join().unwrap();
                }
                server.join().unwrap();
            }
        });
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn unix_datagrams_and_pairs() {
    within(Duration::from_secs(30), || {
        let dir = socket_dir("datagram");
        let rt = runtime(1);
        rt.block_on({
            let dir = dir.clone();
            move || {
                let a = UnixDatagram::bind(dir.join("a.sock")).unwrap();
                let b = UnixDatagram::unbound().unwrap();
                let receiver = gsched::go(move || {
                    let mut buf = [0; 16];
                    let len = a.recv(&mut buf).unwrap();
                    buf[..len].to_vec()
                });
                gsched::sleep(Duration::from_millis(5));
                b.send_to(b"datagram", dir.join("a.sock")).unwrap();
                assert_eq!(receiver.join().unwrap(), b"datagram");

                let (left, right) = UnixStream::pair().unwrap();
                let reader = gsched::go(move || {
                    let mut buf = [0; 5];
                    (&right).read_exact(&mut buf).map(|()| buf)
                });
                (&left).write_all(b"paired").unwrap();
                assert_eq!(&reader.join().unwrap().unwrap(), b"paire");
            }
        });
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

const CHILD: testkit::ChildTest = testkit::ChildTest::new("GNET_UDP_UNIX_CHILD");

/// With SIGPIPE at its default action (which kills the process), a write to a Unix stream
/// whose peer is gone fails with `BrokenPipe`.
#[test]
fn a_write_to_a_closed_unix_peer_is_broken_pipe_not_sigpipe() {
    const NAME: &str = "a_write_to_a_closed_unix_peer_is_broken_pipe_not_sigpipe";
    if CHILD.is_child(NAME) {
        // SAFETY: setting a signal's disposition to its default, before any other thread of
        // this process could depend on it.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        let rt = runtime(1);
        let kind = rt.block_on(|| {
            let (left, right) = UnixStream::pair().unwrap();
            drop(right);
            (&left).write(b"nobody reads").unwrap_err().kind()
        });
        assert_eq!(kind, io::ErrorKind::BrokenPipe);
        println!("broken pipe reported");
        return;
    }
    let output = CHILD.run(NAME).output();
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("broken pipe reported"));
}

/// Closing a Unix listener ends the connections queued on it and not yet accepted, as closing
/// the last descriptor does and as Go's `Close` does, even while another handle keeps the
/// listener alive: their clients see the end of the stream (or a reset) instead of waiting.
#[test]
fn closing_a_unix_listener_ends_the_connections_queued_on_it() {
    within(Duration::from_secs(30), || {
        let dir = socket_dir("queued");
        let path = dir.join("queued.sock");
        let rt = runtime(1);
        rt.block_on({
            let path = path.clone();
            move || {
                let listener = UnixListener::bind(&path).unwrap();
                let queued: Vec<UnixStream> = (0..3)
                    .map(|_| UnixStream::connect(&path).unwrap())
                    .collect();
                listener.close();
                for mut client in queued {
                    client
                        .set_read_timeout(Some(Duration::from_secs(5)))
                        .unwrap();
                    let mut byte = [0; 1];
                    match client.read(&mut byte) {
                        Ok(0) => {}
                        Err(err) if err.kind() == io::ErrorKind::ConnectionReset => {}
                        other => panic!("a queued client read {other:?} after the close"),
                    }
                }
                assert!(UnixStream::connect(&path).is_err(), "connected after close");
                // The listener lives until here.
                drop(listener);
            }
        });
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

/// A UDP socket joins a multicast group and receives what a goroutine sends to the group over
/// the loopback interface; after it leaves, nothing more comes.
#[test]
fn udp_multicast_over_loopback() {
    use std::net::{Ipv4Addr, SocketAddr};
    within(Duration::from_secs(30), || {
        let rt = runtime(2);
        rt.block_on(|| {
            let group = Ipv4Addr::new(239, 255, 42, 17);
            let receiver = UdpSocket::bind("0.0.0.0:0").unwrap();
            if let Err(err) = receiver.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST) {
                // A host whose loopback interface carries no multicast (some containers).
                eprintln!("skipped: cannot join a multicast group on loopback here: {err}");
                return;
            }
            let to = SocketAddr::from((group, receiver.local_addr().unwrap().port()));
            let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
            sender.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
            assert_eq!(sender.multicast_if_v4().unwrap(), Ipv4Addr::LOCALHOST);
            sender.set_multicast_loop_v4(true).unwrap();
            assert!(sender.multicast_loop_v4().unwrap());
            sender.set_multicast_ttl_v4(1).unwrap();
            assert_eq!(sender.multicast_ttl_v4().unwrap(), 1);

            receiver
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let listening = gsched::go(move || {
                let mut buf = [0; 16];
                let (len, from) = receiver.recv_from(&mut buf).unwrap();
                (receiver, buf[..len].to_vec(), from)
            });
            sender.send_to(b"to the group", to).unwrap();
            let (receiver, data, from) = listening.join().unwrap();
            assert_eq!(data, b"to the group");
            assert_eq!(from, sender.local_addr().unwrap());

            receiver
                .leave_multicast_v4(&group, &Ipv4Addr::LOCALHOST)
                .unwrap();
            receiver
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            sender.send_to(b"after leaving", to).unwrap();
            let mut buf = [0; 16];
            let err = receiver.recv_from(&mut buf).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        });
    });
}
