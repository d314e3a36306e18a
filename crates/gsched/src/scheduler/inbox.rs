//! A worker's inbox: the goroutines only it may run, pushed from any thread, taken by the worker
//! alone.
//!
//! An intrusive multi-producer, single-consumer queue (Dmitry Vyukov's): each entry carries its
//! own link, so a push allocates nothing and costs one atomic exchange to link the entry (plus a
//! relaxed add, on the same cache line, to the count that `Runtime::metrics` reads), and a pop
//! costs no read-modify-write at all. An entry is in at most one inbox at a time (the scheduling state
//! machine gives each goroutine at most one queue entry; see `state.rs`), which is what lets its
//! one link serve.
//!
//! A push exchanges the tail for the new entry, then links the old tail to it. Between the two
//! steps the consumer cannot reach the new entry: `pop` then says `None` while `is_empty` says
//! `false`, and the pusher, which never blocks there, finishes in a moment. The consumer keeps a
//! stub entry of its own that it pushes when it takes the last real one, so the queue is never
//! without an entry for the producers to link to.
//!
//! The loom models `an_inbox_delivers_every_push_once_in_order` and
//! `a_push_racing_a_worker_going_to_sleep_wakes_it` check it with the real type.

use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use super::Padded;
use crate::shim::{AtomicPtr, AtomicUsize, Ordering, UnsafeCell};

/// The link an inbox threads through its entries, embedded in each.
pub(crate) struct Link {
    next: AtomicPtr<Link>,
}

impl Link {
    pub(crate) fn new() -> Self {
        Link {
            next: AtomicPtr::new(ptr::null_mut()),
        }
    }
}

/// An owning reference that an inbox can hold: its target embeds a [`Link`].
///
/// # Safety
///
/// `into_link` gives up the reference and returns the link of its target, which stays valid and
/// in place until `from_link` takes the reference back; `from_link` rebuilds exactly the
/// reference that `into_link` gave up.
pub(crate) unsafe trait Linked {
    fn into_link(self) -> NonNull<Link>;

    /// # Safety
    ///
    /// `link` came from `into_link`, and is taken back once.
    unsafe fn from_link(link: NonNull<Link>) -> Self;
}

pub(crate) struct Inbox<T: Linked> {
    /// The last entry pushed: producers exchange it. With the push count on its line, which
    /// only producers write.
    tail: Padded<(AtomicPtr<Link>, AtomicUsize)>,
    /// The consumer's end: the next entry to take, or the stub.
    head: UnsafeCell<NonNull<Link>>,
    /// Entries taken, written by the consumer alone.
    taken: AtomicUsize,
    /// The consumer's own entry, on the heap so that its address survives moves of the inbox;
    /// a raw pointer from `Box::leak`, because producers write through it while the inbox
    /// is shared. Freed by `Drop`.
    stub: NonNull<Link>,
    /// Owns the references it holds.
    marker: PhantomData<T>,
}

// SAFETY: the inbox holds `T`s and hands them to the consumer's thread, so `T: Send` makes it
// `Send`; producers on any thread touch only atomics, and the consumer's cell is touched by one
// thread at a time (the contract of `pop` and `is_empty`).
unsafe impl<T: Linked + Send> Send for Inbox<T> {}
// SAFETY: as above.
unsafe impl<T: Linked + Send> Sync for Inbox<T> {}

impl<T: Linked> Inbox<T> {
    pub(crate) fn new() -> Self {
        let stub = NonNull::from(Box::leak(Box::new(Link::new())));
        Inbox {
            tail: Padded((AtomicPtr::new(stub.as_ptr()), AtomicUsize::new(0))),
            head: UnsafeCell::new(stub),
            taken: AtomicUsize::new(0),
            stub,
            marker: PhantomData,
        }
    }

    fn stub(&self) -> NonNull<Link> {
        self.stub
    }

    /// Adds `entry` at the back; from any thread.
    #[inline]
    pub(crate) fn push(&self, entry: T) {
        self.tail.0.1.fetch_add(1, Ordering::Relaxed);
        self.link(entry.into_link());
    }

    #[inline]
    fn link(&self, link: NonNull<Link>) {
        // SAFETY: the link is valid while its entry is queued (the `Linked` contract), and it
        // is in no queue now: its `next` is its pusher's to write.
        unsafe { link.as_ref() }
            .next
            .store(ptr::null_mut(), Ordering::Relaxed);
        // AcqRel: the release publishes the entry (and its cleared link) to whoever links after
        // it or takes it; the acquire orders the store below after the previous pusher's.
        let previous = self.tail.0.0.swap(link.as_ptr(), Ordering::AcqRel);
        // SAFETY: the previous tail stays valid until its `next` is set: the consumer takes an
        // entry only once it has a successor, and the stub lives as long as the inbox.
        unsafe { &*previous }
            .next
            .store(link.as_ptr(), Ordering::Release);
    }

    /// Takes the entry at the front. `None` when the inbox is empty, or for a moment while a
    /// push is between its two steps (`is_empty` then says `false`).
    ///
    /// # Safety
    ///
    /// Called by the inbox's one consumer: one thread at a time, each one's calls ordered after
    /// the previous one's (the worker's own thread; after it stopped, the thread that joined it).
    #[inline]
    pub(crate) unsafe fn pop(&self) -> Option<T> {
        let stub = self.stub();
        self.head.with_mut(|head_cell| {
            // SAFETY: only the consumer touches the head (the contract), and every entry
            // reachable from it is queued, so valid.
            unsafe {
                let mut head = *head_cell;
                let mut next = head.as_ref().next.load(Ordering::Acquire);
                if head == stub {
                    let first = NonNull::new(next)?;
                    *head_cell = first;
                    head = first;
                    next = first.as_ref().next.load(Ordering::Acquire);
                }
                if let Some(next) = NonNull::new(next) {
                    *head_cell = next;
                    return Some(self.take(head));
                }
                if head.as_ptr() != self.tail.0.0.load(Ordering::Acquire) {
                    // A pusher has exchanged the tail and not yet linked `head` to its entry.
                    return None;
                }
                // `head` is the last entry: put the stub behind it so that it can be taken.
                self.link(stub);
                let next = NonNull::new(head.as_ref().next.load(Ordering::Acquire))?;
                *head_cell = next;
                Some(self.take(head))
            }
        })
    }

    /// Takes the entry at the front, waiting out a push caught between its two steps: `None`
    /// only when the inbox is empty. For draining it once no more pushes begin.
    ///
    /// # Safety
    ///
    /// As [`Inbox::pop`].
    pub(crate) unsafe fn pop_settled(&self) -> Option<T> {
        let mut spins = 0u32;
        loop {
            // SAFETY: as the caller guarantees.
            if let Some(entry) = unsafe { self.pop() } {
                return Some(entry);
            }
            // SAFETY: as above.
            if unsafe { self.is_empty() } {
                return None;
            }
            // The pusher's thread may be off the CPU between its two steps: let it run.
            if spins < 64 {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Hands over an entry that has left the queue.
    ///
    /// # Safety
    ///
    /// `link` is an entry's link, pushed by `push` and now unreachable from the queue.
    #[inline]
    unsafe fn take(&self, link: NonNull<Link>) -> T {
        let taken = self.taken.load(Ordering::Relaxed);
        self.taken.store(taken.wrapping_add(1), Ordering::Relaxed);
        // SAFETY: as the caller guarantees, once.
        unsafe { T::from_link(link) }
    }

    /// Whether nothing is queued and no push is under way.
    ///
    /// # Safety
    ///
    /// As [`Inbox::pop`].
    #[inline]
    pub(crate) unsafe fn is_empty(&self) -> bool {
        let stub = self.stub();
        // SAFETY: only the consumer touches the head (the contract); the stub lives as long
        // as the inbox.
        self.head.with_mut(|head| unsafe {
            *head == stub
                && stub.as_ref().next.load(Ordering::Acquire).is_null()
                && self.tail.0.0.load(Ordering::Acquire) == stub.as_ptr()
        })
    }

    /// Entries queued, from any thread: exact when nothing is being pushed or taken.
    pub(crate) fn len(&self) -> usize {
        let taken = self.taken.load(Ordering::Relaxed);
        let pushed = self.tail.0.1.load(Ordering::Relaxed);
        pushed.wrapping_sub(taken).min(isize::MAX as usize)
    }
}

impl<T: Linked> Drop for Inbox<T> {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: this thread is the only one left to touch the inbox, after every
        // earlier consumer (it owns the inbox now).
        while let Some(entry) = unsafe { self.pop() } {
            drop(entry);
        }
        // SAFETY: the stub came from `Box::leak` in `new`, and nothing links to it any more:
        // the queue is drained and no producer is left (`&mut self`).
        drop(unsafe { Box::from_raw(self.stub.as_ptr()) });
    }
}

#[cfg(all(test, not(goroutines_loom)))]
mod tests {
    use std::ptr::{self, NonNull};
    use std::sync::Arc;

    use super::{Inbox, Link, Linked};

    struct Node {
        link: Link,
        value: usize,
    }

    // SAFETY: the link is the first field of a `repr(Rust)` node reached only through its
    // address, taken and given back by `Arc::into_raw`/`from_raw`.
    unsafe impl Linked for Arc<Node> {
        fn into_link(self) -> NonNull<Link> {
            let node = Arc::into_raw(self);
            // SAFETY: `into_raw` gives a valid pointer that stays valid until `from_raw`; a raw
            // field pointer keeps the node's provenance for `from_link`.
            unsafe { NonNull::new_unchecked(ptr::addr_of!((*node).link).cast_mut()) }
        }

        unsafe fn from_link(link: NonNull<Link>) -> Self {
            let offset = std::mem::offset_of!(Node, link);
            // SAFETY: the link lies `offset` bytes into a node from `into_raw` (the contract).
            unsafe { Arc::from_raw(link.as_ptr().byte_sub(offset).cast::<Node>()) }
        }
    }

    fn node(value: usize) -> Arc<Node> {
        Arc::new(Node {
            link: Link::new(),
            value,
        })
    }

    #[test]
    fn entries_come_out_in_order_and_the_count_follows() {
        let inbox = Inbox::new();
        // SAFETY: this thread is the only consumer.
        unsafe {
            assert!(inbox.is_empty());
            for value in 0..5 {
                inbox.push(node(value));
            }
            assert!(!inbox.is_empty());
            assert_eq!(inbox.len(), 5);
            let first: Vec<usize> = (0..3).map(|_| inbox.pop().unwrap().value).collect();
            assert_eq!(first, [0, 1, 2]);
            inbox.push(node(5));
            let rest: Vec<usize> = std::iter::from_fn(|| inbox.pop())
                .map(|n| n.value)
                .collect();
            assert_eq!(rest, [3, 4, 5]);
            assert!(inbox.is_empty());
            assert_eq!(inbox.len(), 0);
            // An entry taken out may be queued again.
            let again = node(6);
            inbox.push(Arc::clone(&again));
            let back = inbox.pop().unwrap();
            inbox.push(back);
            assert_eq!(inbox.pop().unwrap().value, 6);
            assert_eq!(Arc::strong_count(&again), 1);
        }
    }

    #[test]
    fn dropping_the_inbox_drops_what_it_holds() {
        let kept = node(1);
        let inbox = Inbox::new();
        inbox.push(Arc::clone(&kept));
        inbox.push(node(2));
        assert_eq!(Arc::strong_count(&kept), 2);
        drop(inbox);
        assert_eq!(Arc::strong_count(&kept), 1);
    }

    #[test]
    fn pushes_from_many_threads_all_arrive() {
        let inbox = Arc::new(Inbox::new());
        let producers: Vec<_> = (0..4)
            .map(|thread| {
                let inbox = Arc::clone(&inbox);
                std::thread::spawn(move || {
                    for i in 0..10_000 {
                        inbox.push(node(thread * 10_000 + i));
                    }
                })
            })
            .collect();
        let mut last = [None::<usize>; 4];
        let mut seen = 0;
        while seen < 40_000 {
            // SAFETY: this thread is the only consumer.
            match unsafe { inbox.pop() } {
                Some(entry) => {
                    let thread = entry.value / 10_000;
                    assert!(
                        last[thread].is_none_or(|last| last < entry.value),
                        "in order"
                    );
                    last[thread] = Some(entry.value);
                    seen += 1;
                }
                None => std::hint::spin_loop(),
            }
        }
        for producer in producers {
            producer.join().unwrap();
        }
        // SAFETY: as above.
        assert!(unsafe { inbox.is_empty() });
    }
}
