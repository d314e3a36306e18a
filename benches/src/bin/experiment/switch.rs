//! Context switches: OS threads, the raw coroutine switch, goroutines over a channel.

use std::time::Instant;

use gsync::{WaitGroup, chan};

use crate::{Options, runtime};

/// Context switches: OS threads pinned to one CPU over pipes, the raw coroutine switch, and
/// goroutines over an unbuffered channel (the seed's BenchmarkContextSwitch).
pub(crate) fn run(options: &Options) -> Result<String, String> {
    let n: u64 = options.number("n", 1_000_000)?;
    match options.text("kind", "goroutines") {
        "threads" => threads_over_pipes(n),
        "ctxswitch" => {
            let mut coroutine = ctxswitch::Coroutine::<u64, u64, ()>::new(|yielder, mut value| {
                loop {
                    value = yielder.suspend(value + 1);
                }
            });
            // `skip`: the switch leaves the floating-point control alone, as gsched's does.
            match options.text("fp-control", "save") {
                "save" => {}
                // SAFETY: neither side changes its floating-point control state.
                "skip" => unsafe { coroutine.skip_fp_control() },
                other => return Err(format!("fp-control {other:?} is save or skip")),
            }
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
            // `apart`: the sender starts on another worker than the receiver, so that every
            // message wakes a goroutine of the other worker (the remote wake path).
            let apart = match options.text("placement", "near") {
                "near" => false,
                "apart" if workers > 1 => true,
                other => {
                    return Err(format!(
                        "placement {other:?} is near, or apart on 2+ workers"
                    ));
                }
            };
            let rt = runtime(workers)?;
            let elapsed = rt.block_on(move || {
                let (tx, rx) = chan::<()>(0);
                let (begin_tx, begin) = chan::<()>(0);
                let wg = WaitGroup::new();
                let begin_sender = begin.clone();
                let sender = move || {
                    let _ = begin_sender.recv();
                    for _ in 0..n {
                        tx.send(()).expect("the receiver runs to the end");
                    }
                };
                let spread = if apart {
                    let done = wg.clone();
                    done.add(1);
                    Some(
                        gsched::Builder::new()
                            .spread()
                            .spawn(move || {
                                sender();
                                done.done();
                            })
                            .expect("the sender spawns"),
                    )
                } else {
                    wg.go(sender);
                    None
                };
                wg.go(move || {
                    let _ = begin.recv();
                    for _ in 0..n {
                        rx.recv().expect("the sender runs to the end");
                    }
                });
                let start = Instant::now();
                drop(begin_tx);
                wg.wait();
                let elapsed = start.elapsed();
                if let Some(sender) = spread {
                    sender.join().expect("the sender does not panic");
                }
                elapsed
            });
            Ok(format!(
                "ns_per_op={:.2}",
                elapsed.as_nanos() as f64 / n as f64
            ))
        }
        // A plain thread and a goroutine answering it over unbuffered channels: each round trip
        // parks the thread once, so it shows what parking a thread costs beside a goroutine.
        "thread-goroutine" => {
            let rt = runtime(options.number("workers", 1)?)?;
            let (ping, pings) = chan::<u64>(0);
            let (pong, pongs) = chan::<u64>(0);
            let answerer = rt.spawn(move || {
                for value in pings {
                    if pong.send(value + 1).is_err() {
                        break;
                    }
                }
            });
            let start = Instant::now();
            let mut value = 0;
            for _ in 0..n {
                ping.send(value).map_err(|_| "the goroutine stopped")?;
                value = pongs.recv().map_err(|_| "the goroutine stopped")?;
            }
            let elapsed = start.elapsed();
            drop(ping);
            answerer
                .join()
                .map_err(|_| "the goroutine panicked".to_string())?;
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
