//! One epoll instance per worker, installed in the runtime as its [`Driver`].
//!
//! A socket registers once, edge-triggered for both directions, with the poller of the worker
//! whose goroutine first waits on it; a goroutine never leaves its worker, so the events of its
//! sockets are found by the thread that runs it, and waking it puts it straight in that
//! worker's queues. The worker waits in `epoll_wait` when it has nothing to run, polls without
//! waiting every 61 scheduling ticks while busy, and the runtime's monitor polls for a worker
//! stuck in one goroutine (see `gsched::driver`).
//!
//! Tokens carry a generation: a registration removed while one of its events is in flight (its
//! socket was closed, and the fd number may already be reused by a new socket) no longer
//! matches, and that event is dropped instead of waking the new socket's goroutines.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use gsched::driver::Driver;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};

use crate::readiness::{IoState, Ready};
use crate::wake_state::WakeState;

/// The token of each poller's waker; registrations use the others.
const WAKER: Token = Token(usize::MAX);

/// Events read per `epoll_wait`.
const EVENTS_PER_WAIT: usize = 256;

/// Every worker's poller: the runtime's driver.
pub(crate) struct Pollers {
    workers: Box<[Arc<Poller>]>,
}

impl Pollers {
    pub(crate) fn new(workers: usize) -> io::Result<Pollers> {
        let workers = (0..workers)
            .map(|_| Poller::new().map(Arc::new))
            .collect::<io::Result<_>>()?;
        Ok(Pollers { workers })
    }

    pub(crate) fn worker(&self, index: usize) -> &Arc<Poller> {
        &self.workers[index]
    }
}

impl Driver for Pollers {
    fn wait(&self, worker: usize, timeout: Option<Duration>) {
        self.workers[worker].wait(timeout);
    }

    fn poll(&self, worker: usize) {
        self.workers[worker].poll_now();
    }

    fn wake(&self, worker: usize) {
        self.workers[worker].wake();
    }

    fn shutdown(&self) {
        for poller in self.workers.iter() {
            poller.retire();
        }
    }
}

/// One worker's epoll instance and the sockets registered with it.
pub(crate) struct Poller {
    /// Held by whoever polls: the worker in its wait, or a passing poll.
    poll: Mutex<(Poll, Events)>,
    registry: Registry,
    waker: Waker,
    state: WakeState,
    sources: Mutex<Sources>,
    /// Its runtime has shut down: nobody polls it any more.
    retired: AtomicBool,
}

/// The registered sockets, by token: an index and a generation.
#[derive(Default)]
struct Sources {
    slots: Vec<Slot>,
    free: Vec<usize>,
}

#[derive(Default)]
struct Slot {
    generation: usize,
    io: Option<Arc<IoState>>,
}

/// A token's bits: the slot index below, the generation above (16 and 16 on 32-bit targets).
const INDEX_BITS: u32 = usize::BITS / 2;
const INDEX_MASK: usize = (1 << INDEX_BITS) - 1;

fn token(index: usize, generation: usize) -> Token {
    Token(((generation & INDEX_MASK) << INDEX_BITS) | index)
}

fn index_and_generation(token: Token) -> (usize, usize) {
    (token.0 & INDEX_MASK, token.0 >> INDEX_BITS)
}

impl Sources {
    fn insert(&mut self, io: Arc<IoState>) -> io::Result<Token> {
        let index = match self.free.pop() {
            Some(index) => index,
            // The all-ones index is the waker's token.
            None if self.slots.len() < INDEX_MASK => {
                self.slots.push(Slot::default());
                self.slots.len() - 1
            }
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    "gnet: too many sockets registered with one worker",
                ));
            }
        };
        let slot = &mut self.slots[index];
        slot.generation = slot.generation.wrapping_add(1) & INDEX_MASK;
        slot.io = Some(io);
        Ok(token(index, slot.generation))
    }

    fn get(&self, token: Token) -> Option<&Arc<IoState>> {
        let (index, generation) = index_and_generation(token);
        let slot = self.slots.get(index)?;
        (slot.generation == generation).then_some(slot.io.as_ref()?)
    }

    fn remove(&mut self, token: Token) {
        let (index, generation) = index_and_generation(token);
        if let Some(slot) = self.slots.get_mut(index)
            && slot.generation == generation
            && slot.io.take().is_some()
        {
            self.free.push(index);
        }
    }
}

impl Poller {
    fn new() -> io::Result<Poller> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = Waker::new(&registry, WAKER)?;
        Ok(Poller {
            poll: Mutex::new((poll, Events::with_capacity(EVENTS_PER_WAIT))),
            registry,
            waker,
            state: WakeState::new(),
            sources: Mutex::new(Sources::default()),
            retired: AtomicBool::new(false),
        })
    }

    fn sources(&self) -> MutexGuard<'_, Sources> {
        self.sources
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Registers `fd` for both directions, edge-triggered; the registration ends when the
    /// returned value is dropped, which must happen before `fd` is closed.
    pub(crate) fn register(self: &Arc<Self>, fd: RawFd) -> io::Result<Registration> {
        let io = Arc::new(IoState::default());
        let token = self.sources().insert(Arc::clone(&io))?;
        // Priority: urgent TCP data stops a read short of what is queued, which must not be
        // taken for an empty queue (see `IoState::clear_drained`).
        let interest = Interest::READABLE | Interest::WRITABLE | Interest::PRIORITY;
        if let Err(err) = self.registry.register(&mut SourceFd(&fd), token, interest) {
            self.sources().remove(token);
            return Err(err);
        }
        Ok(Registration {
            poller: Arc::clone(self),
            token,
            fd,
            io,
        })
    }

    /// The worker's idle wait (see `Driver::wait`).
    fn wait(&self, timeout: Option<Duration>) {
        if !self.state.begin_wait() {
            return;
        }
        let mut guard = self
            .poll
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        // A passing poll (the monitor's) may have held the lock and taken the eventfd's event
        // of a wake-up meant for this wait: the word still says so.
        let timeout = if self.state.notified() {
            Some(Duration::ZERO)
        } else {
            timeout
        };
        let (poll, events) = &mut *guard;
        let polled = poll.poll(events, timeout);
        self.state.end_wait();
        if polled.is_ok() {
            self.dispatch(events);
        }
    }

    /// Handles what is ready now, unless someone is polling already.
    fn poll_now(&self) {
        let Ok(mut guard) = self.poll.try_lock() else {
            return;
        };
        let (poll, events) = &mut *guard;
        if poll.poll(events, Some(Duration::ZERO)).is_ok() {
            self.dispatch(events);
        }
    }

    /// Marks the poller as no longer polled, and wakes every waiting operation: each then
    /// fails instead of waiting for good (see `Registration::is_retired`).
    fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
        let registered: Vec<Arc<IoState>> = self
            .sources()
            .slots
            .iter()
            .filter_map(|slot| slot.io.clone())
            .collect();
        for io in registered {
            io.wake_all();
        }
    }

    fn wake(&self) {
        if self.state.notify() {
            // A failed write leaves the eventfd's counter full, which still wakes the wait.
            let _ = self.waker.wake();
        }
    }

    fn dispatch(&self, events: &Events) {
        for event in events.iter() {
            if event.token() == WAKER {
                continue;
            }
            let io = self.sources().get(event.token()).cloned();
            if let Some(io) = io {
                io.set_ready(Ready::from_event(event));
            }
        }
    }
}

/// A socket's place in a worker's poller; dropping it deregisters the socket.
pub(crate) struct Registration {
    poller: Arc<Poller>,
    token: Token,
    fd: RawFd,
    pub(crate) io: Arc<IoState>,
}

impl Registration {
    /// Whether the runtime this socket registered in has shut down: nobody polls for it.
    pub(crate) fn is_retired(&self) -> bool {
        self.poller.retired.load(Ordering::SeqCst)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // The fd is still open (the socket drops its registration first): taking it out of
        // the epoll set now keeps a reused fd number from reaching this registration.
        let _ = self.poller.registry.deregister(&mut SourceFd(&self.fd));
        self.poller.sources().remove(self.token);
    }
}
