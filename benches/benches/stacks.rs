//! Stack costs: a pooled get and return, a fresh guarded stack, and `maybe_grow` when no growth
//! is needed.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gstack::{GuardedStack, StackPool};

fn pooled_get_and_return(c: &mut Criterion) {
    let pool = StackPool::new(gstack::GOROUTINE_STACK_SIZE);
    drop(pool.get().expect("stack"));
    c.bench_function("stack/pooled get+return", |b| {
        b.iter(|| drop(black_box(pool.get().expect("stack"))));
    });
}

fn fresh_guarded_stack(c: &mut Criterion) {
    c.bench_function("stack/fresh guarded map+unmap", |b| {
        b.iter(|| {
            drop(black_box(
                GuardedStack::new(gstack::GOROUTINE_STACK_SIZE).expect("stack"),
            ))
        });
    });
}

fn maybe_grow_in_place(c: &mut Criterion) {
    c.bench_function("stack/maybe_grow without growth", |b| {
        b.iter(|| gstack::maybe_grow(32 * 1024, 256 * 1024, || black_box(1u64)));
    });
}

criterion_group! {
    name = stacks;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = pooled_get_and_return, fresh_guarded_stack, maybe_grow_in_place
}
criterion_main!(stacks);
