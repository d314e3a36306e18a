//! Reuse of guarded stacks: a per-thread cache in front of a bounded global queue, in front of
//! the backend.
//!
//! Getting a stack pops the thread's cache, then the global queue, and only when both are empty
//! asks the backend for a new one: a cold guard-region slot or a newly carved one (see
//! `slot.rs`), or, on a kernel without guard regions, a new [`GuardedStack`]. Returning one
//! pushes it on the thread's cache; when the cache is full the stack goes to the global queue,
//! and first gives back to the kernel every page below its warm top, so a burst of deep
//! goroutines does not pin memory after it ends. When the global queue is full too, the stack
//! goes back to the backend: a slot has all its pages released (its guard stays), in a batch
//! with others (see `slot.rs`), and waits on its class's cold list; a `GuardedStack` is
//! unmapped.
//!
//! The warm cache is therefore bounded: at most `thread_cache` stacks per thread keep whatever
//! pages they touched, and at most `global_capacity` stacks keep `warm_bytes` each. Everything
//! else a burst touched is freed as its stacks come back, but for the last, partial release
//! batch of each stack size, which `gstack::release_pending` frees.
//!
//! Pages are released with `MADV_DONTNEED`, not `MADV_FREE`: see the crate docs, "Memory after a
//! burst".

use std::cell::RefCell;
use std::fmt;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crossbeam_queue::ArrayQueue;
use ctxswitch::{Stack, page_size};

use crate::budget::StackError;
use crate::guarded::GuardedStack;
use crate::region::{self, StackBackend};
use crate::slot::{self, SlotClass, SlotStack, TakeError};

/// Stacks each thread keeps for reuse, per pool, by default, whole (with every page they
/// touched).
pub const DEFAULT_THREAD_CACHE: usize = 16;
/// Stacks the global queue keeps for reuse, per pool, by default, each with its top
/// [`DEFAULT_WARM_BYTES`] committed: 4 MiB at most.
pub const DEFAULT_GLOBAL_CAPACITY: usize = 256;
/// Bytes at the top of a stack kept committed when it moves to the global queue, by default.
pub const DEFAULT_WARM_BYTES: usize = 16 * 1024;

static NEXT_POOL_ID: AtomicUsize = AtomicUsize::new(1);

/// A stack a pool holds: a guard-region slot, or a stack with a mapping of its own.
enum Backing {
    Slot(SlotStack),
    Mapped(GuardedStack),
}

impl Backing {
    fn stack(&self) -> &dyn Stack {
        match self {
            Backing::Slot(stack) => stack,
            Backing::Mapped(stack) => stack,
        }
    }
}

struct PoolInner {
    id: usize,
    stack_size: usize,
    thread_cache: usize,
    warm_bytes: usize,
    global: Option<ArrayQueue<Backing>>,
    /// The slot class of this pool's size, found on first use.
    class: OnceLock<&'static SlotClass>,
}

/// A pool of guarded stacks of one size. Cloning it gives another handle to the same pool.
///
/// New stacks come from guard regions where the kernel has them (see [`stack_backend`]), and
/// from a mapping per stack elsewhere; the pool behaves the same either way.
///
/// ```
/// use ctxswitch::Stack;
/// use gstack::StackPool;
///
/// let pool = StackPool::new(64 * 1024);
/// let stack = pool.get()?;
/// let base = stack.base();
/// drop(stack); // back to the pool
/// assert_eq!(pool.get()?.base(), base);
/// # Ok::<(), gstack::StackError>(())
/// ```
///
/// [`stack_backend`]: crate::stack_backend
#[derive(Clone)]
pub struct StackPool {
    inner: Arc<PoolInner>,
}

/// Settings of a [`StackPool`], checked by [`build`](Self::build).
///
/// ```
/// let pool = gstack::StackPool::builder(64 * 1024)
///     .thread_cache(4)
///     .global_capacity(64)
///     .warm_bytes(8 * 1024)
///     .build()?;
/// assert_eq!(pool.global_capacity(), 64);
/// assert!(gstack::StackPool::builder(1000).build().is_err());
/// # Ok::<(), gstack::StackError>(())
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `build`"]
pub struct StackPoolBuilder {
    stack_size: usize,
    thread_cache: usize,
    global_capacity: usize,
    warm_bytes: usize,
}

impl StackPoolBuilder {
    /// Stacks each thread keeps whole for reuse ([`DEFAULT_THREAD_CACHE`] unless set; at most
    /// [`MAX_CACHED_STACKS`]).
    pub fn thread_cache(mut self, stacks: usize) -> Self {
        self.thread_cache = stacks;
        self
    }

    /// Stacks the global queue keeps for reuse, each with its top `warm_bytes` committed
    /// ([`DEFAULT_GLOBAL_CAPACITY`] unless set; 0 for none; at most [`MAX_CACHED_STACKS`]).
    pub fn global_capacity(mut self, stacks: usize) -> Self {
        self.global_capacity = stacks;
        self
    }

    /// Bytes at the top of a stack kept committed in the global queue, rounded up to whole
    /// pages ([`DEFAULT_WARM_BYTES`] unless set).
    pub fn warm_bytes(mut self, bytes: usize) -> Self {
        self.warm_bytes = bytes;
        self
    }

    /// The pool.
    ///
    /// # Errors
    ///
    /// [`StackError::InvalidSize`] when the stack size is outside what
    /// [`check_stack_size`](crate::check_stack_size) accepts, and [`StackError::CacheSize`]
    /// when a cache bound is above [`MAX_CACHED_STACKS`] (the queues are allocated up front).
    pub fn build(self) -> Result<StackPool, StackError> {
        slot::check_stack_size(self.stack_size)?;
        for requested in [self.thread_cache, self.global_capacity] {
            if requested > MAX_CACHED_STACKS {
                return Err(StackError::CacheSize {
                    requested,
                    max: MAX_CACHED_STACKS,
                });
            }
        }
        Ok(StackPool::with_limits(
            self.stack_size,
            self.thread_cache,
            self.global_capacity,
            self.warm_bytes,
        ))
    }
}

/// The most stacks a pool's thread cache or global queue may keep.
pub const MAX_CACHED_STACKS: usize = 1 << 20;

struct ThreadCache {
    pool_id: usize,
    stacks: Vec<Backing>,
}

thread_local! {
    static THREAD_CACHES: RefCell<Vec<ThreadCache>> = const { RefCell::new(Vec::new()) };
}

impl StackPool {
    /// A pool of stacks of `stack_size` usable bytes with the default cache sizes.
    ///
    /// The size is checked when a stack is first needed: [`get`](Self::get) fails with
    /// [`StackError::InvalidSize`] for a size [`check_stack_size`](crate::check_stack_size)
    /// refuses. [`StackPool::builder`] checks it up front.
    pub fn new(stack_size: usize) -> Self {
        Self::with_limits(
            stack_size,
            DEFAULT_THREAD_CACHE,
            DEFAULT_GLOBAL_CAPACITY,
            DEFAULT_WARM_BYTES,
        )
    }

    /// Settings for a pool of stacks of `stack_size` usable bytes, starting from the defaults.
    pub fn builder(stack_size: usize) -> StackPoolBuilder {
        StackPoolBuilder {
            stack_size,
            thread_cache: DEFAULT_THREAD_CACHE,
            global_capacity: DEFAULT_GLOBAL_CAPACITY,
            warm_bytes: DEFAULT_WARM_BYTES,
        }
    }

    /// A pool with explicit bounds: stacks kept per thread, stacks kept in the global queue
    /// (0 for none), and bytes kept committed at the top of a stack in the global queue. The
    /// size is checked as by [`new`](Self::new).
    pub fn with_limits(
        stack_size: usize,
        thread_cache: usize,
        global_capacity: usize,
        warm_bytes: usize,
    ) -> Self {
        StackPool {
            inner: Arc::new(PoolInner {
                id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
                stack_size,
                thread_cache,
                warm_bytes,
                global: (global_capacity > 0).then(|| ArrayQueue::new(global_capacity)),
                class: OnceLock::new(),
            }),
        }
    }

    /// The process-wide pool of stacks of `stack_size` usable bytes (default cache sizes),
    /// made on first use: every caller that asks for the same size shares it, so stacks of one
    /// size are reused across runtimes and segment growth.
    pub fn shared(stack_size: usize) -> StackPool {
        static POOLS: Mutex<Vec<StackPool>> = Mutex::new(Vec::new());
        let mut pools = POOLS.lock().unwrap_or_else(|poison| poison.into_inner());
        match pools.iter().find(|pool| pool.stack_size() == stack_size) {
            Some(pool) => pool.clone(),
            None => {
                let pool = StackPool::new(stack_size);
                pools.push(pool.clone());
                pool
            }
        }
    }

    /// The usable size of this pool's stacks, as requested. Stacks are at least this large:
    /// the size rounded up to whole pages (guard-region stacks have most of a page more).
    pub fn stack_size(&self) -> usize {
        self.inner.stack_size
    }

    /// Stacks each thread keeps whole for reuse.
    pub fn thread_cache(&self) -> usize {
        self.inner.thread_cache
    }

    /// Stacks the global queue keeps for reuse.
    pub fn global_capacity(&self) -> usize {
        self.inner.global.as_ref().map_or(0, ArrayQueue::capacity)
    }

    /// Bytes at the top of a stack kept committed in the global queue.
    pub fn warm_bytes(&self) -> usize {
        self.inner.warm_bytes
    }

    /// A stack from the pool, or a new one when the pool is empty. It returns to the pool when
    /// dropped.
    ///
    /// # Errors
    ///
    /// When a new stack is needed: [`StackError::InvalidSize`] for a size out of range,
    /// [`StackError::MapLimit`] when the stack budget is spent (see
    /// [`stack_limit`](crate::stack_limit)), [`StackError::Os`] when the kernel refuses memory.
    pub fn get(&self) -> Result<PooledStack, StackError> {
        let cached = THREAD_CACHES
            .try_with(|caches| {
                let mut caches = caches.borrow_mut();
                caches
                    .iter_mut()
                    .find(|cache| cache.pool_id == self.inner.id)
                    .and_then(|cache| cache.stacks.pop())
            })
            .ok()
            .flatten();
        let stack = match cached.or_else(|| self.inner.global.as_ref()?.pop()) {
            Some(stack) => stack,
            None => self.inner.new_stack()?,
        };
        Ok(PooledStack {
            stack: ManuallyDrop::new(stack),
            pool: Arc::clone(&self.inner),
        })
    }

    /// Moves this thread's cached stacks of this pool to the global queue, giving back their
    /// cold pages, or back to the backend when it is full; returns how many it moved. Other
    /// threads can then have them: a thread's cache is its own.
    pub fn release_thread_cache(&self) -> usize {
        let stacks = THREAD_CACHES
            .try_with(|caches| {
                let mut caches = caches.borrow_mut();
                caches
                    .iter_mut()
                    .find(|cache| cache.pool_id == self.inner.id)
                    .map(|cache| std::mem::take(&mut cache.stacks))
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        let moved = stacks.len();
        for stack in stacks {
            self.inner.put_global(stack);
        }
        moved
    }

    /// Stacks waiting in the global queue.
    pub fn global_len(&self) -> usize {
        self.inner.global.as_ref().map_or(0, ArrayQueue::len)
    }
}

impl PoolInner {
    #[cold]
    fn new_stack(&self) -> Result<Backing, StackError> {
        let size = slot::check_stack_size(self.stack_size)?;
        if region::supported() {
            let class = *self.class.get_or_init(|| slot::class(size));
            match class.take() {
                Ok(stack) => return Ok(Backing::Slot(stack)),
                Err(TakeError::Stack(err)) => return Err(err),
                Err(TakeError::Unavailable) => {}
            }
        }
        GuardedStack::with_top_page(size, true).map(Backing::Mapped)
    }

    fn put(&self, stack: Backing) {
        let overflow = THREAD_CACHES
            .try_with(|caches| {
                let mut caches = caches.borrow_mut();
                let index = match caches.iter().position(|cache| cache.pool_id == self.id) {
                    Some(index) => index,
                    None => {
                        caches.push(ThreadCache {
                            pool_id: self.id,
                            stacks: Vec::with_capacity(self.thread_cache),
                        });
                        caches.len() - 1
                    }
                };
                let cache = &mut caches[index].stacks;
                if cache.len() < self.thread_cache {
                    cache.push(stack);
                    None
                } else {
                    Some(stack)
                }
            })
            // During thread exit the cache is gone, and the stack (moved into the closure) went
            // back to the backend with it.
            .unwrap_or(None);
        if let Some(stack) = overflow {
            self.put_global(stack);
        }
    }

    fn put_global(&self, stack: Backing) {
        let Some(global) = self.global.as_ref().filter(|global| !global.is_full()) else {
            // Back to the backend (dropping it releases or unmaps it), without first releasing
            // the cold pages one call earlier.
            return;
        };
        release_cold_pages(stack.stack(), self.warm_bytes);
        // A queue that filled up meanwhile hands the stack back, and dropping it returns it to
        // the backend.
        let _ = global.push(stack);
    }
}

/// Gives back to the kernel every page of `stack` below its top `warm_bytes`.
fn release_cold_pages(stack: &dyn Stack, warm_bytes: usize) {
    let page = page_size();
    // Rounded down to a page: a guard-region stack's base sits 64 bytes below a page boundary.
    let warm_start = stack.base().saturating_sub(warm_bytes);
    let warm_start = warm_start - warm_start % page;
    if warm_start > stack.limit() {
        // SAFETY: `limit..warm_start` is page aligned and lies inside the stack's own private
        // anonymous memory, and no code runs on a stack while it is being returned to the pool.
        unsafe { crate::sys::release_pages(stack.limit(), warm_start - stack.limit()) };
    }
}

impl fmt::Debug for StackPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackPool")
            .field("stack_size", &self.inner.stack_size)
            .field("global_len", &self.global_len())
            .finish_non_exhaustive()
    }
}

/// A stack on loan from a [`StackPool`]; dropping it gives it back.
pub struct PooledStack {
    stack: ManuallyDrop<Backing>,
    pool: Arc<PoolInner>,
}

impl PooledStack {
    /// Names what runs on this stack, for the overflow report: `goroutine <id> ("<name>")`, or
    /// just the name when `id` is 0. Names longer than 48 bytes are cut.
    pub fn set_label(&self, id: u64, name: &str) {
        match &*self.stack {
            Backing::Slot(stack) => stack.label().set(id, name),
            Backing::Mapped(stack) => stack.set_label(id, name),
        }
    }

    /// Forgets the label, as returning the stack to its pool does.
    pub fn clear_label(&self) {
        match &*self.stack {
            Backing::Slot(stack) => stack.label().clear(),
            Backing::Mapped(stack) => stack.clear_label(),
        }
    }

    /// The guard page's address range: a fault in it is an overflow of this stack.
    pub fn guard_range(&self) -> std::ops::Range<usize> {
        match &*self.stack {
            Backing::Slot(stack) => stack.guard_range(),
            Backing::Mapped(stack) => stack.guard_range(),
        }
    }

    /// Where this stack came from.
    pub fn backend(&self) -> StackBackend {
        match &*self.stack {
            Backing::Slot(_) => StackBackend::GuardRegions,
            Backing::Mapped(_) => StackBackend::MappingPerStack,
        }
    }
}

// SAFETY: forwards to the slot or guarded stack, which this value owns alone while on loan.
unsafe impl Stack for PooledStack {
    #[inline]
    fn base(&self) -> usize {
        self.stack.stack().base()
    }

    #[inline]
    fn limit(&self) -> usize {
        self.stack.stack().limit()
    }
}

impl Drop for PooledStack {
    fn drop(&mut self) {
        self.clear_label();
        // SAFETY: taken once, here, and never used again.
        let stack = unsafe { ManuallyDrop::take(&mut self.stack) };
        self.pool.put(stack);
    }
}

impl fmt::Debug for PooledStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.stack {
            Backing::Slot(stack) => stack.fmt(f),
            Backing::Mapped(stack) => stack.fmt(f),
        }
    }
}
