//! Each worker's timers: a heap of deadlines that wake parked goroutines, retired either by
//! firing or by the goroutine's own earlier wake-up (see `timer_word.rs`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::task_ref::{QueueRef, TaskRef};

use super::worker::WorkerLocal;

static NEXT_TIMER_SEQ: AtomicU64 = AtomicU64::new(1);

/// A timer that wakes a goroutine parked with a timeout.
pub(super) struct Timer {
    pub(super) deadline: Instant,
    pub(super) seq: u64,
    pub(super) task: TaskRef,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}

impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timer {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

impl WorkerLocal {
    /// Arms a timer that wakes `task` at `deadline`.
    ///
    /// A goroutine woken before its deadline retires its timer itself (`TimerWord::cancel`),
    /// leaving a stale entry here; stale entries are swept out whenever the heap has doubled
    /// since the last sweep, so the heap (and the goroutines its entries keep alive) stays
    /// within twice the timers that are really pending, plus a small floor.
    pub(crate) fn add_timer(&self, deadline: Instant, task: TaskRef) {
        const SWEEP_FLOOR: usize = 64;
        let seq = NEXT_TIMER_SEQ.fetch_add(1, Ordering::Relaxed);
        // A timer still armed here was left by a park that never returned normally (a forced
        // unwind): this one replaces it in the count.
        if !task.timer.arm(seq) {
            self.shared.pending_timers.fetch_add(1, Ordering::SeqCst);
        }
        let swept = {
            let mut timers = self.timers.borrow_mut();
            timers.push(Reverse(Timer {
                deadline,
                seq,
                task,
            }));
            if timers.len() < self.timer_sweep_at.get().max(SWEEP_FLOOR) {
                return;
            }
            let (live, stale): (Vec<_>, Vec<_>) = std::mem::take(&mut *timers)
                .into_vec()
                .into_iter()
                .partition(|Reverse(timer)| timer.task.timer.is_armed(timer.seq));
            *timers = BinaryHeap::from(live);
            self.timer_sweep_at.set(2 * timers.len());
            stale
        };
        // Stale entries may hold the last handle of a finished goroutine: dropped here, after
        // the heap is released, never while it is borrowed.
        drop(swept);
    }

    /// Timer entries in this worker's heap, stale ones included.
    #[cfg(test)]
    pub(crate) fn timer_entries(&self) -> usize {
        self.timers.borrow().len()
    }

    /// The deadline of the earliest timer that wakes a goroutine being unwound, when it is due
    /// within `SHUTDOWN_TIMER_GRACE`.
    pub(crate) fn unwinding_timer_due_soon(&self) -> Option<Instant> {
        let horizon = Instant::now() + crate::scheduler::shutdown::SHUTDOWN_TIMER_GRACE;
        self.timers
            .borrow()
            .iter()
            .filter(|Reverse(timer)| {
                timer.deadline <= horizon
                    && timer.task.is_unwinding()
                    && timer.task.timer.is_armed(timer.seq)
            })
            .map(|Reverse(timer)| timer.deadline)
            .min()
    }

    /// Drops every timer at shutdown, accounting for those still pending.
    pub(crate) fn drop_timers(&self) {
        let timers = std::mem::take(&mut *self.timers.borrow_mut());
        for Reverse(timer) in timers {
            if timer.task.timer.fire(timer.seq) {
                self.shared.pending_timers.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// Wakes the goroutines whose timers are due; returns the next deadline.
    pub(crate) fn fire_timers(&self) -> Option<Instant> {
        let now = Instant::now();
        loop {
            let due = {
                let mut timers = self.timers.borrow_mut();
                match timers.peek() {
                    Some(Reverse(timer)) if timer.deadline <= now => {
                        timers.pop().map(|Reverse(timer)| timer)
                    }
                    Some(Reverse(timer)) => return Some(timer.deadline),
                    None => return None,
                }
            };
            if let Some(timer) = due
                && timer.task.timer.fire(timer.seq)
            {
                self.shared.pending_timers.fetch_sub(1, Ordering::SeqCst);
                if timer.task.state.notify() {
                    // SAFETY: the goroutine was parked, so it started and has not finished, and
                    // `notify` moved it into `QUEUED`: this is its one entry.
                    self.shared
                        .schedule_woken(unsafe { QueueRef::requeue(timer.task) });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use super::WorkerLocal;

    /// 20,000 parks with a one-hour timeout, each woken by another goroutine long before: the
    /// stale timers are swept out as they pile up, so the heap stays small and nothing counts
    /// as pending once the parks are over.
    #[test]
    fn timers_of_goroutines_woken_early_do_not_pile_up() {
        let runtime = crate::Runtime::builder().workers(1).build().unwrap();
        let (entries, pending) = runtime.block_on(|| {
            let parked = crate::current_unparker();
            let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let stop = std::sync::Arc::clone(&done);
            let waker = crate::go(move || {
                while !stop.load(Ordering::Acquire) {
                    parked.unpark();
                    crate::yield_now();
                }
            });
            let mut most = 0;
            for _ in 0..20_000 {
                crate::park_timeout(Duration::from_secs(3600));
                let entries =
                    WorkerLocal::with_current(WorkerLocal::timer_entries).unwrap_or_default();
                most = most.max(entries);
            }
            done.store(true, Ordering::Release);
            waker.join().unwrap();
            let pending = WorkerLocal::with_current(|local| {
                local.shared.pending_timers.load(Ordering::SeqCst)
            });
            (most, pending)
        });
        assert!(entries <= 256, "the timer heap grew to {entries} entries");
        assert_eq!(pending, Some(0));
    }
}
