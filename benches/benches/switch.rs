//! Context switch cost: ctxswitch against corosensei and context (boost.context) in one run.
//!
//! Each iteration is one round trip: the resumer switches into a coroutine, which switches
//! straight back, passing one word each way. A one-way switch is half of the figure reported.
//! All three run on a stack allocated before the measurement, so only switching is timed.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

fn ctxswitch_round_trip(c: &mut Criterion) {
    let mut coroutine = ctxswitch::Coroutine::<usize, usize, ()>::new(|yielder, mut input| {
        loop {
            input = yielder.suspend(input + 1);
        }
    });
    c.bench_function("switch round trip/ctxswitch", |b| {
        let mut value = 0usize;
        b.iter(|| {
            value = match coroutine.resume(black_box(value)) {
                ctxswitch::CoroutineResult::Yield(next) => next,
                ctxswitch::CoroutineResult::Return(()) => unreachable!(),
            };
        });
    });
}

fn corosensei_round_trip(c: &mut Criterion) {
    let mut coroutine = corosensei::Coroutine::<usize, usize, ()>::new(|yielder, mut input| {
        loop {
            input = yielder.suspend(input + 1);
        }
    });
    c.bench_function("switch round trip/corosensei", |b| {
        let mut value = 0usize;
        b.iter(|| {
            value = match coroutine.resume(black_box(value)) {
                corosensei::CoroutineResult::Yield(next) => next,
                corosensei::CoroutineResult::Return(()) => unreachable!(),
            };
        });
    });
}

extern "C" fn context_echo(mut transfer: context::Transfer) -> ! {
    loop {
        // SAFETY: `transfer.context` is the suspended resumer, resumed exactly once.
        transfer = unsafe { transfer.context.resume(transfer.data + 1) };
    }
}

fn context_round_trip(c: &mut Criterion) {
    use context::stack::ProtectedFixedSizeStack;
    let stack = ProtectedFixedSizeStack::new(1024 * 1024).expect("context stack");
    // SAFETY: `stack` outlives every use of the context, which is leaked suspended at the end.
    let mut coroutine = Some(unsafe { context::Context::new(&stack, context_echo) });
    c.bench_function("switch round trip/context", |b| {
        let mut value = 0usize;
        b.iter(|| {
            let current = coroutine.take().expect("context is suspended");
            // SAFETY: `current` is the suspended coroutine, resumed exactly once.
            let transfer = unsafe { current.resume(black_box(value)) };
            value = transfer.data;
            coroutine = Some(transfer.context);
        });
    });
}

criterion_group! {
    name = switch;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = corosensei_round_trip, ctxswitch_round_trip, context_round_trip
}
criterion_main!(switch);
