//! A port checker on loopback: tries 200 ports, at most 32 at a time, with a WaitGroup for
//! the goroutines and a channel of tokens for the bound, and a timeout per attempt.
//!
//! `cargo run --example port_checker -p gnet`

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gsync::{WaitGroup, chan};

fn main() {
    // A few ports open for the checker to find (plain std listeners: the kernel answers).
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let base = listeners[0]
        .local_addr()
        .unwrap()
        .port()
        .saturating_sub(100)
        .max(1);
    let expected: Vec<u16> = listeners
        .iter()
        .map(|listener| listener.local_addr().unwrap().port())
        .filter(|port| (base..base + 200).contains(port))
        .collect();
    let open = gsched::run(move || {
        let open = Arc::new(Mutex::new(Vec::new()));
        let (tokens_tx, tokens_rx) = chan::<()>(32);
        let wg = WaitGroup::new();
        for port in base..base + 200 {
            // Blocks while 32 checks are in flight.
            tokens_tx.send(()).unwrap();
            let (open, tokens_rx) = (open.clone(), tokens_rx.clone());
            wg.go(move || {
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                if gnet::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    open.lock().unwrap().push(port);
                }
                tokens_rx.recv().unwrap();
            });
        }
        wg.wait();
        let mut open = open.lock().unwrap().clone();
        open.sort_unstable();
        open
    });
    println!("open ports in {base}..{}: {open:?}", base + 200);
    for port in expected {
        assert!(open.contains(&port), "port {port} was open");
    }
    drop(listeners);
}
