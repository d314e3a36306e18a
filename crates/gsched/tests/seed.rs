//! The seed's programs, with their outcomes checked.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gsched::{go, scope};

fn say_hello() -> &'static str {
    "hello"
}

#[test]
fn named_anonymous_and_variable_functions() {
    assert_eq!(go(say_hello).join().unwrap(), "hello");
    assert_eq!(go(|| "hello").join().unwrap(), "hello");
    let in_variable = || "hello";
    assert_eq!(go(in_variable).join().unwrap(), "hello");
}

#[test]
fn a_closure_changes_shared_state_seen_after_the_join() {
    let salutation = Arc::new(Mutex::new("hello"));
    let shared = Arc::clone(&salutation);
    go(move || *shared.lock().unwrap() = "welcome")
        .join()
        .unwrap();
    assert_eq!(*salutation.lock().unwrap(), "welcome");
}

#[test]
fn each_goroutine_gets_its_own_loop_value() {
    let handles: Vec<_> = ["hello", "greetings", "good day"]
        .into_iter()
        .map(|salutation| go(move || salutation))
        .collect();
    let seen: HashSet<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(seen, HashSet::from(["hello", "greetings", "good day"]));
}

#[test]
fn fork_join_sum() {
    let data: Vec<u64> = (0..1_000_000).collect();
    let mut partial = vec![0u64; 1024];
    let chunk = data.len().div_ceil(partial.len());
    scope(|s| {
        for (part, slice) in partial.iter_mut().zip(data.chunks(chunk)) {
            s.go(move || *part = slice.iter().sum());
        }
    });
    assert_eq!(partial.iter().sum::<u64>(), (0..1_000_000u64).sum());
}

#[test]
fn greeters_all_say_hello() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let greeters: Vec<_> = (1..=5)
        .map(|id| {
            let lines = Arc::clone(&lines);
            go(move || lines.lock().unwrap().push(format!("Hello from {id}!")))
        })
        .collect();
    for greeter in greeters {
        greeter.join().unwrap();
    }
    let mut lines = lines.lock().unwrap().clone();
    lines.sort();
    assert_eq!(
        lines,
        (1..=5)
            .map(|id| format!("Hello from {id}!"))
            .collect::<Vec<_>>()
    );
}

#[test]
fn sleepers_sleep_concurrently() {
    let start = Instant::now();
    let first = go(|| gsched::sleep(Duration::from_millis(100)));
    let second = go(|| gsched::sleep(Duration::from_millis(200)));
    first.join().unwrap();
    second.join().unwrap();
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(200));
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}
