//! Coroutines declared movable between threads.

use std::fmt;

use crate::coroutine::Coroutine;
use crate::stack::{DefaultStack, Stack};

/// A [`Coroutine`] declared movable between threads by [`Coroutine::assume_send`].
pub struct SendCoroutine<Input, Yield, Return, S: Stack = DefaultStack>(
    pub(crate) Coroutine<Input, Yield, Return, S>,
);

// SAFETY: the caller of `assume_send` took on exactly this obligation.
unsafe impl<Input, Yield, Return, S: Stack> Send for SendCoroutine<Input, Yield, Return, S> {}

impl<Input, Yield, Return, S: Stack> SendCoroutine<Input, Yield, Return, S> {
    /// The coroutine, on whichever thread this now is.
    pub fn into_inner(self) -> Coroutine<Input, Yield, Return, S> {
        self.0
    }
}

impl<Input, Yield, Return, S: Stack> std::ops::Deref for SendCoroutine<Input, Yield, Return, S> {
    type Target = Coroutine<Input, Yield, Return, S>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<Input, Yield, Return, S: Stack> std::ops::DerefMut for SendCoroutine<Input, Yield, Return, S> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<Input, Yield, Return, S: Stack> fmt::Debug for SendCoroutine<Input, Yield, Return, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
