//! Pool reuse and exclusive ownership under concurrency.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use ctxswitch::Stack;
use gstack::StackPool;
use proptest::prelude::*;

#[test]
fn returned_stacks_are_reused() {
    let pool = StackPool::new(64 * 1024);
    let first: Vec<_> = (0..4).map(|_| pool.get().unwrap()).collect();
    let bases: HashSet<usize> = first.iter().map(Stack::base).collect();
    drop(first);
    let again: HashSet<usize> = (0..4).map(|_| pool.get().unwrap().base()).collect();
    assert!(again.is_subset(&bases), "{again:?} not from {bases:?}");
}

#[test]
fn stacks_beyond_the_thread_cache_go_to_the_global_queue() {
    let pool = StackPool::with_limits(64 * 1024, 2, 8, 16 * 1024);
    let stacks: Vec<_> = (0..6).map(|_| pool.get().unwrap()).collect();
    let bases: HashSet<usize> = stacks.iter().map(Stack::base).collect();
    drop(stacks);
    assert_eq!(pool.global_len(), 4);
    // Another thread finds them there.
    let from_other_thread: Vec<_> = std::thread::scope(|scope| {
        scope
            .spawn(|| (0..4).map(|_| pool.get().unwrap()).collect::<Vec<_>>())
            .join()
            .unwrap()
            .iter()
            .map(Stack::base)
            .collect()
    });
    assert!(from_other_thread.iter().all(|base| bases.contains(base)));
    assert_eq!(
        pool.global_len(),
        4,
        "the stacks came back to the global queue"
    );
}

#[derive(Clone, Debug)]
enum Op {
    Get,
    Put(usize),
    Touch(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Get),
        (0usize..8).prop_map(Op::Put),
        (0usize..8).prop_map(Op::Touch),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Threads run random get/put sequences on one small pool; no stack is ever held twice.
    #[test]
    fn no_stack_is_handed_out_twice(
        plans in proptest::collection::vec(proptest::collection::vec(op(), 1..40), 2..4)
    ) {
        let pool = StackPool::with_limits(32 * 1024, 2, 4, 16 * 1024);
        let held = Arc::new(Mutex::new(HashSet::new()));
        std::thread::scope(|scope| {
            for plan in plans {
                let pool = pool.clone();
                let held = Arc::clone(&held);
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    for op in plan {
                        match op {
                            Op::Get => {
                                let stack = pool.get().unwrap();
                                assert!(held.lock().unwrap().insert(stack.base()), "stack handed out twice");
                                mine.push(stack);
                            }
                            Op::Put(i) if !mine.is_empty() => {
                                let stack = mine.swap_remove(i % mine.len());
                                assert!(held.lock().unwrap().remove(&stack.base()));
                                drop(stack);
                            }
                            Op::Touch(i) if !mine.is_empty() => {
                                let stack = &mine[i % mine.len()];
                                // SAFETY: the top word of a stack this thread holds alone.
                                unsafe { ((stack.base() - 8) as *mut usize).write(stack.base()) };
                            }
                            _ => {}
                        }
                    }
                    for stack in mine {
                        // SAFETY: as above; nobody else wrote it while this thread held it.
                        let top = unsafe { ((stack.base() - 8) as *const usize).read() };
                        assert!(top == 0 || top == stack.base());
                        held.lock().unwrap().remove(&stack.base());
                    }
                });
            }
        });
    }
}
