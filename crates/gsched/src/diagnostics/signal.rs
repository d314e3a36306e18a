//! The goroutine dump on `SIGQUIT`, for runtimes that opt in.
//!
//! The handler only writes one byte to a pipe, which is async-signal-safe; a thread of the
//! runtime library, started with the handler, reads the pipe and prints the dump of every
//! runtime that opted in. The process goes on.

use std::io::{self, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};

use super::HelperThread;
use super::dump::DUMP_WAIT;
use super::registry;

/// The pipe's write end, for the handler.
static WRITE_END: AtomicI32 = AtomicI32::new(-1);

/// Installs the handler and starts the thread that prints, once per process.
#[cfg(not(target_os = "linux"))]
pub(crate) fn install() -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "the SIGQUIT dump is built for Linux only",
    ))
}

/// Installs the handler and starts the thread that prints, once per process.
#[cfg(target_os = "linux")]
pub(crate) fn install() -> io::Result<()> {
    static INSTALLED: OnceLock<Result<(), (io::ErrorKind, String)>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| install_once().map_err(|err| (err.kind(), err.to_string())))
        .clone()
        .map_err(|(kind, message)| io::Error::new(kind, message))
}

#[cfg(target_os = "linux")]
fn install_once() -> io::Result<()> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors `pipe2` writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let [read_end, write_end] = fds;
    // A full pipe must not block the handler: a signal that finds it full is one more of many
    // dumps already asked for.
    // SAFETY: `write_end` is the descriptor `pipe2` just opened.
    unsafe {
        let flags = libc::fcntl(write_end, libc::F_GETFL);
        libc::fcntl(write_end, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    std::thread::Builder::new()
        .name("gsched-sigquit".to_string())
        .spawn(move || print_dumps(read_end))?;
    WRITE_END.store(write_end, Ordering::SeqCst);
    // SAFETY: a zeroed `sigaction` is a valid value to fill in; the handler is an
    // `extern "C"` function that does only async-signal-safe work.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigquit as extern "C" fn(libc::c_int) as usize;
        // On the alternate signal stack where the thread has one: a goroutine near the end
        // of its stack may be the one interrupted.
        action.sa_flags = libc::SA_RESTART | libc::SA_ONSTACK;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(libc::SIGQUIT, &action, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
extern "C" fn on_sigquit(_signal: libc::c_int) {
    let fd = WRITE_END.load(Ordering::Relaxed);
    // SAFETY: `write` and `__errno_location` are async-signal-safe; errno is put back as the
    // interrupted code left it.
    unsafe {
        let errno = *libc::__errno_location();
        libc::write(fd, [1u8].as_ptr().cast(), 1);
        *libc::__errno_location() = errno;
    }
}

/// The printing thread's loop: a dump per signal.
#[cfg(target_os = "linux")]
fn print_dumps(read_end: libc::c_int) {
    let _helper = HelperThread::register();
    let mut buffer = [0u8; 64];
    loop {
        // SAFETY: `buffer` has room for the bytes asked for.
        let read = unsafe { libc::read(read_end, buffer.as_mut_ptr().cast(), buffer.len()) };
        if read < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if read <= 0 {
            return;
        }
        let mut text = String::from("SIGQUIT: goroutine dump\n\n");
        for shared in registry::runtimes() {
            if shared.config.dump_on_sigquit {
                text.push_str(&shared.dump(DUMP_WAIT).to_string());
            }
        }
        // A closed stderr must not end the thread.
        let _ = io::stderr().lock().write_all(text.as_bytes());
    }
}
