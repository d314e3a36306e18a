//! The map budget: the kernel's limit becomes a clear error, never a crash.
//!
//! One test in its own binary: the budget is process-wide, and this test spends all of it.

use gstack::{GuardedStack, StackBackend, StackError};

#[test]
fn the_map_budget_turns_the_kernel_limit_into_an_error() {
    // Under the real limit: allocate stacks with a mapping each until refused. The budget must
    // refuse before the kernel does, with the documented error.
    let limit = gstack::map_budget();
    // Guard-region stacks cost no mapping each, so where the kernel has them only a limit set
    // by the program caps stacks.
    let expected_limit = match gstack::stack_backend() {
        StackBackend::GuardRegions => usize::MAX,
        _ => limit,
    };
    assert_eq!(gstack::stack_limit(), expected_limit);
    assert!(limit > 1000, "budget of only {limit} stacks");
    let max_map_count = gstack::max_map_count();
    assert!(limit * gstack::MAPPINGS_PER_STACK < max_map_count);
    let mut stacks = Vec::new();
    let err = loop {
        match GuardedStack::new(64 * 1024) {
            Ok(stack) => stacks.push(stack),
            Err(err) => break err,
        }
    };
    assert_eq!(stacks.len(), limit);
    match &err {
        StackError::MapLimit {
            max_map_count: reported,
            stack_limit,
            stacks_in_use,
            mappings_per_stack,
        } => {
            assert_eq!(
                (*reported, *stack_limit, *stacks_in_use, *mappings_per_stack),
                (max_map_count, limit, limit, gstack::MAPPINGS_PER_STACK)
            );
        }
        other => panic!("expected the map limit, got: {other}"),
    }
    let message = err.to_string();
    for expected in ["vm.max_map_count", "sysctl", "dense", &limit.to_string()] {
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }
    // The process still works at the limit: other allocations get their maps.
    let thread = std::thread::spawn(|| vec![1u8; 1 << 20].len());
    assert_eq!(thread.join().unwrap(), 1 << 20);
    stacks.pop();
    stacks.push(GuardedStack::new(64 * 1024).expect("a freed stack's budget is reusable"));
    drop(stacks);
    assert_eq!(gstack::stacks_in_use(), 0);

    // An artificially small budget set through the API.
    gstack::set_stack_limit(3);
    let held: Vec<_> = (0..3)
        .map(|_| GuardedStack::new(64 * 1024).unwrap())
        .collect();
    let err = GuardedStack::new(64 * 1024).unwrap_err();
    assert!(
        matches!(
            err,
            StackError::MapLimit {
                stack_limit: 3,
                stacks_in_use: 3,
                ..
            }
        ),
        "{err:?}"
    );
    drop(held);
    GuardedStack::new(64 * 1024).expect("room again once stacks are freed");
}
