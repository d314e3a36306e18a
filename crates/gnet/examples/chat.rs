//! A chat server: each connection's goroutine reads lines and hands them to one broadcaster
//! goroutine over a channel, which sends each line to every member's writer goroutine.
//!
//! `cargo run --example chat -p gnet [-- ADDRESS]`: with an address it serves there until
//! stopped (join with `nc 127.0.0.1 7001` from a few terminals); without one, three clients
//! join, each says something, and each reads everything that was said.

use std::io::{BufRead, BufReader, Write};

use gnet::{TcpListener, TcpStream};
use gsync::{Receiver, Sender, chan, select};

/// What the connections tell the broadcaster.
enum Event {
    Joined { id: u64, lines: Sender<String> },
    Said { id: u64, line: String },
    Left { id: u64 },
}

/// Owns the member list: no lock, one goroutine, as Go's chat examples do.
fn broadcaster(events: Receiver<Event>) {
    let mut members: Vec<(u64, Sender<String>)> = Vec::new();
    for event in events {
        match event {
            Event::Joined { id, lines } => members.push((id, lines)),
            Event::Left { id } => members.retain(|(member, _)| *member != id),
            Event::Said { id, line } => {
                let line = format!("{id}: {line}");
                // A member too slow to take the line now loses it rather than stall the room.
                members.retain(|(_, lines)| {
                    select! {
                        send(lines, line.clone()) -> sent => sent.is_ok(),
                        default => true,
                    }
                });
            }
        }
    }
}

fn member(id: u64, conn: TcpStream, events: Sender<Event>) {
    let (lines_tx, lines_rx) = chan::<String>(64);
    events
        .send(Event::Joined {
            id,
            lines: lines_tx,
        })
        .unwrap();
    let writer = conn.try_clone().unwrap();
    let writing = gsched::go(move || {
        for line in lines_rx {
            if writeln!(&writer, "{line}").is_err() {
                return;
            }
        }
    });
    for line in BufReader::new(&conn).lines() {
        let Ok(line) = line else { break };
        events.send(Event::Said { id, line }).unwrap();
    }
    events.send(Event::Left { id }).unwrap();
    writing.join().unwrap();
}

fn main() {
    let address = std::env::args().nth(1);
    gsched::run(move || {
        let listener = TcpListener::bind(address.as_deref().unwrap_or("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        println!("chat server on {addr}");
        let (events_tx, events_rx) = chan(256);
        gsched::go(move || broadcaster(events_rx));
        let server = gsched::go(move || {
            for (id, conn) in (1..).zip(listener.incoming()) {
                let Ok(conn) = conn else { continue };
                let events = events_tx.clone();
                gsched::Builder::new()
                    .round_robin()
                    .spawn(move || member(id, conn, events))
                    .unwrap();
            }
        });
        if address.is_some() {
            server.join().unwrap();
            return;
        }
        let clients: Vec<_> = (0..3)
            .map(|_| {
                let conn = TcpStream::connect(addr).unwrap();
                BufReader::new(conn)
            })
            .collect();
        // Everyone has joined once each connection's goroutine has registered: say hello only
        // then, and read three lines each.
        gsched::sleep(std::time::Duration::from_millis(50));
        for (n, client) in clients.iter().enumerate() {
            writeln!(client.get_ref(), "hello, I am client {n}").unwrap();
        }
        for (n, mut client) in clients.into_iter().enumerate() {
            for _ in 0..3 {
                let mut line = String::new();
                client.read_line(&mut line).unwrap();
                print!("client {n} heard {line}");
            }
        }
    });
}
