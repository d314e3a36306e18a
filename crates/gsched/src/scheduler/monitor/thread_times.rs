//! Whether a worker that has not switched for a while is held up by its goroutine or by a
//! machine busier than its CPUs, from the kernel's accounting of the worker's thread.
//!
//! Linux counts a thread's time on a CPU and its time waiting for one (`schedstat`), but adds a
//! wait only when it ends, as the thread gets a CPU back; a wait still going on shows in the
//! thread's state (`R`, runnable) while its time on a CPU stands still.

use std::time::{Duration, Instant};

/// A thread's accounting at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ThreadTimes {
    /// Time on a CPU, in all.
    pub(crate) on_cpu: Duration,
    /// Time spent waiting for a CPU, in all, as of the last wait that ended.
    pub(crate) waited: Duration,
    /// Runnable now (on a CPU or waiting for one) rather than blocked in the kernel.
    pub(crate) runnable: bool,
}

/// The accounting of thread `tid` of this process; `None` where it cannot be read (not Linux,
/// a kernel without `CONFIG_SCHED_INFO`, an unknown thread).
pub(crate) fn thread_times(tid: i32) -> Option<ThreadTimes> {
    if tid <= 0 {
        return None;
    }
    let schedstat = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    let mut fields = schedstat.split_ascii_whitespace();
    let counted_on_cpu = Duration::from_nanos(fields.next()?.parse().ok()?);
    let waited = Duration::from_nanos(fields.next()?.parse().ok()?);
    // `schedstat` shows a running thread's CPU time as of its last scheduler tick (1-4 ms
    // ago); the thread's CPU clock brings it up to date first.
    let on_cpu = thread_cpu_clock(tid).unwrap_or(counted_on_cpu);
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // `pid (comm) state ...`, where the name may hold spaces and parentheses.
    let state = stat[stat.rfind(')')? + 1..].trim_start().chars().next()?;
    Some(ThreadTimes {
        on_cpu,
        waited,
        runnable: state == 'R',
    })
}

/// The CPU time of thread `tid` of this process from its CPU clock: the clock id glibc's
/// `pthread_getcpuclockid` builds from a kernel thread id (`CPUCLOCK_SCHED`, per thread), which
/// the kernel brings up to date for a thread running now.
fn thread_cpu_clock(tid: i32) -> Option<Duration> {
    // Kernel thread ids stay below 2^22, so this never overflows for a real one.
    let clock: libc::clockid_t = (!tid).checked_mul(8)? | 6;
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid `timespec` to write; an id that names no thread of this process
    // fails with EINVAL.
    if unsafe { libc::clock_gettime(clock, &mut now) } != 0 {
        return None;
    }
    Some(Duration::new(
        u64::try_from(now.tv_sec).ok()?,
        u32::try_from(now.tv_nsec).ok()?,
    ))
}

/// The measure of one run without a switch: since when, from what accounting, and the time on
/// a CPU when the run was first measured.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Measure {
    since: Instant,
    from: ThreadTimes,
    first_on_cpu: Duration,
}

impl Measure {
    pub(crate) fn start(now: Instant, times: ThreadTimes) -> Self {
        Measure {
            since: now,
            from: times,
            first_on_cpu: times.on_cpu,
        }
    }

    /// Whether the measure is at least `at_least` long at `now`: shorter ones judge nothing.
    pub(crate) fn long_enough(&self, now: Instant, at_least: Duration) -> bool {
        now.saturating_duration_since(self.since) >= at_least
    }
}

/// Whether the goroutine is to blame for its worker not switching, given the accounting now.
///
/// It is not when the thread spent most of the measure waiting for a CPU: the waits that ended
/// grew by more than half of it, or the thread is runnable now and was on a CPU for less than
/// half of it (a wait still going on). Then the measure starts again from now, unless the
/// thread has been on a CPU for `stuck_after` in all since the run was first measured: a loop
/// that never switches is to blame however busy the machine. A goroutine blocked in a system
/// call waits in the kernel, neither running nor runnable, and is to blame. Without accounting
/// (`None`) the goroutine is to blame, as before any of this.
pub(crate) fn goroutine_to_blame(
    measure: &mut Option<Measure>,
    times: Option<ThreadTimes>,
    now: Instant,
    stuck_after: Duration,
) -> bool {
    let Some(times) = times else {
        return true;
    };
    let Some(started) = *measure else {
        *measure = Some(Measure::start(now, times));
        return false;
    };
    let measured = now.saturating_duration_since(started.since);
    if times.on_cpu.saturating_sub(started.first_on_cpu) >= stuck_after {
        return true;
    }
    let on_cpu = times.on_cpu.saturating_sub(started.from.on_cpu);
    let waited = times.waited.saturating_sub(started.from.waited);
    let waiting_now = times.runnable && on_cpu * 2 < measured;
    if waited * 2 <= measured && !waiting_now {
        return true;
    }
    *measure = Some(Measure {
        since: now,
        from: times,
        ..started
    });
    false
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{Measure, ThreadTimes, goroutine_to_blame, thread_times};

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn times(on_cpu: u64, waited: u64, runnable: bool) -> Option<ThreadTimes> {
        Some(ThreadTimes {
            on_cpu: ms(on_cpu),
            waited: ms(waited),
            runnable,
        })
    }

    const STUCK_AFTER: Duration = Duration::from_millis(20);

    /// Judges `times` 10 ms into a measure started from nothing.
    fn judge(later: Option<ThreadTimes>) -> bool {
        let start = Instant::now();
        let mut measure = Some(Measure::start(start, times(0, 0, false).unwrap()));
        goroutine_to_blame(&mut measure, later, start + ms(10), STUCK_AFTER)
    }

    #[test]
    fn a_goroutine_blocked_in_the_kernel_or_running_is_to_blame() {
        assert!(judge(times(0, 0, false)), "blocked in a system call");
        assert!(judge(times(1, 0, false)), "a loop of short sleeps");
        assert!(judge(times(9, 1, true)), "running on a CPU");
        assert!(judge(None), "no accounting");
    }

    #[test]
    fn a_thread_that_waited_for_a_cpu_is_not_to_blame() {
        assert!(!judge(times(1, 8, false)), "waits that ended");
        assert!(!judge(times(0, 0, true)), "a wait still going on");
        assert!(
            !judge(times(2, 3, true)),
            "runnable, and little time on a CPU"
        );
    }

    #[test]
    fn a_measure_starts_again_after_a_wait_and_a_hog_is_blamed_in_the_end() {
        let start = Instant::now();
        let mut measure = None;
        assert!(!goroutine_to_blame(
            &mut measure,
            times(0, 0, false),
            start,
            STUCK_AFTER
        ));
        // Waited most of the first 10 ms: measured again from there.
        assert!(!goroutine_to_blame(
            &mut measure,
            times(2, 8, true),
            start + ms(10),
            STUCK_AFTER
        ));
        // The next 10 ms: 4 on a CPU, 6 waiting; still the machine.
        assert!(!goroutine_to_blame(
            &mut measure,
            times(6, 14, true),
            start + ms(20),
            STUCK_AFTER
        ));
        // A loaded machine gives a looping goroutine a third of a CPU: it is blamed once it
        // has had 20 ms of CPU in all since the first measure.
        assert!(!goroutine_to_blame(
            &mut measure,
            times(12, 26, true),
            start + ms(38),
            STUCK_AFTER
        ));
        assert!(goroutine_to_blame(
            &mut measure,
            times(20, 42, true),
            start + ms(62),
            STUCK_AFTER
        ));
    }

    /// A thread's CPU clock, found by its kernel id, is the clock the thread reads as its own.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_threads_cpu_clock_is_found_by_its_id() {
        // SAFETY: `gettid` takes no arguments and cannot fail.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
        let own = || {
            let mut now = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: `now` is a valid `timespec` to write.
            let read = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
            assert_eq!(read, 0);
            Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
        };
        let before = super::thread_cpu_clock(tid).expect("this thread's CPU clock");
        let between = own();
        let after = super::thread_cpu_clock(tid).unwrap();
        assert!(
            before <= between && between <= after,
            "{before:?} {between:?} {after:?}"
        );
        assert_eq!(super::thread_cpu_clock(i32::MAX), None, "no such thread");
        // SAFETY: `getppid` takes no arguments and cannot fail.
        let parent = unsafe { libc::getppid() };
        assert_eq!(
            super::thread_cpu_clock(parent),
            None,
            "a thread of another process"
        );
    }

    /// The accounting is read from the kernel for a thread of this process.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_threads_accounting_is_read_from_the_kernel() {
        // SAFETY: `gettid` takes no arguments and cannot fail.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
        let before = thread_times(tid).expect("the accounting of this thread");
        let spin_until = Instant::now() + ms(30);
        while Instant::now() < spin_until {
            std::hint::spin_loop();
        }
        let after = thread_times(tid).unwrap();
        assert!(after.runnable, "a thread reading its own state is running");
        assert!(
            after.on_cpu >= before.on_cpu + ms(5),
            "30 ms of spinning counted {:?} on a CPU",
            after.on_cpu - before.on_cpu
        );
        assert!(after.waited >= before.waited);
        assert_eq!(thread_times(0), None);
    }
}
