//! The seed's Mutex vs RWMutex program, ported line for line: a producer that locks and unlocks
//! five times with a short sleep between, and `count` observers that each lock and unlock once
//! through a `Locker`; the read view of an `RwMutex` lets observers share the lock.
//!
//! `cargo run --release -p goroutines-sync --example mutex_vs_rwmutex`

use std::time::{Duration, Instant};

use gsync::{Locker, Mutex, RwMutex, WaitGroup};

type SharedLocker = &'static (dyn Locker + Sync);

fn producer(wg: &WaitGroup, l: SharedLocker) {
    for _ in 0..5 {
        l.lock();
        l.unlock();
        gsched::sleep(Duration::from_nanos(1));
    }
    wg.done();
}

fn observer(wg: &WaitGroup, l: SharedLocker) {
    l.lock();
    l.unlock();
    wg.done();
}

fn test(count: usize, mutex: SharedLocker, rw_mutex: SharedLocker) -> Duration {
    // Go's goroutines share pointers; `'static` references to leaked values are the same here.
    let wg: &'static WaitGroup = Box::leak(Box::new(WaitGroup::new()));
    wg.add(count as i32 + 1);
    let start = Instant::now();
    drop(gsched::go(move || producer(wg, mutex)));
    for _ in 0..count {
        drop(gsched::go(move || observer(wg, rw_mutex)));
    }
    wg.wait();
    start.elapsed()
}

fn main() {
    gsched::run(|| {
        let rw: &'static RwMutex<()> = Box::leak(Box::new(RwMutex::new(())));
        let mutex: &'static Mutex<()> = Box::leak(Box::new(Mutex::new(())));
        let readers: &'static _ = Box::leak(Box::new(rw.rlocker()));
        println!("| Readers | RWMutex | Mutex |");
        println!("| ---: | ---: | ---: |");
        for exponent in [0, 1, 2, 6, 10, 13, 16] {
            let count = 1usize << exponent;
            println!(
                "| {count} | {:?} | {:?} |",
                test(count, rw, readers),
                test(count, mutex, mutex)
            );
        }
    });
}
