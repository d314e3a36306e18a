//! The seed's greeters: five goroutines, each says hello with its id, all joined. The order of
//! the lines varies from run to run, as in Go.

use gsched::go;

fn hello(id: usize) {
    println!("Hello from {id}!");
}

fn main() {
    const NUM_GREETERS: usize = 5;
    let greeters: Vec<_> = (1..=NUM_GREETERS).map(|id| go(move || hello(id))).collect();
    for greeter in greeters {
        greeter.join().unwrap();
    }

    // The seed's sleepers: both sleep concurrently, so this takes about 2 s, not 3.
    let first = go(|| {
        println!("1st goroutine sleeping...");
        gsched::sleep(std::time::Duration::from_secs(1));
    });
    let second = go(|| {
        println!("2nd goroutine sleeping...");
        gsched::sleep(std::time::Duration::from_secs(2));
    });
    first.join().unwrap();
    second.join().unwrap();
    println!("All goroutines complete.");
}
