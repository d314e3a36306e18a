//! The seed's closure programs. A goroutine that changes a captured variable needs shared,
//! synchronised access in Rust (an `Arc<Mutex<_>>`): the data race of the Go version cannot
//! compile. Loop variables are moved into each goroutine, so the pre-Go-1.22 bug of every
//! goroutine printing "good day" cannot happen either.

use std::sync::{Arc, Mutex};

use gsched::go;

fn main() {
    let salutation = Arc::new(Mutex::new("hello"));
    let shared = Arc::clone(&salutation);
    go(move || *shared.lock().unwrap() = "welcome")
        .join()
        .unwrap();
    println!("{}", salutation.lock().unwrap());

    let handles: Vec<_> = ["hello", "greetings", "good day"]
        .into_iter()
        .map(|salutation| go(move || println!("{salutation}")))
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
}
