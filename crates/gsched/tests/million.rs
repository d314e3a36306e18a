//! A million goroutines parked at once, with the default stack policy under the default
//! `vm.max_map_count`: every stack guarded, a handful of kernel mappings added, and the page
//! tables given back once they have finished. Alone in its binary: it holds about 5 GB of stack
//! pages and page tables, and reads the map count and the page tables' size.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gsched::Runtime;
use gstack::StackBackend;

const GOROUTINES: usize = 1_000_000;

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "release only: a million goroutines take a few seconds in release and far longer \
              unoptimised; `cargo test --release` runs it"
)]
fn a_million_goroutines_park_on_guarded_stacks_and_all_finish() {
    if gstack::stack_backend() != StackBackend::GuardRegions {
        eprintln!(
            "skipping: this kernel has no guard regions (MADV_GUARD_INSTALL, Linux 6.13+), and \
             with a mapping per stack vm.max_map_count = {} allows {} guarded stacks",
            gstack::max_map_count(),
            gstack::map_budget()
        );
        return;
    }
    let maps_before = gstack::process_map_count().unwrap();
    let rt = Runtime::builder().workers(2).build().unwrap();
    let release = Arc::new(AtomicBool::new(false));
    let parked = Arc::new(AtomicUsize::new(0));
    let unparkers = Arc::new(Mutex::new(Vec::with_capacity(GOROUTINES)));
    let started = Instant::now();
    let handles: Vec<_> = (0..GOROUTINES)
        .map(|_| {
            let (release, parked, unparkers) = (release.clone(), parked.clone(), unparkers.clone());
            rt.spawn(move || {
                unparkers.lock().unwrap().push(gsched::current_unparker());
                parked.fetch_add(1, Ordering::Release);
                while !release.load(Ordering::Acquire) {
                    gsched::park_with_reason("a million");
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while parked.load(Ordering::Acquire) < GOROUTINES {
        assert!(
            Instant::now() < deadline,
            "only {} of {GOROUTINES} goroutines started",
            parked.load(Ordering::Acquire)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let all_parked = started.elapsed();
    let maps_during = gstack::process_map_count().unwrap();
    let page_tables_during = page_tables_kib();
    assert!(gsched::num_goroutines() >= GOROUTINES);
    // Guard regions: the stacks add a few reservations, not two mappings each.
    assert!(
        maps_during < maps_before + 1_000,
        "{maps_before} mappings before, {maps_during} with a million goroutines"
    );

    release.store(true, Ordering::Release);
    for unparker in unparkers.lock().unwrap().iter() {
        unparker.unpark();
    }
    for handle in handles {
        handle.join().unwrap();
    }
    let finished = started.elapsed();
    if !gstack::page_tables_returnable() {
        println!(
            "a million goroutines parked in {all_parked:?} (maps {maps_before} -> \
             {maps_during}), all finished after {finished:?}; this kernel keeps emptied page \
             tables, so they are not given back"
        );
        return;
    }
    // The monitor lets stack slots left unused for a second or two give back their page
    // tables (about 4 KiB per 8 stacks of 256 KiB, 500 MB for a million).
    let deadline = Instant::now() + Duration::from_secs(20);
    let page_tables_after = loop {
        let now = page_tables_kib();
        if now < page_tables_during / 10 {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "page tables still at {now} KiB, against {page_tables_during} KiB with a million \
             goroutines parked"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    println!(
        "a million goroutines parked in {all_parked:?} (maps {maps_before} -> {maps_during}), \
         all finished after {finished:?}; page tables {page_tables_during} -> \
         {page_tables_after} KiB after {:?}",
        started.elapsed()
    );
}

/// The process's page tables (`VmPTE`), in KiB.
fn page_tables_kib() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("VmPTE:"))
        .and_then(|value| value.trim().strip_suffix("kB")?.trim().parse().ok())
        .expect("VmPTE in /proc/self/status")
}
