//! The two kernel calls every stack kind makes.

use std::io;
use std::ptr;

/// Maps `len` bytes of anonymous read-write memory, reserved without committing: pages cost
/// memory only once touched.
pub(crate) fn map_lazily(len: usize) -> io::Result<*mut libc::c_void> {
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches no
    // existing memory.
    let mapping = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if mapping == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(mapping)
    }
}

/// Makes the page at `page_start` inaccessible, as a guard.
///
/// # Safety
///
/// The page lies inside a mapping that the caller owns and that no code uses yet.
pub(crate) unsafe fn protect_guard(page_start: *mut libc::c_void) -> io::Result<()> {
    // SAFETY: as the caller guarantees.
    if unsafe { libc::mprotect(page_start, ctxswitch::page_size(), libc::PROT_NONE) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
