//! Memory comes back after a burst: once 100,000 stacks that each touched a few pages are all
//! returned, resident memory is back within the pool's warm cache of where it started, and the
//! page tables follow once the slots have stayed unused between two `return_page_tables`
//! calls. Alone in its binary: it reads the process's resident size.

use ctxswitch::{Stack, page_size};
use gstack::{StackBackend, StackPool};

/// A field of `/proc/self/status`, in KiB.
fn status_kib(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

const TOUCHED_PAGES: usize = 3;

#[test]
fn resident_memory_comes_back_after_a_burst() {
    let page = page_size();
    // With a mapping per stack the map budget caps a burst well below 100,000.
    let stacks = match gstack::stack_backend() {
        StackBackend::GuardRegions => 100_000,
        _ => (gstack::map_budget() / 2).min(100_000),
    };
    let pool = StackPool::new(gstack::GOROUTINE_STACK_SIZE);
    // Taken once before measuring, so that the slot class, the thread cache and the first
    // region exist already.
    drop(pool.get().unwrap());
    let mut held = Vec::with_capacity(stacks);
    let (rss_before, pte_before) = (status_kib("VmRSS"), status_kib("VmPTE"));

    for _ in 0..stacks {
        let stack = pool.get().unwrap();
        for touched in 0..TOUCHED_PAGES {
            // SAFETY: a word in the top pages of a stack this thread holds alone.
            unsafe { ((stack.base() - 8 - touched * page) as *mut usize).write_volatile(touched) };
        }
        held.push(stack);
    }
    let (rss_peak, pte_peak) = (status_kib("VmRSS"), status_kib("VmPTE"));
    drop(held);
    let (rss_after, pte_after) = (status_kib("VmRSS"), status_kib("VmPTE"));
    eprintln!(
        "{stacks} stacks touching {TOUCHED_PAGES} pages each: VmRSS {rss_before} -> {rss_peak} \
         -> {rss_after} KiB, VmPTE {pte_before} -> {pte_peak} -> {pte_after} KiB"
    );

    // Slots that stay unused between two calls give back their page tables (gsched's monitor
    // makes the calls, a second apart).
    let first = gstack::return_page_tables();
    let returned = gstack::return_page_tables();
    let pte_returned = status_kib("VmPTE");
    eprintln!(
        "page tables: {first} then {returned} slots gave theirs back: VmPTE {pte_after} -> \
         {pte_returned} KiB"
    );

    let touched_kib = TOUCHED_PAGES * page / 1024;
    assert!(
        rss_peak - rss_before >= stacks * touched_kib * 9 / 10,
        "the burst did not touch its pages: {rss_before} -> {rss_peak} KiB"
    );
    // The warm cache at its default size: whole stacks in this thread's cache, and the top
    // `warm_bytes` of each stack in the global queue.
    let warm_kib = pool.thread_cache() * touched_kib
        + pool.global_capacity() * touched_kib.min(pool.warm_bytes() / 1024);
    // The margin covers the cold-slot list (8 bytes a slot) and the allocator's slack.
    let margin_kib = 2 * 1024;
    assert!(
        rss_after <= rss_before + warm_kib + margin_kib,
        "VmRSS {rss_before} -> {rss_peak} -> {rss_after} KiB; allowed: {rss_before} + warm \
         cache {warm_kib} + {margin_kib} KiB"
    );
    if gstack::stack_backend() == StackBackend::GuardRegions && gstack::page_tables_returnable() {
        assert_eq!(first, 0, "no slot had stayed unused since an earlier call");
        assert!(
            returned >= stacks * 9 / 10,
            "only {returned} of {stacks} slots gave back their page tables"
        );
        // What the warm cache's slots and the span edges keep: well under a page table per
        // thousand stacks.
        let margin_kib = 1024;
        assert!(
            pte_returned <= pte_before + margin_kib,
            "VmPTE {pte_before} -> {pte_peak} -> {pte_after} -> {pte_returned} KiB"
        );
    }
}
