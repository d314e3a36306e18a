//! `ErrGroup`: goroutines working on parts of one task, as `golang.org/x/sync/errgroup`.
//!
//! Built from primitives that are modelled already: a `WaitGroup` for the joining, a
//! channel of tokens for the limit (as Go's `sem chan struct{}`), and a `Context` for the
//! cancellation; the first error is kept under a plain lock.

use std::any::Any;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::chan::{Receiver, Sender, TrySendError, chan};
use crate::context::{CancelFn, Context};
use crate::waitgroup::WaitGroup;

/// A group of goroutines whose first error is kept and ends the group's context (Go's
/// `errgroup.Group`).
///
/// [`wait`](Self::wait) returns once every goroutine has returned, with the first error. A
/// group from [`with_context`](Self::with_context) cancels its context on the first error, so
/// the others can stop early, and when `wait` returns. A panic in a goroutine is re-raised by
/// `wait` once all have returned.
///
/// ```
/// use gsync::{Context, ErrGroup};
///
/// let (group, ctx) = ErrGroup::<String>::with_context(&Context::background());
/// for part in 0..4u32 {
///     let ctx = ctx.clone();
///     group.go(move || {
///         if part == 2 {
///             return Err(format!("part {part} failed"));
///         }
///         // The others see the group's context end and stop.
///         ctx.wait();
///         Ok(())
///     });
/// }
/// assert_eq!(group.wait(), Err("part 2 failed".to_string()));
/// assert!(ctx.is_done());
/// ```
pub struct ErrGroup<E> {
    shared: Arc<Shared<E>>,
}

struct Shared<E> {
    running: WaitGroup,
    outcome: Mutex<Outcome<E>>,
    /// Tokens of the limit: a goroutine holds one while it runs.
    limit: Mutex<Option<(Sender<()>, Receiver<()>)>>,
    cancel: Option<CancelFn>,
}

struct Outcome<E> {
    first_error: Option<E>,
    panic: Option<Box<dyn Any + Send>>,
    /// Goroutines started and not yet returned, for `set_limit`'s check.
    active: usize,
}

impl<E> Shared<E> {
    fn outcome(&self) -> MutexGuard<'_, Outcome<E>> {
        self.outcome
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn limit(&self) -> Option<(Sender<()>, Receiver<()>)> {
        self.limit
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }
}

impl<E: Send + 'static> ErrGroup<E> {
    /// A group with no context and no limit.
    pub fn new() -> Self {
        ErrGroup::with_cancel(None)
    }

    /// A group and a child of `parent` that the group cancels on its first error, or when
    /// [`wait`](Self::wait) returns (Go's `errgroup.WithContext`).
    pub fn with_context(parent: &Context) -> (Self, Context) {
        let (ctx, cancel) = parent.with_cancel();
        (ErrGroup::with_cancel(Some(cancel)), ctx)
    }

    fn with_cancel(cancel: Option<CancelFn>) -> Self {
        ErrGroup {
            shared: Arc::new(Shared {
                running: WaitGroup::new(),
                outcome: Mutex::new(Outcome {
                    first_error: None,
                    panic: None,
                    active: 0,
                }),
                limit: Mutex::new(None),
                cancel,
            }),
        }
    }

    /// Runs `f` in a new goroutine, parking first while the group is at its limit.
    #[track_caller]
    pub fn go<F>(&self, f: F)
    where
        F: FnOnce() -> Result<(), E> + Send + 'static,
    {
        let token = self.shared.limit().map(|(take, give_back)| {
            take.send(())
                .expect("the group holds both ends of its token channel");
            give_back
        });
        self.start(f, token);
    }

    /// Runs `f` in a new goroutine only if the group is below its limit; false (and `f`
    /// dropped) otherwise.
    #[track_caller]
    pub fn try_go<F>(&self, f: F) -> bool
    where
        F: FnOnce() -> Result<(), E> + Send + 'static,
    {
        let token = match self.shared.limit() {
            None => None,
            Some((take, give_back)) => match take.try_send(()) {
                Ok(()) => Some(give_back),
                Err(TrySendError::Full(())) => return false,
                Err(TrySendError::Closed(())) => {
                    unreachable!("the group holds both ends of its token channel")
                }
            },
        };
        self.start(f, token);
        true
    }

    #[track_caller]
    fn start<F>(&self, f: F, token: Option<Receiver<()>>)
    where
        F: FnOnce() -> Result<(), E> + Send + 'static,
    {
        self.shared.outcome().active += 1;
        let shared = Arc::clone(&self.shared);
        self.shared.running.go(move || {
            let result = match panic::catch_unwind(AssertUnwindSafe(f)) {
                // The runtime is tearing this goroutine down: not the group's panic.
                Err(payload) if gsched::is_shutdown_unwind(&*payload) => {
                    panic::resume_unwind(payload)
                }
                result => result,
            };
            // What is not kept is dropped after the lock is let go: it may run any code.
            let (first_failure, _unkept) = {
                let mut outcome = shared.outcome();
                let first = outcome.first_error.is_none() && outcome.panic.is_none();
                match result {
                    Ok(Ok(())) => (false, None),
                    Ok(Err(err)) if outcome.first_error.is_none() => {
                        outcome.first_error = Some(err);
                        (first, None)
                    }
                    Ok(Err(err)) => (false, Some(Box::new(err) as Box<dyn Any + Send>)),
                    Err(payload) if outcome.panic.is_none() => {
                        outcome.panic = Some(payload);
                        (first, None)
                    }
                    Err(payload) => (false, Some(payload)),
                }
            };
            if first_failure && let Some(cancel) = &shared.cancel {
                cancel.cancel();
            }
            if let Some(give_back) = token {
                let _ = give_back.recv();
            }
            // Counted as active until its token is back, as Go's `SetLimit` check counts the
            // tokens out.
            shared.outcome().active -= 1;
        });
    }

    /// Limits the group to `n` goroutines at once: [`go`](Self::go) then parks while `n` run,
    /// and [`try_go`](Self::try_go) refuses. A negative `n` removes the limit (Go's
    /// `SetLimit`); `0` lets nothing start.
    ///
    /// # Panics
    ///
    /// While goroutines of the group are running, with Go's message.
    pub fn set_limit(&self, n: isize) {
        let active = self.shared.outcome().active;
        assert!(
            active == 0,
            "errgroup: modify limit while {active} goroutines in the group are still active"
        );
        *self
            .shared
            .limit
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = usize::try_from(n).ok().map(chan::<()>);
    }

    /// Parks until every goroutine of the group has returned; the first error, if any. The
    /// error is handed out once: a second `wait` returns `Ok`. The group's context is
    /// cancelled.
    ///
    /// # Errors
    ///
    /// The first error a goroutine returned.
    ///
    /// # Panics
    ///
    /// With the payload of the first goroutine that panicked, once all have returned.
    pub fn wait(&self) -> Result<(), E> {
        self.shared.running.wait();
        if let Some(cancel) = &self.shared.cancel {
            cancel.cancel();
        }
        let (first_error, panic) = {
            let mut outcome = self.shared.outcome();
            (outcome.first_error.take(), outcome.panic.take())
        };
        if let Some(payload) = panic {
            panic::resume_unwind(payload);
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl<E: Send + 'static> Default for ErrGroup<E> {
    fn default() -> Self {
        ErrGroup::new()
    }
}

impl<E> fmt::Debug for ErrGroup<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrGroup").finish_non_exhaustive()
    }
}
