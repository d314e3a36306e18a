//! Shutting a runtime down without unwinding a frame that others borrow, and without letting
//! one misbehaving goroutine stop the rest.
//!
//! # Steps
//!
//! 1. `Runtime::stop` sets `shutdown` and wakes every worker (`RuntimeShared::begin_shutdown`).
//! 2. Each worker leaves its scheduling loop after the goroutine it runs switches out, and
//!    enters [`WorkerLocal::shut_down`], which loops until the whole runtime is quiet:
//!    - goroutines that never ran, on its queues and the shared ones, are dropped unrun (their
//!      joiners get "dropped at runtime shutdown");
//!    - a started goroutine whose stack nobody borrows (`Task::borrowers` is zero: no scoped
//!      goroutine of its is left, see `scope.rs`) is claimed and unwound with
//!      `Coroutine::unwind`, on the worker it is pinned to (any worker for a migratable one);
//!    - a goroutine that waits again while unwinding (a destructor that parks) is parked like any
//!      other, and unwinding goes on when something wakes it: another goroutine's unwinding, or a
//!      timer that is due. One that keeps yielding is given `MAX_UNWIND_STEPS` turns;
//!    - a scope owner is claimed only once its borrowers are gone: the last scoped goroutine to
//!      finish wakes the owner's worker (`RuntimeShared::borrowers_released`).
//! 3. A worker with nothing left to do sleeps with the usual `sleeping` flag; whoever gives it
//!    work clears the flag and wakes it. The worker that finds every worker's flag set after its
//!    own last look declares the runtime quiet (`IdleFlags::try_quiesce`) and wakes the others. Every
//!    goroutine still unfinished then is leaked: its coroutine is forgotten, so its stack is
//!    never freed or reused, and the report says why (it caught the unwind, it waits on
//!    something that will not come, or its scoped goroutines are such goroutines).
//! 4. `Runtime::stop` joins the workers, drops what was queued after they stopped, leaks the
//!    migratable goroutines left, and returns the report (`RuntimeShared::finish_shutdown`).
//!
//! # Why nobody declares quiet while there is work
//!
//! Work only appears through a push followed by `wake_worker` on the owner of the queue (or a
//! spawn's `wake_for_new_work`), made by a goroutine that a worker is running: that worker's
//! flag is clear while it runs. A worker sets its flag, then (after a `SeqCst` fence) looks at
//! its queues once more; the pusher pushes, fences, and clears the flag if set. So when the last
//! worker sees every flag set, each one had looked after its flag went up and found nothing, and
//! every push since then would have cleared a flag. Wake-ups from outside the runtime (a plain
//! thread, gsync's timer thread) after that point find the workers gone, and their goroutines
//! are leaked with the rest.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::task::{DROPPED_AT_SHUTDOWN, PARKED_WITHOUT_REASON, Switch, Task};
use super::task_ref::{QueueRef, TaskRef};
use super::worker::refused;
use super::{RuntimeShared, WorkerLocal, live};

/// Turns a goroutine gets to finish unwinding when it keeps yielding instead.
const MAX_UNWIND_STEPS: u32 = 10_000;

/// How far ahead a timer that a destructor waits on during shutdown still holds shutdown up;
/// a destructor that waits longer is leaked.
pub(crate) const SHUTDOWN_TIMER_GRACE: Duration = Duration::from_secs(1);

/// What one worker knows about the goroutines it unwinds.
#[derive(Default)]
struct Unwinding {
    /// Pinned goroutines of this worker not yet claimed for unwinding.
    pending: Vec<TaskRef>,
    /// Turns taken per goroutine, and what it waited on when its unwinding began.
    started: HashMap<u64, (u32, String)>,
}

impl WorkerLocal {
    /// Shutdown step 2 and 3 on this worker (see the module docs).
    pub(crate) fn shut_down(&self) {
        let shared = &*self.shared;
        let me = &shared.workers[self.index];
        shared.idle.enter_shutdown(self.index, false);
        // The monitor has stopped; a slice it ended before must not make the destructors that
        // run from here yield at every checkpoint.
        me.watch.preempt.store(false, Ordering::Relaxed);
        // Yielded goroutines are `RUNNING` and ours: schedule them like the others.
        for (task, _) in self.yielded.borrow_mut().drain(..) {
            task.state.finish_yield();
            me.ready.push(task);
        }
        let mut unwinding = Unwinding {
            pending: self.live.borrow().values().cloned().collect(),
            ..Unwinding::default()
        };
        loop {
            if self.shutdown_pass(&mut unwinding) {
                continue;
            }
            self.fire_timers();
            if let Some(deadline) = self.unwinding_timer_due_soon() {
                // A destructor waits for a timer that is due soon: wait for it, without
                // counting as asleep, so nobody declares the runtime quiet meanwhile.
                self.wait_idle(Some(deadline));
                continue;
            }
            shared.announce_sleep(self.index);
            if self.has_shutdown_work(&unwinding) {
                shared.end_sleep(self.index);
                continue;
            }
            if shared.idle.try_quiesce() {
                shared.end_sleep(self.index);
                for index in 0..shared.workers.len() {
                    shared.wake_worker(index);
                }
                break;
            }
            self.wait_idle(None);
            shared.end_sleep(self.index);
            if shared.idle.is_quiesced() {
                break;
            }
        }
        let left: Vec<TaskRef> = self
            .live
            .borrow_mut()
            .drain()
            .map(|(_, task)| task)
            .collect();
        for task in left {
            // SAFETY: the goroutine is pinned here and this worker runs nothing any more.
            unsafe { leak(&task, shared) };
        }
        self.drop_timers();
        if let Some(task) = self.runnext.borrow_mut().take() {
            me.ready.push(task);
        }
    }

    /// One round over everything this worker can do for shutdown; true if it did anything.
    fn shutdown_pass(&self, unwinding: &mut Unwinding) -> bool {
        let shared = &*self.shared;
        let mut progress = false;
        // Every worker's `fresh` queue: a woken migratable goroutine goes to its first worker's,
        // and the worker woken for it may be another.
        let queued = std::iter::from_fn(|| self.runnext.borrow_mut().take())
            .chain(std::iter::from_fn(|| self.pop_inbox()))
            .chain(shared.workers.iter().flat_map(|worker| {
                std::iter::from_fn(|| worker.next.pop())
                    .chain(std::iter::from_fn(|| worker.fresh.pop()))
            }))
            .chain(std::iter::from_fn(|| shared.injector.pop()))
            .chain(std::iter::from_fn(|| shared.waiting_for_stack.pop()));
        for task in queued {
            progress = true;
            if task.home().is_none() {
                shared.drop_unstarted(task);
            } else if task.state.try_start_run() {
                // An entry holds no reference (see `QueueRef`): drive it through a counted one.
                self.drive(task.counted(), unwinding);
            } else {
                refused(&task);
            }
        }
        let mut claimed = Vec::new();
        unwinding.pending.retain(|task| {
            if task.state.is_done() || task.is_unwinding() {
                return false;
            }
            if task.borrowers.load(Ordering::Acquire) > 0 || !task.state.try_claim() {
                return true;
            }
            claimed.push(task.clone());
            false
        });
        claimed.extend(
            shared
                .migratable_live
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .values()
                .filter(|task| {
                    !task.is_unwinding()
                        && task.borrowers.load(Ordering::Acquire) == 0
                        && task.state.try_claim()
                })
                .cloned()
                .collect::<Vec<_>>(),
        );
        for task in claimed {
            progress = true;
            self.drive(task, unwinding);
        }
        progress
    }

    /// Whether a shutdown pass would find anything to do now.
    fn has_shutdown_work(&self, unwinding: &Unwinding) -> bool {
        let shared = &*self.shared;
        let claimable = |task: &TaskRef| {
            !task.is_unwinding()
                && task.borrowers.load(Ordering::Acquire) == 0
                && task.state.is_claimable()
        };
        self.runnext.borrow().is_some()
            || !self.inbox_is_empty()
            || shared
                .workers
                .iter()
                .any(|worker| !worker.fresh.is_empty() || !worker.next.is_empty())
            || !shared.injector.is_empty()
            || !shared.waiting_for_stack.is_empty()
            || unwinding.pending.iter().any(claimable)
            || shared
                .migratable_live
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .values()
                .any(claimable)
    }

    /// Takes one unwinding step of `task`, which this thread holds (`RUNNING`).
    fn drive(&self, task: TaskRef, unwinding: &mut Unwinding) {
        let shared = &*self.shared;
        if !task.is_unwinding() {
            // SAFETY: this thread is the goroutine's runner.
            let can_unwind = unsafe { task.coroutine() }
                .as_ref()
                .is_none_or(|coroutine| coroutine.can_unwind());
            if !can_unwind {
                // Parked inside a destructor of its own panic (or so it may be): a forced
                // unwind there would abort the process.
                self.forget_live(&task);
                // SAFETY: this thread holds the goroutine (`RUNNING`) and never resumes it.
                unsafe { leak(&task, shared) };
                return;
            }
            if task.borrowers.load(Ordering::Acquire) > 0 {
                // Scoped goroutines still borrow its stack. A notification leaves it
                // `SCHEDULED` without a queue entry: the pending scan claims it later.
                task.state.finish_park_unqueued();
                return;
            }
            // SAFETY: this thread is the goroutine's runner.
            let reason = unsafe { task.parked_on() };
            let what = match reason {
                "" => "runnable, unwound at shutdown".to_string(),
                PARKED_WITHOUT_REASON => "parked, unwound at shutdown".to_string(),
                reason => format!("parked on {reason}, unwound at shutdown"),
            };
            unwinding.started.insert(task.id, (0, what));
            task.set_unwinding();
        }
        let turns = {
            let entry = unwinding
                .started
                .entry(task.id)
                .or_insert_with(|| (0, "unwound at shutdown".to_string()));
            entry.0 += 1;
            entry.0
        };
        if turns > MAX_UNWIND_STEPS {
            // It keeps running instead of unwinding: left `RUNNING`, never resumed again, and
            // leaked at the end with the rest.
            return;
        }
        // A switch like any other: the goroutine runs from here, not since it parked.
        shared.workers[self.index].watch.picked(false);
        match self.resume(&task, true) {
            None => {
                task.state.finish_done();
                // SAFETY: this thread is the runner, and the coroutine has finished.
                *unsafe { task.coroutine() } = None;
                self.forget_live(&task);
                live::add(-1);
                let what = unwinding
                    .started
                    .remove(&task.id)
                    .map(|(_, what)| what)
                    .unwrap_or_default();
                shared.record_leak(&task, &what);
                // SAFETY: the goroutine started and has just finished here; `task` keeps it
                // alive until the end of this function.
                unsafe { task.release_own() };
            }
            Some(Switch::Park) => {
                if !task.state.finish_park() {
                    // SAFETY: the goroutine started and has not finished, and `finish_park`
                    // moved it into `QUEUED`: this is its one entry.
                    let entry = unsafe { QueueRef::requeue(task) };
                    shared.workers[self.index].ready.push(entry);
                }
            }
            Some(Switch::Yield) => {
                task.state.finish_yield();
                // SAFETY: as above, `finish_yield` moved it into `QUEUED`.
                let entry = unsafe { QueueRef::requeue(task) };
                shared.workers[self.index].ready.push(entry);
            }
        }
    }
}

/// Leaks a goroutine that could not be unwound: its coroutine is forgotten, so frames that may
/// still be live on its stack are never overwritten or unmapped, and so is one reference to its
/// task, which those frames may reach without one (`current_unparker_unchecked`).
///
/// # Safety
///
/// No thread runs the goroutine, or ever will: its worker has left its loops, or every worker
/// has stopped.
pub(crate) unsafe fn leak(task: &TaskRef, shared: &RuntimeShared) {
    std::mem::forget(task.clone());
    // SAFETY: as the caller guarantees, nobody else touches the coroutine.
    let coroutine = unsafe { task.coroutine() }.take();
    let why = if coroutine
        .as_ref()
        .is_some_and(|coroutine| !coroutine.can_unwind())
    {
        "it waited inside a destructor while a panic unwound it (or its worker counted another \
         goroutine's panic), where a second unwind would abort the process"
    } else if task.is_unwinding() {
        "it did not finish unwinding at shutdown (it caught the unwind, or waited for something \
         that never came)"
    } else if task.borrowers.load(Ordering::Acquire) > 0 {
        "scoped goroutines that borrow its stack did not finish, so it was not unwound at shutdown"
    } else {
        "it was not unwound at shutdown"
    };
    std::mem::forget(coroutine);
    task.state.finish_done();
    // Its joiner is told; the result slot lives in the task, not on the leaked stack.
    task.body.abandon();
    shared.record_leak(task, &format!("{why}; its stack is leaked"));
    live::add(-1);
}

impl RuntimeShared {
    /// Shutdown step 1: sets `shutdown`, wakes every worker and the monitor, and lets the
    /// blocking pool's threads exit.
    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        if let Some(monitor) = self.monitor_thread.get() {
            monitor.unpark();
        }
        self.blocking.close();
        for index in 0..self.workers.len() {
            self.end_sleep(index);
            self.unpark_worker(index);
        }
    }

    /// Shutdown step 4, after the workers stopped: drops every goroutine still queued, leaks
    /// the migratable ones that could not be unwound, and returns the report.
    pub(crate) fn finish_shutdown(&self) -> Vec<String> {
        if let Some(installed) = self.driver.get() {
            installed.driver.shutdown();
        }
        let listing = self.lock_shared_queues();
        let queues = self
            .workers
            .iter()
            .flat_map(|worker| {
                std::iter::from_fn(|| worker.next.pop())
                    .chain(std::iter::from_fn(|| worker.fresh.pop()))
                    // SAFETY: every worker has stopped, and this thread joined them: it is the
                    // inboxes' consumer now. A wake from an outside thread may still be
                    // mid-push: `pop_settled` waits for it rather than leave its goroutine.
                    .chain(std::iter::from_fn(|| unsafe { worker.ready.pop_settled() }))
            })
            .chain(std::iter::from_fn(|| self.injector.pop()))
            .chain(std::iter::from_fn(|| self.waiting_for_stack.pop()))
            .collect::<Vec<_>>();
        drop(listing);
        for task in queues {
            // A started goroutine's entry is that of one leaked by its worker, or below.
            if task.home().is_none() {
                self.drop_unstarted(task);
            }
        }
        let stranded: Vec<TaskRef> = self
            .migratable_live
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .drain()
            .map(|(_, task)| task)
            .collect();
        for task in stranded {
            // SAFETY: every worker has stopped: nobody runs the goroutine or ever will.
            unsafe { leak(&task, self) };
        }
        std::mem::take(
            &mut *self
                .leaked
                .lock()
                .unwrap_or_else(|poison| poison.into_inner()),
        )
    }

    /// Drops a goroutine that never started, taken off its queue (its joiner learns why), and
    /// gives up its own reference (see `QueueRef`).
    pub(crate) fn drop_unstarted(&self, task: QueueRef) {
        debug_assert!(
            task.home().is_none(),
            "a goroutine without a home never started"
        );
        // SAFETY: the goroutine never ran, and it was taken off its queue, so nobody runs it.
        let discarded = unsafe { task.body.discard(Box::new(DROPPED_AT_SHUTDOWN)) };
        debug_assert!(discarded, "a goroutine without a home never ran");
        if discarded {
            self.record_leak(&task, "never ran");
            live::add(-1);
            self.discarded.fetch_add(1, Ordering::Relaxed);
            // SAFETY: the goroutine ended here, unstarted, in the hands of the holder of its
            // one entry; `task` is not touched again.
            unsafe { task.release() };
        }
    }

    pub(crate) fn record_leak(&self, task: &Task, what: &str) {
        let name = task
            .name
            .as_deref()
            .map(|name| format!(" \"{name}\""))
            .unwrap_or_default();
        let line = format!(
            "goroutine {}{name} spawned at {}: {what}",
            task.id, task.spawned_at
        );
        self.leaked
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .push(line);
    }
}
