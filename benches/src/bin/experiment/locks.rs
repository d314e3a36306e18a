//! The seed's Mutex vs RWMutex program.

use std::time::{Duration, Instant};

use gsync::{Locker, Mutex, RwMutex, WaitGroup};

use crate::{Options, runtime};

/// The seed's Mutex vs RWMutex program, line for line: a producer locks and unlocks five times,
/// sleeping 1 ns between; `count` observer goroutines each lock and unlock once through a
/// `Locker`.
pub(crate) fn run(options: &Options) -> Result<String, String> {
    let count: usize = options.number("n", 1)?;
    let kind = options.text("kind", "mutex").to_string();
    let rt = runtime(gsched::available_cpus())?;
    // Go's closures capture pointers to the locks and the WaitGroup; the equivalent here is a
    // `'static` reference to a leaked value (this process runs one experiment and exits), which
    // costs no reference counting per goroutine, as in Go.
    type SharedLocker = &'static (dyn Locker + Sync);
    let elapsed = rt.block_on(move || {
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
        if kind == "rwmutex" {
            let m: &'static RwMutex<()> = Box::leak(Box::new(RwMutex::new(())));
            test(count, m, Box::leak(Box::new(m.rlocker())))
        } else {
            let m: &'static Mutex<()> = Box::leak(Box::new(Mutex::new(())));
            test(count, m, m)
        }
    });
    Ok(format!("seconds={:.9}", elapsed.as_secs_f64()))
}
