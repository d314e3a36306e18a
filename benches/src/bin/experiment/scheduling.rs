//! Scheduling behaviour: where a new partner runs, yielding, a CPU hog beside a ping-pong, and
//! tickers beside a blocking call.

use std::time::{Duration, Instant};

use gsync::{WaitGroup, chan, select};

use crate::{Options, runtime};

pub(crate) fn run(options: &Options) -> Result<String, String> {
    match options.text("kind", "fresh-partner") {
        "fresh-partner" => fresh_partner(options),
        "yield" => yields(options),
        "hog" => hog(options),
        "tickers" => tickers(options),
        other => Err(format!("unknown kind {other:?}")),
    }
}

/// Rounds in which a newly spawned goroutine sends `n` values to the main goroutine over an
/// unbuffered channel: where the new goroutine starts decides whether every message crosses
/// cores. Prints the 90th-percentile and the worst round, per message.
fn fresh_partner(options: &Options) -> Result<String, String> {
    let rounds: usize = options.number("rounds", 30)?;
    let n: u64 = options.number("n", 10_000)?;
    let rt = runtime(options.number("workers", 2)?)?;
    let mut per_message: Vec<f64> = rt.block_on(move || {
        (0..rounds)
            .map(|_| {
                let (tx, rx) = chan::<u64>(0);
                let start = Instant::now();
                let sender = gsched::go(move || {
                    for value in 0..n {
                        tx.send(value)
                            .expect("the main goroutine receives to the end");
                    }
                });
                for _ in 0..n {
                    rx.recv().expect("the sender sends to the end");
                }
                let elapsed = start.elapsed();
                sender.join().expect("the sender does not panic");
                elapsed.as_nanos() as f64 / n as f64
            })
            .collect()
    });
    per_message.sort_by(f64::total_cmp);
    let p90 = per_message[(per_message.len() * 9).div_ceil(10).saturating_sub(1)];
    let worst = per_message[per_message.len() - 1];
    Ok(format!("p90_ns_per_op={p90:.2} worst_ns_per_op={worst:.2}"))
}

/// Two goroutines on one worker take turns through `yield_now`: time per yield.
fn yields(options: &Options) -> Result<String, String> {
    let n: u64 = options.number("n", 1_000_000)?;
    let rt = runtime(1)?;
    let elapsed = rt.block_on(move || {
        let wg = WaitGroup::new();
        let start = Instant::now();
        for _ in 0..2 {
            wg.go(move || {
                for _ in 0..n {
                    gsched::yield_now();
                }
            });
        }
        wg.wait();
        start.elapsed()
    });
    Ok(format!(
        "ns_per_op={:.2}",
        elapsed.as_nanos() as f64 / (2 * n) as f64
    ))
}

/// Go's runtime `BenchmarkPingPongHog` on one worker: a goroutine spins on `select!` with
/// `default` while two others ping-pong `n` times. Time per round trip.
fn hog(options: &Options) -> Result<String, String> {
    let n: u64 = options.number("n", 100_000)?;
    let rt = runtime(1)?;
    let elapsed = rt.block_on(move || {
        let (stop_tx, stop) = chan::<()>(0);
        let (done_tx, done) = chan::<()>(3);
        let (hog_stop, hog_done) = (stop.clone(), done_tx.clone());
        gsched::go(move || {
            loop {
                select! {
                    recv(hog_stop) -> _closed => {
                        hog_done.send(()).expect("main waits for the hog");
                        return;
                    }
                    default => {}
                }
            }
        });
        let (ping_tx, ping) = chan::<bool>(0);
        let (pong_tx, pong) = chan::<bool>(0);
        let (ponger_ping, ponger_done) = (ping.clone(), done_tx.clone());
        gsched::go(move || {
            for _ in 0..n {
                let value = ponger_ping.recv().expect("the pinger runs to the end");
                pong_tx.send(value).expect("the pinger runs to the end");
            }
            stop_tx.close();
            ponger_done.send(()).expect("main waits for the ponger");
        });
        let pinger_ping = ping_tx.clone();
        gsched::go(move || {
            for _ in 0..n {
                let value = pong.recv().expect("the ponger runs to the end");
                pinger_ping.send(value).expect("main takes the last value");
            }
            done_tx.send(()).expect("main waits for the pinger");
        });
        let start = Instant::now();
        ping_tx.send(true).expect("the ponger starts");
        // Closed when the ponger is done.
        let _ = stop.recv_timeout(Duration::from_secs(600));
        let elapsed = start.elapsed();
        // Lets the last pinger send return.
        ping.recv_timeout(Duration::from_secs(600)).ok()?;
        for _ in 0..3 {
            done.recv_timeout(Duration::from_secs(600)).ok()?;
        }
        Some(elapsed)
    });
    let elapsed = elapsed.ok_or("the ping-pong starved behind the hog")?;
    Ok(format!(
        "ns_per_op={:.2}",
        elapsed.as_nanos() as f64 / n as f64
    ))
}

/// Eleven goroutines tick every 10 ms on one worker for `rounds` ticks, beside a goroutine on
/// the same worker that makes `--blocker` calls of 200 ms: `none`, `blocking` (through
/// `gsched::blocking`) or `raw` (`std::thread::sleep` on the worker). Prints the 99th-percentile
/// lateness of the ticks.
fn tickers(options: &Options) -> Result<String, String> {
    const TICKERS: usize = 11;
    const PERIOD: Duration = Duration::from_millis(10);
    const BLOCK: Duration = Duration::from_millis(200);
    let rounds: usize = options.number("rounds", 100)?;
    let blocker = options.text("blocker", "none").to_string();
    if !matches!(blocker.as_str(), "none" | "blocking" | "raw") {
        return Err(format!("unknown blocker {blocker:?}"));
    }
    let rt = runtime(2)?;
    let mut lateness: Vec<Duration> = rt.block_on(move || {
        // Everything here starts on the main goroutine's worker and stays there.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let blocker = {
            let stop = std::sync::Arc::clone(&stop);
            gsched::Builder::new()
                .same_worker()
                .spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        match blocker.as_str() {
                            "blocking" => gsched::blocking(|| std::thread::sleep(BLOCK)),
                            "raw" => std::thread::sleep(BLOCK),
                            _ => return,
                        }
                        gsched::sleep(PERIOD);
                    }
                })
                .expect("the default stack fits")
        };
        let tickers: Vec<_> = (0..TICKERS)
            .map(|_| {
                gsched::Builder::new()
                    .same_worker()
                    .spawn(move || {
                        let mut due = Instant::now() + PERIOD;
                        (0..rounds)
                            .map(|_| {
                                gsched::sleep_until(due);
                                let late = Instant::now().saturating_duration_since(due);
                                due += PERIOD;
                                late
                            })
                            .collect::<Vec<_>>()
                    })
                    .expect("the default stack fits")
            })
            .collect();
        let lateness = tickers
            .into_iter()
            .flat_map(|ticker| ticker.join().expect("a ticker does not panic"))
            .collect();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        blocker.join().expect("the blocker does not panic");
        lateness
    });
    lateness.sort();
    let p99 = lateness[(lateness.len() * 99).div_ceil(100).saturating_sub(1)];
    Ok(format!("p99_late_us={:.1}", p99.as_secs_f64() * 1e6))
}
