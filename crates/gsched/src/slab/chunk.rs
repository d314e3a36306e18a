//! Chunks: 64 KiB of blocks of one size, owned by one heap, and where chunks come from.
//!
//! A chunk starts with its header; its blocks follow. Chunks are aligned to their size, so the
//! chunk of any block is its address rounded down. They are carved from large reservations
//! that are never unmapped: a chunk that is no longer needed gives its pages back to the kernel
//! (`MADV_DONTNEED`) and waits in the pool for the next heap that needs one, so the process's
//! mapping count stays a handful whatever the churn.

use std::cell::Cell;
use std::io;
use std::ptr::{self, NonNull};
use std::sync::Mutex;

use super::remote::{FreeBlock, RemoteFrees};
use crate::shim::AtomicUsize;

/// Bytes in a chunk, and its alignment.
pub(crate) const CHUNK_SIZE: usize = 64 * 1024;

/// Bytes at the start of a chunk that its header takes; blocks start after it.
const HEADER_SIZE: usize = 128;

/// Chunks reserved at once from the kernel: one mapping for 16 MiB of blocks.
const CHUNKS_PER_RESERVATION: usize = 256;

/// A chunk's header. The `Cell`s belong to the owning heap alone: its thread, or whoever holds
/// the lock of the heap that owns no thread.
#[repr(C, align(64))]
pub(crate) struct Chunk {
    /// Free blocks the owner can hand out.
    local: Cell<*mut FreeBlock>,
    /// Offset of the first block never handed out.
    bump: Cell<usize>,
    /// Blocks handed out and not yet back on `local`.
    used: Cell<usize>,
    block_size: Cell<usize>,
    /// The heap's size class of the blocks.
    class: Cell<usize>,
    /// Whether the chunk is on its heap's list of chunks with free blocks.
    pub(crate) listed: Cell<bool>,
    /// What other threads touch, on the header's second cache line: their frees must not
    /// steal the line the owner writes at every allocation.
    pub(crate) shared: ChunkShared,
}

#[repr(C, align(64))]
pub(crate) struct ChunkShared {
    /// Blocks other threads freed (see `remote.rs`).
    pub(crate) remote: RemoteFrees,
    /// The id of the owning heap. It changes only while no block is out (a chunk taken from
    /// the pool), or by the owner itself (orphaning at its thread's exit), so a thread reads its
    /// own id here exactly when it owns the chunk.
    pub(crate) owner: AtomicUsize,
}

const _: () = assert!(std::mem::size_of::<Chunk>() <= HEADER_SIZE);

impl Chunk {
    /// The chunk that holds `block`.
    #[inline]
    pub(crate) fn of(block: NonNull<u8>) -> NonNull<Chunk> {
        let address = block.as_ptr().addr() & !(CHUNK_SIZE - 1);
        // SAFETY: a block lies past its chunk's header, so the rounded address is not null.
        unsafe { NonNull::new_unchecked(ptr::with_exposed_provenance_mut(address)) }
    }

    /// Hands out a block, if the chunk has one left without asking other threads.
    #[inline]
    pub(crate) fn pop_local(&self) -> Option<NonNull<u8>> {
        let head = self.local.get();
        if let Some(block) = NonNull::new(head) {
            // SAFETY: blocks on `local` are free and owned by this chunk's owner, the caller;
            // each holds its link.
            self.local.set(unsafe { (*head).next });
            self.used.set(self.used.get() + 1);
            return Some(block.cast());
        }
        let bump = self.bump.get();
        if bump + self.block_size.get() <= CHUNK_SIZE {
            self.bump.set(bump + self.block_size.get());
            self.used.set(self.used.get() + 1);
            let address = (self as *const Chunk).addr() + bump;
            // SAFETY: `bump` is an offset inside this chunk, past its header: not null. The
            // reservation's provenance was exposed when it was mapped.
            return Some(unsafe {
                NonNull::new_unchecked(ptr::with_exposed_provenance_mut(address))
            });
        }
        None
    }

    /// Moves the blocks other threads freed onto `local`; true if there were any.
    pub(crate) fn collect_remote(&self) -> bool {
        let mut block = self.shared.remote.take_all();
        if block.is_null() {
            return false;
        }
        let mut returned = 0;
        while !block.is_null() {
            // SAFETY: taken blocks are free and now the owner's; each holds its link.
            let next = unsafe { (*block).next };
            // SAFETY: as above.
            unsafe { (*block).next = self.local.get() };
            self.local.set(block);
            returned += 1;
            block = next;
        }
        self.used.set(self.used.get() - returned);
        true
    }

    /// Takes back a block the owner freed.
    ///
    /// # Safety
    ///
    /// The caller owns the chunk, and `block` is one of its blocks, handed out and no longer
    /// used by anyone.
    #[inline]
    pub(crate) unsafe fn push_local(&self, block: NonNull<u8>) {
        let block = block.cast::<FreeBlock>().as_ptr();
        // SAFETY: the block is free and at least 16 bytes (the caller's contract).
        unsafe { (*block).next = self.local.get() };
        self.local.set(block);
        self.used.set(self.used.get() - 1);
    }

    pub(crate) fn class(&self) -> usize {
        self.class.get()
    }

    /// Whether every block is back (remote frees not yet collected count as out).
    pub(crate) fn is_unused(&self) -> bool {
        self.used.get() == 0
    }

    /// Whether the owner can hand out a block from here without collecting.
    pub(crate) fn has_local(&self) -> bool {
        !self.local.get().is_null() || self.bump.get() + self.block_size.get() <= CHUNK_SIZE
    }
}

/// Chunks not owned by any heap: the rest of the newest reservation, and chunks given back.
struct ChunkPool {
    /// Never-used chunks of the newest reservation: `next..end`.
    next: usize,
    end: usize,
    /// Chunks given back, their pages returned to the kernel.
    returned: Vec<NonNull<Chunk>>,
}

// SAFETY: the pool holds addresses of chunks no heap owns; whoever takes one owns it.
unsafe impl Send for ChunkPool {}

static POOL: Mutex<ChunkPool> = Mutex::new(ChunkPool {
    next: 0,
    end: 0,
    returned: Vec::new(),
});

fn pool() -> std::sync::MutexGuard<'static, ChunkPool> {
    POOL.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// A chunk for blocks of `block_size` bytes (size class `class`), owned by heap `owner`.
pub(crate) fn take(class: usize, block_size: usize, owner: usize) -> io::Result<NonNull<Chunk>> {
    let chunk = {
        let mut pool = pool();
        match pool.returned.pop() {
            Some(chunk) => chunk,
            None => {
                if pool.next == pool.end {
                    let (start, end) = reserve()?;
                    pool.next = start;
                    pool.end = end;
                }
                let chunk = pool.next;
                pool.next += CHUNK_SIZE;
                // SAFETY: reservations do not start at address zero; their provenance was
                // exposed when they were mapped.
                unsafe { NonNull::new_unchecked(ptr::with_exposed_provenance_mut(chunk)) }
            }
        }
    };
    // SAFETY: the chunk is ours alone now, inside a live read-write reservation, aligned for
    // its header; its memory is either fresh or was given back whole.
    unsafe {
        chunk.as_ptr().write(Chunk {
            local: Cell::new(ptr::null_mut()),
            bump: Cell::new(HEADER_SIZE),
            used: Cell::new(0),
            block_size: Cell::new(block_size),
            class: Cell::new(class),
            listed: Cell::new(false),
            shared: ChunkShared {
                remote: RemoteFrees::new(),
                owner: AtomicUsize::new(owner),
            },
        });
    }
    Ok(chunk)
}

/// Gives an unused chunk back: its pages go back to the kernel and it waits for reuse.
///
/// # Safety
///
/// The caller owns the chunk, every block is back (`is_unused` after collecting), and nothing
/// refers to the chunk afterwards.
pub(crate) unsafe fn give_back(chunk: NonNull<Chunk>) {
    // SAFETY: the whole chunk lies in a live reservation and nothing uses it (the contract);
    // the next owner rewrites its header.
    unsafe {
        libc::madvise(chunk.as_ptr().cast(), CHUNK_SIZE, libc::MADV_DONTNEED);
    }
    pool().returned.push(chunk);
}

/// Maps a new reservation aligned to the chunk size; returns its usable range.
fn reserve() -> io::Result<(usize, usize)> {
    let len = CHUNKS_PER_RESERVATION * CHUNK_SIZE;
    // One chunk more, so that an aligned range of `len` bytes lies inside.
    let mapped_len = len + CHUNK_SIZE;
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches no
    // existing memory.
    let mapping = unsafe {
        libc::mmap(
            ptr::null_mut(),
            mapped_len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if mapping == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let mapped = mapping.expose_provenance();
    let start = mapped.next_multiple_of(CHUNK_SIZE);
    let end = start + len;
    // SAFETY: both ranges lie inside the mapping just made, outside the aligned range, and
    // nothing uses them.
    unsafe {
        if start > mapped {
            libc::munmap(mapping, start - mapped);
        }
        if mapped + mapped_len > end {
            libc::munmap(
                ptr::with_exposed_provenance_mut(end),
                mapped + mapped_len - end,
            );
        }
    }
    Ok((start, end))
}
