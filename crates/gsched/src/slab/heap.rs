//! A worker's heap of chunks, the shared heap, and `alloc`/`dealloc` that pick between them.

use std::alloc::Layout;
use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::chunk::{self, Chunk};

/// The alignment every block has; layouts aligned to more go to the global allocator.
const BLOCK_ALIGN: usize = 16;

/// The largest block; larger layouts go to the global allocator.
pub(super) const MAX_BLOCK: usize = 1024;

/// Size classes: 16-byte steps to 256 bytes, 32-byte steps to 512, 64-byte steps to 1 KiB, so
/// that no block wastes more than an eighth of itself past 128 bytes.
const CLASSES: usize = 32;

/// Chunks with no block out that a heap keeps per class when it trims.
const WARM_CHUNKS: usize = 1;

/// The id of the shared heap; worker heaps count up from the next one.
const SHARED_HEAP: usize = 1;

static NEXT_HEAP_ID: AtomicUsize = AtomicUsize::new(SHARED_HEAP + 1);

thread_local! {
    /// The heap of the worker running on this thread (null on other threads). No destructor, so
    /// it can be read while the thread's other locals are destroyed.
    static CURRENT: Cell<*const Heap> = const { Cell::new(std::ptr::null()) };
}

/// The current thread's heap (null on threads that are not workers). Never inlined: a
/// migratable goroutine may move to another thread across a call that suspends it, and a
/// thread-local's address computed before the suspension must not be reused after it.
#[inline(never)]
fn current_heap() -> *const Heap {
    CURRENT.with(Cell::get)
}

/// The class of `layout`, if a block serves it.
#[inline]
pub(super) fn class_of(layout: Layout) -> Option<usize> {
    let size = layout.size();
    if size == 0 || size > MAX_BLOCK || layout.align() > BLOCK_ALIGN {
        return None;
    }
    Some(if size <= 256 {
        (size - 1) / 16
    } else if size <= 512 {
        16 + (size - 257) / 32
    } else {
        24 + (size - 513) / 64
    })
}

pub(super) fn block_size(class: usize) -> usize {
    if class < 16 {
        (class + 1) * 16
    } else if class < 24 {
        256 + (class - 15) * 32
    } else {
        512 + (class - 23) * 64
    }
}

/// Memory for `layout`: a block from this worker's heap, the shared heap, or the global
/// allocator. Ends the process as the global allocator does when memory runs out.
#[inline]
pub(crate) fn alloc(layout: Layout) -> NonNull<u8> {
    let Some(class) = class_of(layout) else {
        return global_alloc(layout);
    };
    let heap = current_heap();
    let block = if heap.is_null() {
        shared().alloc(class)
    } else {
        // SAFETY: the pointer is set by `Heap::install` for as long as the heap lives, on its
        // own thread.
        unsafe { &*heap }.alloc(class)
    };
    block.unwrap_or_else(|| std::alloc::handle_alloc_error(layout))
}

/// Frees memory from [`alloc`], on any thread.
///
/// # Safety
///
/// `block` came from `alloc(layout)` with this `layout`, and nothing uses it any more.
#[inline]
pub(crate) unsafe fn dealloc(block: NonNull<u8>, layout: Layout) {
    if class_of(layout).is_none() {
        if layout.size() != 0 {
            // SAFETY: such layouts came from the global allocator (the caller's contract).
            unsafe { std::alloc::dealloc(block.as_ptr(), layout) };
        }
        return;
    }
    // SAFETY: the block lies in a chunk, which stays mapped and owned while a block is out.
    let chunk = unsafe { Chunk::of(block).as_ref() };
    let heap = current_heap();
    // SAFETY: as in `alloc`.
    if !heap.is_null() && unsafe { &*heap }.id == chunk.shared.owner.load(Ordering::Relaxed) {
        // SAFETY: this thread owns the chunk, and the block is free (the contract).
        unsafe { chunk.push_local(block) };
        // SAFETY: as above.
        unsafe { &*heap }.note_free(chunk);
    } else {
        // SAFETY: the block is free, at least 16 bytes and 16-aligned (the contract).
        unsafe { chunk.shared.remote.push(block.cast().as_ptr()) };
    }
}

fn global_alloc(layout: Layout) -> NonNull<u8> {
    if layout.size() == 0 {
        // SAFETY: a zero-sized layout needs only an aligned, non-null address.
        return unsafe { NonNull::new_unchecked(std::ptr::without_provenance_mut(layout.align())) };
    }
    // SAFETY: the size is not zero.
    let block = unsafe { std::alloc::alloc(layout) };
    NonNull::new(block).unwrap_or_else(|| std::alloc::handle_alloc_error(layout))
}

static SHARED: Mutex<Heap> = Mutex::new(Heap::with_id(SHARED_HEAP));

/// The heap of threads that are not workers.
fn shared() -> MutexGuard<'static, Heap> {
    SHARED.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// Trims the shared heap, unless another thread holds it now.
pub(crate) fn trim_shared() -> bool {
    match SHARED.try_lock() {
        Ok(heap) => heap.trim(),
        Err(std::sync::TryLockError::Poisoned(poison)) => poison.into_inner().trim(),
        Err(std::sync::TryLockError::WouldBlock) => false,
    }
}

/// One class's chunks in a heap.
struct ClassChunks {
    /// The chunk blocks come from now.
    current: Cell<Option<NonNull<Chunk>>>,
    /// Chunks other than `current` with blocks on their local list (`Chunk::listed`).
    with_free: RefCell<Vec<NonNull<Chunk>>>,
    /// Every chunk the heap owns in this class.
    owned: RefCell<Vec<NonNull<Chunk>>>,
    /// Chunks taken since the last sweep, which decides when the next one is due.
    taken_since_sweep: Cell<usize>,
}

/// A worker's blocks (see the module docs). Used by its own thread only, or under the lock of
/// the shared heap.
pub(crate) struct Heap {
    id: usize,
    classes: [ClassChunks; CLASSES],
}

// SAFETY: a heap and its chunks are used by one thread at a time: its worker, or whoever holds
// the shared heap's lock; chunks are reachable from other threads only through their atomic
// `remote` list and `owner`.
unsafe impl Send for Heap {}

impl Heap {
    const fn with_id(id: usize) -> Self {
        Heap {
            id,
            classes: [const {
                ClassChunks {
                    current: Cell::new(None),
                    with_free: RefCell::new(Vec::new()),
                    owned: RefCell::new(Vec::new()),
                    taken_since_sweep: Cell::new(0),
                }
            }; CLASSES],
        }
    }

    /// A heap for a worker; it serves the thread once installed.
    pub(crate) fn new() -> Self {
        Heap::with_id(NEXT_HEAP_ID.fetch_add(1, Ordering::Relaxed))
    }

    /// Makes this heap serve the calling thread's allocations until the guard drops, which
    /// retires the heap: its chunks in use go to the shared heap.
    pub(crate) fn install(self: Box<Self>) -> InstalledHeap {
        let heap = Box::into_raw(self);
        CURRENT.with(|current| current.set(heap));
        InstalledHeap { heap }
    }

    fn alloc(&self, class: usize) -> Option<NonNull<u8>> {
        let chunks = &self.classes[class];
        loop {
            if let Some(current) = chunks.current.get() {
                // SAFETY: the heap's chunks stay mapped while it owns them.
                let current = unsafe { current.as_ref() };
                if let Some(block) = current.pop_local() {
                    return Some(block);
                }
                if current.collect_remote() {
                    continue;
                }
            }
            if let Some(next) = chunks.with_free.borrow_mut().pop() {
                // SAFETY: as above.
                unsafe { next.as_ref() }.listed.set(false);
                chunks.current.set(Some(next));
                continue;
            }
            // Before taking another chunk, now and then look for blocks freed elsewhere, so that
            // goroutines finished on other workers do not grow the heap without bound. Sweeping
            // after every eighth growth keeps the cost a few chunk visits per chunk taken.
            if chunks.taken_since_sweep.get() > chunks.owned.borrow().len() / 8 {
                chunks.taken_since_sweep.set(0);
                self.sweep(class, false);
                if !chunks.with_free.borrow().is_empty() {
                    continue;
                }
            }
            let chunk = chunk::take(class, block_size(class), self.id).ok()?;
            chunks.owned.borrow_mut().push(chunk);
            chunks.current.set(Some(chunk));
            chunks
                .taken_since_sweep
                .set(chunks.taken_since_sweep.get() + 1);
        }
    }

    /// After a local free into `chunk`: lists it, so its blocks are found again.
    fn note_free(&self, chunk: &Chunk) {
        if chunk.listed.get() {
            return;
        }
        let chunks = &self.classes[chunk.class()];
        if chunks.current.get() == Some(NonNull::from(chunk)) {
            return;
        }
        chunk.listed.set(true);
        chunks.with_free.borrow_mut().push(NonNull::from(chunk));
    }

    /// Collects every chunk's remote frees and rebuilds the list of chunks with free blocks;
    /// with `give_back`, also returns chunks with no block out to the kernel, but
    /// `WARM_CHUNKS`. True if it collected or gave back anything.
    fn sweep(&self, class: usize, give_back: bool) -> bool {
        let chunks = &self.classes[class];
        let current = chunks.current.get();
        let mut with_free = chunks.with_free.borrow_mut();
        for chunk in with_free.drain(..) {
            // SAFETY: listed chunks are owned by this heap.
            unsafe { chunk.as_ref() }.listed.set(false);
        }
        let mut warm = 0;
        let mut changed = false;
        chunks.owned.borrow_mut().retain(|&chunk| {
            // SAFETY: owned chunks stay mapped while owned.
            let header = unsafe { chunk.as_ref() };
            changed |= header.collect_remote();
            if Some(chunk) == current {
                return true;
            }
            if give_back && header.is_unused() {
                warm += 1;
                if warm > WARM_CHUNKS {
                    // SAFETY: this heap owns the chunk, every block is back, and it leaves
                    // every list here.
                    unsafe { chunk::give_back(chunk) };
                    changed = true;
                    return false;
                }
            }
            if header.has_local() {
                header.listed.set(true);
                with_free.push(chunk);
            }
            true
        });
        changed
    }

    /// Collects remote frees and gives unused chunks back; true if that changed anything.
    pub(crate) fn trim(&self) -> bool {
        let mut changed = false;
        for class in 0..CLASSES {
            changed |= self.sweep(class, true);
        }
        changed
    }

    /// Hands every chunk still in use to the shared heap, after giving back the rest.
    fn retire(&self) {
        self.trim();
        let shared = shared();
        for (class, chunks) in self.classes.iter().enumerate() {
            let into = &shared.classes[class];
            chunks.current.set(None);
            chunks.with_free.borrow_mut().clear();
            for chunk in chunks.owned.borrow_mut().drain(..) {
                // SAFETY: this heap owns the chunk until the store below hands it over; the
                // shared heap's lock, held here, orders the chunk's plain fields for its next
                // user.
                let header = unsafe { chunk.as_ref() };
                header.shared.owner.store(SHARED_HEAP, Ordering::Relaxed);
                header.listed.set(header.has_local());
                if header.has_local() {
                    into.with_free.borrow_mut().push(chunk);
                }
                into.owned.borrow_mut().push(chunk);
            }
        }
    }
}

/// A worker's heap, serving its thread (see [`Heap::install`]).
pub(crate) struct InstalledHeap {
    heap: *const Heap,
}

impl InstalledHeap {
    pub(crate) fn heap(&self) -> &Heap {
        // SAFETY: the heap lives until this guard drops.
        unsafe { &*self.heap }
    }
}

impl Drop for InstalledHeap {
    fn drop(&mut self) {
        CURRENT.with(|current| current.set(std::ptr::null()));
        // SAFETY: `install` leaked the box; no thread reaches the heap any more: `CURRENT` is
        // cleared, and chunks find their owner by id.
        let heap = unsafe { Box::from_raw(self.heap.cast_mut()) };
        heap.retire();
    }
}
