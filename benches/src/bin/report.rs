//! The measurement programs behind `cargo xtask bench`: one experiment per run, in a process of
//! its own (so resident memory and runtimes start clean), printing one line of `key=value`
//! results. `benches/go` holds Go twins that print the same keys.
//!
//! ```text
//! report memory  --n N --policy guarded|dense|threads
//! report switch  --n N --kind threads|ctxswitch|goroutines --workers W
//! report locks   --n COUNT --kind mutex|rwmutex
//! report uncontended --n OPS --kind gsync|parking_lot|std
//! report spawn   --n N --kind goroutines|threads
//! report amdahl  --serial S --workers W --work UNITS
//! ```

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gsync::{Locker, Mutex, RwMutex, WaitGroup, chan};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(section) = args.next() else {
        eprintln!("usage: report memory|switch|locks|spawn|amdahl [--key value]...");
        return ExitCode::from(2);
    };
    let options = match Options::parse(args) {
        Ok(options) => options,
        Err(err) => {
            eprintln!("report: {err}");
            return ExitCode::from(2);
        }
    };
    let result = match section.as_str() {
        "memory" => memory(&options),
        "switch" => context_switch(&options),
        "locks" => locks(&options),
        "uncontended" => uncontended(&options),
        "spawn" => spawn(&options),
        "amdahl" => amdahl(&options),
        other => Err(format!("unknown section {other:?}")),
    };
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("report {section}: {err}");
            ExitCode::FAILURE
        }
    }
}

struct Options(HashMap<String, String>);

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut options = HashMap::new();
        while let Some(key) = args.next() {
            let name = key
                .strip_prefix("--")
                .ok_or_else(|| format!("expected --key, found {key:?}"))?;
            let value = args.next().ok_or_else(|| format!("{key} needs a value"))?;
            options.insert(name.to_string(), value);
        }
        Ok(Options(options))
    }

    fn text<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.0.get(key).map_or(default, String::as_str)
    }

    fn number<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        match self.0.get(key) {
            None => Ok(default),
            Some(value) => value
                .parse()
                .map_err(|_| format!("--{key}: {value:?} is not a number")),
        }
    }
}

fn runtime(workers: usize) -> Result<gsched::Runtime, String> {
    gsched::Runtime::builder()
        .workers(workers)
        .build()
        .map_err(|err| err.to_string())
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .unwrap_or(0);
    pages * ctxswitch::page_size() as u64
}

/// The smallest dense slot: ctxswitch's minimum stack, its guard word and a page to spare.
const DENSE_SLOT: usize = 20 * 1024;

/// Dense stacks beyond the `n` parked goroutines: the main goroutine's, with room to spare.
const DENSE_SPARE: usize = 64;

/// The seed's memory program: `n` goroutines (or threads) that each signal a WaitGroup and
/// block on a channel receive; resident memory before and after, divided by `n`.
fn memory(options: &Options) -> Result<String, String> {
    let n: usize = options.number("n", 10_000)?;
    let policy = options.text("policy", "guarded");
    let workers = gsched::available_cpus();
    match policy {
        "threads" => {
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let rx = Arc::new(std::sync::Mutex::new(rx));
            let wg = WaitGroup::new();
            let before = resident_bytes();
            let threads: Vec<_> = (0..n)
                .map(|_| {
                    let (wg, rx) = (wg.clone(), Arc::clone(&rx));
                    wg.add(1);
                    std::thread::spawn(move || {
                        wg.done();
                        let _ = rx.lock().map(|rx| rx.recv());
                    })
                })
                .collect();
            wg.wait();
            let after = resident_bytes();
            drop(tx);
            for thread in threads {
                let _ = thread.join();
            }
            Ok(format!(
                "bytes_per_goroutine={:.1}",
                (after - before) as f64 / n as f64
            ))
        }
        "guarded" | "dense" => {
            let rt = if policy == "dense" {
                // SAFETY: each goroutine here blocks in a channel receive a few frames deep,
                // far inside the smallest slot a coroutine accepts.
                unsafe {
                    gsched::Runtime::builder()
                        .workers(workers)
                        .dense_stacks(DENSE_SLOT, n + DENSE_SPARE)
                }
                .build()
                .map_err(|err| err.to_string())?
            } else {
                let budget = gstack::stack_limit();
                if n > budget {
                    return Err(format!(
                        "skipped: {n} parked goroutines need {n} guarded stacks, and \
                         vm.max_map_count = {} allows {budget}",
                        gstack::max_map_count()
                    ));
                }
                runtime(workers)?
            };
            let per = rt.block_on(move || {
                let (tx, rx) = chan::<()>(0);
                let wg = WaitGroup::new();
                let before = resident_bytes();
                for _ in 0..n {
                    let (wg, rx) = (wg.clone(), rx.clone());
                    wg.add(1);
                    drop(gsched::go(move || {
                        wg.done();
                        let _ = rx.recv();
                    }));
                }
                wg.wait();
                let after = resident_bytes();
                drop(tx);
                (after - before) as f64 / n as f64
            });
            rt.shutdown();
            Ok(format!("bytes_per_goroutine={per:.1}"))
        }
        other => Err(format!("unknown policy {other:?}")),
    }
}

/// Context switches: OS threads pinned to one CPU over pipes, the raw coroutine switch, and
/// goroutines over an unbuffered channel (the seed's BenchmarkContextSwitch).
fn context_switch(options: &Options) -> Result<String, String> {
    let n: u64 = options.number("n", 1_000_000)?;
    match options.text("kind", "goroutines") {
        "threads" => threads_over_pipes(n),
        "ctxswitch" => {
            let mut coroutine = ctxswitch::Coroutine::<u64, u64, ()>::new(|yielder, mut value| {
                loop {
                    value = yielder.suspend(value + 1);
                }
            });
            let start = Instant::now();
            let mut value = 0;
            for _ in 0..n {
                if let ctxswitch::CoroutineResult::Yield(next) = coroutine.resume(value) {
                    value = next;
                }
            }
            let elapsed = start.elapsed();
            std::hint::black_box(value);
            Ok(format!(
                "ns_per_switch={:.2}",
                elapsed.as_nanos() as f64 / (2 * n) as f64
            ))
        }
        "goroutines" => {
            let workers: usize = options.number("workers", 1)?;
            let rt = runtime(workers)?;
            let elapsed = rt.block_on(move || {
                let (tx, rx) = chan::<()>(0);
                let (begin_tx, begin) = chan::<()>(0);
                let wg = WaitGroup::new();
                let begin_sender = begin.clone();
                wg.go(move || {
                    let _ = begin_sender.recv();
                    for _ in 0..n {
                        tx.send(()).expect("the receiver runs to the end");
                    }
                });
                wg.go(move || {
                    let _ = begin.recv();
                    for _ in 0..n {
                        rx.recv().expect("the sender runs to the end");
                    }
                });
                let start = Instant::now();
                drop(begin_tx);
                wg.wait();
                start.elapsed()
            });
            Ok(format!(
                "ns_per_op={:.2}",
                elapsed.as_nanos() as f64 / n as f64
            ))
        }
        other => Err(format!("unknown kind {other:?}")),
    }
}

/// Two threads pinned to CPU 0 pass a byte back and forth over two pipes, as
/// `perf bench sched pipe -T` does; each round trip is two context switches.
fn threads_over_pipes(round_trips: u64) -> Result<String, String> {
    fn pipe() -> Result<[libc::c_int; 2], String> {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(format!("pipe: {}", std::io::Error::last_os_error()));
        }
        Ok(fds)
    }
    fn pin_to_cpu0() -> Result<(), String> {
        // SAFETY: a zeroed cpu_set_t is a valid empty set, and CPU_SET writes inside it.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(format!(
                    "sched_setaffinity: {}",
                    std::io::Error::last_os_error()
                ));
            }
        }
        Ok(())
    }
    fn bounce(read: libc::c_int, write: libc::c_int, count: u64, first: bool) {
        let mut byte = [0u8; 1];
        for _ in 0..count {
            // SAFETY: one byte into and out of a one-byte buffer, on descriptors this program
            // owns until both threads are joined.
            unsafe {
                if first {
                    libc::write(write, byte.as_ptr().cast(), 1);
                    libc::read(read, byte.as_mut_ptr().cast(), 1);
                } else {
                    libc::read(read, byte.as_mut_ptr().cast(), 1);
                    libc::write(write, byte.as_ptr().cast(), 1);
                }
            }
        }
    }
    let (there, back) = (pipe()?, pipe()?);
    pin_to_cpu0()?;
    let echo = std::thread::spawn(move || {
        let pinned = pin_to_cpu0();
        bounce(there[0], back[1], round_trips, false);
        pinned
    });
    let start = Instant::now();
    bounce(back[0], there[1], round_trips, true);
    let elapsed = start.elapsed();
    echo.join().map_err(|_| "the echo thread panicked")??;
    for fd in there.into_iter().chain(back) {
        // SAFETY: both threads are done with the descriptors.
        unsafe { libc::close(fd) };
    }
    Ok(format!(
        "ns_per_switch={:.2}",
        elapsed.as_nanos() as f64 / (2 * round_trips) as f64
    ))
}

/// The seed's Mutex vs RWMutex program, line for line: a producer locks and unlocks five times,
/// sleeping 1 ns between; `count` observer goroutines each lock and unlock once through a
/// `Locker`.
fn locks(options: &Options) -> Result<String, String> {
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

/// Uncontended lock and unlock on one thread, ours and the peers': time per pair.
fn uncontended(options: &Options) -> Result<String, String> {
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

/// Spawn and join: `n` goroutines that each call `done` on a WaitGroup and end, then wait.
fn spawn(options: &Options) -> Result<String, String> {
    let n: usize = options.number("n", 1_000_000)?;
    let elapsed = match options.text("kind", "goroutines") {
        "goroutines" => {
            let rt = runtime(options.number("workers", gsched::available_cpus())?)?;
            rt.block_on(move || {
                // A `'static` WaitGroup, as Go's goroutines share a pointer to one (see `locks`).
                let wg: &'static WaitGroup = Box::leak(Box::new(WaitGroup::new()));
                let start = Instant::now();
                for _ in 0..n {
                    wg.add(1);
                    drop(gsched::go(move || wg.done()));
                }
                wg.wait();
                start.elapsed()
            })
        }
        "threads" => {
            let wg = WaitGroup::new();
            let start = Instant::now();
            for _ in 0..n {
                let wg = wg.clone();
                wg.add(1);
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

/// Amdahl's law: `work` units of CPU-bound work, of which the fraction `serial` runs on one
/// goroutine and the rest is split over 1,024 goroutines, on a runtime of `workers` workers.
fn amdahl(options: &Options) -> Result<String, String> {
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
