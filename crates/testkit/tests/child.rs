//! `ChildTest` against this test binary itself: what a child run passes on, what it brings back,
//! and a hung child killed at its limit.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use testkit::ChildTest;

const CHILD: ChildTest = ChildTest::new("TESTKIT_CHILD_TEST_CHILD");

/// The panic message of `outcome`, which must have panicked.
fn panic_message(outcome: std::thread::Result<std::process::Output>) -> String {
    let payload = outcome.expect_err("the child run returned");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|text| text.to_string()))
        .unwrap_or_default()
}

#[test]
fn a_child_gets_its_variables_and_its_output_comes_back() {
    const NAME: &str = "a_child_gets_its_variables_and_its_output_comes_back";
    if CHILD.is_child(NAME) {
        assert!(!CHILD.is_child("another_test"));
        println!("setting: {}", std::env::var("TESTKIT_SETTING").unwrap());
        // More than a pipe holds: the parent must read while the child writes.
        eprintln!("{}", "x".repeat(1 << 20));
        std::process::exit(3);
    }
    assert!(!CHILD.is_child(NAME));
    let output = CHILD.run(NAME).env("TESTKIT_SETTING", "on").output();
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("setting: on"), "{stdout}");
    assert!(
        output.stderr.len() > 1 << 20,
        "{} bytes",
        output.stderr.len()
    );
}

#[test]
#[ignore = "run as a child process by its parent test"]
fn an_ignored_child() {
    if CHILD.is_child("an_ignored_child") {
        println!("the ignored child ran");
    }
}

#[test]
fn an_ignored_child_runs_when_asked() {
    let output = CHILD.run("an_ignored_child").ignored().output();
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("the ignored child ran"));
    let skipped = CHILD.run("an_ignored_child").output();
    assert!(!String::from_utf8_lossy(&skipped.stdout).contains("the ignored child ran"));
}

#[test]
fn a_hung_child_is_killed_at_its_limit() {
    const NAME: &str = "a_hung_child_is_killed_at_its_limit";
    if CHILD.is_child(NAME) {
        eprintln!("hanging now");
        loop {
            std::thread::park();
        }
    }
    // Long enough for the child to start and print on a busy machine.
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        CHILD.run(NAME).limit(Duration::from_secs(3)).output()
    }));
    let message = panic_message(outcome);
    assert!(message.contains("was still running after 3s"), "{message}");
    assert!(message.contains("hanging now"), "{message}");
}

#[test]
fn a_child_that_does_not_know_its_name_does_not_start_another() {
    const NAME: &str = "a_child_that_does_not_know_its_name_does_not_start_another";
    // The mistake under test: a child half that does not recognise its run (a misspelt name)
    // falls through to the parent half, here told apart by the marker alone.
    if std::env::var_os("TESTKIT_CHILD_TEST_CHILD").is_some() {
        let message = panic_message(catch_unwind(|| CHILD.run(NAME).output()));
        assert!(
            message.contains("tried to start a child of its own"),
            "{message}"
        );
        println!("refused");
        return;
    }
    let output = CHILD.run(NAME).output();
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("refused"));
}
