//! Guarded stacks run coroutines, commit only what is touched, and fault on overflow.

mod common;

use ctxswitch::{Coroutine, CoroutineResult, Stack, page_size};
use gstack::GuardedStack;
use testkit::ChildTest;

/// Resident pages of `range` by `mincore`: exact for this stack alone, whatever other tests do.
fn resident_pages(range: std::ops::Range<usize>) -> usize {
    let page = page_size();
    let pages = (range.end - range.start) / page;
    let mut residency = vec![0u8; pages];
    // SAFETY: `range` is page aligned and mapped (it is a live stack), and `residency` holds one
    // byte per page.
    let status = unsafe {
        libc::mincore(
            range.start as *mut libc::c_void,
            range.end - range.start,
            residency.as_mut_ptr(),
        )
    };
    assert_eq!(status, 0, "mincore: {}", std::io::Error::last_os_error());
    residency.iter().filter(|&&byte| byte & 1 == 1).count()
}

#[test]
fn a_coroutine_runs_on_a_guarded_stack() {
    let stack = GuardedStack::new(gstack::GOROUTINE_STACK_SIZE).unwrap();
    assert!(stack.size() >= gstack::GOROUTINE_STACK_SIZE);
    assert_eq!(stack.guard_range().end, stack.limit());
    let mut co = Coroutine::<u32, u32, u32, GuardedStack>::with_stack(stack, |yielder, x| {
        let text = format!("{x} formatted on a goroutine stack");
        yielder.suspend(text.len() as u32) + 1
    })
    .unwrap();
    assert_eq!(co.resume(12), CoroutineResult::Yield(33));
    assert_eq!(co.resume(1), CoroutineResult::Return(2));
}

#[test]
fn only_touched_pages_are_resident() {
    let stack = GuardedStack::new(1024 * 1024).unwrap();
    let range = stack.limit()..stack.base();
    assert_eq!(
        resident_pages(range.clone()),
        0,
        "a fresh stack commits nothing"
    );
    let mut co = Coroutine::<(), (), (), GuardedStack>::with_stack(stack, |yielder, ()| {
        let buffer = std::hint::black_box([7u8; 12 * 1024]);
        yielder.suspend(());
        std::hint::black_box(buffer);
    })
    .unwrap();
    co.resume(());
    let touched = resident_pages(range);
    let page = page_size();
    assert!(
        (3..=(64 * 1024 / page)).contains(&touched),
        "a coroutine that uses ~12 KiB of a 1 MiB stack has {touched} resident pages"
    );
}

#[test]
fn allocation_failures_are_errors_not_crashes() {
    let err = GuardedStack::new(usize::MAX - 1).unwrap_err();
    assert!(matches!(err, gstack::StackError::Os(_)), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("failed to map a goroutine stack")
    );
}

const OVERFLOW_CHILD: ChildTest = ChildTest::new("GSTACK_TEST_OVERFLOW_CHILD");

#[test]
fn overflow_hits_the_guard_page_instead_of_other_memory() {
    const NAME: &str = "overflow_hits_the_guard_page_instead_of_other_memory";
    if OVERFLOW_CHILD.is_child(NAME) {
        let stack = GuardedStack::new(64 * 1024).unwrap();
        let mut co = Coroutine::<(), (), u64, GuardedStack>::with_stack(stack, |_, ()| {
            common::recurse_forever(0)
        })
        .unwrap();
        co.resume(());
        unreachable!("unbounded recursion returned");
    }
    let output = OVERFLOW_CHILD.run(NAME).output();
    use std::os::unix::process::ExitStatusExt;
    let signal = output.status.signal();
    assert!(
        signal == Some(libc::SIGSEGV) || signal == Some(libc::SIGBUS),
        "child ended with {:?}; stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}
