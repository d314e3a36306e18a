//! The deadlock report, the `SIGQUIT` dump and schedtrace, each in a child process of its own.
//!
//! A test binary with its own `main`: the report stays silent while any thread outside the
//! runtime exists, and libtest runs every test on a thread of its own beside its main thread.
//! The cases run at once, each in a child of this binary that runs one case.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gsched::{Runtime, go};

const CASE: &str = "GSCHED_DEADLOCK_CASE";

/// How long a case that must stay silent runs: 20 times the report's 100 ms.
const SILENT_FOR: Duration = Duration::from_secs(2);

/// A flag nothing ever sets: a park loop on it waits for good.
static NEVER: AtomicBool = AtomicBool::new(false);

fn park_forever(reason: &'static str) {
    while !NEVER.load(Ordering::Relaxed) {
        gsched::park_with_reason(reason);
    }
}

/// The child half of each case.
fn run_case(case: &str) {
    match case {
        "run_panics" => {
            gsched::run(|| {
                let stuck = gsched::Builder::new()
                    .name("stuck")
                    .spawn(|| park_forever("chan receive"))
                    .unwrap();
                stuck.join().unwrap();
            });
        }
        "builder_exits" => {
            let rt = Runtime::builder()
                .workers(2)
                .exit_on_deadlock(true)
                .build()
                .unwrap();
            rt.block_on(|| park_forever("sync.WaitGroup.Wait"));
        }
        "builder_reports" => {
            // A runtime from the builder reports and carries on: this thread ends the
            // process after the report had time to come. A registered helper thread does not
            // count as one that might send.
            std::thread::spawn(|| {
                let _helper = gsched::HelperThread::register();
                std::thread::sleep(Duration::from_millis(4000));
                std::process::exit(0);
            });
            let rt = Runtime::builder().workers(2).build().unwrap();
            let stuck = rt.spawn(|| park_forever("select"));
            // Blocked on the goroutine, though not in `block_on`: an outside thread, so the
            // report would stay silent; `block_on` counts the thread as the runtime's.
            rt.block_on(move || {
                gsched::sleep(Duration::from_millis(500));
                drop(stuck);
                park_forever("sync.Mutex.Lock");
            });
        }
        "outside_thread_sends" => {
            let unparker = std::sync::Arc::new(std::sync::Mutex::new(None));
            let sender = std::thread::spawn({
                let unparker = unparker.clone();
                move || {
                    std::thread::sleep(SILENT_FOR);
                    let unparker: Option<gsched::Unparker> = unparker.lock().unwrap().take();
                    unparker.expect("the goroutine parked").unpark();
                }
            });
            gsched::run(move || {
                *unparker.lock().unwrap() = Some(gsched::current_unparker());
                gsched::park_with_reason("chan receive");
            });
            sender.join().unwrap();
        }
        "pending_timer" => gsched::run(|| {
            let sleeper = go(|| gsched::sleep(SILENT_FOR));
            sleeper.join().unwrap();
        }),
        "blocking_call" => gsched::run(|| {
            gsched::blocking(|| std::thread::sleep(SILENT_FOR));
        }),
        "stack_wait" => {
            let rt = Runtime::builder().workers(2).build().unwrap();
            let started = Instant::now();
            rt.block_on(move || {
                gstack::set_stack_limit(gstack::stacks_in_use() + 2);
                let waiting: Vec<_> = (0..4).map(|_| go(|| park_forever("park"))).collect();
                while started.elapsed() < SILENT_FOR {
                    gsched::sleep(Duration::from_millis(50));
                }
                drop(waiting);
            });
        }
        "sigquit" => {
            let rt = Runtime::builder()
                .workers(2)
                .dump_on_sigquit(true)
                .build()
                .unwrap();
            rt.block_on(|| {
                let _parked = gsched::Builder::new()
                    .name("waiting for SIGQUIT")
                    .spawn(|| gsched::sleep(Duration::from_secs(3600)))
                    .unwrap();
                gsched::sleep(Duration::from_millis(50));
                // SAFETY: `raise` sends a signal to this thread; the handler is installed.
                unsafe { libc::raise(libc::SIGQUIT) };
                gsched::sleep(Duration::from_millis(500));
            });
            println!("went on after SIGQUIT");
        }
        "schedtrace" => gsched::run(|| {
            for _ in 0..10 {
                go(|| gsched::sleep(Duration::from_millis(100)))
                    .join()
                    .unwrap();
            }
        }),
        other => panic!("no case {other}"),
    }
}

/// Runs `case` in a child process, with `env` set, killing it after a minute.
fn child(case: &str, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.env(CASE, case);
    for (key, value) in env {
        command.env(key, value);
    }
    let started = Instant::now();
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let (stdout, stderr) = (read(Box::new(stdout)), read(Box::new(stderr)));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let output = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
            panic!("case {case} still ran after a minute; stderr: {output}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

type Check = fn(&Output, &str) -> Result<(), String>;

/// Cases whose output needs workers to answer within a bound (a dump waits 100 ms for each, a
/// report must come before the helper ends the process, a trace needs its periods): with nine
/// children on two CPUs one may miss it, so they get three tries. A false deadlock report is
/// never retried away: the silent cases get one.
const WAIT_FOR_WORKERS: &[&str] = &["builder_reports", "sigquit", "schedtrace"];

/// A case: its name, the environment its child gets, and the check of the child's output.
type Case = (&'static str, &'static [(&'static str, &'static str)], Check);

fn expect(ok: bool, what: &str, stderr: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("{what}; stderr:\n{stderr}"))
    }
}

fn silent(output: &Output, stderr: &str) -> Result<(), String> {
    expect(
        output.status.success() && !stderr.contains("deadlock"),
        "a deadlock was reported where something could still wake the goroutine",
        stderr,
    )
}

const CASES: &[Case] = &[
    ("run_panics", &[], |output, stderr| {
        expect(
            !output.status.success()
                && output.status.code() != Some(2)
                && stderr.contains("gsched: all goroutines are asleep - deadlock!")
                && stderr.contains("goroutine 1 \"main\" [join]:")
                && stderr.contains("\"stuck\" [chan receive]:")
                && stderr.contains("created by crates/gsched/tests/deadlock.rs:")
                && stderr.contains("panicked")
                && stderr
                    .matches("all goroutines are asleep - deadlock!")
                    .count()
                    >= 2,
            "gsched::run did not report the deadlock and panic with its message",
            stderr,
        )
    }),
    ("builder_exits", &[], |output, stderr| {
        expect(
            output.status.code() == Some(2)
                && stderr.contains("fatal error: all goroutines are asleep - deadlock!")
                && stderr.contains("[sync.WaitGroup.Wait]:"),
            "exit_on_deadlock(true) did not exit with status 2 after the report",
            stderr,
        )
    }),
    ("builder_reports", &[], |_, stderr| {
        expect(
            stderr.contains("gsched: all goroutines are asleep - deadlock!")
                && stderr.contains("[select]:")
                && stderr.contains("[sync.Mutex.Lock]:"),
            "a runtime from the builder did not report its deadlock",
            stderr,
        )
    }),
    ("outside_thread_sends", &[], silent),
    ("pending_timer", &[], silent),
    ("blocking_call", &[], silent),
    ("stack_wait", &[], silent),
    ("sigquit", &[], |output, stderr| {
        expect(
            output.status.success()
                && String::from_utf8_lossy(&output.stdout).contains("went on after SIGQUIT")
                && stderr.contains("SIGQUIT: goroutine dump")
                && stderr.contains("\"waiting for SIGQUIT\" [sleep]:")
                && stderr.contains("\"main\" [sleep]:"),
            "SIGQUIT did not print the dump, or the program did not go on",
            stderr,
        )
    }),
    (
        "schedtrace",
        &[("GSCHED_DEBUG", "schedtrace=50")],
        |output, stderr| {
            expect(
                output.status.success()
                    && stderr
                        .lines()
                        .filter(|line| line.starts_with("SCHED "))
                        .count()
                        >= 3
                    && stderr.contains("parks=[")
                    && stderr.contains("sleep: "),
                "GSCHED_DEBUG=schedtrace=50 did not print the counters every 50 ms",
                stderr,
            )
        },
    ),
];

fn main() {
    if let Ok(case) = std::env::var(CASE) {
        run_case(&case);
        return;
    }
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let runs: Vec<_> = CASES
        .iter()
        .filter(|(name, _, _)| filter.is_empty() || filter.iter().any(|f| name.contains(f)))
        .map(|&(name, env, check)| {
            (
                name,
                std::thread::spawn(move || {
                    let tries = if WAIT_FOR_WORKERS.contains(&name) {
                        3
                    } else {
                        1
                    };
                    let mut outcome = Ok(());
                    for _ in 0..tries {
                        let output = child(name, env);
                        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
                        outcome = check(&output, &stderr);
                        if outcome.is_ok() {
                            break;
                        }
                    }
                    outcome
                }),
            )
        })
        .collect();
    let mut failed = 0;
    let total = runs.len();
    for (name, run) in runs {
        match run.join().unwrap() {
            Ok(()) => println!("test {name} ... ok"),
            Err(why) => {
                failed += 1;
                println!("test {name} ... FAILED\n{why}");
            }
        }
    }
    println!("deadlock: {} passed, {failed} failed", total - failed);
    assert_eq!(failed, 0, "{failed} of {total} deadlock cases failed");
}
