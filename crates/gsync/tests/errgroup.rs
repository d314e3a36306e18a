//! `ErrGroup`, with the behaviour Go's `errgroup_test.go` checks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gsync::{Context, ContextError, ErrGroup};

#[test]
fn wait_returns_the_first_error_or_ok() {
    testkit::within(Duration::from_secs(30), || {
        let group = ErrGroup::<&str>::new();
        for _ in 0..5 {
            group.go(|| Ok(()));
        }
        assert_eq!(group.wait(), Ok(()));

        // The group's context ends with the first error: only then do the others start.
        let (group, ctx) = ErrGroup::with_context(&Context::background());
        group.go(|| Err("first"));
        ctx.wait();
        group.go(|| Err("second"));
        group.go(|| Ok(()));
        assert_eq!(group.wait(), Err("first"));
    });
}

#[test]
fn the_first_error_cancels_the_groups_context_and_wait_cancels_it_too() {
    let (group, ctx) = ErrGroup::<String>::with_context(&Context::background());
    let stopped = Arc::new(AtomicUsize::new(0));
    for _ in 0..4 {
        let (ctx, stopped) = (ctx.clone(), stopped.clone());
        group.go(move || {
            assert_eq!(ctx.wait(), ContextError::Canceled);
            stopped.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
    }
    group.go(|| Err("boom".to_string()));
    assert_eq!(group.wait(), Err("boom".to_string()));
    assert_eq!(stopped.load(Ordering::SeqCst), 4);

    let (group, ctx) = ErrGroup::<String>::with_context(&Context::background());
    group.go(|| Ok(()));
    assert_eq!(group.wait(), Ok(()));
    assert_eq!(
        ctx.err(),
        Some(ContextError::Canceled),
        "wait ends the context"
    );
}

#[test]
fn set_limit_bounds_the_goroutines_running_at_once() {
    let group = ErrGroup::<()>::new();
    let limit = 3;
    group.set_limit(limit as isize);
    let (active, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    for _ in 0..30 {
        let (active, most) = (active.clone(), most.clone());
        group.go(move || {
            let now = active.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            gsched::sleep(Duration::from_millis(1));
            active.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        });
    }
    group.wait().unwrap();
    assert!(most.load(Ordering::SeqCst) <= limit, "{most:?} ran at once");
    assert!(most.load(Ordering::SeqCst) >= 1);
}

#[test]
fn try_go_refuses_at_the_limit_and_accepts_below_it() {
    let group = ErrGroup::<()>::new();
    group.set_limit(1);
    let (release_tx, release) = gsync::chan::<()>(0);
    assert!(group.try_go(move || {
        release.recv().unwrap();
        Ok(())
    }));
    assert!(!group.try_go(|| Ok(())), "the limit is reached");
    release_tx.send(()).unwrap();
    group.wait().unwrap();
    assert!(group.try_go(|| Ok(())));
    group.wait().unwrap();
    // No limit.
    group.set_limit(-1);
    for _ in 0..10 {
        assert!(group.try_go(|| Ok(())));
    }
    group.wait().unwrap();
}

#[test]
#[should_panic(
    expected = "errgroup: modify limit while 1 goroutines in the group are still active"
)]
fn changing_the_limit_while_goroutines_run_panics() {
    let group = ErrGroup::<()>::new();
    let (_keep, blocked) = gsync::chan::<()>(0);
    group.go(move || {
        let _ = blocked.recv();
        Ok(())
    });
    group.set_limit(2);
}

#[test]
#[should_panic(expected = "a goroutine of the group panicked")]
fn a_panic_in_a_goroutine_reaches_wait() {
    let group = ErrGroup::<()>::new();
    group.go(|| panic!("a goroutine of the group panicked"));
    let _ = group.wait();
}

#[test]
fn a_goroutine_unwound_at_shutdown_is_not_a_panic_of_the_group() {
    let rt = gsched::Runtime::builder().workers(1).build().unwrap();
    let group = Arc::new(ErrGroup::<()>::new());
    let (_keep_open, never) = gsync::chan::<()>(0);
    rt.block_on({
        let group = group.clone();
        move || {
            group.go(move || {
                let _ = never.recv();
                Ok(())
            })
        }
    });
    std::thread::sleep(Duration::from_millis(20));
    // Shutdown unwinds the parked goroutine; the group sees it return, not panic.
    drop(rt);
    assert_eq!(group.wait(), Ok(()));
}
