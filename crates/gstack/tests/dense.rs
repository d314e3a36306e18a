//! Dense stacks: beyond the map limit, with canaries.

use std::os::unix::process::ExitStatusExt;

use ctxswitch::{Coroutine, CoroutineResult, Stack};
use gstack::{DenseStack, DenseStacks, StackError};
use testkit::ChildTest;

#[test]
fn more_parked_coroutines_than_guarded_stacks_could_hold() {
    let count = gstack::map_budget() + 10_000;
    // SAFETY: the bodies below use a few hundred bytes of their 60 KiB stacks.
    let stacks = unsafe { DenseStacks::new(64 * 1024, count) }.unwrap();
    let mut parked: Vec<Coroutine<u64, Option<usize>, u64, DenseStack>> = (0..count)
        .map(|i| {
            Coroutine::with_stack(stacks.get().unwrap(), move |yielder, x: u64| {
                let more = yielder.suspend(gstack::remaining_stack());
                x + more + i as u64
            })
            .unwrap()
        })
        .collect();
    for co in &mut parked {
        let remaining = co
            .resume(1)
            .into_yield()
            .unwrap()
            .expect("dense stacks are measured");
        assert!(
            remaining > 50 * 1024 && remaining < stacks.stack_size(),
            "{remaining}"
        );
    }
    for (i, co) in parked.iter_mut().enumerate() {
        assert_eq!(co.resume(2), CoroutineResult::Return(3 + i as u64));
    }
}

#[test]
fn a_full_region_is_an_error_and_slots_are_reused() {
    // SAFETY: the stacks are never run on.
    let stacks = unsafe { DenseStacks::new(32 * 1024, 3) }.unwrap();
    let held: Vec<_> = (0..3).map(|_| stacks.get().unwrap()).collect();
    let bases: Vec<_> = held.iter().map(Stack::base).collect();
    assert!(bases.windows(2).all(|pair| pair[1] - pair[0] == 32 * 1024));
    let err = stacks.get().unwrap_err();
    assert!(
        matches!(err, StackError::RegionFull { stacks: 3 }),
        "{err:?}"
    );
    assert!(err.to_string().contains("all 3 stacks"));
    drop(held);
    let again = stacks.get().unwrap();
    assert!(bases.contains(&again.base()));
    assert!(again.canary_intact());
}

#[test]
fn a_clobbered_canary_aborts_with_a_message() {
    const NAME: &str = "a_clobbered_canary_aborts_with_a_message";
    const CHILD: ChildTest = ChildTest::new("GSTACK_DENSE_CANARY_CHILD");
    if CHILD.is_child(NAME) {
        // SAFETY: the overrun below stays within this region's gap, which is what the canary
        // exists to detect.
        let stacks = unsafe { DenseStacks::new(32 * 1024, 2) }.unwrap();
        let stack = stacks.get().unwrap();
        // What a linear overflow past the limit writes: the gap and the canary below it.
        // SAFETY: the 256 bytes below a dense stack's limit are its own gap and canary.
        unsafe { std::ptr::write_bytes((stack.limit() - 256) as *mut u8, 0, 256) };
        drop(stack);
        unreachable!("the canary check did not fire");
    }
    let output = CHILD.run(NAME).output();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.signal(), Some(libc::SIGABRT), "{stderr}");
    assert!(
        stderr.contains("goroutine stack overflow: dense stack 0"),
        "{stderr}"
    );
}
