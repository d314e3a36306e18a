//! A stack's label: the goroutine id and name an overflow report names, written with atomics so
//! that a signal handler can read it without locks.

use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};

/// Bytes of a stack label kept for overflow reports.
pub(crate) const LABEL_CAPACITY: usize = 48;

/// The id and name of what runs on a stack. All-zero bytes are a valid, empty label, so a label
/// can live in freshly mapped (or freshly released) memory: a guard-region slot keeps its label
/// in the top 64 bytes of its own stack page.
#[repr(C)]
pub(crate) struct Label {
    /// The goroutine id running on the stack, 0 for none.
    id: AtomicU64,
    /// Bytes of `bytes` in use; stored last (Release) by a writer, loaded first (Acquire) by the
    /// reader.
    len: AtomicUsize,
    bytes: [AtomicU8; LABEL_CAPACITY],
}

/// Bytes a label occupies.
pub(crate) const LABEL_SIZE: usize = std::mem::size_of::<Label>();

const _: () = assert!(LABEL_SIZE == 64 && std::mem::align_of::<Label>() <= 16);

impl Label {
    pub(crate) const fn new() -> Self {
        Label {
            id: AtomicU64::new(0),
            len: AtomicUsize::new(0),
            bytes: [const { AtomicU8::new(0) }; LABEL_CAPACITY],
        }
    }

    /// Sets the id and name that an overflow report names; the name is cut to
    /// `LABEL_CAPACITY` bytes at a character boundary.
    pub(crate) fn set(&self, id: u64, name: &str) {
        let mut len = name.len().min(LABEL_CAPACITY);
        while !name.is_char_boundary(len) {
            len -= 1;
        }
        self.len.store(0, Ordering::Relaxed);
        for (cell, &byte) in self.bytes.iter().zip(&name.as_bytes()[..len]) {
            cell.store(byte, Ordering::Relaxed);
        }
        self.id.store(id, Ordering::Relaxed);
        self.len.store(len, Ordering::Release);
    }

    /// Forgets the id and name, reading first so that an unlabelled stack costs no write (and
    /// its page stays shared with the zero page if nothing else touched it).
    pub(crate) fn clear(&self) {
        if self.len.load(Ordering::Relaxed) != 0 || self.id.load(Ordering::Relaxed) != 0 {
            self.set(0, "");
        }
    }

    /// The id and the name's bytes, copied into `name`; returns `(id, name length)`.
    /// Async-signal-safe: atomic loads only.
    pub(crate) fn read(&self, name: &mut [u8; LABEL_CAPACITY]) -> (u64, usize) {
        let len = self.len.load(Ordering::Acquire).min(LABEL_CAPACITY);
        for (out, cell) in name.iter_mut().zip(&self.bytes[..len]) {
            *out = cell.load(Ordering::Relaxed);
        }
        (self.id.load(Ordering::Relaxed), len)
    }
}
