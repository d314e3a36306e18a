//! The goroutine dump: every state and gsched wait reason, how long a goroutine waited, what a
//! busy worker leaves out, and that every goroutine is listed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gsched::{Builder, Dump, GoroutineState, Runtime};
use testkit::ChildTest;

const CHILD: ChildTest = ChildTest::new("GSCHED_DUMP_CHILD");

/// Polls `dump` until `check` holds, for at most 10 s.
fn dump_until(dump: impl Fn() -> Dump, check: impl Fn(&Dump) -> bool) -> Dump {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = dump();
        if check(&found) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "the dump never matched:\n{found}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn state_of(dump: &Dump, id: u64) -> Option<GoroutineState> {
    dump.get(id).map(|goroutine| goroutine.state)
}

#[test]
fn a_dump_shows_running_runnable_unstarted_and_each_gsched_wait() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let release = Arc::new(AtomicBool::new(false));
    let sleeper = Builder::new()
        .name("sleeper")
        .spawn_on(&rt, || gsched::sleep(Duration::from_secs(3600)))
        .unwrap();
    let parked = rt.spawn({
        let release = release.clone();
        move || {
            while !release.load(Ordering::Acquire) {
                gsched::park_with_reason("a custom wait");
            }
        }
    });
    let blocked = rt.spawn({
        let release = release.clone();
        move || {
            gsched::blocking(move || {
                while !release.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        }
    });
    let seen = rt.block_on({
        let release = Arc::new(AtomicBool::new(false));
        move || {
            let yielder = gsched::go({
                let release = release.clone();
                move || {
                    while !release.load(Ordering::Acquire) {
                        gsched::yield_now();
                    }
                }
            });
            let joiner = gsched::go(move || yielder.join().unwrap());
            let scoped = gsched::go({
                let release = release.clone();
                move || {
                    gsched::scope(|s| {
                        s.go(|| {
                            while !release.load(Ordering::Acquire) {
                                gsched::sleep(Duration::from_millis(1));
                            }
                        });
                    })
                }
            });
            // Let them all start and wait, then queue one that cannot start before the dump:
            // this goroutine does not switch until it has the dump.
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            loop {
                let dump = gsched::dump();
                if state_of(&dump, joiner.id()) == Some(GoroutineState::Parked("join"))
                    && state_of(&dump, scoped.id()) == Some(GoroutineState::Parked("scope"))
                {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "they never parked: {dump}"
                );
                gsched::sleep(Duration::from_millis(1));
            }
            let unstarted = Builder::new().same_worker().spawn(|| ()).unwrap();
            let me = gsched::current().unwrap().id();
            let dump = gsched::dump();
            let states = [
                (me, dump.get(me).map(|g| g.state)),
                (unstarted.id(), state_of(&dump, unstarted.id())),
                (joiner.id(), state_of(&dump, joiner.id())),
                (scoped.id(), state_of(&dump, scoped.id())),
            ];
            let text = dump.to_string();
            release.store(true, Ordering::Release);
            joiner.join().unwrap();
            scoped.join().unwrap();
            unstarted.join().unwrap();
            (states, text)
        }
    });
    let (states, text) = seen;
    assert_eq!(states[0].1, Some(GoroutineState::Running), "{text}");
    assert_eq!(states[1].1, Some(GoroutineState::NotStarted), "{text}");
    assert_eq!(states[2].1, Some(GoroutineState::Parked("join")), "{text}");
    assert_eq!(states[3].1, Some(GoroutineState::Parked("scope")), "{text}");
    assert!(
        text.contains("[runnable]:"),
        "the yielder is runnable: {text}"
    );
    assert!(text.contains("\"main\" [running]:"), "{text}");
    assert!(text.contains("[not started]:"), "{text}");
    assert!(
        text.contains("created by crates/gsched/tests/dump.rs:"),
        "{text}"
    );
    let dump = dump_until(
        || rt.dump(),
        |dump| state_of(dump, sleeper.id()) == Some(GoroutineState::Parked("sleep")),
    );
    assert_eq!(
        state_of(&dump, parked.id()),
        Some(GoroutineState::Parked("a custom wait"))
    );
    let sleeper_entry = dump.get(sleeper.id()).unwrap();
    assert_eq!(sleeper_entry.name.as_deref(), Some("sleeper"));
    assert_eq!(sleeper_entry.worker, Some(0));
    assert!(
        dump.to_string()
            .contains(&format!("goroutine {} \"sleeper\" [sleep]:", sleeper.id()))
    );
    assert_eq!(
        state_of(&dump, blocked.id()),
        Some(GoroutineState::Parked("blocking call"))
    );
    assert!(dump.is_complete(), "{:?}", dump.notes());
    release.store(true, Ordering::Release);
    blocked.join().unwrap();
    drop((sleeper, parked));
}

#[test]
fn a_goroutine_that_never_switched_lists_itself_running() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let (me, state, text) = rt
        .spawn(|| {
            let me = gsched::current().unwrap().id();
            let dump = gsched::dump();
            (me, state_of(&dump, me), dump.to_string())
        })
        .join()
        .unwrap();
    assert_eq!(
        state,
        Some(GoroutineState::Running),
        "goroutine {me}: {text}"
    );
}

#[test]
fn a_goroutine_that_only_yielded_is_listed_runnable() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let (id, state, text) = rt.block_on(|| {
        let stop = Arc::new(AtomicBool::new(false));
        let yielder = gsched::go({
            let stop = stop.clone();
            move || {
                while !stop.load(Ordering::Acquire) {
                    gsched::yield_now();
                }
            }
        });
        // On one worker, the yielder runs while this goroutine yields, and is queued behind
        // it when it comes back.
        for _ in 0..10 {
            gsched::yield_now();
        }
        let dump = gsched::dump();
        stop.store(true, Ordering::Release);
        let id = yielder.id();
        yielder.join().unwrap();
        (id, state_of(&dump, id), dump.to_string())
    });
    assert_eq!(
        state,
        Some(GoroutineState::Runnable),
        "goroutine {id}: {text}"
    );
}

#[test]
fn a_parked_goroutine_shows_how_long_it_has_waited() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let parked = rt.spawn(|| gsched::park_with_reason("long wait"));
    let dump = dump_until(
        || rt.dump(),
        |dump| state_of(dump, parked.id()) == Some(GoroutineState::Parked("long wait")),
    );
    let first = dump.get(parked.id()).unwrap().waiting.unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    // The wait is counted in the monitor's ticks, which a loaded machine may delay.
    let later = dump_until(
        || rt.dump(),
        |dump| {
            dump.get(parked.id())
                .and_then(|entry| entry.waiting)
                .is_some_and(|waited| waited >= first + Duration::from_millis(1000))
        },
    );
    let waited = later.get(parked.id()).unwrap().waiting.unwrap();
    assert!(
        waited < first + Duration::from_secs(60),
        "waited {waited:?} after {first:?}"
    );
    let shown = match waited.as_secs() {
        1 => "1 second".to_string(),
        secs => format!("{secs} seconds"),
    };
    assert!(
        later
            .to_string()
            .contains(&format!("goroutine {} [long wait, {shown}]:", parked.id())),
        "{later}"
    );
}

/// A dump from a plain thread covers every runtime of the process, those of the tests that run
/// beside this one included (one of them keeps a worker busy on purpose): so it runs alone, in
/// a child process.
#[test]
fn a_dump_from_a_plain_thread_lists_every_runtime_and_every_goroutine() {
    const NAME: &str = "a_dump_from_a_plain_thread_lists_every_runtime_and_every_goroutine";
    if CHILD.is_child(NAME) {
        dump_every_runtime_from_a_plain_thread();
        return;
    }
    let output = CHILD.run(NAME).output();
    assert!(output.status.success(), "{output:?}");
}

fn dump_every_runtime_from_a_plain_thread() {
    let first = Runtime::builder().workers(2).build().unwrap();
    let second = Runtime::builder().workers(1).build().unwrap();
    let release = Arc::new(AtomicBool::new(false));
    let unparkers = Arc::new(std::sync::Mutex::new(Vec::new()));
    let park = |release: Arc<AtomicBool>, unparkers: Arc<std::sync::Mutex<Vec<_>>>| {
        move || {
            unparkers.lock().unwrap().push(gsched::current_unparker());
            while !release.load(Ordering::Acquire) {
                gsched::park_with_reason("many");
            }
        }
    };
    let handles: Vec<_> = (0..10_000)
        .map(|i| {
            let rt = if i % 2 == 0 { &first } else { &second };
            rt.spawn(park(release.clone(), unparkers.clone()))
        })
        .collect();
    let ids: Vec<u64> = handles.iter().map(|handle| handle.id()).collect();
    // A worker that a loaded machine keeps off the CPU past the dump's wait is noted as not
    // answering; a later dump lists it.
    dump_until(gsched::dump, |dump| {
        dump.is_complete()
            && ids
                .iter()
                .all(|&id| state_of(dump, id) == Some(GoroutineState::Parked("many")))
    });
    // Listing put every queue back: all of them still run to the end.
    release.store(true, Ordering::Release);
    for unparker in unparkers.lock().unwrap().iter() {
        unparker.unpark();
    }
    for handle in handles {
        handle.join().unwrap();
    }
}

#[test]
fn a_worker_busy_in_one_goroutine_is_described_and_the_dump_still_returns() {
    let rt = Runtime::builder()
        .workers(2)
        .long_run_report(false)
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let spinner = Builder::new()
        .name("spinner")
        .spawn_on(&rt, {
            let stop = stop.clone();
            move || {
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            }
        })
        .unwrap();
    let dump = dump_until(
        || rt.dump(),
        |dump| state_of(dump, spinner.id()) == Some(GoroutineState::Running) && !dump.is_complete(),
    );
    // The idle worker may miss the wait on a loaded machine too, and leave a note of its own.
    assert!(
        dump.notes()
            .iter()
            .any(|note| note.contains(&format!("runs goroutine {}", spinner.id()))),
        "{:?}",
        dump.notes()
    );
    assert!(dump.to_string().contains("\"spinner\" [running]:"));
    stop.store(true, Ordering::Relaxed);
    spinner.join().unwrap();
}

#[test]
fn a_goroutine_waiting_for_a_stack_shows_stack_wait() {
    const NAME: &str = "a_goroutine_waiting_for_a_stack_shows_stack_wait";
    if CHILD.is_child(NAME) {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let release = Arc::new(AtomicBool::new(false));
        let text = rt.block_on({
            let release = release.clone();
            move || {
                gstack::set_stack_limit(gstack::stacks_in_use() + 1);
                let holders: Vec<_> = (0..3)
                    .map(|_| {
                        let release = release.clone();
                        gsched::go(move || {
                            while !release.load(Ordering::Acquire) {
                                gsched::sleep(Duration::from_millis(1));
                            }
                        })
                    })
                    .collect();
                let dump = dump_until(gsched::dump, |dump| {
                    dump.goroutines()
                        .iter()
                        .any(|g| g.state == GoroutineState::WaitingForStack)
                });
                release.store(true, Ordering::Release);
                gstack::set_stack_limit(usize::MAX);
                for holder in holders {
                    holder.join().unwrap();
                }
                dump.to_string()
            }
        });
        println!("{text}");
        return;
    }
    let output = CHILD.run(NAME).output();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("[stack wait]:"), "{stdout}");
}

#[inline(never)]
fn a_recognizable_frame_that_parks() {
    // Work after the park keeps the frame: a tail call would leave no trace in release builds.
    let before = std::hint::black_box(1u32);
    gsched::park_with_reason("parked with its backtrace");
    std::hint::black_box(before);
}

#[test]
fn park_backtraces_show_where_a_goroutine_waits() {
    let rt = Runtime::builder()
        .workers(1)
        .park_backtraces(true)
        .build()
        .unwrap();
    let parked = rt.spawn(a_recognizable_frame_that_parks);
    let dump = dump_until(
        || rt.dump(),
        |dump| {
            state_of(dump, parked.id()) == Some(GoroutineState::Parked("parked with its backtrace"))
        },
    );
    let entry = dump.get(parked.id()).unwrap();
    let backtrace = entry
        .backtrace
        .as_ref()
        .expect("captured at the park")
        .to_string();
    assert!(
        backtrace.contains("a_recognizable_frame_that_parks"),
        "{backtrace}"
    );
    assert!(dump.to_string().contains("a_recognizable_frame_that_parks"));
    // Off by default.
    let plain = Runtime::builder().workers(1).build().unwrap();
    let other = plain.spawn(a_recognizable_frame_that_parks);
    let dump = dump_until(
        || plain.dump(),
        |dump| {
            state_of(dump, other.id()) == Some(GoroutineState::Parked("parked with its backtrace"))
        },
    );
    assert!(dump.get(other.id()).unwrap().backtrace.is_none());
}
