//! An echo server, one goroutine per connection, and clients that talk to it.
//!
//! `cargo run --example echo -p gnet [-- ADDRESS]`: with an address (`127.0.0.1:7000`) it
//! serves there until stopped (try `nc 127.0.0.1 7000`); without one it serves on a free port,
//! runs 100 clients of 100 round trips each, and exits.

use std::io::{self, Read, Write};
use std::time::Instant;

use gnet::{TcpListener, TcpStream};

fn serve(mut conn: TcpStream) -> io::Result<()> {
    let mut buf = [0; 4096];
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        conn.write_all(&buf[..n])?;
    }
}

fn main() {
    let address = std::env::args().nth(1);
    gsched::run(move || {
        let listener = TcpListener::bind(address.as_deref().unwrap_or("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        println!("echo server on {addr}");
        let server = gsched::go(move || {
            for conn in listener.incoming() {
                match conn {
                    // Each connection on a goroutine of its own, the workers taking turns.
                    Ok(conn) => {
                        gsched::Builder::new()
                            .round_robin()
                            .spawn(move || {
                                if let Err(err) = serve(conn) {
                                    eprintln!("connection ended: {err}");
                                }
                            })
                            .unwrap();
                    }
                    Err(err) => eprintln!("accept: {err}"),
                }
            }
        });
        if address.is_some() {
            server.join().unwrap();
            return;
        }
        let started = Instant::now();
        let clients: Vec<_> = (0..100)
            .map(|client| {
                gsched::go(move || {
                    let mut conn = TcpStream::connect(addr).unwrap();
                    conn.set_nodelay(true).unwrap();
                    let message = format!("hello from client {client}");
                    let mut reply = vec![0; message.len()];
                    for _ in 0..100 {
                        conn.write_all(message.as_bytes()).unwrap();
                        conn.read_exact(&mut reply).unwrap();
                        assert_eq!(reply, message.as_bytes());
                    }
                })
            })
            .collect();
        for client in clients {
            client.join().unwrap();
        }
        println!(
            "100 clients x 100 round trips in {:.1} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
    });
}
