//! Regression tests for the soundness and fault-tolerance promises: no freed memory reached
//! from safe code, and no fault that kills a worker, hangs a join or ends the process. Crashes
//! and hangs run in child processes (this binary re-run on one test), bounded by a timeout.

use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use gsched::{BuildError, Builder, Runtime, SpawnError, go};
use testkit::{ChildTest, within};

const CHILD: ChildTest = ChildTest::new("GSCHED_SOUNDNESS_CHILD");

/// The child printed `marker` on stdout and exited cleanly.
fn assert_child_ok(output: &Output, marker: &str) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains(marker),
        "child: {}\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Waits, a millisecond at a time, until `count` reaches `n`: until goroutines spawned by the
/// caller have run to the point they count, whatever the machine's load.
fn until_counted(count: &AtomicUsize, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while count.load(Ordering::SeqCst) < n {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {n} goroutines got there",
            count.load(Ordering::SeqCst)
        );
        gsched::sleep(Duration::from_millis(1));
    }
}

/// Reads the vector it borrows when dropped, and checks it is still intact.
struct Reader<'a>(&'a [u64], Arc<AtomicUsize>);

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        assert!(
            self.0.iter().enumerate().all(|(i, &v)| v == i as u64 * 7),
            "a scoped goroutine read its owner's freed frame"
        );
        self.1.fetch_add(1, Ordering::SeqCst);
    }
}

/// A goroutine blocked in `scope` at shutdown, whose scoped goroutines still borrow its
/// frame (parked, some on the other worker): they are unwound first, then the owner.
#[test]
fn a_scope_owner_unwinds_after_its_scoped_goroutines_at_shutdown() {
    const NAME: &str = "a_scope_owner_unwinds_after_its_scoped_goroutines_at_shutdown";
    if CHILD.is_child(NAME) {
        for workers in [1, 2] {
            let readers = Arc::new(AtomicUsize::new(0));
            let rt = Runtime::builder().workers(workers).build().unwrap();
            let counted = Arc::clone(&readers);
            let started = Arc::new(AtomicUsize::new(0));
            let seen = Arc::clone(&started);
            rt.block_on(move || {
                let members = Arc::clone(&seen);
                go(move || {
                    let seen = members;
                    let data: Vec<u64> = (0..1024).map(|i| i * 7).collect();
                    gsched::scope(|s| {
                        for _ in 0..8 {
                            let (counted, seen) = (Arc::clone(&counted), Arc::clone(&seen));
                            let data = &data;
                            s.go(move || {
                                let _reader = Reader(data, counted);
                                seen.fetch_add(1, Ordering::SeqCst);
                                loop {
                                    gsched::park();
                                }
                            });
                        }
                    });
                });
                while seen.load(Ordering::SeqCst) < 8 {
                    gsched::sleep(Duration::from_millis(1));
                }
            });
            let report = rt.shutdown();
            assert_eq!(readers.load(Ordering::SeqCst), 8);
            assert_eq!(report.leaked.len(), 9, "{:?}", report.leaked);
        }
        println!("scopes unwound in order");
        return;
    }
    let output = CHILD.run(NAME).output();
    assert_child_ok(&output, "scopes unwound in order");
}

/// A scoped goroutine that catches the forced unwind and keeps parking cannot be finished:
/// its scope's owner is leaked, not unwound under it, and the report lists both.
#[test]
fn an_unfinishable_scoped_goroutine_leaks_its_owner() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let reached = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&reached);
    rt.block_on(move || {
        gsched::Builder::new()
            .name("owner")
            .spawn(move || {
                let data = vec![1u8; 64];
                gsched::scope(|s| {
                    let data = &data;
                    let flag = &flag;
                    s.go(move || {
                        flag.store(true, Ordering::SeqCst);
                        loop {
                            let _ = std::panic::catch_unwind(gsched::park);
                            assert_eq!(data.len(), 64);
                        }
                    });
                });
            })
            .unwrap();
        while !reached.load(Ordering::SeqCst) {
            gsched::sleep(Duration::from_millis(1));
        }
    });
    let report = within(Duration::from_secs(30), move || rt.shutdown());
    assert_eq!(report.leaked.len(), 2, "{:?}", report.leaked);
    assert!(
        report
            .leaked
            .iter()
            .any(|line| line.contains("\"owner\"") && line.contains("scoped goroutines")),
        "{:?}",
        report.leaked
    );
    assert!(
        report
            .leaked
            .iter()
            .any(|line| line.contains("did not finish unwinding") && line.contains("leaked")),
        "{:?}",
        report.leaked
    );
}

/// Migratable goroutines (the `unsafe` opt-in, used within its contract): those that finished
/// on another worker are not reported, those parked at shutdown are unwound once, and nothing
/// crashes.
#[test]
fn migratable_goroutines_shut_down_cleanly() {
    const NAME: &str = "migratable_goroutines_shut_down_cleanly";
    if CHILD.is_child(NAME) {
        let dropped = Arc::new(AtomicUsize::new(0));
        let rt = Runtime::builder().workers(2).build().unwrap();
        let before = gsched::num_goroutines();
        let counter = Arc::clone(&dropped);
        let started = Arc::new(AtomicUsize::new(0));
        rt.block_on(move || {
            let finished: Vec<_> = (0..50)
                .map(|_| {
                    // SAFETY: nothing thread-bound is held across the yields.
                    unsafe { Builder::new().migratable() }
                        .spawn(|| {
                            for _ in 0..20 {
                                gsched::yield_now();
                            }
                        })
                        .unwrap()
                })
                .collect();
            for handle in finished {
                handle.join().unwrap();
            }
            for _ in 0..10 {
                let (counter, started) = (Arc::clone(&counter), Arc::clone(&started));
                // SAFETY: the guard is an `Arc`, which any thread may drop.
                let spawned = unsafe { Builder::new().migratable() }.spawn(move || {
                    let _guard = CountOnDrop(counter);
                    started.fetch_add(1, Ordering::SeqCst);
                    loop {
                        gsched::yield_now();
                        gsched::park_timeout(Duration::from_micros(50));
                    }
                });
                drop(spawned.unwrap());
            }
            until_counted(&started, 10);
        });
        let report = rt.shutdown();
        assert_eq!(dropped.load(Ordering::SeqCst), 10);
        assert_eq!(report.leaked.len(), 10, "{:?}", report.leaked);
        assert_eq!(gsched::num_goroutines(), before);
        println!("migratable shutdown ok");
        return;
    }
    let output = CHILD.run(NAME).output();
    assert_child_ok(&output, "migratable shutdown ok");
}

struct CountOnDrop(Arc<AtomicUsize>);

impl Drop for CountOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Parks in its destructor, and nothing ever wakes it.
struct ParkOnDrop;

const PARKED_ON_DROP: &str = "a destructor that waits for good";

impl Drop for ParkOnDrop {
    fn drop(&mut self) {
        gsched::park_with_reason(PARKED_ON_DROP);
    }
}

/// A destructor that parks during the shutdown unwind, a goroutine that catches the unwind and
/// parks again, and one that catches it and keeps yielding: every other goroutine is still
/// unwound, and every goroutine is listed.
#[test]
fn misbehaving_goroutines_do_not_stop_shutdown() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let rt = Runtime::builder().workers(2).build().unwrap();
    let counter = Arc::clone(&dropped);
    let ready = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&ready);
    let waits_on_drop = rt.block_on(move || {
        let ready = |seen: &Arc<AtomicUsize>| seen.fetch_add(1, Ordering::SeqCst);
        let s = Arc::clone(&seen);
        let waits_on_drop = go(move || {
            let _waits = ParkOnDrop;
            ready(&s);
            loop {
                gsched::park();
            }
        });
        let s = Arc::clone(&seen);
        go(move || {
            ready(&s);
            loop {
                let _ = std::panic::catch_unwind(gsched::park);
            }
        });
        let s = Arc::clone(&seen);
        go(move || {
            ready(&s);
            loop {
                let _ = std::panic::catch_unwind(gsched::park);
                gsched::yield_now();
            }
        });
        for _ in 0..10 {
            let counter = Arc::clone(&counter);
            let s = Arc::clone(&seen);
            go(move || {
                let _guard = CountOnDrop(counter);
                ready(&s);
                loop {
                    gsched::park_with_reason("test");
                }
            });
        }
        while seen.load(Ordering::SeqCst) < 13 {
            gsched::sleep(Duration::from_millis(1));
        }
        waits_on_drop
    });
    let report = within(Duration::from_secs(30), move || rt.shutdown());
    assert_eq!(dropped.load(Ordering::SeqCst), 10);
    assert_eq!(report.leaked.len(), 13, "{:?}", report.leaked);
    // The leaked goroutine's joiner is told, rather than left waiting.
    let payload = within(Duration::from_secs(10), move || {
        waits_on_drop.join().unwrap_err()
    });
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"gsched: the goroutine was dropped at runtime shutdown")
    );
    let leaked_stacks = report
        .leaked
        .iter()
        .filter(|line| line.contains("its stack is leaked"))
        .count();
    assert_eq!(leaked_stacks, 3, "{:?}", report.leaked);
    assert!(
        report
            .leaked
            .iter()
            .all(|line| !line.contains("parked on parked")),
        "{:?}",
        report.leaked
    );
}

/// The join of a goroutine unwound at shutdown says so, rather than handing out a private
/// unwinding payload.
#[test]
fn join_of_a_goroutine_unwound_at_shutdown_says_so() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let handles = rt.block_on(|| {
        let started = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&started);
        let parked = go(move || {
            seen.fetch_add(1, Ordering::SeqCst);
            loop {
                gsched::park();
            }
        });
        until_counted(&started, 1);
        vec![parked]
    });
    let report = rt.shutdown();
    assert_eq!(report.leaked.len(), 1, "{:?}", report.leaked);
    assert!(report.leaked[0].contains("parked, unwound at shutdown"));
    for handle in handles {
        let payload = handle.join().unwrap_err();
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"gsched: the goroutine was dropped at runtime shutdown")
        );
    }
}

/// Stack sizes are refused where they are given, with the setting named; nothing reaches a
/// worker.
#[test]
fn stack_sizes_are_checked_where_they_are_given() {
    match Runtime::builder().workers(1).stack_size(4096).build() {
        Err(BuildError::StackSize { requested, min, .. }) => {
            assert_eq!(requested, 4096);
            assert_eq!(min, gsched::MIN_STACK_SIZE);
        }
        other => panic!("expected a stack size error, got {other:?}"),
    }
    let err = Runtime::builder()
        .workers(1)
        .stack_size(usize::MAX)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("stack_size"), "{err}");
    let rt = Runtime::builder().workers(1).build().unwrap();
    rt.block_on(|| {
        match Builder::new().stack_size(4096).spawn(|| ()) {
            Err(SpawnError::StackSize { requested, .. }) => assert_eq!(requested, 4096),
            other => panic!("expected a stack size error, got {other:?}"),
        }
        let smallest = Builder::new()
            .stack_size(gsched::MIN_STACK_SIZE)
            .spawn(|| 5)
            .unwrap();
        assert_eq!(smallest.join().unwrap(), 5);
    });
}

/// The default stack holds what ordinary code puts on it, a 64 KiB buffer included (the
/// largest UDP datagram), on guard regions and on the mapping-per-stack fallback alike; a
/// goroutine that goes well beyond it is stopped at the guard and reported by name and stack
/// size, never running into other memory.
#[test]
fn the_default_stack_holds_a_64_kib_buffer_and_reports_an_overflow() {
    const NAME: &str = "the_default_stack_holds_a_64_kib_buffer_and_reports_an_overflow";
    const FALLBACK: &str = "GSCHED_SOUNDNESS_FALLBACK";
    #[inline(never)]
    fn fill<const N: usize>() -> u8 {
        let mut buffer = [0u8; N];
        std::hint::black_box(&mut buffer);
        buffer[N / 2]
    }
    if CHILD.is_child(NAME) {
        if std::env::var_os(FALLBACK).is_some() {
            gstack::force_mapping_per_stack();
        }
        let rt = Runtime::builder().workers(1).build().unwrap();
        rt.block_on(|| {
            let buffered = Builder::new().name("buffered").spawn(fill::<65536>);
            assert_eq!(buffered.unwrap().join().unwrap(), 0);
            println!("64 KiB held");
            let _ = Builder::new()
                .name("too deep")
                .spawn(fill::<{ 256 * 1024 }>)
                .unwrap()
                .join();
        });
        println!("not stopped");
        return;
    }
    for fallback in [false, true] {
        let child = CHILD.run(NAME);
        let child = if fallback {
            child.env(FALLBACK, "1")
        } else {
            child
        };
        let output = child.output();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        let backend = if fallback {
            "fallback"
        } else {
            "default backend"
        };
        assert!(
            stdout.contains("64 KiB held"),
            "{backend}: {stdout}\n{stderr}"
        );
        assert!(
            !stdout.contains("not stopped"),
            "{backend}: {stdout}\n{stderr}"
        );
        assert!(
            stderr.contains("goroutine stack overflow: goroutine")
                && stderr.contains("(\"too deep\"), stack of 64 KiB")
                && stderr.contains("gstack::maybe_grow"),
            "{backend}: {stderr}"
        );
    }
}

/// A detached goroutine whose panic payload panics when dropped: the process aborts with a
/// clear message, as std does for a thread, rather than losing a worker.
#[test]
fn a_payload_that_panics_on_drop_aborts_with_a_message() {
    const NAME: &str = "a_payload_that_panics_on_drop_aborts_with_a_message";
    if CHILD.is_child(NAME) {
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("the payload exploded");
            }
        }
        let rt = Runtime::builder().workers(1).build().unwrap();
        rt.block_on(|| {
            drop(go(|| std::panic::panic_any(Bomb)));
            for _ in 0..100 {
                gsched::sleep(Duration::from_millis(5));
            }
        });
        println!("not aborted");
        return;
    }
    let output = CHILD.run(NAME).output();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("panicked when dropped, with nobody joining it"),
        "{stderr}"
    );
}

/// The kernel refusing a stack (a budget set beyond its map limit) reaches the goroutines that
/// could not start, through their joins; the workers live on.
#[test]
fn a_stack_the_kernel_refuses_reaches_join() {
    const NAME: &str = "a_stack_the_kernel_refuses_reaches_join";
    if CHILD.is_child(NAME) {
        // Only stacks of a mapping each can run the kernel out of mappings.
        gstack::force_mapping_per_stack();
        gstack::set_stack_limit(1_000_000);
        // Leave the kernel room for about 2,000 more stacks (and the threads and heap).
        let mut hogs = Vec::new();
        while let Ok(stack) = gstack::GuardedStack::new(64 * 1024) {
            hogs.push(stack);
        }
        hogs.truncate(hogs.len() - 2_000);
        let rt = Runtime::builder().workers(2).build().unwrap();
        let (failed, finished) = rt.block_on(|| {
            let release = Arc::new(AtomicBool::new(false));
            let started = Arc::new(AtomicUsize::new(0));
            let handles: Vec<_> = (0..5_000)
                .map(|_| {
                    let (release, started) = (Arc::clone(&release), Arc::clone(&started));
                    go(move || {
                        started.fetch_add(1, Ordering::SeqCst);
                        while !release.load(Ordering::SeqCst) {
                            gsched::park_timeout(Duration::from_millis(20));
                        }
                    })
                })
                .collect();
            // Every goroutine started, holding its stack, or failed to get one (and ended):
            // released earlier, finished ones would hand their stacks to the rest.
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            while gsched::num_goroutines() > started.load(Ordering::SeqCst) + 1 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "goroutines neither started nor failed"
                );
                gsched::sleep(Duration::from_millis(5));
            }
            release.store(true, Ordering::SeqCst);
            let mut failed = 0;
            let mut finished = 0;
            for handle in handles {
                match handle.join() {
                    Ok(()) => finished += 1,
                    Err(payload) => {
                        let message = payload
                            .downcast_ref::<String>()
                            .cloned()
                            .unwrap_or_default();
                        assert!(
                            message.contains("cannot get a goroutine stack"),
                            "{message}"
                        );
                        failed += 1;
                    }
                }
            }
            (failed, finished)
        });
        drop(hogs);
        assert_eq!(failed + finished, 5_000);
        assert!(failed > 0, "the map limit was not reached");
        println!("refused stacks reached join: {failed} failed, {finished} finished");
        return;
    }
    let output = CHILD.run(NAME).limit(Duration::from_secs(300)).output();
    assert_child_ok(&output, "refused stacks reached join");
}

/// `Scope::go` that panics (the default runtime cannot start) leaves the scope able to return.
#[test]
fn a_failing_scope_go_does_not_hang_the_scope() {
    const NAME: &str = "a_failing_scope_go_does_not_hang_the_scope";
    if CHILD.is_child(NAME) {
        let outcome = std::panic::catch_unwind(|| {
            gsched::scope(|s| {
                s.go(|| ());
            })
        });
        let message = outcome
            .unwrap_err()
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(message.contains("GSCHED_PROCS"), "{message}");
        println!("scope returned");
        return;
    }
    let output = CHILD
        .run(NAME)
        .env("GSCHED_PROCS", "abc")
        .limit(Duration::from_secs(30))
        .output();
    assert_child_ok(&output, "scope returned");
}

/// `go` with settings it cannot honour panics at the caller's line, not inside the library.
#[test]
fn go_panics_at_the_callers_line() {
    const NAME: &str = "go_panics_at_the_callers_line";
    if CHILD.is_child(NAME) {
        let _ = go(|| ());
        return;
    }
    let output = CHILD
        .run(NAME)
        .env("GSCHED_PROCS", "abc")
        .limit(Duration::from_secs(30))
        .output();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("tests/soundness.rs:"), "{stderr}");
    assert!(
        stderr.contains("cannot start the default runtime"),
        "{stderr}"
    );
}

/// Dropping the last handle to a runtime inside one of its own goroutines finishes the
/// shutdown elsewhere, instead of failing to join its own thread.
#[test]
fn the_last_runtime_handle_may_drop_inside_its_goroutine() {
    let rt = Arc::new(Runtime::builder().workers(2).build().unwrap());
    let (done, finished) = mpsc::channel();
    let inner = Arc::clone(&rt);
    let other = rt.spawn(|| {
        loop {
            gsched::park();
        }
    });
    drop(rt.spawn(move || {
        gsched::sleep(Duration::from_millis(10));
        drop(inner);
        done.send(()).unwrap();
    }));
    drop(rt);
    finished
        .recv_timeout(Duration::from_secs(20))
        .expect("the goroutine that dropped the runtime went on");
    let payload = within(Duration::from_secs(20), move || other.join().unwrap_err());
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"gsched: the goroutine was dropped at runtime shutdown")
    );
}

/// A runtime built and used inside a goroutine of another runs on its own workers.
#[test]
fn a_runtime_used_inside_another_runs_its_own_goroutines() {
    let outer = Runtime::builder()
        .workers(1)
        .thread_name("outer")
        .build()
        .unwrap();
    let names = outer.block_on(|| {
        let inner = Runtime::builder()
            .workers(2)
            .thread_name("inner")
            .build()
            .unwrap();
        let main = inner.block_on(|| {
            let child = go(|| std::thread::current().name().map(String::from));
            (
                std::thread::current().name().map(String::from),
                child.join().unwrap(),
            )
        });
        let spawned = inner
            .spawn(|| std::thread::current().name().map(String::from))
            .join()
            .unwrap();
        (main, spawned)
    });
    let ((main, child), spawned) = names;
    for name in [main, child, spawned] {
        assert!(
            name.as_deref().unwrap_or("").starts_with("inner"),
            "{name:?}"
        );
    }
}

/// Timeouts too long to be a point in time mean "no timeout", as std's `park_timeout`.
#[test]
fn duration_max_means_forever() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    rt.block_on(|| {
        let parked = gsched::current_unparker();
        go(move || parked.unpark());
        gsched::park_timeout(Duration::MAX);
        let sleeper = go(|| gsched::sleep(Duration::MAX));
        gsched::sleep(Duration::from_millis(5));
        assert!(!sleeper.is_finished());
    });
}

/// Sleeps briefly when dropped, then counts.
struct SleepThenCount(Arc<AtomicUsize>);

impl Drop for SleepThenCount {
    fn drop(&mut self) {
        gsched::sleep(Duration::from_millis(5));
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A destructor that sleeps briefly while shutdown unwinds it finishes: the timer it waits on
/// holds shutdown up, as long as it is due soon.
#[test]
fn a_destructor_that_sleeps_briefly_during_shutdown_finishes() {
    let counted = Arc::new(AtomicUsize::new(0));
    let rt = Runtime::builder().workers(2).build().unwrap();
    let counter = Arc::clone(&counted);
    rt.block_on(move || {
        let started = Arc::new(AtomicUsize::new(0));
        for _ in 0..4 {
            let (counter, started) = (Arc::clone(&counter), Arc::clone(&started));
            go(move || {
                let _guard = SleepThenCount(counter);
                started.fetch_add(1, Ordering::SeqCst);
                loop {
                    gsched::park();
                }
            });
        }
        until_counted(&started, 4);
    });
    let report = within(Duration::from_secs(20), move || rt.shutdown());
    assert_eq!(counted.load(Ordering::SeqCst), 4, "{:?}", report.leaked);
    assert!(
        report
            .leaked
            .iter()
            .all(|line| line.contains("unwound at shutdown")),
        "{:?}",
        report.leaked
    );
}

/// A goroutine parked inside a destructor that its own panic runs cannot be unwound again at
/// shutdown (that would abort the process): it is leaked and listed, and the rest unwind.
#[test]
fn a_goroutine_parked_inside_its_panic_is_leaked_at_shutdown() {
    const NAME: &str = "a_goroutine_parked_inside_its_panic_is_leaked_at_shutdown";
    if CHILD.is_child(NAME) {
        let dropped = Arc::new(AtomicUsize::new(0));
        let rt = Runtime::builder().workers(1).build().unwrap();
        let counter = Arc::clone(&dropped);
        let stuck = rt.block_on(move || {
            // Parked before the panic begins, it is not mistaken for a goroutine in the
            // middle of one (std counts panics per thread; see the crate docs).
            let counter = Arc::clone(&counter);
            let started = Arc::new(AtomicUsize::new(0));
            let seen = Arc::clone(&started);
            go(move || {
                let _guard = CountOnDrop(counter);
                seen.fetch_add(1, Ordering::SeqCst);
                loop {
                    gsched::park();
                }
            });
            until_counted(&started, 1);
            let stuck = go(|| {
                let _waits = ParkOnDrop;
                panic!("a panic whose cleanup waits for good");
            });
            let in_destructor = gsched::GoroutineState::Parked(PARKED_ON_DROP);
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while gsched::dump()
                .get(stuck.id())
                .is_none_or(|entry| entry.state != in_destructor)
            {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the panicking goroutine never parked in its destructor"
                );
                gsched::sleep(Duration::from_millis(1));
            }
            stuck
        });
        let report = rt.shutdown();
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
        assert_eq!(report.leaked.len(), 2, "{:?}", report.leaked);
        assert!(
            report
                .leaked
                .iter()
                .any(|line| line.contains("inside a destructor")),
            "{:?}",
            report.leaked
        );
        assert!(stuck.join().is_err());
        println!("leaked, not aborted");
        return;
    }
    let output = CHILD.run(NAME).output();
    assert_child_ok(&output, "leaked, not aborted");
}

/// MXCSR's rounding-control bits.
#[cfg(target_arch = "x86_64")]
const ROUNDING: u32 = 0b11 << 13;

#[cfg(target_arch = "x86_64")]
fn mxcsr() -> u32 {
    let mut value = 0_u32;
    // SAFETY: `stmxcsr` stores four bytes to the given address, which is a valid `u32`.
    unsafe { std::arch::asm!("stmxcsr [{}]", in(reg) &mut value, options(nostack)) };
    value
}

/// Sets round-toward-zero on the calling thread.
#[cfg(target_arch = "x86_64")]
fn round_toward_zero() {
    let value = mxcsr() | ROUNDING;
    // SAFETY: `ldmxcsr` reads four bytes from a valid `u32`, whose only change from the
    // thread's value is the rounding mode.
    unsafe { std::arch::asm!("ldmxcsr [{}]", in(reg) &value, options(nostack)) };
}

/// Goroutines skip the floating-point control save at each switch; the worker checks it once
/// per resume instead: a goroutine's rounding mode stays its own across its switches, and never
/// reaches the goroutines that share its worker, nor those that run there after it ended.
#[cfg(target_arch = "x86_64")]
#[test]
fn each_goroutine_keeps_its_own_floating_point_control() {
    within(Duration::from_secs(60), || {
        let rt = Runtime::builder().workers(1).build().expect("runtime");
        rt.block_on(|| {
            let default = mxcsr() & ROUNDING;
            assert_ne!(
                default, ROUNDING,
                "the test starts with another rounding mode"
            );
            let changer = go(|| {
                round_toward_zero();
                (0..5)
                    .map(|_| {
                        gsched::yield_now();
                        mxcsr() & ROUNDING
                    })
                    .collect::<Vec<_>>()
            });
            let neighbour = go(|| {
                (0..5)
                    .map(|_| {
                        gsched::yield_now();
                        mxcsr() & ROUNDING
                    })
                    .collect::<Vec<_>>()
            });
            let changer = changer.join().expect("changer");
            let neighbour = neighbour.join().expect("neighbour");
            assert!(changer.iter().all(|&mode| mode == ROUNDING), "{changer:x?}");
            assert!(
                neighbour.iter().all(|&mode| mode == default),
                "{neighbour:x?}"
            );
            let after = go(|| mxcsr() & ROUNDING).join().expect("after");
            assert_eq!(
                after, default,
                "a goroutine that ended left its mode behind"
            );
            assert_eq!(
                mxcsr() & ROUNDING,
                default,
                "the main goroutine keeps its mode"
            );
        });
    });
}
