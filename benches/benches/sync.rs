//! gsync's primitives against their peers in one run: an uncontended lock against
//! parking_lot's and std's, and unbuffered-channel ping-pong between two goroutines on one
//! worker (Go's BenchmarkContextSwitch) against tokio's and may's channels, and `select!`
//! against the run-time `Select` builder.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

fn uncontended_lock(c: &mut Criterion) {
    let mut group = c.benchmark_group("uncontended lock+unlock");
    let ours = gsync::Mutex::new(0u64);
    group.bench_function("gsync::Mutex", |b| {
        b.iter(|| *black_box(&ours).lock() += 1);
    });
    let parking_lot = parking_lot::Mutex::new(0u64);
    group.bench_function("parking_lot::Mutex", |b| {
        b.iter(|| *black_box(&parking_lot).lock() += 1);
    });
    let std = std::sync::Mutex::new(0u64);
    group.bench_function("std::sync::Mutex", |b| {
        b.iter(|| *black_box(&std).lock().unwrap() += 1);
    });
    let rw = gsync::RwMutex::new(0u64);
    group.bench_function("gsync::RwMutex read", |b| {
        b.iter(|| *black_box(&rw).read());
    });
    group.bench_function("gsync::RwMutex write", |b| {
        b.iter(|| *black_box(&rw).write() += 1);
    });
    group.finish();
}

/// Go's BenchmarkContextSwitch: one goroutine sends `ops` empty values on an unbuffered
/// channel, another receives them, both on one worker. Time per op.
fn ping_pong(c: &mut Criterion) {
    let mut group = c.benchmark_group("unbuffered channel ping-pong, 1 worker");
    group.measurement_time(Duration::from_secs(3));
    let rt = gsched::Runtime::builder()
        .workers(1)
        .build()
        .expect("runtime");
    group.bench_function("gsync::chan(0)", |b| {
        b.iter_custom(|ops| {
            rt.block_on(move || {
                let (tx, rx) = gsync::chan::<()>(0);
                let start = Instant::now();
                let sender = gsched::go(move || {
                    for _ in 0..ops {
                        tx.send(()).expect("receiver alive");
                    }
                });
                for _ in 0..ops {
                    rx.recv().expect("sender alive");
                }
                sender.join().expect("sender");
                start.elapsed()
            })
        });
    });

    let tokio_single = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio");
    group.bench_function("tokio current-thread, mpsc::channel(1)", |b| {
        b.iter_custom(|ops| {
            tokio_single.block_on(async move {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
                let start = Instant::now();
                let sender = tokio::spawn(async move {
                    for _ in 0..ops {
                        tx.send(()).await.expect("receiver alive");
                    }
                });
                for _ in 0..ops {
                    rx.recv().await.expect("sender alive");
                }
                sender.await.expect("sender");
                start.elapsed()
            })
        });
    });

    // may's configuration is process-wide; this bench binary runs it with one worker.
    may::config().set_workers(1);
    group.bench_function("may 1 worker, sync::mpsc", |b| {
        b.iter_custom(|ops| {
            let (tx, rx) = may::sync::mpsc::channel::<()>();
            let (done_tx, done_rx) = may::sync::mpsc::channel::<Duration>();
            // SAFETY: the coroutines use no thread-local state and block only on may's
            // channels, as may's spawn contract asks.
            unsafe {
                may::coroutine::spawn(move || {
                    let start = Instant::now();
                    let sender = may::coroutine::spawn(move || {
                        for _ in 0..ops {
                            tx.send(()).expect("receiver alive");
                        }
                    });
                    for _ in 0..ops {
                        rx.recv().expect("sender alive");
                    }
                    sender.join().expect("sender");
                    done_tx.send(start.elapsed()).expect("bench waits");
                });
            }
            done_rx.recv().expect("coroutine reports")
        });
    });
    group.finish();
}

/// A two-case select with one case ready: `select!` against the run-time `Select` builder.
fn select_two_cases(c: &mut Criterion) {
    let mut group = c.benchmark_group("select, 2 cases, one ready");
    let (ready_tx, ready) = gsync::chan::<u64>(1);
    let (_idle_tx, idle) = gsync::chan::<u64>(1);
    group.bench_function("select!", |b| {
        b.iter(|| {
            ready_tx.send(1).expect("room for one");
            gsync::select! {
                recv(idle) -> value => black_box(value),
                recv(ready) -> value => black_box(value),
            }
        });
    });
    group.bench_function("gsync::Select", |b| {
        b.iter(|| {
            ready_tx.send(1).expect("room for one");
            let mut select = gsync::Select::new();
            select.recv(&idle);
            let op = select.recv(&ready);
            let selected = select.select();
            black_box(selected.recv(op))
        });
    });
    group.finish();
}

criterion_group!(benches, uncontended_lock, ping_pong, select_two_cases);
criterion_main!(benches);
