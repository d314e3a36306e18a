//! Reuse of guarded stacks: a per-thread cache in front of a bounded global queue.
//!
//! Getting a stack pops the thread's cache, then the global queue, and maps a new stack only
//! when both are empty. Returning one pushes it on the thread's cache; when the cache is full
//! the stack goes to the global queue, and first gives back to the kernel (`madvise`) every page
//! below its warm top, so a burst of deep goroutines does not pin memory after it ends. When the
//! global queue is full too, the stack is unmapped.
//!
//! Memory held by idle stacks is therefore bounded: at most `thread_cache` stacks per thread
//! keep whatever pages they touched, and at most `global_capacity` stacks keep `warm_bytes`
//! each.

use std::cell::RefCell;
use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_queue::ArrayQueue;
use ctxswitch::{Stack, page_size};

use crate::budget::StackError;
use crate::guarded::GuardedStack;

/// Stacks each thread keeps for reuse, per pool, by default.
pub const DEFAULT_THREAD_CACHE: usize = 16;
/// Stacks the global queue keeps for reuse, per pool, by default.
pub const DEFAULT_GLOBAL_CAPACITY: usize = 1024;
/// Bytes at the top of a stack kept committed when it moves to the global queue, by default.
pub const DEFAULT_WARM_BYTES: usize = 16 * 1024;

static NEXT_POOL_ID: AtomicUsize = AtomicUsize::new(1);

struct PoolInner {
    id: usize,
    stack_size: usize,
    thread_cache: usize,
    warm_bytes: usize,
    global: ArrayQueue<GuardedStack>,
}

/// A pool of guarded stacks of one size. Cloning it gives another handle to the same pool.
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
#[derive(Clone)]
pub struct StackPool {
    inner: Arc<PoolInner>,
}

struct ThreadCache {
    pool_id: usize,
    stacks: Vec<GuardedStack>,
}

thread_local! {
    static THREAD_CACHES: RefCell<Vec<ThreadCache>> = const { RefCell::new(Vec::new()) };
}

impl StackPool {
    /// A pool of stacks of `stack_size` usable bytes with the default cache sizes.
    pub fn new(stack_size: usize) -> Self {
        Self::with_limits(
            stack_size,
            DEFAULT_THREAD_CACHE,
            DEFAULT_GLOBAL_CAPACITY,
            DEFAULT_WARM_BYTES,
        )
    }

    /// A pool with explicit bounds: stacks kept per thread, stacks kept in the global queue
    /// (at least 1), and bytes kept committed at the top of a stack in the global queue.
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
                global: ArrayQueue::new(global_capacity.max(1)),
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

    /// The usable size of this pool's stacks, as requested.
    pub fn stack_size(&self) -> usize {
        self.inner.stack_size
    }

    /// A stack from the pool, or a new one when the pool is empty. It returns to the pool when
    /// dropped.
    ///
    /// # Errors
    ///
    /// As [`GuardedStack::new`] when a new stack is needed.
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
        let stack = match cached.or_else(|| self.inner.global.pop()) {
            Some(stack) => stack,
            None => GuardedStack::new(self.inner.stack_size)?,
        };
        Ok(PooledStack {
            stack: ManuallyDrop::new(stack),
            pool: Arc::clone(&self.inner),
        })
    }

    /// Moves this thread's cached stacks of this pool to the global queue, giving back their
    /// cold pages, or unmaps them when it is full.
    pub fn release_thread_cache(&self) {
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
        for stack in stacks {
            self.inner.put_global(stack);
        }
    }

    /// Stacks waiting in the global queue.
    pub fn global_len(&self) -> usize {
        self.inner.global.len()
    }
}

impl PoolInner {
    fn put(&self, stack: GuardedStack) {
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
            // During thread exit the cache is gone, and the stack (moved into the closure) is
            // unmapped with it.
            .unwrap_or(None);
        if let Some(stack) = overflow {
            self.put_global(stack);
        }
    }

    fn put_global(&self, stack: GuardedStack) {
        release_cold_pages(&stack, self.warm_bytes);
        // A full queue hands the stack back, and dropping it unmaps it.
        let _ = self.global.push(stack);
    }
}

/// Gives back to the kernel every page of `stack` below its top `warm_bytes`.
fn release_cold_pages(stack: &GuardedStack, warm_bytes: usize) {
    let page = page_size();
    let warm_start = stack
        .base()
        .saturating_sub(warm_bytes.next_multiple_of(page));
    if warm_start > stack.limit() {
        // SAFETY: `limit..warm_start` lies inside the stack's own mapping, and no code runs on a
        // stack while it is being returned to the pool.
        unsafe {
            libc::madvise(
                stack.limit() as *mut libc::c_void,
                warm_start - stack.limit(),
                libc::MADV_DONTNEED,
            );
        }
    }
}

impl fmt::Debug for StackPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackPool")
            .field("stack_size", &self.inner.stack_size)
            .field("global_len", &self.inner.global.len())
            .finish_non_exhaustive()
    }
}

/// A stack on loan from a [`StackPool`]; dropping it gives it back.
pub struct PooledStack {
    stack: ManuallyDrop<GuardedStack>,
    pool: Arc<PoolInner>,
}

impl Deref for PooledStack {
    type Target = GuardedStack;

    fn deref(&self) -> &GuardedStack {
        &self.stack
    }
}

// SAFETY: forwards to the guarded stack, which this value owns alone while on loan.
unsafe impl Stack for PooledStack {
    fn base(&self) -> usize {
        self.stack.base()
    }

    fn limit(&self) -> usize {
        self.stack.limit()
    }
}

impl Drop for PooledStack {
    fn drop(&mut self) {
        // SAFETY: taken once, here, and never used again.
        let stack = unsafe { ManuallyDrop::take(&mut self.stack) };
        stack.clear_label();
        self.pool.put(stack);
    }
}

impl fmt::Debug for PooledStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.stack.fmt(f)
    }
}
