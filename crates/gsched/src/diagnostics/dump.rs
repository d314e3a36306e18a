//! The goroutine dump's public face: what it lists, and how it prints.

use std::backtrace::Backtrace;
use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use super::registry;
use crate::scheduler::WorkerLocal;

/// Every goroutine of one runtime (or of every runtime), as [`dump`] found them.
///
/// It prints as Go's goroutine dump does, one goroutine per paragraph:
///
/// ```text
/// goroutine 7 "worker" [chan receive, 3 minutes]:
/// created by src/main.rs:41
/// ```
#[derive(Clone, Debug, Default)]
pub struct Dump {
    pub(crate) goroutines: Vec<GoroutineInfo>,
    pub(crate) notes: Vec<String>,
}

impl Dump {
    /// The goroutines, by id.
    pub fn goroutines(&self) -> &[GoroutineInfo] {
        &self.goroutines
    }

    /// The goroutine with this id, if the dump found it.
    pub fn get(&self, id: u64) -> Option<&GoroutineInfo> {
        self.goroutines
            .binary_search_by_key(&id, |goroutine| goroutine.id)
            .ok()
            .map(|index| &self.goroutines[index])
    }

    /// Whether every worker answered. A worker that runs one goroutine for longer than the dump
    /// waits (a goroutine that never calls into the library) cannot list the goroutines pinned
    /// to it; the dump then shows only its running goroutine, and says so in [`Dump::notes`].
    pub fn is_complete(&self) -> bool {
        self.notes.is_empty()
    }

    /// What the dump could not see, one line each.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    pub(crate) fn merge(&mut self, other: Dump) {
        self.goroutines.extend(other.goroutines);
        self.goroutines.sort_by_key(|goroutine| goroutine.id);
        self.notes.extend(other.notes);
    }
}

impl fmt::Display for Dump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, goroutine) in self.goroutines.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{goroutine}")?;
        }
        for note in &self.notes {
            writeln!(f, "\n{note}")?;
        }
        Ok(())
    }
}

/// One goroutine in a [`Dump`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct GoroutineInfo {
    /// Its id, unique in the process.
    pub id: u64,
    /// Its name, if it was given one.
    pub name: Option<Arc<str>>,
    /// The worker it runs on (pinned there from its first run on), or whose queue holds it;
    /// `None` for one in the runtime's global queue.
    pub worker: Option<usize>,
    /// What it is doing.
    pub state: GoroutineState,
    /// How long it has been parked, to the monitor's tick (a few milliseconds), as Go's
    /// `waitsince`; `None` unless [`GoroutineState::Parked`].
    pub waiting: Option<Duration>,
    /// Where it was spawned.
    pub spawned_at: &'static Location<'static>,
    /// Where it parked, for a parked goroutine of a runtime built with
    /// [`park_backtraces(true)`](crate::RuntimeBuilder::park_backtraces).
    pub backtrace: Option<Arc<Backtrace>>,
}

impl fmt::Display for GoroutineInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "goroutine {}", self.id)?;
        if let Some(name) = &self.name {
            write!(f, " {name:?}")?;
        }
        write!(f, " [{}", self.state)?;
        // Go shows the wait from a minute on; seconds are worth showing here too.
        match self.waiting.map(|waiting| waiting.as_secs()) {
            Some(secs @ 60..) => write!(f, ", {} minutes", secs / 60)?,
            Some(1) => write!(f, ", 1 second")?,
            Some(secs @ 2..) => write!(f, ", {secs} seconds")?,
            _ => {}
        }
        writeln!(f, "]:")?;
        if let Some(backtrace) = &self.backtrace {
            writeln!(f, "{backtrace}")?;
        }
        writeln!(
            f,
            "created by {}:{}",
            self.spawned_at.file(),
            self.spawned_at.line()
        )
    }
}

/// What a goroutine is doing, as a [`Dump`] saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GoroutineState {
    /// It runs on its worker now.
    Running,
    /// It waits in a run queue, having run before.
    Runnable,
    /// It has not run yet.
    NotStarted,
    /// It has not run yet, because every stack the process allows is in use.
    WaitingForStack,
    /// It is parked; the reason is Go's wait reason: `"chan receive"`, `"chan send"`,
    /// `"select"`, `"sync.Mutex.Lock"`, `"sync.RWMutex.RLock"`, `"sync.RWMutex.Lock"`,
    /// `"sync.WaitGroup.Wait"`, `"sync.Cond.Wait"`, `"sync.Once.Do"`, `"sleep"`, `"join"`,
    /// `"scope"`, `"blocking call"`, whatever a library passed to
    /// [`park_with_reason`](crate::park_with_reason), or `"park"` for a bare
    /// [`park`](crate::park).
    Parked(&'static str),
}

impl GoroutineState {
    /// The state as the dump prints it.
    pub fn as_str(&self) -> &'static str {
        match self {
            GoroutineState::Running => "running",
            GoroutineState::Runnable => "runnable",
            GoroutineState::NotStarted => "not started",
            GoroutineState::WaitingForStack => "stack wait",
            GoroutineState::Parked(reason) => reason,
        }
    }
}

impl fmt::Display for GoroutineState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long [`dump`] waits for each worker to list its goroutines.
pub(crate) const DUMP_WAIT: Duration = Duration::from_millis(100);

/// Lists the goroutines of the caller's runtime, or, called outside goroutines, of every
/// runtime in the process.
///
/// Each worker lists the goroutines pinned to it between two goroutines, so a dump stops a
/// worker once, for as long as the listing takes. A worker that does not get to it within
/// 100 ms (one goroutine runs there without ever calling into the library) is described by
/// its running goroutine only, and [`Dump::notes`] says so.
///
/// ```
/// gsched::run(|| {
///     let waiter = gsched::go(|| gsched::park_with_reason("waiting for the example"));
///     let parked = gsched::GoroutineState::Parked("waiting for the example");
///     // Until the waiter has run and parked (a loaded machine may take a while).
///     let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
///     let dump = loop {
///         let dump = gsched::dump();
///         if dump.get(waiter.id()).is_some_and(|entry| entry.state == parked) {
///             break dump;
///         }
///         assert!(std::time::Instant::now() < deadline, "the waiter never parked");
///         gsched::sleep(std::time::Duration::from_millis(1));
///     };
///     assert!(dump.to_string().contains("[waiting for the example]"));
///     // The main goroutine returns; the runtime's shutdown unwinds the parked one.
/// });
/// ```
pub fn dump() -> Dump {
    let own = WorkerLocal::with_current(|local| {
        local
            .in_goroutine()
            .then(|| std::sync::Arc::clone(&local.shared))
    })
    .flatten();
    match own {
        Some(shared) => shared.dump(DUMP_WAIT),
        None => {
            let mut all = Dump::default();
            for shared in registry::runtimes() {
                all.merge(shared.dump(DUMP_WAIT));
            }
            all
        }
    }
}
