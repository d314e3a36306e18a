//! Returning deep stacks gives their memory back. Alone in its binary: it reads the process's
//! resident size.

use ctxswitch::{Coroutine, CoroutineResult};
use gstack::{PooledStack, StackPool};

fn resident_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * ctxswitch::page_size() as u64 / 1024
}

/// Touches every page of a `DEPTH`-byte frame.
#[inline(never)]
fn use_stack() -> u8 {
    let mut block = [0u8; DEPTH];
    for page in block.chunks_mut(4096) {
        // SAFETY: a write to a byte of a live local array.
        unsafe { std::ptr::write_volatile(&mut page[0], 1) };
    }
    std::hint::black_box(&block)[0]
}

const DEPTH: usize = 128 * 1024;

#[test]
fn returning_deep_stacks_gives_memory_back() {
    const STACKS: usize = 64;
    let pool = StackPool::with_limits(256 * 1024, 4, 256, 16 * 1024);
    let before = resident_kib();
    let mut coroutines: Vec<Coroutine<(), (), u8, PooledStack>> = (0..STACKS)
        .map(|_| {
            Coroutine::with_stack(pool.get().unwrap(), |yielder, ()| {
                let value = use_stack();
                yielder.suspend(());
                value
            })
            .unwrap()
        })
        .collect();
    for co in &mut coroutines {
        assert_eq!(co.resume(()), CoroutineResult::Yield(()));
    }
    let peak = resident_kib();
    assert!(
        peak - before >= (STACKS * DEPTH / 1024) as u64 * 9 / 10,
        "{before} -> {peak} KiB"
    );
    for mut co in coroutines {
        assert_eq!(co.resume(()), CoroutineResult::Return(1));
    }
    let after = resident_kib();
    // Four stacks stay whole in the thread cache; the others keep 16 KiB each.
    let allowed = (4 * 256 + STACKS * 16 + 2048) as u64;
    assert!(
        after - before <= allowed,
        "{before} -> {peak} -> {after} KiB (allowed +{allowed})"
    );
}
