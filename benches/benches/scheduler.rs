//! The scheduler against tokio and may in one run: spawn and join, yield, wake-up latency, and
//! a CPU-bound fork-join on one worker and on two.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const SPAWNS: u64 = 1_000_000;

fn gsched_runtime(workers: usize) -> gsched::Runtime {
    gsched::Runtime::builder()
        .workers(workers)
        .build()
        .expect("runtime")
}

fn spawn_join(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn+join 1M empty goroutines");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(SPAWNS));
    for workers in [1, 2] {
        let rt = gsched_runtime(workers);
        group.bench_function(format!("gsched, {workers} workers"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(move || {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let handles: Vec<_> = (0..SPAWNS).map(|_| gsched::go(|| {})).collect();
                        for handle in handles {
                            handle.join().expect("goroutine");
                        }
                    }
                    start.elapsed()
                })
            });
        });
    }
    let tokio_multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio");
    let tokio_single = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio");
    for (name, rt) in [
        ("tokio, multi-thread 2", &tokio_multi),
        ("tokio, current-thread", &tokio_single),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let handles: Vec<_> = (0..SPAWNS).map(|_| tokio::spawn(async {})).collect();
                        for handle in handles {
                            handle.await.expect("task");
                        }
                    }
                    start.elapsed()
                })
            });
        });
    }
    may::config().set_workers(2);
    group.bench_function("may, 2 workers", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                // SAFETY: the empty coroutine touches no thread-local state.
                let handles: Vec<_> = (0..SPAWNS)
                    .map(|_| unsafe { may::coroutine::spawn(|| {}) })
                    .collect();
                for handle in handles {
                    handle.join().expect("coroutine");
                }
            }
            start.elapsed()
        });
    });
    group.finish();
}

fn yield_round_trip(c: &mut Criterion) {
    let rt = gsched_runtime(1);
    c.bench_function("yield_now round trip, two goroutines on one worker", |b| {
        b.iter_custom(|iters| {
            rt.block_on(move || {
                let start = Instant::now();
                let other = gsched::go(move || {
                    for _ in 0..iters {
                        gsched::yield_now();
                    }
                });
                for _ in 0..iters {
                    gsched::yield_now();
                }
                other.join().expect("goroutine");
                start.elapsed()
            })
        });
    });
}

/// Ping-pong through park/unpark: each round trip is two wake-ups.
fn wake_latency(c: &mut Criterion) {
    let mut group = c.benchmark_group("wake-to-run, half a park/unpark round trip");
    let rt = gsched_runtime(2);
    group.bench_function("from a goroutine on another worker", |b| {
        b.iter_custom(|iters| rt.block_on(move || ping_pong(iters, true)) / 2);
    });
    group.bench_function("from an outside thread", |b| {
        b.iter_custom(|iters| rt.block_on(move || ping_pong(iters, false)) / 2);
    });
    group.finish();
}

/// Round trips between this goroutine and a partner (a goroutine, or a plain thread).
fn ping_pong(iters: u64, partner_is_goroutine: bool) -> Duration {
    let ping = Arc::new(AtomicBool::new(false));
    let pong = Arc::new(AtomicBool::new(false));
    let me = gsched::current_unparker();
    let (partner_ping, partner_pong) = (Arc::clone(&ping), Arc::clone(&pong));
    let (tx, rx) = std::sync::mpsc::channel();
    let partner = move || {
        tx.send(gsched::current_unparker()).expect("send unparker");
        for _ in 0..iters {
            while !partner_ping.swap(false, Ordering::Acquire) {
                gsched::park();
            }
            partner_pong.store(true, Ordering::Release);
            me.unpark();
        }
    };
    let (goroutine, thread) = if partner_is_goroutine {
        (Some(gsched::go(partner)), None)
    } else {
        (None, Some(std::thread::spawn(partner)))
    };
    let partner_unparker = rx.recv().expect("partner unparker");
    let start = Instant::now();
    for _ in 0..iters {
        ping.store(true, Ordering::Release);
        partner_unparker.unpark();
        while !pong.swap(false, Ordering::Acquire) {
            gsched::park();
        }
    }
    let elapsed = start.elapsed();
    if let Some(goroutine) = goroutine {
        goroutine.join().expect("partner");
    }
    if let Some(thread) = thread {
        thread.join().expect("partner");
    }
    elapsed
}

fn fork_join(c: &mut Criterion) {
    let data: Arc<Vec<u64>> = Arc::new(
        (0..32_000_000u64)
            .map(|x| x.wrapping_mul(2_654_435_761) >> 7)
            .collect(),
    );
    let mut group = c.benchmark_group("fork-join sum of 32M u64 in 1,024 goroutines");
    group.sample_size(10);
    for workers in [1, 2] {
        let rt = gsched_runtime(workers);
        let data = Arc::clone(&data);
        group.bench_function(format!("{workers} workers"), |b| {
            b.iter(|| {
                let data = Arc::clone(&data);
                rt.block_on(move || {
                    let chunk = data.len().div_ceil(1024);
                    let mut parts = vec![0u64; 1024];
                    gsched::scope(|s| {
                        for (part, slice) in parts.iter_mut().zip(data.chunks(chunk)) {
                            s.go(move || {
                                *part = slice
                                    .iter()
                                    .fold(0u64, |a, &x| a.wrapping_add(black_box(x) ^ (a >> 3)))
                            });
                        }
                    });
                    parts.iter().fold(0u64, |a, &x| a.wrapping_add(x))
                })
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = scheduler;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = spawn_join, yield_round_trip, wake_latency, fork_join
}
criterion_main!(scheduler);
