//! The deadlock report with gsync: a receive nobody sends to is reported, and a pending
//! `after` keeps the report silent, though its timer thread is a thread outside the runtime.
//! Its own `main`, since libtest's threads would keep the report silent; each case runs in a
//! child process.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CASE: &str = "GSYNC_DEADLOCK_CASE";

fn run_case(case: &str) {
    match case {
        "receive_without_sender" => gsched::run(|| {
            let (tx, rx) = gsync::chan::<u32>(0);
            // A timer thread exists and has fired: it alone must not hide the deadlock.
            gsync::after(Duration::from_millis(1)).recv().unwrap();
            let _keep_open = tx;
            let _ = rx.recv();
        }),
        "pending_after" => gsched::run(|| {
            let fired = gsync::after(Duration::from_secs(2)).recv();
            assert!(fired.is_ok());
        }),
        other => panic!("no case {other}"),
    }
}

fn child(case: &str) -> (Option<i32>, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CASE, case)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "case {case} still ran after a minute: {}",
                reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code(), reader.join().unwrap())
}

fn main() {
    if let Ok(case) = std::env::var(CASE) {
        run_case(&case);
        return;
    }
    let reported = std::thread::spawn(|| child("receive_without_sender"));
    let silent = std::thread::spawn(|| child("pending_after"));
    let (code, stderr) = reported.join().unwrap();
    assert!(
        code != Some(0)
            && stderr.contains("all goroutines are asleep - deadlock!")
            && stderr.contains("\"main\" [chan receive]:"),
        "a receive nobody can send to was not reported ({code:?}):\n{stderr}"
    );
    let (code, stderr) = silent.join().unwrap();
    assert!(
        code == Some(0) && !stderr.contains("deadlock"),
        "a pending `after` did not keep the report silent ({code:?}):\n{stderr}"
    );
    println!("deadlock: 2 passed, 0 failed");
}
