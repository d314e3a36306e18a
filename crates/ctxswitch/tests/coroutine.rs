//! Behaviour of coroutines and `on_stack` through the public API.

use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use ctxswitch::{Coroutine, CoroutineResult, DefaultStack, MIN_STACK_SIZE, Stack, on_stack};
use testkit::ChildTest;

#[test]
fn values_round_trip_both_ways() {
    let mut co = Coroutine::new(|yielder, first: String| {
        let second = yielder.suspend(first.len());
        let third = yielder.suspend(second.len() * 10);
        format!("{first}-{second}-{third}")
    });
    assert!(!co.started());
    assert_eq!(co.resume("ab".into()), CoroutineResult::Yield(2));
    assert_eq!(co.resume("cde".into()), CoroutineResult::Yield(30));
    assert!(co.started() && !co.done());
    assert_eq!(
        co.resume("f".into()),
        CoroutineResult::Return("ab-cde-f".to_string())
    );
    assert!(co.done());
}

#[test]
fn a_coroutine_resumes_another() {
    let mut outer = Coroutine::new(|yielder, _: u32| {
        let mut inner = Coroutine::new(|inner_yielder, x: u32| {
            let y = inner_yielder.suspend(x + 1);
            y * 2
        });
        let a = inner.resume(1).into_yield().unwrap();
        let b = yielder.suspend(a);
        let c = inner.resume(b).into_return().unwrap();
        yielder.suspend(c);
        a + c
    });
    assert_eq!(outer.resume(0), CoroutineResult::Yield(2));
    assert_eq!(outer.resume(3), CoroutineResult::Yield(6));
    assert_eq!(outer.resume(0), CoroutineResult::<u32, u32>::Return(8));
}

#[test]
fn a_panic_reaches_resume_with_its_payload() {
    #[derive(Debug, PartialEq)]
    struct Payload(u64);
    let mut co = Coroutine::<(), (), ()>::new(|yielder, ()| {
        yielder.suspend(());
        panic::panic_any(Payload(42));
    });
    co.resume(());
    let err = panic::catch_unwind(AssertUnwindSafe(|| co.resume(()))).unwrap_err();
    assert_eq!(err.downcast_ref::<Payload>(), Some(&Payload(42)));
    assert!(co.done());
    // The coroutine stays usable as a value: resuming it again is a clear panic.
    let err = panic::catch_unwind(AssertUnwindSafe(|| co.resume(()))).unwrap_err();
    let message = err.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(message.contains("already finished"), "{message}");
}

#[test]
fn resuming_a_finished_coroutine_panics_clearly() {
    let mut co = Coroutine::<(), (), u8>::new(|_, ()| 7);
    assert_eq!(co.resume(()), CoroutineResult::Return(7));
    let err = panic::catch_unwind(AssertUnwindSafe(|| co.resume(()))).unwrap_err();
    let message = err.downcast_ref::<&str>().copied().unwrap_or_default();
    assert_eq!(
        message,
        "ctxswitch: resumed a coroutine that has already finished"
    );
}

struct CountDrops(Rc<Cell<u32>>);

impl Drop for CountDrops {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn dropping_a_suspended_coroutine_runs_every_destructor() {
    let drops = Rc::new(Cell::new(0));
    let (a, b, c) = (
        CountDrops(drops.clone()),
        CountDrops(drops.clone()),
        CountDrops(drops.clone()),
    );
    let reached_end = Rc::new(Cell::new(false));
    let end = reached_end.clone();
    let mut co = Coroutine::<(), (), ()>::new(move |yielder, ()| {
        let _in_closure = a;
        let mut frames = vec![b];
        fn deeper(yielder: &ctxswitch::Yielder<(), ()>, held: CountDrops, depth: u32) {
            if depth == 0 {
                let _held_across_suspension = held;
                yielder.suspend(());
            } else {
                deeper(yielder, held, depth - 1);
            }
        }
        deeper(yielder, c, 50);
        frames.clear();
        end.set(true);
    });
    co.resume(());
    assert_eq!(drops.get(), 0);
    drop(co);
    assert_eq!(
        drops.get(),
        3,
        "every value on the coroutine's stack is dropped"
    );
    assert!(
        !reached_end.get(),
        "the body does not run on past its suspension"
    );
}

#[test]
fn a_never_started_coroutine_drops_its_closure() {
    let drops = Rc::new(Cell::new(0));
    let held = CountDrops(drops.clone());
    let co = Coroutine::<(), (), ()>::new(move |_, ()| drop(held));
    drop(co);
    assert_eq!(drops.get(), 1);
}

#[test]
fn into_stack_finishes_and_hands_the_stack_back() {
    let drops = Rc::new(Cell::new(0));
    let held = CountDrops(drops.clone());
    let stack = DefaultStack::new(64 * 1024).unwrap();
    let base = stack.base();
    let mut co = Coroutine::<(), (), ()>::with_stack(stack, move |yielder, ()| {
        let _held = held;
        yielder.suspend(());
    })
    .unwrap();
    co.resume(());
    let stack = co.into_stack();
    assert_eq!(drops.get(), 1);
    assert_eq!(stack.base(), base);
    // The same stack runs a new coroutine.
    let mut again = Coroutine::<(), (), u8>::with_stack(stack, |_, ()| 9).unwrap();
    assert_eq!(again.resume(()), CoroutineResult::Return(9));
}

#[test]
fn a_too_small_stack_is_refused_and_handed_back() {
    let stack = DefaultStack::new(4096).unwrap();
    let base = stack.base();
    let err = Coroutine::<(), (), ()>::with_stack(stack, |_, ()| ()).unwrap_err();
    assert!(err.required() > MIN_STACK_SIZE);
    let message = err.to_string();
    assert!(message.contains("too small"), "{message}");
    assert_eq!(err.into_stack().base(), base);
}

#[test]
fn on_stack_returns_the_value_and_runs_on_that_stack() {
    let mut stack = DefaultStack::new(256 * 1024).unwrap();
    let (limit, base) = (stack.limit(), stack.base());
    let (value, local_addr) = on_stack(&mut stack, || {
        let local = 5u64;
        (local * 3, std::ptr::addr_of!(local) as usize)
    });
    assert_eq!(value, 15);
    assert!((limit..base).contains(&local_addr));
}

#[test]
fn on_stack_propagates_a_panic() {
    let mut stack = DefaultStack::new(256 * 1024).unwrap();
    let err = panic::catch_unwind(AssertUnwindSafe(|| {
        on_stack(&mut stack, || -> u8 { panic!("inside on_stack") })
    }))
    .unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"inside on_stack"));
    // The stack is fine afterwards.
    assert_eq!(on_stack(&mut stack, || 1 + 1), 2);
}

#[inline(never)]
fn capture_inside_coroutine_marker() -> String {
    Backtrace::force_capture().to_string()
}

#[test]
fn a_backtrace_inside_a_coroutine_walks_through_to_the_resumer() {
    let mut co = Coroutine::<(), (), String>::new(|_, ()| capture_inside_coroutine_marker());
    let trace = resume_from_marked_frame(&mut co);
    assert!(trace.contains("capture_inside_coroutine_marker"), "{trace}");
    if cfg!(all(
        target_arch = "x86_64",
        not(feature = "portable-backend")
    )) {
        assert!(trace.contains("resume_from_marked_frame"), "{trace}");
    }
}

#[inline(never)]
fn resume_from_marked_frame(co: &mut Coroutine<(), (), String>) -> String {
    co.resume(()).into_return().unwrap()
}

#[cfg(target_arch = "x86_64")]
fn mxcsr() -> u32 {
    let mut value = 0u32;
    // SAFETY: `stmxcsr` stores four bytes to the given address, which is a valid `u32`.
    unsafe { std::arch::asm!("stmxcsr [{}]", in(reg) &mut value, options(nostack)) };
    value
}

#[cfg(target_arch = "x86_64")]
fn set_mxcsr(value: u32) {
    // SAFETY: `ldmxcsr` reads four bytes from a valid `u32`; the values used are valid control
    // words (only rounding bits change).
    unsafe { std::arch::asm!("ldmxcsr [{}]", in(reg) &value, options(nostack)) };
}

#[cfg(target_arch = "x86_64")]
#[test]
fn each_side_keeps_its_floating_point_control_state() {
    let parent = mxcsr();
    let mut co = Coroutine::<(), u32, ()>::new(|yielder, ()| {
        set_mxcsr(mxcsr() | ROUND_TOWARD_ZERO);
        yielder.suspend(mxcsr());
        yielder.suspend(mxcsr());
    });
    let inside = co.resume(()).into_yield().unwrap();
    assert_eq!(inside & ROUND_TOWARD_ZERO, ROUND_TOWARD_ZERO);
    assert_eq!(mxcsr(), parent, "the resumer's MXCSR is restored");
    assert_eq!(
        co.resume(()).into_yield(),
        Some(inside),
        "the coroutine's MXCSR is restored"
    );
    assert_eq!(mxcsr(), parent);
}

/// Rounds toward zero, in MXCSR's rounding-control bits.
#[cfg(target_arch = "x86_64")]
const ROUND_TOWARD_ZERO: u32 = 0b11 << 13;

#[cfg(target_arch = "x86_64")]
#[test]
fn a_resumer_that_skips_the_save_keeps_both_sides_state_with_fp_control() {
    use ctxswitch::FpControl;
    let parent = mxcsr();
    let mut co = Coroutine::<(), u32, ()>::new(|yielder, ()| {
        set_mxcsr(mxcsr() | ROUND_TOWARD_ZERO);
        for _ in 0..3 {
            yielder.suspend(mxcsr());
        }
    });
    // SAFETY: the loop below checks the state after every resume, puts its own back and hands
    // the coroutine's back before the next resume.
    unsafe { co.skip_fp_control() };
    assert!(!co.saves_fp_control());
    let mine = FpControl::current();
    let mut theirs: Option<FpControl> = None;
    let mut seen = Vec::new();
    for _ in 0..3 {
        if let Some(state) = theirs.take() {
            state.restore();
        }
        seen.push(co.resume(()).into_yield().unwrap());
        let now = FpControl::current();
        if now != mine {
            theirs = Some(now);
            mine.restore();
        }
        assert_eq!(
            mxcsr() & !0x3f,
            parent & !0x3f,
            "the resumer's state is back"
        );
    }
    assert!(
        seen.iter()
            .all(|inside| inside & ROUND_TOWARD_ZERO == ROUND_TOWARD_ZERO),
        "the coroutine kept its rounding mode across its suspensions: {seen:x?}"
    );
    assert!(
        theirs.is_some() || cfg!(feature = "portable-backend"),
        "the skipped save left the coroutine's state to the resumer"
    );
}

#[cfg(target_arch = "x86_64")]
#[test]
fn dropping_a_coroutine_that_skips_the_save_keeps_the_droppers_state() {
    struct ChangesRounding;
    impl Drop for ChangesRounding {
        fn drop(&mut self) {
            set_mxcsr(mxcsr() | ROUND_TOWARD_ZERO);
        }
    }
    let parent = mxcsr();
    let mut co = Coroutine::<(), (), ()>::new(|yielder, ()| {
        let _guard = ChangesRounding;
        yielder.suspend(());
    });
    // SAFETY: the coroutine changes its state only while being dropped, which preserves the
    // dropper's state.
    unsafe { co.skip_fp_control() };
    co.resume(());
    assert_eq!(mxcsr(), parent);
    drop(co);
    assert_eq!(
        mxcsr() & !0x3f,
        parent & !0x3f,
        "the unwinding on drop left the caller's rounding mode alone"
    );
}

#[test]
#[should_panic(expected = "skip_fp_control on a coroutine that has started")]
fn skipping_the_fp_save_after_the_start_is_refused() {
    let mut co = Coroutine::<(), (), ()>::new(|yielder, ()| yielder.suspend(()));
    co.resume(());
    // SAFETY: refused before it takes effect.
    unsafe { co.skip_fp_control() };
}

#[test]
fn thread_bound_values_live_across_suspensions() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let inner = log.clone();
    let mut co = Coroutine::<u8, (), ()>::new(move |yielder, first| {
        inner.borrow_mut().push(first);
        let second = yielder.suspend(());
        inner.borrow_mut().push(second);
    });
    co.resume(1);
    co.resume(2);
    assert_eq!(*log.borrow(), [1, 2]);
}

#[test]
fn a_coroutine_may_move_between_threads_once_asserted() {
    let co = Coroutine::<u32, u32, u32>::new(|yielder, x| yielder.suspend(x + 1) + 1);
    // SAFETY: the body holds nothing thread-bound across its suspension.
    let mut sendable = unsafe { co.assume_send() };
    assert_eq!(sendable.resume(1), CoroutineResult::Yield(2));
    let result = std::thread::spawn(move || sendable.resume(10))
        .join()
        .unwrap();
    assert_eq!(result, CoroutineResult::Return(11));
}

#[test]
fn stacks_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<DefaultStack>();
}

#[test]
fn a_destructor_that_suspends_is_driven_by_unwind() {
    let drops = Rc::new(Cell::new(0));
    let seen = Rc::clone(&drops);
    let mut co = Coroutine::<u32, u32, ()>::new(move |yielder, _| {
        struct Handshake<'a>(&'a ctxswitch::Yielder<u32, u32>, Rc<Cell<u32>>);
        impl Drop for Handshake<'_> {
            fn drop(&mut self) {
                let got = self.0.suspend(100);
                self.1.set(self.1.get() + got);
            }
        }
        let _outer = CountDrops(Rc::clone(&seen));
        let _handshake = Handshake(yielder, Rc::clone(&seen));
        loop {
            yielder.suspend(1);
        }
    });
    assert_eq!(co.resume(0), CoroutineResult::Yield(1));
    assert_eq!(co.unwind(0), Some(100));
    assert!(co.is_unwinding());
    assert_eq!(co.unwind(5), None);
    assert!(co.done());
    assert_eq!(drops.get(), 6, "the handshake added 5, the outer guard 1");
}

#[test]
fn a_coroutine_that_suspends_while_dropped_is_leaked_without_a_panic() {
    let mut co = Coroutine::<(), (), ()>::new(|yielder, ()| {
        loop {
            let payload =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| yielder.suspend(())));
            if let Err(payload) = payload {
                assert!(ctxswitch::is_forced_unwind(&*payload));
            }
        }
    });
    co.resume(());
    drop(co);
    let mut stuck = Coroutine::<(), (), ()>::new(|yielder, ()| {
        struct Waits<'a>(&'a ctxswitch::Yielder<(), ()>);
        impl Drop for Waits<'_> {
            fn drop(&mut self) {
                self.0.suspend(());
            }
        }
        let _waits = Waits(yielder);
        yielder.suspend(());
    });
    stuck.resume(());
    assert_eq!(stuck.unwind(()), Some(()));
    drop(stuck);
}

const TLS_CHILD: ChildTest = ChildTest::new("CTXSWITCH_TLS_CHILD");

/// A thread-local whose destructor records that it is gone.
struct Data(u64);

static DATA_DESTROYED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Drop for Data {
    fn drop(&mut self) {
        DATA_DESTROYED.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Reads the thread-local it borrows when dropped.
struct Reader<'a>(&'a Data);

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if DATA_DESTROYED.load(std::sync::atomic::Ordering::SeqCst) {
            eprintln!("read a destroyed thread-local");
            std::process::abort();
        }
        assert_eq!(self.0.0, 7);
    }
}

thread_local! {
    static HOLDER: std::cell::RefCell<Option<Coroutine<(), (), ()>>> =
        const { std::cell::RefCell::new(None) };
    static DATA: Data = const { Data(7) };
}

/// Child: a coroutine kept in a thread-local holds a `LocalKey::with` borrow of a thread-local
/// first used after the holder, so it is destroyed first when the thread exits.
#[test]
#[ignore = "run as a child process by its parent test"]
fn tls_child() {
    if !TLS_CHILD.is_child("tls_child") {
        return;
    }
    std::thread::spawn(|| {
        HOLDER.with(|holder| {
            let mut co = Coroutine::<(), (), ()>::new(|yielder, ()| {
                DATA.with(|data| {
                    let _reader = Reader(data);
                    yielder.suspend(());
                });
            });
            co.resume(());
            *holder.borrow_mut() = Some(co);
        });
    })
    .join()
    .unwrap();
    assert!(DATA_DESTROYED.load(std::sync::atomic::Ordering::SeqCst));
    println!("thread exited cleanly");
}

#[test]
fn a_coroutine_dropped_during_thread_exit_is_leaked_not_unwound() {
    let output = TLS_CHILD.run("tls_child").ignored().output();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("thread exited cleanly"),
        "child failed: {}\nstdout: {stdout}\nstderr: {stderr}",
        output.status
    );
    assert!(
        stderr.contains("while its thread destroyed its thread-locals"),
        "stderr: {stderr}"
    );
}

const PANIC_CHILD: ChildTest = ChildTest::new("CTXSWITCH_PANIC_CHILD");

/// Child: a coroutine suspends inside a destructor that its own panic runs, and is then
/// dropped and unwound step by step: a second unwind there would abort the process.
#[test]
#[ignore = "run as a child process by its parent test"]
fn suspended_mid_panic_child() {
    if !PANIC_CHILD.is_child("suspended_mid_panic_child") {
        return;
    }
    struct SuspendOnDrop<'a>(&'a ctxswitch::Yielder<(), ()>);
    impl Drop for SuspendOnDrop<'_> {
        fn drop(&mut self) {
            self.0.suspend(());
        }
    }
    let body = |yielder: &ctxswitch::Yielder<(), ()>, ()| {
        let _guard = SuspendOnDrop(yielder);
        panic!("a panic whose cleanup suspends");
    };
    let mut dropped = Coroutine::<(), (), ()>::new(body);
    assert_eq!(dropped.resume(()), CoroutineResult::Yield(()));
    assert!(!dropped.can_unwind());
    drop(dropped);
    let mut unwound = Coroutine::<(), (), ()>::new(body);
    assert_eq!(unwound.resume(()), CoroutineResult::Yield(()));
    assert_eq!(unwound.unwind(()), None);
    assert!(unwound.is_leaked());
    drop(unwound);
    println!("leaked, not aborted");
}

#[test]
fn a_coroutine_suspended_inside_its_own_panic_is_leaked_not_unwound_again() {
    let output = PANIC_CHILD
        .run("suspended_mid_panic_child")
        .ignored()
        .output();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("leaked, not aborted"),
        "child failed: {}\nstdout: {stdout}\nstderr: {stderr}",
        output.status
    );
    assert!(
        stderr.contains("while its thread was panicking"),
        "{stderr}"
    );
}
