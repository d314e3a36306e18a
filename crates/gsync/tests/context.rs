//! `Context`, with the cases of Go's `context` tests that apply.

use std::time::{Duration, Instant};

use gsync::{Context, ContextError, select};

fn done_within(ctx: &Context, limit: Duration) -> bool {
    select! {
        recv(ctx.done()) -> closed => {
            assert!(closed.is_err(), "done is closed, never sent on");
            true
        }
        timeout(limit) => false,
    }
}

#[test]
fn background_is_never_done() {
    let ctx = Context::background();
    assert_eq!(ctx.err(), None);
    assert_eq!(ctx.deadline(), None);
    assert!(!done_within(&ctx, Duration::from_millis(10)));
}

#[test]
fn cancel_ends_a_context_and_its_descendants_once() {
    let (parent, cancel_parent) = Context::background().with_cancel();
    let (child, _cancel_child) = parent.with_cancel();
    let (grandchild, _cancel_grandchild) = child.with_timeout(Duration::from_secs(3600));
    let (sibling, cancel_sibling) = parent.with_cancel();
    cancel_sibling.cancel();
    assert_eq!(sibling.err(), Some(ContextError::Canceled));
    assert_eq!(
        parent.err(),
        None,
        "a child's cancel leaves its parent alone"
    );
    cancel_parent.cancel();
    cancel_parent.cancel();
    for ctx in [&parent, &child, &grandchild] {
        assert!(done_within(ctx, Duration::from_secs(5)));
        assert_eq!(ctx.err(), Some(ContextError::Canceled));
        assert_eq!(ctx.err().unwrap().to_string(), "context canceled");
    }
}

#[test]
fn a_child_of_a_done_parent_is_done_at_once() {
    let (parent, cancel) = Context::background().with_cancel();
    drop(cancel);
    let (child, _cancel) = parent.with_cancel();
    assert_eq!(child.err(), Some(ContextError::Canceled));
    let (timed, _cancel) = parent.with_timeout(Duration::from_secs(60));
    assert_eq!(timed.err(), Some(ContextError::Canceled));
}

#[test]
fn a_deadline_ends_the_context_with_deadline_exceeded() {
    let start = Instant::now();
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(30));
    let waited = gsched::go({
        let ctx = ctx.clone();
        move || ctx.wait()
    });
    assert_eq!(waited.join().unwrap(), ContextError::DeadlineExceeded);
    assert!(start.elapsed() >= Duration::from_millis(30));
    assert_eq!(ctx.err().unwrap().to_string(), "context deadline exceeded");
    // From a plain thread too.
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(5));
    assert_eq!(ctx.wait(), ContextError::DeadlineExceeded);
}

#[test]
fn a_child_keeps_its_parents_earlier_deadline() {
    let (parent, _cancel) = Context::background().with_timeout(Duration::from_millis(20));
    let (child, _cancel_child) = parent.with_timeout(Duration::from_secs(3600));
    assert_eq!(child.deadline(), parent.deadline());
    assert_eq!(child.wait(), ContextError::DeadlineExceeded);
    // A deadline already past is done at once.
    let (past, _cancel) = Context::background().with_deadline(Instant::now());
    assert_eq!(past.err(), Some(ContextError::DeadlineExceeded));
}

#[test]
fn cancel_before_the_deadline_wins_and_dropping_the_cancel_function_cancels() {
    let (ctx, cancel) = Context::background().with_timeout(Duration::from_millis(50));
    cancel.cancel();
    std::thread::sleep(Duration::from_millis(80));
    assert_eq!(ctx.err(), Some(ContextError::Canceled));
    let (ctx, cancel) = Context::background().with_cancel();
    drop(cancel);
    assert_eq!(ctx.err(), Some(ContextError::Canceled));
}

#[test]
fn many_contexts_cancelled_early_leave_no_timers_behind() {
    // A timer left in the queue would hold its context's memory and keep the deadlock report
    // silent until its deadline; cancelled ones leave the queue at once. A pending `after`
    // registered afterwards still fires on time, so the queue is not clogged.
    for _ in 0..10_000 {
        let (_ctx, cancel) = Context::background().with_timeout(Duration::from_secs(3600));
        cancel.cancel();
    }
    let start = Instant::now();
    gsync::after(Duration::from_millis(5)).recv().unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
}
