//! The stack contract and a simple guarded stack.

use std::fmt;
use std::io;
use std::ptr;

/// The smallest stack a coroutine or [`on_stack`](crate::on_stack) accepts, in bytes.
///
/// Catching a panic at a coroutine's entry and unwinding through it runs the system unwinder,
/// which needs a few KiB of its own; 16 KiB leaves room for that plus a small body. Stacks are
/// reserved, not committed, so a larger reservation costs address space only.
pub const MIN_STACK_SIZE: usize = 16 * 1024;

/// The size [`DefaultStack::with_default_size`] reserves: 1 MiB, committed page by page as it is
/// touched.
pub const DEFAULT_STACK_SIZE: usize = 1024 * 1024;

/// Memory a coroutine runs on.
///
/// # Safety
///
/// An implementation promises, for as long as the value exists:
///
/// - `limit() < base()`, both are 16-byte aligned, and every byte in `limit()..base()` is
///   readable and writable memory that nothing else reads or writes while a coroutine or
///   [`on_stack`](crate::on_stack) uses it. Cloning or copying a stack value must not share that
///   memory.
/// - Both addresses stay the same when the value is moved: the memory lives outside the value.
/// - Running past `limit()` faults (a guard page below it) rather than writing into other
///   memory, or the implementation documents an `unsafe` constructor that moves this duty to its
///   caller (a stack without a guard turns an overflow into memory corruption).
pub unsafe trait Stack {
    /// The highest address of the stack: the first push writes just below it.
    fn base(&self) -> usize;

    /// The lowest usable address of the stack.
    fn limit(&self) -> usize;

    /// `base() - limit()`: the usable size in bytes.
    fn size(&self) -> usize {
        self.base() - self.limit()
    }
}

/// A stack of its own anonymous mapping with an inaccessible guard page below it, freed on drop.
///
/// Pages are committed by the kernel only when first touched, so a large reservation costs
/// address space, not memory. This is the simple stack for standalone use; `gstack` brings pooled
/// stacks with overflow reports.
///
/// ```
/// use ctxswitch::{DefaultStack, Stack};
///
/// let stack = DefaultStack::new(64 * 1024)?;
/// assert!(stack.size() >= 64 * 1024);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct DefaultStack {
    /// Start of the mapping (the guard page).
    mapping: *mut u8,
    /// Length of the whole mapping, guard page included.
    len: usize,
}

// SAFETY: the mapping is owned memory with no thread affinity; moving the owner between threads
// is as safe as moving a `Vec<u8>`.
unsafe impl Send for DefaultStack {}
// SAFETY: `&DefaultStack` only reads the two addresses.
unsafe impl Sync for DefaultStack {}

impl DefaultStack {
    /// Reserves a stack of at least `size` usable bytes (rounded up to whole pages), plus one
    /// guard page.
    ///
    /// # Errors
    ///
    /// The error of `mmap` or `mprotect`, for example when the process has reached
    /// `vm.max_map_count` mappings; nothing is leaked then.
    pub fn new(size: usize) -> io::Result<Self> {
        let page = page_size();
        let usable = size.max(page).div_ceil(page) * page;
        let len = usable
            .checked_add(page)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "stack size overflows"))?;
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches no
        // existing memory.
        let mapping = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if mapping == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // Built before `mprotect`, so that a failure below still unmaps.
        let stack = DefaultStack {
            mapping: mapping.cast(),
            len,
        };
        // SAFETY: the first page lies inside the mapping just created and owned by `stack`.
        if unsafe { libc::mprotect(mapping, page, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// Reserves a stack of [`DEFAULT_STACK_SIZE`] bytes.
    ///
    /// # Errors
    ///
    /// As [`DefaultStack::new`].
    pub fn with_default_size() -> io::Result<Self> {
        Self::new(DEFAULT_STACK_SIZE)
    }
}

impl Drop for DefaultStack {
    fn drop(&mut self) {
        // SAFETY: `mapping..mapping + len` is exactly the mapping this value created and owns.
        unsafe { libc::munmap(self.mapping.cast(), self.len) };
    }
}

// SAFETY: `limit..base` is the read-write part of a mapping this value owns exclusively, both
// ends are page aligned, the mapping never moves, and the guard page lies right below `limit`.
unsafe impl Stack for DefaultStack {
    fn base(&self) -> usize {
        self.mapping as usize + self.len
    }

    fn limit(&self) -> usize {
        self.mapping as usize + page_size()
    }
}

impl fmt::Debug for DefaultStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultStack")
            .field("base", &format_args!("{:#x}", self.base()))
            .field("size", &self.size())
            .finish()
    }
}

/// The system page size.
#[inline]
pub fn page_size() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);
    match PAGE_SIZE.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: sysconf has no preconditions.
            let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            let size = usize::try_from(size)
                .ok()
                .filter(|&s| s > 0)
                .unwrap_or(4096);
            PAGE_SIZE.store(size, Ordering::Relaxed);
            size
        }
        size => size,
    }
}

/// A stack that was refused because it is too small for what was asked of it; it carries the
/// stack back so that nothing is lost.
pub struct StackTooSmall<S> {
    pub(crate) stack: S,
    pub(crate) required: usize,
}

impl<S: Stack> StackTooSmall<S> {
    /// The refused stack, handed back.
    pub fn into_stack(self) -> S {
        self.stack
    }

    /// The size in bytes the stack would have needed.
    pub fn required(&self) -> usize {
        self.required
    }
}

impl<S: Stack> fmt::Debug for StackTooSmall<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackTooSmall")
            .field("size", &self.stack.size())
            .field("required", &self.required)
            .finish()
    }
}

impl<S: Stack> fmt::Display for StackTooSmall<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stack of {} bytes is too small: at least {} bytes are needed \
             (ctxswitch::MIN_STACK_SIZE plus the coroutine's closure)",
            self.stack.size(),
            self.required
        )
    }
}

impl<S: Stack> std::error::Error for StackTooSmall<S> {}
