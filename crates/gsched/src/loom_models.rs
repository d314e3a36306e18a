//! loom models of the scheduler's protocols: run with `--cfg goroutines_loom` (see
//! `cargo xtask test`).

use std::collections::VecDeque;
use std::ptr::NonNull;

// The models are only as good as the assertions they check.
const _: () = assert!(
    cfg!(debug_assertions),
    "run the loom models with debug assertions: RUSTFLAGS=\"--cfg goroutines_loom -C debug-assertions\""
);

use loom::sync::atomic::{AtomicBool, AtomicUsize};
use loom::sync::{Arc, Mutex};
use loom::thread;

use crate::result_slot::ResultSlot;
use crate::scheduler::holds::Holds;
use crate::scheduler::idle::IdleFlags;
use crate::scheduler::inbox::{Inbox, Link, Linked};
use crate::scheduler::state::TaskState;
use crate::scheduler::steal::{RunQueue, steal_half};
use crate::scheduler::timer_word::TimerWord;
use crate::shim::{Ordering, UnsafeCell};

/// A stand-in for crossbeam's `ArrayQueue`, which loom cannot see into: a bounded queue behind
/// loom's mutex, so that what is modeled is the logic around the queue.
struct BoundedQueue<T> {
    items: Mutex<VecDeque<T>>,
    capacity: usize,
}

impl<T> BoundedQueue<T> {
    fn new(capacity: usize) -> Self {
        BoundedQueue {
            items: Mutex::new(VecDeque::new()),
            capacity,
        }
    }
}

impl<T> RunQueue<T> for BoundedQueue<T> {
    fn push(&self, item: T) -> Result<(), T> {
        let mut items = self.items.lock().unwrap();
        if items.len() == self.capacity {
            return Err(item);
        }
        items.push_back(item);
        Ok(())
    }

    fn pop(&self) -> Option<T> {
        self.items.lock().unwrap().pop_front()
    }

    fn len(&self) -> usize {
        self.items.lock().unwrap().len()
    }
}

/// One turn of the goroutine and its worker waiting for a wake-up, as in `park_until` and
/// `WorkerLocal::run`: consume a pending notification, or park and wait until an unpark queues
/// the goroutine; either way it runs again.
fn park_once(state: &TaskState, queued: &AtomicUsize) {
    if state.take_notification() {
        return;
    }
    if state.finish_park() {
        while queued.load(Ordering::Acquire) == 0 {
            thread::yield_now();
        }
        queued.fetch_sub(1, Ordering::Relaxed);
    }
    assert!(state.try_start_run(), "a scheduled goroutine runs");
}

/// A goroutine parks until a flag is set, while another thread sets the flag and unparks it.
/// Whatever the interleaving, the goroutine runs again and sees the flag: no lost wake-up, and
/// it is never run twice at once (`try_start_run` wins once per scheduling).
#[test]
fn park_and_unpark_lose_no_wakeup() {
    loom::model(|| {
        let state = Arc::new(TaskState::new());
        let flag = Arc::new(AtomicBool::new(false));
        // The run queue the unparker pushes a parked goroutine to.
        let queued = Arc::new(AtomicUsize::new(0));
        assert!(state.try_start_run());

        let unparker = {
            let (state, flag, queued) =
                (Arc::clone(&state), Arc::clone(&flag), Arc::clone(&queued));
            thread::spawn(move || {
                flag.store(true, Ordering::Release);
                if state.notify() {
                    queued.fetch_add(1, Ordering::Release);
                }
            })
        };

        let mut turns = 0;
        while !flag.load(Ordering::Acquire) {
            park_once(&state, &queued);
            turns += 1;
        }
        unparker.join().unwrap();
        assert!(turns <= 2);
        assert_eq!(queued.load(Ordering::Relaxed), 0, "queued but never run");
    });
}

/// Two unparkers race against one park: the goroutine is queued at most once.
#[test]
fn concurrent_unparks_queue_a_goroutine_once() {
    loom::model(|| {
        let state = Arc::new(TaskState::new());
        assert!(state.try_start_run());
        let queued = Arc::new(AtomicUsize::new(0));
        let unparkers: Vec<_> = (0..2)
            .map(|_| {
                let (state, queued) = (Arc::clone(&state), Arc::clone(&queued));
                thread::spawn(move || {
                    if state.notify() {
                        queued.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let parked = !state.take_notification() && state.finish_park();
        for unparker in unparkers {
            unparker.join().unwrap();
        }
        let queued = queued.load(Ordering::Relaxed);
        if parked {
            assert_eq!(queued, 1, "a parked goroutine is queued exactly once");
            assert!(state.try_start_run());
        } else {
            assert_eq!(queued, 0, "a goroutine that did not park is not queued");
        }
    });
}

/// An owner pushes and pops its queue while a thief steals half: every goroutine is taken
/// exactly once, none lost, none duplicated.
#[test]
fn stealing_loses_and_duplicates_nothing() {
    loom::model(|| {
        let victim = Arc::new(BoundedQueue::new(4));
        let thief_queue = Arc::new(BoundedQueue::new(1));
        for item in 0..3u32 {
            victim.push(item).unwrap();
        }
        let thief = {
            let (victim, thief_queue) = (Arc::clone(&victim), Arc::clone(&thief_queue));
            thread::spawn(move || {
                let mut taken = Vec::new();
                let mut overflow = Vec::new();
                taken.extend(steal_half(&*victim, &*thief_queue, |item| {
                    overflow.push(item)
                }));
                while let Some(item) = thief_queue.pop() {
                    taken.push(item);
                }
                taken.extend(overflow);
                taken
            })
        };
        let mut owner = Vec::new();
        victim.push(3).unwrap();
        while let Some(item) = victim.pop() {
            owner.push(item);
        }
        let mut all = thief.join().unwrap();
        while let Some(item) = victim.pop() {
            all.push(item);
        }
        all.extend(owner);
        all.sort_unstable();
        assert_eq!(all, [0, 1, 2, 3]);
    });
}

/// Two rounds of ping-pong between a goroutine and a thread, each side waiting for the other's
/// flag: every round's wake-up reaches the goroutine.
#[test]
fn ping_pong_rounds_lose_no_wakeup() {
    loom::model(|| {
        const ROUNDS: usize = 2;
        let state = Arc::new(TaskState::new());
        let pong = Arc::new(AtomicUsize::new(0));
        let queued = Arc::new(AtomicUsize::new(0));
        assert!(state.try_start_run());
        let partner = {
            let (state, pong, queued) =
                (Arc::clone(&state), Arc::clone(&pong), Arc::clone(&queued));
            thread::spawn(move || {
                for _ in 0..ROUNDS {
                    pong.fetch_add(1, Ordering::Release);
                    if state.notify() {
                        queued.fetch_add(1, Ordering::Release);
                    }
                }
            })
        };
        for round in 1..=ROUNDS {
            while pong.load(Ordering::Acquire) < round {
                park_once(&state, &queued);
            }
        }
        partner.join().unwrap();
    });
}

/// A goroutine parked with a deadline while its timer expires and a waker wakes it, at once:
/// exactly one of the timer and the goroutine's own cancellation retires the timer (the
/// runtime's pending count ends at zero), and the goroutine runs again.
#[test]
fn a_deadline_racing_a_wake_retires_the_timer_once() {
    loom::model(|| {
        let state = Arc::new(TaskState::new());
        let timer = Arc::new(TimerWord::new());
        let pending = Arc::new(AtomicUsize::new(0));
        let queued = Arc::new(AtomicUsize::new(0));
        let woken = Arc::new(AtomicBool::new(false));
        assert!(state.try_start_run());
        assert!(!timer.arm(1), "nothing armed before");
        pending.fetch_add(1, Ordering::Relaxed);
        let expiry = {
            let (state, timer, pending, queued) = (
                Arc::clone(&state),
                Arc::clone(&timer),
                Arc::clone(&pending),
                Arc::clone(&queued),
            );
            thread::spawn(move || {
                if timer.fire(1) {
                    pending.fetch_sub(1, Ordering::Relaxed);
                    if state.notify() {
                        queued.fetch_add(1, Ordering::Release);
                    }
                }
            })
        };
        let waker = {
            let (state, woken, queued) =
                (Arc::clone(&state), Arc::clone(&woken), Arc::clone(&queued));
            thread::spawn(move || {
                woken.store(true, Ordering::Release);
                if state.notify() {
                    queued.fetch_add(1, Ordering::Release);
                }
            })
        };
        // The goroutine parks once (the deadline or the waker brings it back), then retires
        // its timer as `park_until` does; it parks again until the waker's flag is visible.
        park_once(&state, &queued);
        if timer.cancel() {
            pending.fetch_sub(1, Ordering::Relaxed);
        }
        while !woken.load(Ordering::Acquire) {
            park_once(&state, &queued);
        }
        expiry.join().unwrap();
        waker.join().unwrap();
        assert_eq!(
            pending.load(Ordering::Relaxed),
            0,
            "the timer was retired once"
        );
        assert!(!timer.fire(1), "a retired timer never fires");
    });
}

/// Shutdown on two workers, each running the shape of `WorkerLocal::shut_down` on the real
/// `IdleFlags`: worker 0 has an item whose handling pushes one to worker 1, which is going to
/// sleep meanwhile. Nobody declares the runtime quiet while an item is queued, and both end.
#[test]
fn shutdown_quiesces_only_when_no_work_is_left() {
    loom::model(|| {
        const WORKERS: usize = 2;
        let flags = Arc::new(IdleFlags::new(WORKERS));
        let queues: Arc<Vec<AtomicUsize>> =
            Arc::new((0..WORKERS).map(|_| AtomicUsize::new(0)).collect());
        let handled = Arc::new(AtomicUsize::new(0));
        queues[0].store(1, Ordering::Relaxed);
        let threads: Arc<Mutex<Vec<Option<thread::Thread>>>> =
            Arc::new(Mutex::new(vec![None; WORKERS]));
        let workers: Vec<_> = (0..WORKERS)
            .map(|me| {
                let (flags, queues, handled, threads) = (
                    Arc::clone(&flags),
                    Arc::clone(&queues),
                    Arc::clone(&handled),
                    Arc::clone(&threads),
                );
                thread::spawn(move || {
                    threads.lock().unwrap()[me] = Some(thread::current());
                    flags.enter_shutdown(me, false);
                    let wake = |index: usize| {
                        if flags.wake(index)
                            && let Some(thread) = &threads.lock().unwrap()[index]
                        {
                            thread.unpark();
                        }
                    };
                    loop {
                        if queues[me].load(Ordering::SeqCst) > 0 {
                            queues[me].fetch_sub(1, Ordering::SeqCst);
                            handled.fetch_add(1, Ordering::SeqCst);
                            if me == 0 {
                                queues[1].fetch_add(1, Ordering::SeqCst);
                                crate::shim::fence(Ordering::SeqCst);
                                wake(1);
                            }
                            continue;
                        }
                        flags.announce(me);
                        if queues[me].load(Ordering::SeqCst) > 0 {
                            flags.end(me);
                            continue;
                        }
                        if flags.try_quiesce() {
                            flags.end(me);
                            for index in 0..WORKERS {
                                wake(index);
                            }
                            break;
                        }
                        thread::park();
                        flags.end(me);
                        if flags.is_quiesced() {
                            break;
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        assert_eq!(handled.load(Ordering::SeqCst), 2, "an item was left behind");
    });
}

/// Blocks freed on other threads reach their chunk's owner exactly once, whether the owner takes
/// the list before, between or after the pushes (`slab/remote.rs`).
#[test]
fn remote_frees_reach_the_owner_exactly_once() {
    use crate::slab::remote::{FreeBlock, RemoteFrees};

    struct Block(*mut FreeBlock);
    // SAFETY: each block is handed to exactly one pusher thread.
    unsafe impl Send for Block {}

    fn collect(mut block: *mut FreeBlock, into: &mut Vec<usize>) {
        while !block.is_null() {
            into.push(block.addr());
            // SAFETY: taken blocks are the owner's; each holds its link.
            block = unsafe { (*block).next };
        }
    }

    loom::model(|| {
        let frees = Arc::new(RemoteFrees::new());
        let blocks: Vec<*mut FreeBlock> = (0..3)
            .map(|_| {
                Box::into_raw(Box::new(FreeBlock {
                    next: std::ptr::null_mut(),
                }))
            })
            .collect();
        let expected: Vec<usize> = blocks.iter().map(|block| block.addr()).collect();
        let pushers: Vec<_> = [
            vec![Block(blocks[0]), Block(blocks[1])],
            vec![Block(blocks[2])],
        ]
        .into_iter()
        .map(|mine| {
            let frees = Arc::clone(&frees);
            thread::spawn(move || {
                for block in mine {
                    // SAFETY: the block is this thread's to give up.
                    unsafe { frees.push(block.0) };
                }
            })
        })
        .collect();
        let mut seen = Vec::new();
        collect(frees.take_all(), &mut seen);
        for pusher in pushers {
            pusher.join().unwrap();
        }
        collect(frees.take_all(), &mut seen);
        seen.sort_unstable();
        let mut expected = expected;
        expected.sort_unstable();
        assert_eq!(seen, expected, "a block was lost or taken twice");
        for block in blocks {
            // SAFETY: made by `Box::into_raw` above and no longer on any list.
            drop(unsafe { Box::from_raw(block) });
        }
    });
}

/// A goroutine woken onto its home worker's inbox while that worker goes to sleep is never
/// left behind: the pusher's `wake_owner` and the worker's `announce` meet on the worker's flag
/// (see `idle.rs`). Removing the worker's look after `announce` makes it park for good here.
#[test]
fn a_push_racing_a_worker_going_to_sleep_wakes_it() {
    loom::model(|| {
        let flags = Arc::new(IdleFlags::new(1));
        let inbox = Arc::new(Inbox::<Arc<Entry>>::new());
        let worker = {
            let (flags, inbox) = (Arc::clone(&flags), Arc::clone(&inbox));
            thread::spawn(move || {
                // SAFETY: this thread is the inbox's one consumer.
                let received = || unsafe { !inbox.is_empty() };
                loop {
                    if received() {
                        break;
                    }
                    flags.announce(0);
                    if received() {
                        flags.end(0);
                        break;
                    }
                    thread::park();
                    flags.end(0);
                }
                // A push that `is_empty` saw completes without waiting for anything.
                loop {
                    // SAFETY: as above.
                    if let Some(entry) = unsafe { inbox.pop() } {
                        break entry.value();
                    }
                    thread::yield_now();
                }
            })
        };
        let worker_thread = worker.thread().clone();
        inbox.push(Entry::new(7));
        if flags.wake_owner(0) {
            worker_thread.unpark();
        }
        assert_eq!(worker.join().unwrap(), 7);
    });
}

/// An inbox entry for the models: a counted node with its link, as a goroutine's task is. Its
/// value sits in a cell that loom tracks, so that a consumer reading it before the push is
/// visible fails the model.
struct Entry {
    link: Link,
    value: UnsafeCell<usize>,
}

impl Entry {
    fn new(value: usize) -> Arc<Entry> {
        Arc::new(Entry {
            link: Link::new(),
            value: UnsafeCell::new(value),
        })
    }

    fn value(&self) -> usize {
        // SAFETY: only read after creation; loom checks that the creation happened before.
        self.value.with_mut(|value| unsafe { *value })
    }
}

// SAFETY: `into_raw` keeps the entry alive and in place until `from_raw`, and the link sits at a
// fixed offset in it.
unsafe impl Linked for Arc<Entry> {
    fn into_link(self) -> NonNull<Link> {
        let entry = Arc::into_raw(self);
        // SAFETY: `into_raw` gives a valid pointer, valid until `from_raw`; a raw field pointer
        // keeps the entry's provenance for `from_link`.
        unsafe { NonNull::new_unchecked(std::ptr::addr_of!((*entry).link).cast_mut()) }
    }

    unsafe fn from_link(link: NonNull<Link>) -> Self {
        let offset = std::mem::offset_of!(Entry, link);
        // SAFETY: the link lies `offset` bytes into an entry from `into_raw` (the contract).
        unsafe { Arc::from_raw(link.as_ptr().byte_sub(offset).cast::<Entry>()) }
    }
}

/// Two threads push two entries each into a worker's inbox while the worker takes them, and
/// one entry goes round twice: every push comes out exactly once, each pusher's in its order,
/// whatever the interleaving, including a pop that meets a push between its exchange and its
/// link, and the stub going back in behind the last entry.
#[test]
fn an_inbox_delivers_every_push_once_in_order() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(2);
    model.check(|| {
        let inbox = Arc::new(Inbox::<Arc<Entry>>::new());
        let pushers: Vec<_> = [0, 10]
            .into_iter()
            .map(|first| {
                let inbox = Arc::clone(&inbox);
                thread::spawn(move || {
                    inbox.push(Entry::new(first));
                    inbox.push(Entry::new(first + 1));
                })
            })
            .collect();
        let mut seen = Vec::new();
        let mut again = Some(Entry::new(100));
        while seen.len() < 6 {
            if let Some(entry) = again.take() {
                inbox.push(entry);
            }
            // SAFETY: this thread is the inbox's one consumer.
            match unsafe { inbox.pop() } {
                // The same entry, queued again once taken: its link serves again.
                Some(entry) if entry.value() == 100 && !seen.contains(&100) => {
                    seen.push(100);
                    again = Some(entry);
                }
                Some(entry) => seen.push(entry.value()),
                None => thread::yield_now(),
            }
        }
        for pusher in pushers {
            pusher.join().unwrap();
        }
        // SAFETY: as above.
        assert!(unsafe { inbox.pop() }.is_none() && unsafe { inbox.is_empty() });
        assert_eq!(inbox.len(), 0);
        let position = |value| seen.iter().position(|&seen| seen == value).unwrap();
        assert!(
            position(0) < position(1) && position(10) < position(11),
            "{seen:?}"
        );
        assert_eq!(
            seen.iter().filter(|&&value| value == 100).count(),
            2,
            "{seen:?}"
        );
    });
}

/// A wake-up (from an outside thread) races shutdown's claim of the parked goroutine: exactly
/// one of them gets it. A goroutine the wake-up queued is never claimed while its entry waits,
/// and the entry's popper then starts it: no entry is left stale, so a goroutine is never queued
/// twice at once (what a worker's inbox relies on, see `state.rs`).
#[test]
fn a_wake_racing_shutdowns_claim_leaves_one_owner() {
    loom::model(|| {
        let state = Arc::new(TaskState::new());
        assert!(state.try_start_run());
        assert!(state.finish_park());
        let waker = {
            let state = Arc::clone(&state);
            thread::spawn(move || state.notify())
        };
        let claimed = state.try_claim();
        let queued = waker.join().unwrap();
        assert!(
            !(claimed && queued),
            "both the claim and the wake-up took the goroutine"
        );
        if queued {
            assert!(
                !state.is_claimable() && !state.try_claim(),
                "claimed while queued"
            );
            assert!(state.try_start_run(), "the queue entry's popper starts it");
        } else {
            assert!(claimed, "a wake-up that found it claimed only notifies it");
            state.finish_yield();
            assert!(
                state.try_start_run(),
                "queued again after its turn, it runs"
            );
        }
    });
}

/// A goroutine refused a stack while the worker that caches stacks goes to sleep: the refusing
/// worker queues it, fences and wakes whichever worker sleeps; the other announces its sleep and
/// then looks at the queue (see `idle.rs`). One of them sees the other: the cache is handed over
/// and nobody sleeps beside the waiting goroutine.
#[test]
fn a_goroutine_refused_a_stack_wakes_a_worker_going_to_sleep_with_cached_stacks() {
    loom::model(|| {
        let flags = Arc::new(IdleFlags::new(2));
        let waiting_for_stack = Arc::new(AtomicUsize::new(0));
        let handed_over = Arc::new(AtomicUsize::new(0));
        let caching_worker = {
            let (flags, waiting, handed) = (
                Arc::clone(&flags),
                Arc::clone(&waiting_for_stack),
                Arc::clone(&handed_over),
            );
            thread::spawn(move || {
                loop {
                    if waiting.load(Ordering::SeqCst) > 0 {
                        break;
                    }
                    flags.announce(1);
                    if waiting.load(Ordering::SeqCst) > 0 {
                        flags.end(1);
                        break;
                    }
                    thread::park();
                    flags.end(1);
                }
                handed.store(1, Ordering::SeqCst);
            })
        };
        let caching_thread = caching_worker.thread().clone();
        waiting_for_stack.fetch_add(1, Ordering::SeqCst);
        loom::sync::atomic::fence(Ordering::SeqCst);
        if flags.wake(1) {
            caching_thread.unpark();
        }
        caching_worker.join().unwrap();
        assert_eq!(handed_over.load(Ordering::SeqCst), 1);
    });
}

/// `block_on_future`'s flag: a waker on another thread sets it and unparks the poller, which
/// takes it after each poll and parks only when it was not set. Whatever the interleaving, the
/// poller sees the wake and what the waker wrote before it.
#[test]
fn a_wake_between_poll_and_park_is_not_lost() {
    loom::model(|| {
        let flag = Arc::new(crate::wake_flag::WakeFlag::new());
        let result = Arc::new(AtomicUsize::new(0));
        let poller = {
            let (flag, result) = (Arc::clone(&flag), Arc::clone(&result));
            thread::spawn(move || {
                // Poll: not ready yet. Then wait for the wake as `block_on_future` does.
                while !flag.take() {
                    thread::park();
                }
                assert_eq!(
                    result.load(Ordering::Relaxed),
                    42,
                    "the wake published the result"
                );
            })
        };
        let poller_thread = poller.thread().clone();
        result.store(42, Ordering::Relaxed);
        flag.set();
        poller_thread.unpark();
        poller.join().unwrap();
    });
}

/// A goroutine's result, written by the goroutine finishing (`complete`), while its joiner
/// registers and waits: whatever the interleaving, the joiner is woken when it must be (a lost
/// wake-up parks it for good here) and takes the result, which the completer never drops.
#[test]
fn a_result_racing_its_joiner_reaches_it() {
    loom::model(|| {
        let slot = Arc::new(ResultSlot::<u32, thread::Thread>::new());
        let completer = {
            let slot = Arc::clone(&slot);
            thread::spawn(move || {
                // SAFETY: the one completer.
                let completion = unsafe { slot.complete(7) };
                assert!(completion.unwanted.is_none(), "the handle wants the result");
                if let Some(joiner) = completion.wake {
                    joiner.unpark();
                }
            })
        };
        // SAFETY: this thread is the handle's one owner, registering once.
        if unsafe { slot.register(thread::current()) } {
            while !slot.is_done() {
                thread::park();
            }
        }
        // SAFETY: as above.
        assert_eq!(unsafe { slot.take() }, Some(7));
        completer.join().unwrap();
    });
}

/// A result that counts its drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// A join handle dropped (after a wait that gave up, or without one) while its goroutine
/// finishes: exactly one side drops the result, and a waiter that registered is dropped once
/// (woken, or taken back), never lost or taken twice.
#[test]
fn a_result_racing_a_dropped_handle_is_dropped_once() {
    for registers in [false, true] {
        loom::model(move || {
            let results = Arc::new(AtomicUsize::new(0));
            let waiters = Arc::new(AtomicUsize::new(0));
            let slot = Arc::new(ResultSlot::<Counted, Counted>::new());
            let completer = {
                let (slot, results) = (Arc::clone(&slot), Arc::clone(&results));
                thread::spawn(move || {
                    // SAFETY: the one completer.
                    let completion = unsafe { slot.complete(Counted(results)) };
                    drop(completion.unwanted);
                    drop(completion.wake);
                })
            };
            if registers {
                // SAFETY: this thread is the handle's one owner, registering once.
                let _ = unsafe { slot.register(Counted(Arc::clone(&waiters))) };
            }
            // SAFETY: the handle's owner, going away.
            drop(unsafe { slot.detach() });
            completer.join().unwrap();
            assert_eq!(
                results.load(Ordering::Relaxed),
                1,
                "the result is dropped once"
            );
            let mut slot = Arc::try_unwrap(slot).unwrap_or_else(|_| panic!("one owner left"));
            assert!(slot.leftover().is_none(), "nothing is left in the slot");
            drop(slot);
            assert_eq!(
                waiters.load(Ordering::Relaxed),
                usize::from(registers),
                "a registered waiter is dropped once"
            );
        });
    }
}

/// The runtime of the holds model: its holds, and a slot per holder that only the holder's
/// holds protect; dropping it reads both slots, so a write not ordered before the drop fails
/// the model.
struct HeldOwner {
    holds: Holds,
    slots: [UnsafeCell<usize>; 2],
}

impl Drop for HeldOwner {
    fn drop(&mut self) {
        for slot in &self.slots {
            // SAFETY: the owner is being dropped: every holder is done with it.
            slot.with_mut(|value| unsafe { assert_eq!(*value, 1) });
        }
    }
}

/// Takes holds through the caller's own reference, as `runtime_ref::take` does.
fn take_holds(owner: &Arc<HeldOwner>, holds: usize) {
    if owner.holds.add(holds) {
        std::mem::forget(Arc::clone(owner));
    }
}

/// Gives holds back, as `runtime_ref::give_back` does.
///
/// # Safety
///
/// The caller owns `holds` holds on the owner at `owner`.
unsafe fn give_back_holds(owner: *const HeldOwner, holds: usize) {
    // SAFETY: the caller's holds keep the owner alive; the last drops the holders' reference.
    unsafe {
        if (*owner).holds.remove(holds) {
            Arc::decrement_strong_count(owner);
        }
    }
}

/// Writes the holder's slot through a hold alone.
///
/// # Safety
///
/// The caller owns a hold on the owner, and is the only writer of slot `index`.
unsafe fn write_slot(owner: *const HeldOwner, index: usize) {
    // SAFETY: as the caller guarantees.
    unsafe { (*owner).slots[index].with_mut(|value| *value = 1) };
}

/// A worker takes a batch of holds and a thread off the workers takes one, each with its own
/// reference that it then drops, while the runtime's handle goes: the owner stays alive while
/// any hold is out, including when the count falls to zero and a worker takes from it again,
/// and is dropped exactly once, after every use through a hold.
#[test]
fn holds_keep_their_owner_alive_until_the_last_is_given_back() {
    loom::model(|| {
        let owner = Arc::new(HeldOwner {
            holds: Holds::new(),
            slots: [UnsafeCell::new(0), UnsafeCell::new(0)],
        });
        let worker_owner = Arc::clone(&owner);
        let worker = thread::spawn(move || {
            let at = Arc::as_ptr(&worker_owner);
            take_holds(&worker_owner, 1);
            // SAFETY: the hold just taken; then one taken again from a count that may be zero.
            unsafe { give_back_holds(at, 1) };
            take_holds(&worker_owner, 1);
            drop(worker_owner);
            // SAFETY: the hold taken last.
            unsafe {
                write_slot(at, 0);
                give_back_holds(at, 1);
            }
        });
        let outside_owner = Arc::clone(&owner);
        let outside = thread::spawn(move || {
            let at = Arc::as_ptr(&outside_owner);
            take_holds(&outside_owner, 2);
            drop(outside_owner);
            // SAFETY: the two holds taken above, given back one at a time.
            unsafe {
                write_slot(at, 1);
                give_back_holds(at, 1);
                give_back_holds(at, 1);
            }
        });
        drop(owner);
        worker.join().unwrap();
        outside.join().unwrap();
    });
}
