//! Go's channel idioms: a pipeline of goroutines over unbuffered channels, closing a channel to
//! end a `for range` loop, and `select!` with a timeout.
//!
//! `cargo run -p goroutines-sync --example channels`

use std::time::Duration;

use gsync::{Receiver, chan, select};

/// Sends 1..=n, then closes the channel by dropping the sender.
fn generate(n: u64) -> Receiver<u64> {
    let (tx, rx) = chan(0);
    gsched::go(move || {
        for i in 1..=n {
            tx.send(i).expect("the consumer reads to the end");
        }
    });
    rx
}

/// Squares whatever arrives, until its input closes.
fn square(input: Receiver<u64>) -> Receiver<u64> {
    let (tx, rx) = chan(0);
    gsched::go(move || {
        for value in input {
            tx.send(value * value)
                .expect("the consumer reads to the end");
        }
    });
    rx
}

fn main() {
    gsched::run(|| {
        let sum: u64 = square(generate(10)).iter().sum();
        println!("sum of squares 1..=10: {sum}");

        let (fast_tx, fast) = chan::<&str>(1);
        let (slow_tx, slow) = chan::<&str>(1);
        gsched::go(move || {
            gsched::sleep(Duration::from_millis(1));
            fast_tx.send("fast").unwrap();
        });
        gsched::go(move || {
            gsched::sleep(Duration::from_millis(50));
            slow_tx.send("slow").unwrap();
        });
        // Whichever is ready first.
        select! {
            recv(fast) -> message => println!("received {}", message.unwrap()),
            recv(slow) -> message => println!("received {}", message.unwrap()),
        }
        // The slow one takes 50 ms: wait 20 at most.
        select! {
            recv(slow) -> message => println!("received {}", message.unwrap()),
            timeout(Duration::from_millis(20)) => println!("timed out waiting for the slow one"),
        }
        // Its sender has finished and dropped its end: the value is still there, then the
        // channel reads as closed.
        println!("received {}", slow.recv().unwrap());
        assert!(slow.recv().is_err());
    });
}
