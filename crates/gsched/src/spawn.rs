//! Starting goroutines: `go` and its builder, and the runtime they land on.

use std::marker::PhantomData;
use std::panic::Location;
use std::sync::Arc;

use crate::join::{JoinHandle, JoinSlot, PacketRef};
use crate::runtime::{RuntimeShared, next_goroutine_id};
use crate::task::{Body, BoxedBody, BoxedFn, Task};

/// Starts `f` as a new goroutine and returns a handle to join it.
///
/// Called from a goroutine, the new goroutine joins the same runtime. Called from anywhere
/// else (`main`, a plain thread) it goes to the process-wide default runtime, started on first
/// use with the default configuration (worker count from `GSCHED_PROCS` or the CPUs available),
/// so that `go` just works, as in Go. That runtime runs until the process exits.
///
/// ```
/// let handle = gsched::go(|| 6 * 7);
/// assert_eq!(handle.join().unwrap(), 42);
/// ```
///
/// # Panics
///
/// When the default runtime must start and cannot (for example `GSCHED_PROCS` is not a number).
#[track_caller]
pub fn go<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Builder::new().spawn(f)
}

/// Configures one goroutine: its name, its stack size, and whether it may migrate.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    name: Option<Arc<str>>,
    stack_size: Option<usize>,
    migratable: bool,
}

impl Builder {
    /// A builder with the runtime's defaults.
    pub fn new() -> Self {
        Builder::default()
    }

    /// Names the goroutine: shown by panics, overflow reports and the leak report.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(Arc::from(name.into()));
        self
    }

    /// The goroutine's stack size in bytes (guarded stacks; a dense runtime uses its slot size).
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Lets the goroutine resume on any worker after it started, as Go's goroutines do, for
    /// better balance. By default a goroutine that has run stays on its worker thread.
    ///
    /// # Safety
    ///
    /// The goroutine's stack moves between OS threads at every park or yield. The caller
    /// promises that nothing the goroutine holds across a park, a yield, a sleep, a join or any
    /// blocking gsync call is tied to the thread: no `Rc`, `RefCell` borrow or other `!Send`
    /// value, no reference to a thread-local, no `std::sync::MutexGuard` (unlocking on another
    /// thread is undefined on some platforms), no thread-affine handle (OpenGL contexts, some
    /// FFI state). Values the goroutine only uses between two blocking calls are unaffected.
    pub unsafe fn migratable(mut self) -> Self {
        self.migratable = true;
        self
    }

    /// Starts `f` as a goroutine configured by this builder (see [`go`]).
    #[track_caller]
    pub fn spawn<F, T>(self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (runtime, task) = new_task(self, JoinSlot::new(f), Location::caller());
        let (id, name) = (task.id, task.name.clone());
        let joinable: Arc<Task<dyn crate::join::Joinable<T>>> = Arc::clone(&task) as _;
        runtime.spawn(task);
        JoinHandle {
            packet: PacketRef::InTask(joinable),
            id,
            name,
            marker: PhantomData,
        }
    }
}

/// A task for `body` on the current runtime (or the default one), not yet queued.
fn new_task<B: Body>(
    builder: Builder,
    body: B,
    location: &'static Location<'static>,
) -> (Arc<RuntimeShared>, Arc<Task<B>>) {
    let runtime: Arc<RuntimeShared> = crate::runtime_api::spawn_target();
    let stack_size = builder.stack_size.unwrap_or(runtime.config.stack_size);
    let task = Task::new(
        next_goroutine_id(),
        builder.name,
        location,
        builder.migratable,
        stack_size,
        Arc::clone(&runtime),
        body,
    );
    (runtime, Arc::new(task))
}

/// Queues a boxed closure as a goroutine on the current runtime (or the default one).
pub(crate) fn spawn_boxed(
    builder: Builder,
    function: BoxedFn,
    location: &'static Location<'static>,
) -> (u64, Option<Arc<str>>) {
    let (runtime, task) = new_task(builder, BoxedBody::new(function), location);
    let (id, name) = (task.id, task.name.clone());
    runtime.spawn(task);
    (id, name)
}
