//! Uncontended lock and unlock, ours and the peers'.

use std::time::Instant;

use gsync::Mutex;

use crate::Options;

/// Uncontended lock and unlock on one thread, ours and the peers': time per pair.
pub(crate) fn run(options: &Options) -> Result<String, String> {
    fn time_per_op(ops: u64, mut lock_unlock: impl FnMut()) -> f64 {
        let start = Instant::now();
        for _ in 0..ops {
            lock_unlock();
        }
        start.elapsed().as_nanos() as f64 / ops as f64
    }
    let ops: u64 = options.number("n", 50_000_000)?;
    let ns = match options.text("kind", "gsync") {
        "gsync" => {
            let mutex = Mutex::new(0u64);
            time_per_op(ops, || *std::hint::black_box(&mutex).lock() += 1)
        }
        "parking_lot" => {
            let mutex = parking_lot::Mutex::new(0u64);
            time_per_op(ops, || *std::hint::black_box(&mutex).lock() += 1)
        }
        "std" => {
            let mutex = std::sync::Mutex::new(0u64);
            time_per_op(ops, || {
                *std::hint::black_box(&mutex)
                    .lock()
                    .unwrap_or_else(|poison| poison.into_inner()) += 1
            })
        }
        other => return Err(format!("unknown kind {other:?}")),
    };
    Ok(format!("ns_per_op={ns:.2}"))
}
