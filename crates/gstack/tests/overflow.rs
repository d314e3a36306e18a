//! Overflow reports, checked in child processes that really overflow.

mod common;
mod report;

use ctxswitch::Coroutine;
use gstack::GuardedStack;
use report::assert_aborted_with;
use testkit::ChildTest;

const CHILD: ChildTest = ChildTest::new("GSTACK_OVERFLOW_CHILD");

#[test]
fn a_coroutine_overflow_names_the_goroutine() {
    const NAME: &str = "a_coroutine_overflow_names_the_goroutine";
    if CHILD.is_child(NAME) {
        gstack::install_overflow_handler().unwrap();
        let stack = GuardedStack::new(64 * 1024).unwrap();
        stack.set_label(7, "deep");
        let mut co = Coroutine::<(), (), u64, GuardedStack>::with_stack(stack, |_, ()| {
            common::recurse_forever(0)
        })
        .unwrap();
        co.resume(());
        unreachable!("unbounded recursion returned");
    }
    let output = CHILD.run(NAME).output();
    assert_aborted_with(
        &output,
        "goroutine stack overflow: goroutine 7 (\"deep\"), stack of 64 KiB\n",
    );
}

#[test]
fn a_segment_overflow_on_an_os_thread_is_reported() {
    const NAME: &str = "a_segment_overflow_on_an_os_thread_is_reported";
    if CHILD.is_child(NAME) {
        gstack::install_overflow_handler().unwrap();
        std::thread::Builder::new()
            .name("grower".into())
            .spawn(|| gstack::maybe_grow(usize::MAX, 64 * 1024, || common::recurse_forever(0)))
            .unwrap()
            .join()
            .unwrap();
        unreachable!("unbounded recursion returned");
    }
    let output = CHILD.run(NAME).output();
    assert_aborted_with(
        &output,
        "goroutine stack overflow: stack segment of thread 'grower', stack of 64 KiB\n",
    );
}

#[test]
fn other_overflows_keep_the_standard_report() {
    const NAME: &str = "other_overflows_keep_the_standard_report";
    if CHILD.is_child(NAME) {
        gstack::install_overflow_handler().unwrap();
        std::thread::Builder::new()
            .name("plain".into())
            .stack_size(128 * 1024)
            .spawn(|| common::recurse_forever(0))
            .unwrap()
            .join()
            .unwrap();
        unreachable!("unbounded recursion returned");
    }
    let output = CHILD.run(NAME).output();
    assert_aborted_with(&output, "has overflowed its stack");
    assert!(String::from_utf8_lossy(&output.stderr).contains("thread 'plain'"));
    assert!(!String::from_utf8_lossy(&output.stderr).contains("goroutine stack overflow"));
}

#[test]
fn installing_twice_is_harmless() {
    gstack::install_overflow_handler().unwrap();
    gstack::install_overflow_handler().unwrap();
    gstack::ensure_alt_stack().unwrap();
}
