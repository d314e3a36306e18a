//! Spawn and join.

use std::time::Instant;

use gsync::WaitGroup;

use crate::{Options, runtime};

/// Spawn and join: `n` goroutines that each call `done` on a WaitGroup and end, then wait.
pub(crate) fn run(options: &Options) -> Result<String, String> {
    let n: usize = options.number("n", 1_000_000)?;
    // One `add` for all, before the first spawn, as the Go twin and the seed do (`wg.Add(n)`):
    // an `add` per goroutine would time a counter shared with every worker's `done` as well.
    let count = i32::try_from(n).map_err(|_| format!("--n {n} is more than a WaitGroup counts"))?;
    let elapsed = match options.text("kind", "goroutines") {
        "goroutines" => {
            let rt = runtime(options.number("workers", gsched::available_cpus())?)?;
            rt.block_on(move || {
                // A `'static` WaitGroup, as Go's goroutines share a pointer to one (see
                // `locks.rs`).
                let wg: &'static WaitGroup = Box::leak(Box::new(WaitGroup::new()));
                let start = Instant::now();
                wg.add(count);
                for _ in 0..n {
                    drop(gsched::go(move || wg.done()));
                }
                wg.wait();
                start.elapsed()
            })
        }
        "threads" => {
            let wg = WaitGroup::new();
            let start = Instant::now();
            wg.add(count);
            for _ in 0..n {
                let wg = wg.clone();
                drop(std::thread::spawn(move || wg.done()));
            }
            wg.wait();
            start.elapsed()
        }
        other => return Err(format!("unknown kind {other:?}")),
    };
    Ok(format!(
        "ns_per_goroutine={:.2}",
        elapsed.as_nanos() as f64 / n as f64
    ))
}
