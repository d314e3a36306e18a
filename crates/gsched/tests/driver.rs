//! What a worker asks of an installed driver, and when.

use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use gsched::Runtime;
use gsched::driver::{self, Driver};
use testkit::within;

/// Parks the worker's thread, and writes down what its own worker asked of it, in order.
struct Recording {
    threads: Vec<OnceLock<Thread>>,
    calls: Mutex<Vec<&'static str>>,
}

impl Recording {
    fn record(&self, worker: usize, call: &'static str) {
        // The monitor polls too, from its own thread: only the worker's own calls count here.
        if driver::current_worker() == Some(worker) {
            self.calls.lock().unwrap().push(call);
        }
    }
}

impl Driver for Recording {
    fn wait(&self, worker: usize, timeout: Option<Duration>) {
        self.threads[worker].get_or_init(std::thread::current);
        self.record(worker, "wait");
        match timeout {
            Some(timeout) => std::thread::park_timeout(timeout),
            None => std::thread::park(),
        }
    }

    fn poll(&self, worker: usize) {
        self.record(worker, "poll");
    }

    fn wake(&self, worker: usize) {
        if let Some(thread) = self.threads[worker].get() {
            thread.unpark();
        }
    }
}

/// What a driver has ready (a socket's data) is work: a worker that runs out of goroutines
/// polls its driver before it waits, as Go's scheduler polls the network before it looks
/// further, instead of spinning blind to it first.
#[test]
fn a_worker_with_nothing_to_run_polls_its_driver_before_it_waits() {
    within(Duration::from_secs(30), || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let recording = rt.block_on(|| {
            let recording = driver::install(|workers| {
                Ok::<_, std::convert::Infallible>(Recording {
                    threads: (0..workers).map(|_| OnceLock::new()).collect(),
                    calls: Mutex::new(Vec::new()),
                })
            })
            .expect("called from a goroutine")
            .unwrap();
            // The worker runs out of goroutines at each sleep: its idle look begins.
            let deadline = Instant::now() + Duration::from_secs(20);
            while !recording.calls.lock().unwrap().contains(&"wait") {
                assert!(Instant::now() < deadline, "the worker never waited");
                gsched::sleep(Duration::from_millis(1));
            }
            Arc::clone(&recording)
        });
        let calls = recording.calls.lock().unwrap().clone();
        let first_wait = calls
            .iter()
            .position(|&call| call == "wait")
            .expect("the worker waited in the driver");
        assert!(
            calls[..first_wait].contains(&"poll"),
            "the worker waited without polling first: {calls:?}"
        );
    });
}
