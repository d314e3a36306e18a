//! The run queues: stealing between workers, and a worker's intrusive inbox, including a push
//! racing its worker going to sleep.

use std::ptr::NonNull;

use loom::sync::Arc;
use loom::thread;

use super::BoundedQueue;
use crate::scheduler::idle::IdleFlags;
use crate::scheduler::inbox::{Inbox, Link, Linked};
use crate::scheduler::steal::{RunQueue, steal_half};
use crate::shim::UnsafeCell;

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
