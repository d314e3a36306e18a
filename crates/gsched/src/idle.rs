//! Which workers sleep, and the one decision shutdown takes from that: the runtime is quiet.
//!
//! A worker going to sleep sets its flag (`announce`), which issues a `SeqCst` fence, and then
//! looks at its queues once more before it parks its thread. Whoever gives a worker work pushes
//! it, issues a `SeqCst` fence, and then calls `wake`, which clears the flag if it is set and
//! tells the caller to unpark the thread. The two fences order each side's store before its
//! load: either the pusher sees the flag (and wakes the worker), or the worker's last look sees
//! the work. Thread parking keeps a token, so an unpark that lands before the park is not lost.
//!
//! During shutdown the same flags decide when every worker is done (`try_quiesce`): a worker
//! that finds every flag set after its own last look knows that each worker looked after its
//! flag went up and found nothing, and that any push since would have cleared a flag first.
//! The loom model `shutdown_quiesces_only_when_no_work_is_left` checks this with the real type.

use crate::sync::{AtomicBool, AtomicUsize, Ordering, fence};

pub(crate) struct IdleFlags {
    sleeping: Box<[AtomicBool]>,
    /// Workers whose flag is set.
    sleepers: AtomicUsize,
    /// Set once shutdown found every worker asleep with nothing left to do.
    quiesced: AtomicBool,
    /// Workers in their shutdown loop, plus workers whose thread never started: quiet can only
    /// be declared once every worker is past its scheduling loop.
    shut_down: AtomicUsize,
}

impl IdleFlags {
    pub(crate) fn new(workers: usize) -> Self {
        IdleFlags {
            sleeping: (0..workers).map(|_| AtomicBool::new(false)).collect(),
            sleepers: AtomicUsize::new(0),
            quiesced: AtomicBool::new(false),
            shut_down: AtomicUsize::new(0),
        }
    }

    /// Worker `index` entered its shutdown loop, or (`absent`) its thread never started: it
    /// counts as asleep for good.
    pub(crate) fn enter_shutdown(&self, index: usize, absent: bool) {
        if absent {
            self.announce(index);
        }
        self.shut_down.fetch_add(1, Ordering::SeqCst);
    }

    /// Sets worker `index`'s flag; the caller then looks for work once more before it parks.
    pub(crate) fn announce(&self, index: usize) {
        self.sleeping[index].store(true, Ordering::SeqCst);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// Clears worker `index`'s flag; true if this call cleared it.
    pub(crate) fn end(&self, index: usize) -> bool {
        let was_sleeping = self.sleeping[index].swap(false, Ordering::SeqCst);
        if was_sleeping {
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
        was_sleeping
    }

    /// After work for worker `index` was pushed and fenced: true when the caller must unpark
    /// that worker's thread (this call cleared its flag).
    pub(crate) fn wake(&self, index: usize) -> bool {
        self.sleeping[index].load(Ordering::SeqCst) && self.end(index)
    }

    pub(crate) fn is_sleeping(&self, index: usize) -> bool {
        self.sleeping[index].load(Ordering::SeqCst)
    }

    /// Workers asleep now.
    pub(crate) fn sleepers(&self) -> usize {
        self.sleepers.load(Ordering::SeqCst)
    }

    /// Shutdown, after worker `announce`d and found nothing in its last look: true once the
    /// runtime is quiet (every worker is asleep, or another worker said so first).
    pub(crate) fn try_quiesce(&self) -> bool {
        let workers = self.sleeping.len();
        if self.quiesced.load(Ordering::SeqCst)
            || (self.shut_down.load(Ordering::SeqCst) == workers && self.sleepers() == workers)
        {
            self.quiesced.store(true, Ordering::SeqCst);
            return true;
        }
        false
    }

    pub(crate) fn is_quiesced(&self) -> bool {
        self.quiesced.load(Ordering::SeqCst)
    }
}
