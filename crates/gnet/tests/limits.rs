//! Many connections at once, and an accept loop out of file descriptors.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gnet::{TcpListener, TcpStream};
use gsched::{Builder, Runtime};
use testkit::within;

const CHILD: testkit::ChildTest = testkit::ChildTest::new("GNET_LIMITS_CHILD");

/// Raises the soft descriptor limit to `wanted` if the hard one allows; false if it does not.
fn raise_fd_limit(wanted: u64) -> bool {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid out-parameter.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 || limit.rlim_max < wanted {
        return false;
    }
    limit.rlim_cur = limit.rlim_cur.max(wanted);
    // SAFETY: as above; a soft limit within the hard one.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 }
}

/// Sets the soft descriptor limit to `limit`.
fn lower_fd_limit(soft: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid out-parameter, then a limit below the hard one.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = soft;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

/// 10,000 loopback connections open at once, each served by its own goroutine on two
/// workers, from a client process whose goroutines each do a round trip, wait until every
/// connection is open, and do another. Server and clients are child processes of their own, so
/// that each needs 10,000 descriptors (not 20,000) and the raised limit stays there.
#[test]
fn ten_thousand_concurrent_connections() {
    const NAME: &str = "ten_thousand_concurrent_connections";
    const CONNECTIONS: usize = 10_000;
    const CLIENT: &str = "ten_thousand_concurrent_connections: client";
    const ADDR_VAR: &str = "GNET_LIMITS_SERVER";
    if CHILD.is_child(CLIENT) {
        assert!(raise_fd_limit(CONNECTIONS as u64 + 512));
        let addr: std::net::SocketAddr = std::env::var(ADDR_VAR).unwrap().parse().unwrap();
        let rt = Runtime::builder().workers(2).build().unwrap();
        rt.block_on(move || {
            let all_open = gsync::WaitGroup::new();
            all_open.add(CONNECTIONS as i32);
            let clients: Vec<_> = (0..CONNECTIONS as u64)
                .map(|client| {
                    let all_open = all_open.clone();
                    gsched::go(move || {
                        let mut conn = TcpStream::connect(addr).unwrap();
                        let mut reply = [0; 8];
                        conn.write_all(&client.to_le_bytes()).unwrap();
                        conn.read_exact(&mut reply).unwrap();
                        assert_eq!(u64::from_le_bytes(reply), client);
                        all_open.done();
                        all_open.wait();
                        conn.write_all(&(client + 1).to_le_bytes()).unwrap();
                        conn.read_exact(&mut reply).unwrap();
                        assert_eq!(u64::from_le_bytes(reply), client + 1);
                    })
                })
                .collect();
            for client in clients {
                client.join().unwrap();
            }
        });
        return;
    }
    if CHILD.is_child(NAME) {
        if !raise_fd_limit(CONNECTIONS as u64 + 512) {
            println!(
                "skipped: the hard RLIMIT_NOFILE is below {}",
                CONNECTIONS + 512
            );
            return;
        }
        let rt = Runtime::builder().workers(2).build().unwrap();
        let most_open = rt.block_on(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let mut clients = std::process::Command::new(std::env::current_exe().unwrap())
                .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
                .env("GNET_LIMITS_CHILD", CLIENT)
                .env(ADDR_VAR, addr.to_string())
                .spawn()
                .unwrap();
            let open = Arc::new(AtomicUsize::new(0));
            let most_open = Arc::new(AtomicUsize::new(0));
            let served = gsync::WaitGroup::new();
            for _ in 0..CONNECTIONS {
                let (mut conn, _) = listener.accept().unwrap();
                let (open, most_open) = (Arc::clone(&open), Arc::clone(&most_open));
                let served = served.clone();
                served.add(1);
                Builder::new()
                    .round_robin()
                    .spawn(move || {
                        most_open
                            .fetch_max(open.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                        let mut buf = [0; 8];
                        while conn.read_exact(&mut buf).is_ok() {
                            conn.write_all(&buf).unwrap();
                        }
                        open.fetch_sub(1, Ordering::SeqCst);
                        served.done();
                    })
                    .unwrap();
            }
            served.wait();
            assert!(gsched::blocking(|| clients.wait()).unwrap().success());
            most_open.load(Ordering::SeqCst)
        });
        assert_eq!(
            most_open, CONNECTIONS,
            "not every connection was open at once"
        );
        println!("served {most_open} connections at once");
        return;
    }
    within(Duration::from_secs(120), || {
        let output = CHILD.run(NAME).limit(Duration::from_secs(110)).output();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{output:?}");
        assert!(
            stdout.contains("served 10000 connections at once") || stdout.contains("skipped:"),
            "{stdout}"
        );
    });
}

/// Out of descriptors, `accept` returns the error, and a loop that retries at once does not
/// spin: the next calls wait first.
#[test]
fn an_accept_loop_out_of_descriptors_gets_the_error_and_does_not_spin() {
    const NAME: &str = "an_accept_loop_out_of_descriptors_gets_the_error_and_does_not_spin";
    if CHILD.is_child(NAME) {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let (errors, kind) = rt.block_on(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            // The client connects from a plain thread: the connection waits in the backlog.
            let client = std::net::TcpStream::connect(addr).unwrap();
            // Use up every descriptor left.
            let mut hoard = Vec::new();
            lower_fd_limit(256);
            while let Ok(file) = std::fs::File::open("/dev/null") {
                hoard.push(file);
            }
            let mut errors = 0;
            let mut kind = None;
            let started = Instant::now();
            while started.elapsed() < Duration::from_millis(300) {
                match listener.accept() {
                    Ok(_) => panic!("accepted without a descriptor"),
                    Err(err) => {
                        assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err}");
                        kind = Some(err.kind());
                        errors += 1;
                    }
                }
            }
            // Descriptors again: the queued connection is accepted.
            hoard.clear();
            let (conn, _) = listener.accept().unwrap();
            drop((conn, client));
            (errors, kind)
        });
        assert!(kind.is_some());
        // 5 + 10 + 20 + 40 + 80 + 160 ms of waits fit in 300 ms: a handful of tries, not
        // the hundreds of thousands of a spinning loop.
        assert!(errors <= 10, "{errors} accept errors in 300 ms");
        println!("{errors} accept errors");
        return;
    }
    let output = CHILD.run(NAME).output();
    assert!(output.status.success(), "{output:?}");
}

/// Goroutines that open, use and close sockets on both workers while others wait on theirs:
/// registration, wake-up and deregistration racing each other lose no wake-up and deliver
/// none to the wrong socket.
#[test]
fn sockets_registered_woken_and_closed_concurrently_lose_nothing() {
    within(Duration::from_secs(60), || {
        let rt = Runtime::builder().workers(2).build().unwrap();
        rt.block_on(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server = gsched::go(move || {
                for _ in 0..400 {
                    let (conn, _) = listener.accept().unwrap();
                    Builder::new()
                        .round_robin()
                        .spawn(move || {
                            let mut buf = [0; 4];
                            let mut conn = conn;
                            while conn.read_exact(&mut buf).is_ok() {
                                if conn.write_all(&buf).is_err() {
                                    return;
                                }
                            }
                        })
                        .unwrap();
                }
            });
            let clients: Vec<_> = (0..8)
                .map(|client| {
                    Builder::new()
                        .round_robin()
                        .spawn(move || {
                            for round in 0..50u32 {
                                let conn = TcpStream::connect(addr).unwrap();
                                let token = (client << 16 | round).to_le_bytes();
                                let reader = conn.try_clone().unwrap();
                                // Reader and writer on two goroutines, often on two workers.
                                let reading = Builder::new()
                                    .round_robin()
                                    .spawn(move || {
                                        let mut reply = [0; 4];
                                        (&reader).read_exact(&mut reply).map(|()| reply)
                                    })
                                    .unwrap();
                                (&conn).write_all(&token).unwrap();
                                assert_eq!(reading.join().unwrap().unwrap(), token);
                                if round % 3 == 0 {
                                    conn.close();
                                }
                            }
                        })
                        .unwrap()
                })
                .collect();
            for client in clients {
                client.join().unwrap();
            }
            server.join().unwrap();
        });
    });
}
