//! Goroutine memory: each worker's slab of blocks in size classes up to 1 KiB.
//!
//! A spawn takes its task's block from the spawning worker's heap without a lock or an
//! atomic instruction: the heap's chunks are its own, and their free lists and counts are plain
//! memory. A block freed on the owner's thread goes straight back on its chunk's list; a block
//! freed anywhere else is pushed on the chunk's list of remote frees with one compare-exchange
//! (`remote.rs`), which the owner collects when it runs out of blocks. So a goroutine spawned on
//! one worker and finished on another costs no lock, where the C allocator takes the owning
//! arena's lock and makes the two workers contend.
//!
//! Memory goes back. A worker going to sleep trims its heap: it collects remote frees and gives
//! every chunk with no block out back to the kernel, but one per class kept warm. A thread that
//! is not a worker allocates from the shared heap behind a lock, which idle workers trim too.
//! When a worker exits, its chunks that still have blocks out (a finished goroutine whose join
//! handle lives on) move to the shared heap, so nothing dangles and nothing is lost.
//!
//! Layouts larger than 1 KiB or aligned to more than 16 bytes go to the global
//! allocator; the layout alone decides, so `dealloc` needs no tag.

pub(crate) mod remote;

#[cfg(not(goroutines_loom))]
mod chunk;
#[cfg(not(goroutines_loom))]
mod heap;
#[cfg(all(test, not(goroutines_loom)))]
mod tests;

#[cfg(not(goroutines_loom))]
pub(crate) use heap::{Heap, InstalledHeap, alloc, dealloc, trim_shared};
