//! Resident memory per parked coroutine, guarded and dense, and how many guarded stacks fit
//! under the kernel's map limit.
//!
//! Each coroutine runs until its first suspension and stays parked there, as a goroutine
//! blocked on a channel would. Resident memory is read from `/proc/self/statm` before and after,
//! so the figure includes every byte the stacks and their bookkeeping cost.

use benches::resident_bytes;
use ctxswitch::{Coroutine, Stack};
use gstack::{DenseStacks, GuardedStack, StackError};

/// Parks `count` coroutines, each on a stack from `next_stack`; returns bytes per coroutine.
fn park<S: Stack + 'static>(count: usize, mut next_stack: impl FnMut() -> S) -> f64 {
    let mut parked = Vec::with_capacity(count);
    let before = resident_bytes().unwrap_or_else(|err| panic!("{err}"));
    for _ in 0..count {
        let mut co = Coroutine::<(), (), (), S>::with_stack(next_stack(), |yielder, ()| {
            yielder.suspend(());
        })
        .unwrap_or_else(|err| panic!("{err}"));
        co.resume(());
        parked.push(co);
    }
    let after = resident_bytes().unwrap_or_else(|err| panic!("{err}"));
    let per = (after - before) as f64 / count as f64;
    drop(parked);
    per
}

fn main() {
    let guarded_sizes = [10_000, 30_000];
    println!("| stacks | policy | resident per parked coroutine |");
    println!("| ---: | --- | ---: |");
    for count in guarded_sizes {
        let per = park(count, || {
            GuardedStack::new(gstack::GOROUTINE_STACK_SIZE).unwrap_or_else(|err| panic!("{err}"))
        });
        println!(
            "| {count} | guarded ({} KiB) | {:.2} KiB |",
            gstack::GOROUTINE_STACK_SIZE / 1024,
            per / 1024.0
        );
    }
    {
        let dense_count = 1_000_000;
        // SAFETY: each parked body uses well under 1 KiB of its 60 KiB stack.
        let dense = unsafe { DenseStacks::new(64 * 1024, dense_count) }
            .unwrap_or_else(|err| panic!("{err}"));
        let per = park(dense_count, || {
            dense.get().unwrap_or_else(|err| panic!("{err}"))
        });
        println!(
            "| {dense_count} | dense (60 KiB) | {:.2} KiB |",
            per / 1024.0
        );
    }

    let mut held = Vec::new();
    let refusal = loop {
        match GuardedStack::new(gstack::GOROUTINE_STACK_SIZE) {
            Ok(stack) => held.push(stack),
            Err(err) => break err,
        }
    };
    let kind = match refusal {
        StackError::MapLimit { .. } => "the budget's error",
        _ => "an error from the kernel",
    };
    println!();
    println!(
        "Guarded stacks alive at once under vm.max_map_count = {}: {} (then {kind}: \"{refusal}\")",
        gstack::max_map_count(),
        held.len()
    );
}
