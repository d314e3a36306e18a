//! When every goroutine stack is held by a parked goroutine and nothing else in the process
//! could release one, the runtime says so on stderr, once, and keeps waiting: it never ends
//! the process on its own. A test with its own `main` (no harness threads), re-run as a child
//! process: the stack budget is process-wide, and the stall is counted in threads.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use gsched::{Runtime, go};

const CHILD: &str = "GSCHED_STALL_REPORT_CHILD";

fn child() {
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

fn main() {
    if std::env::var_os(CHILD).is_some() {
        child();
        return;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (lines, seen) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        let mut text = String::new();
        while let Ok(read) = stderr.read(&mut buffer) {
            if read == 0 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(&buffer[..read]));
            let _ = lines.send(text.clone());
        }
    });
    let mut text = String::new();
    while let Ok(more) = seen.recv_timeout(Duration::from_secs(30)) {
        text = more;
        if text.contains("The runtime keeps waiting") {
            break;
        }
    }
    // The report came, and the child is still waiting rather than exiting on a guess.
    std::thread::sleep(Duration::from_millis(200));
    let still_running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        text.contains("no goroutine can make progress")
            && (text.contains("gstack::set_stack_limit") || text.contains("vm.max_map_count")),
        "no stall report within 30 s; stderr: {text}"
    );
    assert!(still_running, "the runtime ended the process: {text}");
    println!("stall_report: 1 passed, 0 failed");
}
