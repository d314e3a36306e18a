//! The lock state machines, apart from the data they guard: a lock word and a wait queue each,
//! parking goroutines (or blocking threads) while they wait.
//!
//! `Mutex<T>` and `RwMutex<T>` wrap them with their data and guards; `Locker` drives them
//! directly, since Go's interface locks and unlocks apart from any guard. They sit on
//! [`crate::lock_cell`], which guards their wait queues, and [`crate::waiter`].

mod mutex;
mod rwmutex;

pub(crate) use mutex::RawMutex;
pub(crate) use rwmutex::RawRwMutex;
