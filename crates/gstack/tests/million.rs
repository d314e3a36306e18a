//! A million guarded stacks alive at once under the default `vm.max_map_count`. Alone in its
//! binary: it holds about 4 GiB of touched stack pages and reads the process's map count.

use std::time::Instant;

use ctxswitch::Stack;
use gstack::{StackBackend, StackPool};

const STACKS: usize = 1_000_000;

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "release only: a million stacks take a few seconds in release and far longer \
              unoptimised; `cargo test --release` runs it"
)]
fn a_million_guarded_stacks_fit_under_the_default_map_count() {
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
    let started = Instant::now();
    let pool = StackPool::new(gstack::GOROUTINE_STACK_SIZE);
    let mut stacks = Vec::with_capacity(STACKS);
    for _ in 0..STACKS {
        let stack = pool.get().unwrap();
        // Touch the stack once, where a goroutine's first frame goes.
        // SAFETY: the top word of a stack this thread holds alone.
        unsafe { ((stack.base() - 8) as *mut usize).write_volatile(stack.base()) };
        stacks.push(stack);
    }
    let taken = started.elapsed();
    let maps_during = gstack::process_map_count().unwrap();
    assert!(gstack::stacks_in_use() >= STACKS);
    // Every stack kept its own memory.
    for stack in stacks.iter().step_by(997) {
        // SAFETY: as above.
        let top = unsafe { ((stack.base() - 8) as *const usize).read_volatile() };
        assert_eq!(top, stack.base());
    }
    let returning = Instant::now();
    drop(stacks);
    let returned = returning.elapsed();
    eprintln!(
        "{STACKS} guarded stacks of {} KiB: taken and touched in {taken:?}, returned in \
         {returned:?}; {maps_before} -> {maps_during} mappings ({} guard regions), \
         vm.max_map_count {}",
        gstack::GOROUTINE_STACK_SIZE / 1024,
        gstack::guard_region_count(),
        gstack::max_map_count()
    );
    // A region is one mapping (two if the kernel did not merge it with its neighbour), and the
    // stacks need nothing else; 100 allows for the allocator and the test harness.
    assert!(
        maps_during <= maps_before + 2 * gstack::guard_region_count() + 100,
        "{maps_before} -> {maps_during} mappings"
    );
    assert!(
        maps_during < gstack::max_map_count() / 10,
        "{maps_during} mappings"
    );
}
