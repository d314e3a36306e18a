//! Amdahl's law: CPU-bound work, part serial, part spread over goroutines.

use std::time::Instant;

use crate::{Options, runtime};

/// Amdahl's law: `work` units of CPU-bound work, of which the fraction `serial` runs on one
/// goroutine and the rest is split over 1,024 goroutines, on a runtime of `workers` workers.
pub(crate) fn run(options: &Options) -> Result<String, String> {
    let serial: f64 = options.number("serial", 0.0)?;
    let workers: usize = options.number("workers", 1)?;
    let work: u64 = options.number("work", 400_000_000)?;
    if !(0.0..=1.0).contains(&serial) {
        return Err(format!("--serial {serial} is not a fraction"));
    }
    let rt = runtime(workers)?;
    let elapsed = rt.block_on(move || {
        let serial_units = (work as f64 * serial) as u64;
        let parallel_units = work - serial_units;
        let start = Instant::now();
        let mut checksum = spin_work(0, serial_units);
        const PIECES: u64 = 1024;
        let piece = parallel_units / PIECES;
        let handles: Vec<_> = (0..PIECES)
            .map(|i| {
                let units = if i == PIECES - 1 {
                    parallel_units - piece * (PIECES - 1)
                } else {
                    piece
                };
                gsched::go(move || spin_work(i, units))
            })
            .collect();
        for handle in handles {
            checksum ^= handle.join().expect("a work piece");
        }
        std::hint::black_box(checksum);
        start.elapsed()
    });
    Ok(format!("seconds={:.6}", elapsed.as_secs_f64()))
}

/// `units` steps of a xorshift generator: pure CPU work the optimizer cannot fold.
fn spin_work(seed: u64, units: u64) -> u64 {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for _ in 0..units {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}
