//! The seed's memory program: resident memory per parked goroutine (or thread).

use std::sync::Arc;

use benches::resident_bytes;
use gsync::{WaitGroup, chan};

use crate::{Options, runtime};

/// The smallest dense slot: ctxswitch's minimum stack, its guard word and a page to spare.
const DENSE_SLOT: usize = 20 * 1024;

/// Dense stacks beyond the `n` parked goroutines: the main goroutine's, with room to spare.
const DENSE_SPARE: usize = 64;

/// `n` goroutines (or threads) that each signal a WaitGroup and block on a channel receive;
/// resident memory before and after, divided by `n`.
pub(crate) fn run(options: &Options) -> Result<String, String> {
    let n: usize = options.number("n", 10_000)?;
    let policy = options.text("policy", "guarded");
    let workers = gsched::available_cpus();
    match policy {
        "threads" => {
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let rx = Arc::new(std::sync::Mutex::new(rx));
            let wg = WaitGroup::new();
            let before = resident_bytes()?;
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
                (after? - before) as f64 / n as f64
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
                let before = resident_bytes()?;
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
                Ok::<_, String>((after? - before) as f64 / n as f64)
            });
            rt.shutdown();
            Ok(format!("bytes_per_goroutine={:.1}", per?))
        }
        other => Err(format!("unknown policy {other:?}")),
    }
}
