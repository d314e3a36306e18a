//! `Context`: cancellation and deadlines that flow down a tree of goroutines, as Go's
//! `context` package.
//!
//! Each context has a `done` channel that closes when it is cancelled, its deadline passes, or
//! its parent is done, so that a goroutine waits for it in a `select!` as in Go. Cancelling a
//! context closes its channel, cancels its children and takes it out of its parent's tree, and
//! a deadline is a timer of the thread behind [`after`](crate::after), taken out of the queue
//! when the context is cancelled first: nothing is left behind once a context is done.
//!
//! Its waiting is the channel's (a receive that a close wakes, which the loom model
//! `channel_close_wakes_every_waiter` checks); the tree is kept under a plain lock that is
//! never held while waking or waiting.
//!
//! Go's `WithValue` is left out: in Rust, values travel better as typed arguments or captures
//! than as an untyped map keyed at run time.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::chan::{Receiver, Sender, TimerKey, chan, timers};

/// Why a context is done, as Go's `context.Canceled` and `context.DeadlineExceeded`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContextError {
    /// It, or an ancestor, was cancelled.
    Canceled,
    /// Its deadline, or an ancestor's, passed.
    DeadlineExceeded,
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContextError::Canceled => "context canceled",
            ContextError::DeadlineExceeded => "context deadline exceeded",
        })
    }
}

impl std::error::Error for ContextError {}

/// A cancellation signal and an optional deadline, passed down to the goroutines doing one
/// piece of work (Go's `context.Context`). Cloning is cheap and gives the same context.
///
/// ```
/// use std::time::Duration;
/// use gsync::{Context, ContextError, select};
///
/// let (ctx, cancel) = Context::background().with_timeout(Duration::from_millis(20));
/// let worker = gsched::go(move || {
///     select! {
///         recv(ctx.done()) -> _ => ctx.err(),
///         timeout(Duration::from_secs(10)) => None,
///     }
/// });
/// assert_eq!(worker.join().unwrap(), Some(ContextError::DeadlineExceeded));
/// cancel.cancel(); // Idempotent: the deadline already ended it.
/// ```
#[derive(Clone)]
pub struct Context {
    node: Arc<Node>,
}

struct Node {
    id: u64,
    parent: Option<Arc<Node>>,
    deadline: Option<Instant>,
    /// Closed when the context is done: its sender lives in `state` until then.
    done: Receiver<()>,
    state: Mutex<NodeState>,
}

#[derive(Default)]
struct NodeState {
    err: Option<ContextError>,
    close: Option<Sender<()>>,
    children: HashMap<u64, Weak<Node>>,
    timer: Option<TimerKey>,
}

impl Node {
    fn state(&self) -> MutexGuard<'_, NodeState> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Ends the context with `err` unless it is done already: closes its channel, ends its
    /// descendants with the same reason, drops its timer and leaves its parent's tree. A work
    /// list rather than recursion: a deep chain of contexts must not exhaust a goroutine's
    /// stack.
    fn cancel(self: &Arc<Self>, err: ContextError) {
        let mut pending = vec![Arc::clone(self)];
        while let Some(node) = pending.pop() {
            let (close, children, timer) = {
                let mut state = node.state();
                if state.err.is_some() {
                    continue;
                }
                state.err = Some(err);
                (
                    state.close.take(),
                    std::mem::take(&mut state.children),
                    state.timer.take(),
                )
            };
            drop(close);
            if let Some(key) = timer {
                timers().cancel(key);
            }
            pending.extend(children.into_values().filter_map(|child| child.upgrade()));
            if let Some(parent) = &node.parent {
                parent.state().children.remove(&node.id);
            }
        }
    }

    /// Whether the context can ever end: the root cannot.
    fn can_end(&self) -> bool {
        self.parent.is_some()
    }
}

static NEXT_CONTEXT: AtomicU64 = AtomicU64::new(1);

impl Context {
    /// The root of every tree: never cancelled, no deadline (Go's `context.Background()`).
    pub fn background() -> Context {
        static BACKGROUND: OnceLock<Context> = OnceLock::new();
        BACKGROUND
            .get_or_init(|| Context::new_node(None, None).0)
            .clone()
    }

    fn new_node(parent: Option<&Context>, deadline: Option<Instant>) -> (Context, Arc<Node>) {
        let (close, done) = chan(0);
        let node = Arc::new(Node {
            id: NEXT_CONTEXT.fetch_add(1, Ordering::Relaxed),
            parent: parent.map(|parent| Arc::clone(&parent.node)),
            deadline,
            done,
            state: Mutex::new(NodeState {
                close: Some(close),
                ..NodeState::default()
            }),
        });
        (
            Context {
                node: Arc::clone(&node),
            },
            node,
        )
    }

    /// A child that is done when `cancel` is called or this context is done (Go's
    /// `context.WithCancel`). Dropping the [`CancelFn`] cancels too, as Go's `defer cancel()`
    /// would: keep it for as long as the work runs.
    pub fn with_cancel(&self) -> (Context, CancelFn) {
        self.child(self.node.deadline)
    }

    /// A child that is done at `deadline` at the latest (Go's `context.WithDeadline`).
    pub fn with_deadline(&self, deadline: Instant) -> (Context, CancelFn) {
        match self.node.deadline {
            Some(inherited) if inherited <= deadline => self.with_cancel(),
            _ => {
                let (child, cancel) = self.child(Some(deadline));
                child.arm_deadline(deadline);
                (child, cancel)
            }
        }
    }

    /// A child that is done after `timeout` at the latest (Go's `context.WithTimeout`); a
    /// timeout too long to be a point in time means none.
    pub fn with_timeout(&self, timeout: Duration) -> (Context, CancelFn) {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.with_deadline(deadline),
            None => self.with_cancel(),
        }
    }

    fn child(&self, deadline: Option<Instant>) -> (Context, CancelFn) {
        let (child, node) = Context::new_node(Some(self), deadline);
        // The root is never done: its children need no place in its tree.
        if self.node.parent.is_none() {
            return (child, CancelFn { node });
        }
        let parent_done = {
            let mut parent = self.node.state();
            match parent.err {
                Some(err) => Some(err),
                None => {
                    parent.children.insert(node.id, Arc::downgrade(&node));
                    None
                }
            }
        };
        if let Some(err) = parent_done {
            node.cancel(err);
        }
        (child, CancelFn { node })
    }

    fn arm_deadline(&self, deadline: Instant) {
        if deadline <= Instant::now() {
            self.node.cancel(ContextError::DeadlineExceeded);
            return;
        }
        let weak = Arc::downgrade(&self.node);
        let key = timers().call_at(
            deadline,
            Box::new(move || {
                if let Some(node) = weak.upgrade() {
                    node.cancel(ContextError::DeadlineExceeded);
                }
            }),
        );
        let mut state = self.node.state();
        if state.err.is_none() {
            state.timer = Some(key);
        } else {
            drop(state);
            timers().cancel(key);
        }
    }

    /// A channel that is closed once the context is done: a receive on it returns
    /// `Err(RecvError)` from then on. Use it as a `select!` case, as Go's `<-ctx.Done()`.
    pub fn done(&self) -> &Receiver<()> {
        &self.node.done
    }

    /// Why the context is done, or `None` while it is not (Go's `ctx.Err()`).
    pub fn err(&self) -> Option<ContextError> {
        self.node.state().err
    }

    /// Whether the context is done.
    pub fn is_done(&self) -> bool {
        self.err().is_some()
    }

    /// The deadline, its own or inherited, if any.
    pub fn deadline(&self) -> Option<Instant> {
        self.node.deadline
    }

    /// The `done` channel, or `None` for a context that can never end: a disabled `select!`
    /// case, so that waits on such a context do not all queue on one shared channel.
    pub(crate) fn done_if_it_can_end(&self) -> Option<&Receiver<()>> {
        self.node.can_end().then_some(&self.node.done)
    }

    /// Parks until the context is done; returns why.
    pub fn wait(&self) -> ContextError {
        let _ = self.node.done.recv();
        self.err()
            .expect("a context's channel closes only once it is done")
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("deadline", &self.node.deadline)
            .field("err", &self.err())
            .finish()
    }
}

/// Cancels its context (Go's `context.CancelFunc`): when called, or when dropped. Calling it
/// more than once, or after the context ended otherwise, does nothing.
#[must_use = "dropping the cancel function cancels the context at once"]
pub struct CancelFn {
    node: Arc<Node>,
}

impl CancelFn {
    /// Cancels the context and its descendants with [`ContextError::Canceled`], unless it is
    /// done already.
    pub fn cancel(&self) {
        self.node.cancel(ContextError::Canceled);
    }
}

impl Drop for CancelFn {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl fmt::Debug for CancelFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelFn").finish_non_exhaustive()
    }
}
