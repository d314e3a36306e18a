//! Overflow reports: a SIGSEGV/SIGBUS handler that names the goroutine whose stack overflowed.
//!
//! The handler runs on the thread's alternate signal stack (the overflowed stack has no room
//! left). When the fault address lies in a guard page (a registered [`GuardedStack`]'s, found in
//! the guard slots, or a guard-region slot's, found by arithmetic from the region table) it
//! writes one line to stderr with async-signal-safe calls only (no allocation, no locks,
//! `write(2)`), then aborts. Both backends print the same line. Any other fault goes to the
//! handler that was installed before ours, so Rust's own "thread has overflowed its stack"
//! message and ordinary crashes look as they always do.
//!
//! [`GuardedStack`]: crate::GuardedStack

use std::io;
use std::sync::{Once, OnceLock};

use crate::label::LABEL_CAPACITY;
use crate::{region, registry};

static INSTALL: Once = Once::new();

/// The actions for SIGSEGV and SIGBUS that were installed before ours, set once before ours is
/// installed. Reading a set `OnceLock` is one atomic load: async-signal-safe.
static PREVIOUS: OnceLock<[libc::sigaction; 2]> = OnceLock::new();

const SIGNALS: [libc::c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];

/// Installs the overflow handler for the process and an alternate signal stack for the calling
/// thread. Idempotent: the handler is installed once, the alternate stack once per thread.
///
/// Every thread that runs goroutines needs an alternate signal stack for the report to be
/// written; threads started by `std::thread` already have one, other threads call
/// [`ensure_alt_stack`].
///
/// # Errors
///
/// The OS error when `sigaction` or `sigaltstack` fails.
pub fn install_overflow_handler() -> io::Result<()> {
    let mut result = Ok(());
    INSTALL.call_once(|| result = install_handlers());
    result?;
    ensure_alt_stack()
}

fn install_handlers() -> io::Result<()> {
    // SAFETY: `sigaction` structs are plain data, and all-zero is a valid empty one; the queries
    // only write `previous`.
    let mut previous: [libc::sigaction; 2] = unsafe { std::mem::zeroed() };
    for (signal, old) in SIGNALS.iter().zip(&mut previous) {
        // SAFETY: as above.
        if unsafe { libc::sigaction(*signal, std::ptr::null(), old) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // Set before our handler, its only reader, is installed.
    let _ = PREVIOUS.set(previous);
    // SAFETY: as above.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handle_fault as *const () as usize;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    for signal in SIGNALS {
        // SAFETY: `handle_fault` has the SA_SIGINFO signature and is async-signal-safe.
        if unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Size of the alternate signal stacks this crate maps.
const ALT_STACK_SIZE: usize = 64 * 1024;

/// An alternate signal stack mapped for a thread that had none; disabled and unmapped when the
/// thread exits.
struct AltStack {
    mapping: *mut libc::c_void,
    len: usize,
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let disable = libc::stack_t {
            ss_sp: std::ptr::null_mut(),
            ss_flags: libc::SS_DISABLE,
            ss_size: 0,
        };
        // SAFETY: the alternate stack is this thread's and is not in use (we are not in a
        // handler); after disabling it, the mapping this value owns can go.
        unsafe {
            libc::sigaltstack(&disable, std::ptr::null_mut());
            libc::munmap(self.mapping, self.len);
        }
    }
}

thread_local! {
    static ALT_STACK: std::cell::RefCell<Option<AltStack>> = const { std::cell::RefCell::new(None) };
}

/// Gives the calling thread an alternate signal stack if it has none (with a guard page below),
/// so that the overflow report can run when its stack is exhausted.
///
/// # Errors
///
/// The OS error when the query, the mapping or `sigaltstack` fails.
pub fn ensure_alt_stack() -> io::Result<()> {
    // SAFETY: `stack_t` is plain data, and all-zero is a valid value.
    let mut current: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: querying with a null new stack only writes `current`.
    if unsafe { libc::sigaltstack(std::ptr::null(), &mut current) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if current.ss_flags & libc::SS_DISABLE == 0 {
        return Ok(());
    }
    let page = ctxswitch::page_size();
    let len = ALT_STACK_SIZE + page;
    let mapping = crate::sys::map_lazily(len)?;
    let alt = AltStack { mapping, len };
    let stack = libc::stack_t {
        // SAFETY: one page above the start is still inside the mapping.
        ss_sp: unsafe { mapping.cast::<u8>().add(page) }.cast(),
        ss_flags: 0,
        ss_size: ALT_STACK_SIZE,
    };
    // SAFETY: the guard page lies inside the mapping `alt` owns, unused so far.
    unsafe { crate::sys::protect_guard(mapping) }?;
    // SAFETY: `stack` describes the rest of the mapping, which stays mapped until `alt` is
    // dropped at thread exit.
    if unsafe { libc::sigaltstack(&stack, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    ALT_STACK.with(|slot| *slot.borrow_mut() = Some(alt));
    Ok(())
}

/// The line after an overflow report: what gives the code room.
const OVERFLOW_HINT: &[u8] =
    b"  give it a larger stack size, or run its deep calls in gstack::maybe_grow\n";

/// A line assembled without allocating.
struct Line {
    bytes: [u8; 256],
    len: usize,
}

impl Line {
    fn push(&mut self, text: &[u8]) {
        let room = self.bytes.len() - self.len;
        let take = text.len().min(room);
        self.bytes[self.len..self.len + take].copy_from_slice(&text[..take]);
        self.len += take;
    }

    fn push_number(&mut self, mut value: u64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        self.push(&digits[at..]);
    }
}

extern "C" fn handle_fault(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid `siginfo_t` to an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    let found = registry::find_guard(addr).or_else(|| region::find_guard(addr));
    if let Some((label, stack_size)) = found {
        let mut line = Line {
            bytes: [0; 256],
            len: 0,
        };
        let mut name = [0u8; LABEL_CAPACITY];
        let (id, len) = label.read(&mut name);
        line.push(b"goroutine stack overflow: ");
        if id != 0 {
            line.push(b"goroutine ");
            line.push_number(id);
            if len > 0 {
                line.push(b" (\"");
            }
        }
        line.push(&name[..len]);
        if id != 0 && len > 0 {
            line.push(b"\")");
        }
        if id == 0 && len == 0 {
            line.push(b"unnamed stack");
        }
        line.push(b", stack of ");
        line.push_number((stack_size / 1024) as u64);
        line.push(b" KiB\n");
        line.push(OVERFLOW_HINT);
        // SAFETY: write(2) and abort(3) are async-signal-safe; `line` is a live buffer. One
        // write, so that another thread's report cannot land between the two lines.
        unsafe {
            libc::write(libc::STDERR_FILENO, line.bytes.as_ptr().cast(), line.len);
            libc::abort();
        }
    }
    let index = usize::from(signal != libc::SIGSEGV);
    let previous = PREVIOUS.get().map(|actions| actions[index]);
    match previous {
        Some(previous)
            if previous.sa_sigaction != libc::SIG_DFL && previous.sa_sigaction != libc::SIG_IGN =>
        {
            // SAFETY: the previous handler was installed for this signal with these flags, and
            // is called as the kernel would have called it.
            unsafe {
                if previous.sa_flags & libc::SA_SIGINFO != 0 {
                    let handler: extern "C" fn(
                        libc::c_int,
                        *mut libc::siginfo_t,
                        *mut libc::c_void,
                    ) = std::mem::transmute(previous.sa_sigaction);
                    handler(signal, info, context);
                } else {
                    let handler: extern "C" fn(libc::c_int) =
                        std::mem::transmute(previous.sa_sigaction);
                    handler(signal);
                }
            }
        }
        _ => {
            // No handler before ours: restore the default action and return, so the faulting
            // instruction runs again and the kernel ends the process as it would have.
            // SAFETY: resetting a signal to its default action is async-signal-safe.
            unsafe {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
        }
    }
}
