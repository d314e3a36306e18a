//! The kernel calls the stack kinds make.

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

/// `madvise` advice that installs guard markers on a range's pages (Linux 6.13+): a touch
/// raises SIGSEGV, the range stays part of its mapping, and the markers survive
/// `MADV_DONTNEED`. Not in the `libc` crate yet; the number is the same on every architecture.
#[cfg(target_os = "linux")]
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// Installs a guard marker on each page of `start..start + len`.
///
/// Fails with `EINVAL` on a kernel without guard regions (and for mappings that cannot have
/// them: locked, hugetlb or special ones).
///
/// # Safety
///
/// The range is page aligned and lies inside a private anonymous mapping that the caller owns,
/// and nothing in it is in use or needed: its contents are discarded.
pub(crate) unsafe fn install_guard(start: usize, len: usize) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    loop {
        // SAFETY: as the caller guarantees.
        if unsafe { libc::madvise(start as *mut libc::c_void, len, MADV_GUARD_INSTALL) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        // The kernel retries a race with a concurrent fault itself, and may still give up with
        // EAGAIN or be interrupted; the call is idempotent, so try again.
        if !matches!(err.raw_os_error(), Some(libc::EINTR | libc::EAGAIN)) {
            return Err(err);
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (start, len);
        Err(io::Error::from_raw_os_error(libc::EINVAL))
    }
}

/// `madvise` advice that removes the guard markers of a range's pages (Linux 6.13+), leaving
/// them as never-touched memory.
#[cfg(target_os = "linux")]
const MADV_GUARD_REMOVE: libc::c_int = 103;

/// Gives back the pages of `start..start + len`, removes the range's guard markers, and gives
/// it back again, so that the kernel frees the page-table pages only it used (it frees one that
/// a `MADV_DONTNEED` empties; a guard marker keeps it in use). False, with the markers in
/// place, when the pages cannot be given back (memory the process locked refuses
/// `MADV_DONTNEED`, and would refuse the markers' return). True otherwise, even if the
/// markers' removal failed: the caller must then treat the range as holding guards or not,
/// whichever it needs.
///
/// # Safety
///
/// As [`release_pages`].
pub(crate) unsafe fn remove_guards_and_release(start: usize, len: usize) -> bool {
    #[cfg(target_os = "linux")]
    // SAFETY: as the caller guarantees.
    unsafe {
        let range = start as *mut libc::c_void;
        if libc::madvise(range, len, libc::MADV_DONTNEED) != 0 {
            return false;
        }
        libc::madvise(range, len, MADV_GUARD_REMOVE);
        libc::madvise(range, len, libc::MADV_DONTNEED);
        true
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (start, len);
        false
    }
}

/// Gives the pages of `start..start + len` back to the kernel with `MADV_DONTNEED`: their
/// memory is freed now, and a later touch maps a zeroed page. Guard markers in the range stay.
///
/// # Safety
///
/// The range is page aligned and lies inside a private anonymous mapping that the caller owns,
/// and nothing in it is in use or needed.
pub(crate) unsafe fn release_pages(start: usize, len: usize) {
    // SAFETY: as the caller guarantees. It fails only on memory the process locked (EINVAL);
    // the pages then stay resident, which is all a failure costs.
    unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
}

/// Whether the page at `address` refuses access: the kernel, asked to copy one byte from it
/// into a pipe, answers EFAULT rather than reading it. Touches nothing in this process.
pub(crate) fn refuses_access(address: usize) -> bool {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: write(2) only reads the byte at `address` in the kernel, which reports a bad
    // address as EFAULT; the descriptors are this function's own.
    let written = unsafe { libc::write(fds[1], address as *const libc::c_void, 1) };
    let refused = written == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT);
    // SAFETY: closing the two descriptors made above.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    refused
}

#[cfg(test)]
mod tests {
    use super::{install_guard, map_lazily, refuses_access};

    /// The check behind trusting guard regions: an ordinary page is readable, a page with a
    /// guard marker is not (where the kernel has guard regions).
    #[test]
    fn a_guarded_page_refuses_access_and_an_ordinary_one_does_not() {
        let page = ctxswitch::page_size();
        let mapping = map_lazily(2 * page).unwrap() as usize;
        assert!(!refuses_access(mapping + page));
        // SAFETY: the first page of a mapping made above, holding nothing.
        if unsafe { install_guard(mapping, page) }.is_ok() {
            assert!(refuses_access(mapping));
        }
        // SAFETY: exactly the mapping made above.
        unsafe { libc::munmap(mapping as *mut libc::c_void, 2 * page) };
    }
}
