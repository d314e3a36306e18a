//! Memory that crosses threads: slab blocks freed remotely, a goroutine's result reaching its
//! joiner, and the runtime holds.

use loom::sync::Arc;
use loom::sync::atomic::AtomicUsize;
use loom::thread;

use crate::result_slot::ResultSlot;
use crate::scheduler::holds::Holds;
use crate::shim::{Ordering, UnsafeCell};

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
