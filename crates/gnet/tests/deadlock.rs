//! A goroutine parked on a socket is not a deadlock: a peer outside the process may still
//! write. Its own `main`, since the deadlock check stays silent while any thread outside the
//! runtime exists, and the test harness runs threads of its own.

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("peer") {
        // The peer process: connects, waits, writes one byte.
        let addr = args.next().expect("the address to connect to");
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        conn.write_all(b"x").unwrap();
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut peer = Command::new(std::env::current_exe().unwrap())
        .args(["peer", &addr.to_string()])
        .spawn()
        .unwrap();
    let (conn, _) = listener.accept().unwrap();
    drop(listener);
    // Every thread of this process is the runtime's or waits in `block_on`: only the pending socket
    // read keeps the deadlock report silent for the peer's 300 ms.
    let received = gsched::Runtime::builder()
        .workers(1)
        .exit_on_deadlock(true)
        .build()
        .unwrap()
        .block_on(move || {
            let mut conn = gnet::TcpStream::from(conn);
            let mut buf = [0; 1];
            conn.read_exact(&mut buf).map(|()| buf[0])
        });
    assert_eq!(received.unwrap(), b'x');
    assert!(peer.wait().unwrap().success());
    println!("deadlock: a goroutine waiting on a socket is not reported");
}
