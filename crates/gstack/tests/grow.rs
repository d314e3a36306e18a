//! Segmented growth on the main thread, on OS threads and inside coroutines.

use std::panic::{self, AssertUnwindSafe};

use ctxswitch::{Coroutine, CoroutineResult, Stack, page_size};
use gstack::{GuardedStack, grow, maybe_grow, remaining_stack};

/// A non-trivial recursive function: a rolling hash over its depth, with a frame that carries a
/// small array, growing a new segment when less than 16 KiB remain, checked every 4 levels.
fn hash_depth(depth: u64, acc: u64) -> u64 {
    if depth == 0 {
        return acc;
    }
    let mixed = std::hint::black_box([acc, depth, acc ^ depth, acc.rotate_left(7)]);
    let next = mixed
        .iter()
        .fold(acc, |h, &x| h.wrapping_mul(0x100_0000_01b3) ^ x);
    if depth.is_multiple_of(4) {
        maybe_grow(16 * 1024, 1024 * 1024, || hash_depth(depth - 1, next))
    } else {
        hash_depth(depth - 1, next)
    }
}

fn hash_depth_iterative(depth: u64) -> u64 {
    (1..=depth).rev().fold(0, |acc, d| {
        [acc, d, acc ^ d, acc.rotate_left(7)]
            .iter()
            .fold(acc, |h, &x| h.wrapping_mul(0x100_0000_01b3) ^ x)
    })
}

const DEPTH: u64 = 1_000_000;

#[test]
fn a_million_frames_on_a_small_thread_stack() {
    let result = std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(|| hash_depth(DEPTH, 0))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(result, hash_depth_iterative(DEPTH));
}

#[test]
fn a_million_frames_inside_a_coroutine_on_a_small_stack() {
    let stack = GuardedStack::new(64 * 1024).unwrap();
    let mut co =
        Coroutine::<(), (), u64, GuardedStack>::with_stack(stack, |_, ()| hash_depth(DEPTH, 0))
            .unwrap();
    assert_eq!(
        co.resume(()),
        CoroutineResult::Return(hash_depth_iterative(DEPTH))
    );
}

#[test]
fn remaining_stack_is_measured_everywhere() {
    let on_main = remaining_stack().expect("the test thread's stack is known");
    #[inline(never)]
    fn one_frame_deeper() -> usize {
        let padding = std::hint::black_box([0u8; 4096]);
        let left = remaining_stack().unwrap();
        std::hint::black_box(&padding);
        left
    }
    let deeper = one_frame_deeper();
    assert!(deeper < on_main, "{deeper} < {on_main}");

    let stack = GuardedStack::new(128 * 1024).unwrap();
    let size = stack.size();
    let mut co = Coroutine::<(), (), Option<usize>, GuardedStack>::with_stack(stack, |_, ()| {
        remaining_stack()
    })
    .unwrap();
    let inside = co
        .resume(())
        .into_return()
        .unwrap()
        .expect("a guarded stack is known");
    assert!(
        inside < size && inside > size - 16 * 1024,
        "{inside} of {size}"
    );

    // A segment is at least the size asked for; a guard-region one has most of a page more
    // (its top page also holds its overflow label).
    let in_segment = grow(256 * 1024, || remaining_stack().unwrap());
    assert!(
        in_segment < 256 * 1024 + page_size() && in_segment > 200 * 1024,
        "{in_segment}"
    );
    assert_eq!(remaining_stack().map(|left| left > 0), Some(true));
}

#[test]
fn maybe_grow_runs_in_place_when_there_is_room() {
    let marker = 0u8;
    let outer = std::ptr::addr_of!(marker) as usize;
    let inner = maybe_grow(16 * 1024, 256 * 1024, || {
        let marker = 0u8;
        std::ptr::addr_of!(marker) as usize
    });
    assert!(outer.abs_diff(inner) < 64 * 1024, "ran on another stack");
    let grown = grow(256 * 1024, || {
        let marker = 0u8;
        std::ptr::addr_of!(marker) as usize
    });
    assert!(outer.abs_diff(grown) > 64 * 1024, "grow ran in place");
}

#[test]
fn a_panic_in_a_segment_propagates_and_leaves_things_working() {
    let err = panic::catch_unwind(AssertUnwindSafe(|| {
        grow(128 * 1024, || -> u8 { panic!("deep inside") })
    }))
    .unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"deep inside"));
    let before = remaining_stack().unwrap();
    assert_eq!(grow(128 * 1024, || 5), 5);
    assert_eq!(remaining_stack().unwrap(), before);
}
