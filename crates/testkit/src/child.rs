use std::ffi::OsString;
use std::io::Read;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a child run may take unless [`ChildRun::limit`] says otherwise: long enough for a
/// slow, shared machine, short enough that a hung child fails the test the same minute.
pub const DEFAULT_CHILD_LIMIT: Duration = Duration::from_secs(60);

/// How often a child run checks whether the child has exited.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A test binary's re-runs of its own tests as child processes, told apart by one environment
/// variable, the marker, that holds the name of the test the child is to run.
///
/// A test that needs a process of its own (it crashes on purpose, or sets something
/// process-wide) is written in two halves: the child half, guarded by
/// [`is_child`](Self::is_child), does the work and returns; the parent half re-runs the test
/// binary on that one test through [`run`](Self::run) and checks the child's exit status and
/// output.
///
/// # Examples
///
/// ```no_run
/// use testkit::ChildTest;
///
/// const CHILD: ChildTest = ChildTest::new("MYCRATE_ABORT_CHILD");
///
/// #[test]
/// fn an_abort_is_reported() {
///     const NAME: &str = "an_abort_is_reported";
///     if CHILD.is_child(NAME) {
///         eprintln!("about to abort");
///         std::process::abort();
///     }
///     let output = CHILD.run(NAME).output();
///     assert!(!output.status.success());
///     assert!(String::from_utf8_lossy(&output.stderr).contains("about to abort"));
/// }
/// # fn main() {}
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ChildTest {
    marker: &'static str,
}

impl ChildTest {
    /// The child runs that set the environment variable `marker` to the test they run. One
    /// marker per test binary is enough; it should name the crate and the binary, so that a
    /// child of one binary is never mistaken for a child of another.
    pub const fn new(marker: &'static str) -> Self {
        Self { marker }
    }

    /// Whether this process is the child run of `test`, the name of the test function.
    ///
    /// # Examples
    ///
    /// ```
    /// const CHILD: testkit::ChildTest = testkit::ChildTest::new("TESTKIT_DOC_CHILD");
    ///
    /// // This doc test is nobody's child run.
    /// assert!(!CHILD.is_child("a_test"));
    /// ```
    pub fn is_child(&self, test: &str) -> bool {
        std::env::var_os(self.marker).is_some_and(|value| value == test)
    }

    /// The re-run of this test binary on `test` alone, to configure, then start with
    /// [`ChildRun::output`]. `test` must be the name the child half checks with
    /// [`is_child`](Self::is_child).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// const CHILD: testkit::ChildTest = testkit::ChildTest::new("MYCRATE_SETTINGS_CHILD");
    ///
    /// let output = CHILD
    ///     .run("a_bad_setting_is_refused")
    ///     .env("MYCRATE_THREADS", "abc")
    ///     .limit(Duration::from_secs(30))
    ///     .output();
    /// assert!(!output.status.success());
    /// ```
    pub fn run<'a>(&self, test: &'a str) -> ChildRun<'a> {
        ChildRun {
            marker: self.marker,
            test,
            env: Vec::new(),
            limit: DEFAULT_CHILD_LIMIT,
            ignored: false,
        }
    }
}

/// One re-run of the test binary on a single test, as a child process: made by
/// [`ChildTest::run`], started by [`output`](Self::output).
///
/// The child runs `<this binary> <test> --exact --nocapture --test-threads=1`: only that test,
/// its prints kept, on one thread, with the marker variable set to the test's name.
#[derive(Debug)]
#[must_use = "a child run does nothing until `output` starts it"]
pub struct ChildRun<'a> {
    marker: &'static str,
    test: &'a str,
    env: Vec<(OsString, OsString)>,
    limit: Duration,
    ignored: bool,
}

impl ChildRun<'_> {
    /// Sets an environment variable in the child, beside the marker.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # const CHILD: testkit::ChildTest = testkit::ChildTest::new("MYCRATE_CHILD");
    /// let output = CHILD.run("a_test").env("RUST_BACKTRACE", "0").output();
    /// # drop(output);
    /// ```
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// How long the child may run before it is killed and the test fails;
    /// [`DEFAULT_CHILD_LIMIT`] unless set.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # const CHILD: testkit::ChildTest = testkit::ChildTest::new("MYCRATE_CHILD");
    /// let output = CHILD.run("a_slow_test").limit(Duration::from_secs(300)).output();
    /// # drop(output);
    /// ```
    pub fn limit(mut self, limit: Duration) -> Self {
        self.limit = limit;
        self
    }

    /// Runs the test even though it is marked ignored, for a child half kept out of ordinary runs
    /// that way instead of by an early return.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # const CHILD: testkit::ChildTest = testkit::ChildTest::new("MYCRATE_CHILD");
    /// let output = CHILD.run("an_ignored_child").ignored().output();
    /// # drop(output);
    /// ```
    pub fn ignored(mut self) -> Self {
        self.ignored = true;
        self
    }

    /// Runs the child to its end and returns its exit status and everything it wrote.
    ///
    /// # Panics
    ///
    /// When the child is still running after the limit (it is killed first, and the message
    /// carries what it wrote), when this process is itself a child run of this marker (the
    /// child half did not recognise its test name and would re-run itself for ever), or when the
    /// test binary cannot be started.
    pub fn output(self) -> Output {
        assert!(
            std::env::var_os(self.marker).is_none(),
            "the child run of {:?} tried to start a child of its own: does its `is_child` check \
             use the same test name as `run`?",
            self.test
        );
        let mut args = vec![self.test, "--exact", "--nocapture", "--test-threads=1"];
        if self.ignored {
            args.push("--ignored");
        }
        let mut child = Command::new(std::env::current_exe().expect("the test binary's path"))
            .args(args)
            .env(self.marker, self.test)
            .envs(self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start the test binary as a child");
        // Read while the child runs: a child that fills a pipe nobody drains would block on its
        // write and look hung.
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("cannot wait for the child") {
                break status;
            }
            if started.elapsed() > self.limit {
                // It may have exited in the meantime; either way `wait` below reaps it.
                let _ = child.kill();
                let status = child.wait().expect("cannot wait for the killed child");
                let output = collect(status, stdout, stderr);
                panic!(
                    "the child run of {:?} was still running after {:?}, and was killed\n\
                     stdout: {}\nstderr: {}",
                    self.test,
                    self.limit,
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        };
        collect(status, stdout, stderr)
    }
}

/// Reads `pipe` to its end on a thread of its own.
fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    let mut pipe = pipe.expect("the child's output is piped");
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        // What was read before an error is still worth showing.
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

fn collect(status: ExitStatus, stdout: JoinHandle<Vec<u8>>, stderr: JoinHandle<Vec<u8>>) -> Output {
    Output {
        status,
        stdout: stdout.join().expect("the stdout reader panicked"),
        stderr: stderr.join().expect("the stderr reader panicked"),
    }
}
