//! The seed's memory program: resident memory per parked goroutine (or thread).

use std::sync::Arc;

use benches::{page_table_bytes, resident_bytes};
use gsync::{WaitGroup, chan};

use crate::{Options, runtime};

/// The smallest dense slot: ctxswitch's minimum stack, its guard word and a page to spare.
const DENSE_SLOT: usize = 20 * 1024;

/// Dense stacks beyond the `n` parked goroutines: the main goroutine's, with room to spare.
const DENSE_SPARE: usize = 64;

/// Stack bytes each goroutine of the burst touches.
const BURST_DEPTH: usize = 8 * 1024;

/// `n` goroutines (or threads) that each signal a WaitGroup and block on a channel receive;
/// resident memory and page tables before and after, divided by `n`. The `burst` policy instead
/// runs `n` goroutines to the end and reports what stays resident after them.
pub(crate) fn run(options: &Options) -> Result<String, String> {
    let n: usize = options.number("n", 10_000)?;
    let policy = options.text("policy", "guarded");
    let workers = gsched::available_cpus();
    match policy {
        "burst" => burst(n, workers),
        "threads" => {
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let rx = Arc::new(std::sync::Mutex::new(rx));
            let wg = WaitGroup::new();
            let before = Reading::now()?;
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
            let after = Reading::now();
            drop(tx);
            for thread in threads {
                let _ = thread.join();
            }
            Ok(after?.per_goroutine_since(&before, n))
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
                        "skipped: {n} parked goroutines need {n} guarded stacks, and this kernel \
                         (no guard regions, vm.max_map_count = {}) allows {budget}",
                        gstack::max_map_count()
                    ));
                }
                let stack_size: usize = options.number("stack-size", 0)?;
                let builder = gsched::Runtime::builder().workers(workers);
                let builder = if stack_size > 0 {
                    builder.stack_size(stack_size)
                } else {
                    builder
                };
                builder.build().map_err(|err| err.to_string())?
            };
            let per = rt.block_on(move || {
                let (tx, rx) = chan::<()>(0);
                let wg = WaitGroup::new();
                let before = Reading::now()?;
                for _ in 0..n {
                    let (wg, rx) = (wg.clone(), rx.clone());
                    wg.add(1);
                    drop(gsched::go(move || {
                        wg.done();
                        let _ = rx.recv();
                    }));
                }
                wg.wait();
                let after = Reading::now();
                drop(tx);
                Ok::<_, String>(after?.per_goroutine_since(&before, n))
            });
            rt.shutdown();
            per
        }
        other => Err(format!("unknown policy {other:?}")),
    }
}

/// Resident memory and page tables at one moment.
struct Reading {
    resident: u64,
    page_tables: u64,
}

impl Reading {
    fn now() -> Result<Reading, String> {
        Ok(Reading {
            resident: resident_bytes()?,
            page_tables: page_table_bytes()?,
        })
    }

    /// The growth since `before`, per goroutine: in all, resident, and in page tables.
    fn per_goroutine_since(&self, before: &Reading, n: usize) -> String {
        let per = |after: u64, before: u64| after.saturating_sub(before) as f64 / n as f64;
        let resident = per(self.resident, before.resident);
        let page_tables = per(self.page_tables, before.page_tables);
        format!(
            "bytes_per_goroutine={:.1} resident_per_goroutine={resident:.1} \
             page_tables_per_goroutine={page_tables:.1}",
            resident + page_tables
        )
    }
}

/// `n` goroutines that each touch `BURST_DEPTH` bytes of stack and end; what stays resident,
/// and in page tables, once they all have and the runtime's idle workers had time to trim.
fn burst(n: usize, workers: usize) -> Result<String, String> {
    #[inline(never)]
    fn touch_stack() -> u8 {
        let frame = std::hint::black_box([1u8; BURST_DEPTH]);
        frame[BURST_DEPTH / 2]
    }
    let rt = runtime(workers)?;
    let (before, peak) = rt.block_on(move || {
        let before = Reading::now()?;
        let wg = WaitGroup::new();
        let (release_tx, release) = chan::<()>(0);
        for _ in 0..n {
            let (wg, release) = (wg.clone(), release.clone());
            wg.add(1);
            drop(gsched::go(move || {
                std::hint::black_box(touch_stack());
                wg.done();
                let _ = release.recv();
            }));
        }
        wg.wait();
        let peak = Reading::now()?;
        drop(release_tx);
        Ok::<_, String>((before, peak))
    })?;
    // Every goroutine ends once the channel closes; the idle workers trim meanwhile.
    let grown = |reading: &Reading| reading.resident.saturating_sub(before.resident);
    // Read until neither has fallen for 2.5 s (at most 8 s): stacks give back their pages as
    // they come back, and their page tables once unused for one to two seconds (the monitor's
    // period).
    let mut after = Reading::now()?;
    let mut steady = 0;
    for _ in 0..400 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let now = Reading::now()?;
        steady = if now.resident < after.resident || now.page_tables < after.page_tables {
            0
        } else {
            steady + 1
        };
        after = now;
        if steady == 125 {
            break;
        }
    }
    rt.shutdown();
    Ok(format!(
        "peak_bytes={} after_burst_resident_bytes={} after_burst_page_table_bytes={}",
        grown(&peak) + peak.page_tables.saturating_sub(before.page_tables),
        grown(&after),
        after.page_tables.saturating_sub(before.page_tables)
    ))
}
