//! Goroutines beyond the stack budget wait for stacks; when none can ever be freed the runtime
//! stops with a clear error. Both run in child processes: the budget is process-wide.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gsched::{Runtime, go};

const CHILD: &str = "GSCHED_STACK_LIMIT_CHILD";

fn run_child(test: &str) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture"])
        .env(CHILD, test)
        .output()
        .unwrap()
}

fn in_child(test: &str) -> bool {
    std::env::var(CHILD).is_ok_and(|value| value == test)
}

#[test]
fn goroutines_wait_for_stacks_when_the_budget_is_spent() {
    const NAME: &str = "goroutines_wait_for_stacks_when_the_budget_is_spent";
    if in_child(NAME) {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let finished = rt.block_on(|| {
            gstack::set_stack_limit(gstack::stacks_in_use() + 6);
            let handles: Vec<_> = (0..60u32)
                .map(|i| {
                    go(move || {
                        gsched::sleep(Duration::from_millis(2));
                        i
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum::<u32>()
        });
        assert_eq!(finished, (0..60).sum());
        println!("all finished");
        return;
    }
    let output = run_child(NAME);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("all finished"),
        "{output:?}"
    );
}

#[test]
fn a_stall_on_stacks_is_reported_not_hung() {
    const NAME: &str = "a_stall_on_stacks_is_reported_not_hung";
    if in_child(NAME) {
        let rt = Runtime::builder().workers(2).build().unwrap();
        rt.block_on(|| {
            gstack::set_stack_limit(gstack::stacks_in_use() + 4);
            static NEVER: AtomicBool = AtomicBool::new(false);
            let handles: Vec<_> = (0..20)
                .map(|_| {
                    go(|| {
                        while !NEVER.load(Ordering::Relaxed) {
                            gsched::park();
                        }
                    })
                })
                .collect();
            for handle in handles {
                handle.join().unwrap();
            }
        });
        unreachable!("parked forever");
    }
    let output = run_child(NAME);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no goroutine can make progress"),
        "{stderr}"
    );
    assert!(stderr.contains("vm.max_map_count"), "{stderr}");
}
