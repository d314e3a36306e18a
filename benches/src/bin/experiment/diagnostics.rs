//! What the diagnostics cost: a goroutine dump of many parked goroutines, and a park that
//! captures its backtrace against one that does not.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use gsched::Runtime;

use crate::Options;

pub(crate) fn run(options: &Options) -> Result<String, String> {
    match options.text("kind", "dump") {
        "dump" => dump(options),
        "park-backtrace" => park_backtrace(options),
        other => Err(format!("unknown diagnostics kind {other:?}")),
    }
}

/// `n` parked goroutines on 2 workers: the time one `Runtime::dump` takes.
fn dump(options: &Options) -> Result<String, String> {
    let n: usize = options.number("n", 100_000)?;
    let rt = Runtime::builder()
        .workers(2)
        .build()
        .map_err(|err| err.to_string())?;
    let release = Arc::new(AtomicBool::new(false));
    let unparkers = Arc::new(std::sync::Mutex::new(Vec::with_capacity(n)));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (release, unparkers) = (release.clone(), unparkers.clone());
            rt.spawn(move || {
                unparkers
                    .lock()
                    .expect("no panics")
                    .push(gsched::current_unparker());
                while !release.load(Ordering::Acquire) {
                    gsched::park_with_reason("measured");
                }
            })
        })
        .collect();
    while rt
        .metrics()
        .parks
        .iter()
        .map(|(_, count)| count)
        .sum::<u64>()
        < n as u64
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let start = Instant::now();
    let dump = rt.dump();
    let elapsed = start.elapsed();
    let listed = dump.goroutines().len();
    release.store(true, Ordering::Release);
    for unparker in unparkers.lock().expect("no panics").iter() {
        unparker.unpark();
    }
    for handle in handles {
        handle
            .join()
            .map_err(|_| "a goroutine panicked".to_string())?;
    }
    if listed != n {
        return Err(format!("the dump listed {listed} of {n} goroutines"));
    }
    Ok(format!("dump_ms={:.1}", elapsed.as_secs_f64() * 1e3))
}

/// Two goroutines on one worker that park and wake each other `n` times, with and without
/// park backtraces: nanoseconds per park.
fn park_backtrace(options: &Options) -> Result<String, String> {
    let n: u64 = options.number("n", 100_000)?;
    let per_park = |backtraces: bool| -> Result<f64, String> {
        let rt = Runtime::builder()
            .workers(1)
            .park_backtraces(backtraces)
            .build()
            .map_err(|err| err.to_string())?;
        Ok(rt.block_on(move || {
            let (tx, rx) = gsync::chan::<u64>(0);
            let start = Instant::now();
            let sender = gsched::go(move || {
                for i in 0..n {
                    tx.send(i).expect("the receiver waits");
                }
            });
            for _ in 0..n {
                rx.recv().expect("the sender sends n");
            }
            sender.join().expect("the sender does not panic");
            start.elapsed().as_nanos() as f64 / (2 * n) as f64
        }))
    };
    let plain = per_park(false)?;
    let captured = per_park(true)?;
    Ok(format!(
        "ns_per_park={plain:.1} ns_per_park_with_backtrace={captured:.1}"
    ))
}
