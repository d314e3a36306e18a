//! The threads that run blocking calls for goroutines (see `crate::blocking`).
//!
//! Threads start as calls arrive, up to a bound; an idle thread waits for the next call for a
//! while, then exits. Calls beyond the bound wait in order. At shutdown idle threads exit, and
//! busy ones exit when their call returns: a call may block for good (a read of a terminal), so
//! nothing waits for them.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

/// Blocking threads a runtime starts at most, by default (tokio's figure).
pub(crate) const DEFAULT_MAX_BLOCKING_THREADS: usize = 512;

/// How long an idle blocking thread waits for another call before it exits.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// A call handed to the pool.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

#[derive(Clone)]
pub(crate) struct BlockingPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    state: Mutex<PoolState>,
    work: Condvar,
    max_threads: usize,
    thread_name: String,
}

struct PoolState {
    jobs: VecDeque<Job>,
    threads: usize,
    idle: usize,
    closed: bool,
}

impl BlockingPool {
    pub(crate) fn new(max_threads: usize, thread_name: String) -> Self {
        BlockingPool {
            inner: Arc::new(PoolInner {
                state: Mutex::new(PoolState {
                    jobs: VecDeque::new(),
                    threads: 0,
                    idle: 0,
                    closed: false,
                }),
                work: Condvar::new(),
                max_threads,
                thread_name,
            }),
        }
    }

    /// Runs `job` on a pool thread; hands it back when no thread can run it (the runtime shut
    /// down, or no thread could start and none exists).
    pub(crate) fn submit(&self, job: Job) -> Result<(), Job> {
        let mut state = self.inner.state();
        if state.closed {
            return Err(job);
        }
        state.jobs.push_back(job);
        if state.idle > 0 {
            self.inner.work.notify_one();
        }
        // Idle threads decrement `idle` only once they run, so count the calls they have not
        // taken yet: a call that may block for good must not wait behind another.
        if state.jobs.len() <= state.idle || state.threads == self.inner.max_threads {
            return Ok(());
        }
        let inner = Arc::clone(&self.inner);
        let started = thread::Builder::new()
            .name(self.inner.thread_name.clone())
            .spawn(move || inner.serve());
        match started {
            Ok(_) => {
                state.threads += 1;
                Ok(())
            }
            // A thread already running takes the call when it is done.
            Err(_) if state.threads > 0 => Ok(()),
            Err(_) => Err(state.jobs.pop_back().expect("the call was just queued")),
        }
    }

    /// Threads of the pool alive now.
    pub(crate) fn threads(&self) -> usize {
        self.inner.state().threads
    }

    /// Calls running or waiting now.
    pub(crate) fn in_flight(&self) -> usize {
        let state = self.inner.state();
        state.jobs.len() + (state.threads - state.idle)
    }

    /// Lets idle threads exit, and busy ones once their call returns.
    pub(crate) fn close(&self) {
        self.inner.state().closed = true;
        self.inner.work.notify_all();
    }
}

impl PoolInner {
    fn state(&self) -> MutexGuard<'_, PoolState> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// A pool thread's loop.
    fn serve(&self) {
        let mut state = self.state();
        loop {
            if let Some(job) = state.jobs.pop_front() {
                drop(state);
                // The job catches its call's panic (see `crate::blocking`).
                job();
                state = self.state();
                continue;
            }
            if state.closed {
                break;
            }
            state.idle += 1;
            let (next, timeout) = self
                .work
                .wait_timeout(state, KEEP_ALIVE)
                .unwrap_or_else(|poison| poison.into_inner());
            state = next;
            state.idle -= 1;
            if timeout.timed_out() && state.jobs.is_empty() {
                break;
            }
        }
        state.threads -= 1;
    }
}
