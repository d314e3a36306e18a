//! Switching does not allocate: resident memory stays flat over a million round trips.
//!
//! Alone in its own test binary so that no other test's allocations land in the measurement.

use ctxswitch::Coroutine;

fn statm_resident_pages() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_million_switches_do_not_grow_memory() {
    let mut co = Coroutine::<u64, u64, ()>::new(|yielder, mut x| {
        loop {
            x = yielder.suspend(x.wrapping_add(1));
        }
    });
    for i in 0..1000 {
        co.resume(i);
    }
    let before = statm_resident_pages();
    let mut acc = 0u64;
    for i in 0..1_000_000 {
        acc = acc.wrapping_add(co.resume(i).into_yield().unwrap());
    }
    let after = statm_resident_pages();
    assert_eq!(acc, (1..=1_000_000u64).sum::<u64>());
    // Other tests run in parallel threads; allow their noise but not a per-switch leak
    // (a leak of even one byte per switch would be 244 pages).
    assert!(
        after.saturating_sub(before) < 200,
        "resident pages grew from {before} to {after}"
    );
}
