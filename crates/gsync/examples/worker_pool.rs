//! A bounded worker pool with a weighted semaphore: at most 4 units of work run at once,
//! and a big job takes 3 units, so it runs beside at most one small job.
//!
//! `cargo run --example worker_pool -p goroutines-sync`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gsync::{Semaphore, WaitGroup};

fn main() {
    gsched::run(|| {
        let capacity = 4;
        let slots = Arc::new(Semaphore::new(capacity));
        let in_use = Arc::new(AtomicU64::new(0));
        let busiest = Arc::new(AtomicU64::new(0));
        let wg = WaitGroup::new();
        for job in 0..20u64 {
            let weight = if job % 5 == 0 { 3 } else { 1 };
            // Acquire before spawning: the pool never holds more goroutines than it can run.
            slots.acquire(weight);
            let (slots, in_use, busiest) = (slots.clone(), in_use.clone(), busiest.clone());
            wg.go(move || {
                let now = in_use.fetch_add(weight, Ordering::SeqCst) + weight;
                busiest.fetch_max(now, Ordering::SeqCst);
                gsched::sleep(Duration::from_millis(2));
                in_use.fetch_sub(weight, Ordering::SeqCst);
                slots.release(weight);
            });
        }
        wg.wait();
        let busiest = busiest.load(Ordering::SeqCst);
        println!("20 jobs done, at most {busiest} of {capacity} units in use at once");
        assert!(busiest <= capacity);
    });
}
