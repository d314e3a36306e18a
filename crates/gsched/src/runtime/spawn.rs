//! Starting goroutines: `go` and its builder, and the runtime they land on.

use std::fmt;
use std::marker::PhantomData;
use std::panic::Location;
use std::sync::Arc;

use crate::join::{JoinHandle, JoinSlot, Joinable, PacketRef};
use crate::scheduler::runtime_ref::RuntimeRef;
use crate::scheduler::shared::Placement;
use crate::scheduler::task::{Body, BoxedBody, BoxedFn, Task};
use crate::scheduler::task_ref::TaskRef;
use crate::scheduler::{RuntimeShared, next_goroutine_id};

pub use crate::scheduler::stacks::{MAX_STACK_SIZE, MIN_STACK_SIZE};

/// Why a goroutine could not be started.
#[derive(Debug)]
#[non_exhaustive]
pub enum SpawnError {
    /// The requested stack size is outside what the runtime can give.
    StackSize {
        /// The size asked for, in bytes.
        requested: usize,
        /// The smallest size accepted.
        min: usize,
        /// The largest size accepted (a dense runtime's slot).
        max: usize,
    },
    /// The process-wide default runtime, which `go` starts outside any runtime, could not start.
    DefaultRuntime(String),
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::StackSize {
                requested,
                min,
                max,
            } => write!(
                f,
                "a goroutine stack of {requested} bytes is outside this runtime's range \
                 ({min}..={max} bytes)"
            ),
            SpawnError::DefaultRuntime(reason) => {
                write!(f, "cannot start the default runtime: {reason}")
            }
        }
    }
}

impl std::error::Error for SpawnError {}

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
/// At the caller's line, when the default runtime must start and cannot (for example
/// `GSCHED_PROCS` is not a number). [`Builder::spawn`] returns that as an error instead.
#[track_caller]
pub fn go<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match Builder::new().spawn(f) {
        Ok(handle) => handle,
        Err(err) => panic!("gsched: {err}"),
    }
}

/// Configures one goroutine: its name, its stack size, where it starts, and whether it may
/// migrate.
///
/// # Where a goroutine starts
///
/// A goroutine never leaves the worker it first runs on (see the crate docs), so where it
/// starts is for good. By default, a goroutine spawned by a goroutine runs next on the
/// spawner's worker, as Go's `newproc` puts it in `runnext`: a goroutine and the one it spawned
/// usually talk, and talking on one core is several times faster than across two. Another
/// worker takes it only when the spawner's worker is demonstrably busy: more than two
/// goroutines wait there, or a few waited about 20 µs while that worker ran one goroutine
/// without a switch. A goroutine spawned from outside the runtime goes to whichever worker is
/// free first. [`same_worker`](Self::same_worker) and [`spread`](Self::spread) decide instead.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    name: Option<Arc<str>>,
    stack_size: Option<usize>,
    migratable: bool,
    placement: Placement,
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

    /// The goroutine's stack size in bytes, checked by [`spawn`](Self::spawn): at least
    /// [`MIN_STACK_SIZE`], at most [`MAX_STACK_SIZE`], rounded up to whole pages. A dense
    /// runtime gives every goroutine its slot, so there the size may not exceed the slot.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Starts the goroutine on the spawner's worker, never on another: for goroutines that
    /// talk a lot with their spawner or with each other. It waits while the spawner's worker is
    /// busy. Spawned from outside the runtime, it starts on any worker.
    ///
    /// ```
    /// gsched::run(|| {
    ///     let here = std::thread::current().id();
    ///     let child = gsched::Builder::new().same_worker().spawn(move || std::thread::current().id());
    ///     assert_eq!(child.unwrap().join().unwrap(), here);
    /// });
    /// ```
    pub fn same_worker(mut self) -> Self {
        self.placement = Placement::SameWorker;
        self
    }

    /// Starts the goroutine on another worker than the spawner's, waking it: an idle one if
    /// any, else the next in turn. For goroutines that should run in parallel with their
    /// spawner from the start, such as the long-lived workers of a server. It is never taken
    /// by another worker, so it waits if its worker is busy. With one worker, it starts there.
    ///
    /// ```
    /// let rt = gsched::Runtime::builder().workers(2).build().unwrap();
    /// rt.block_on(|| {
    ///     let here = std::thread::current().id();
    ///     let child = gsched::Builder::new().spread().spawn(move || std::thread::current().id());
    ///     assert_ne!(child.unwrap().join().unwrap(), here);
    /// });
    /// ```
    pub fn spread(mut self) -> Self {
        self.placement = Placement::Spread;
        self
    }

    /// Starts the goroutine on the workers in turn, the spawner's included, waking it. For the
    /// goroutines of an accept loop, one per connection: each worker serves its share, the
    /// loop's own (which mostly waits in `accept`) included, whether or not the others are
    /// idle at that moment. Like [`spread`](Self::spread), it is never taken by another worker.
    ///
    /// ```
    /// use std::collections::HashSet;
    ///
    /// let rt = gsched::Runtime::builder().workers(2).build().unwrap();
    /// let threads: HashSet<_> = rt.block_on(|| {
    ///     let children: Vec<_> = (0..4)
    ///         .map(|_| {
    ///             gsched::Builder::new()
    ///                 .round_robin()
    ///                 .spawn(|| std::thread::current().id())
    ///                 .unwrap()
    ///         })
    ///         .collect();
    ///     children.into_iter().map(|child| child.join().unwrap()).collect()
    /// });
    /// assert_eq!(threads.len(), 2);
    /// ```
    pub fn round_robin(mut self) -> Self {
        self.placement = Placement::RoundRobin;
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

    /// Starts `f` as a goroutine configured by this builder: on the runtime of the calling
    /// goroutine, or else on the process-wide default runtime (see [`go`]).
    ///
    /// # Errors
    ///
    /// [`SpawnError::StackSize`] for a stack size the runtime cannot give, and
    /// [`SpawnError::DefaultRuntime`] when the default runtime is needed and cannot start.
    /// Nothing runs then, and `f` is dropped.
    #[track_caller]
    pub fn spawn<F, T>(self, f: F) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let location = Location::caller();
        let queued = super::context::with_spawn_target(|runtime| self.queue(runtime, f, location))?;
        finish_spawn(queued)
    }

    /// Starts `f` as a goroutine configured by this builder on `runtime`, from anywhere: a plain
    /// thread, or a goroutine of this or another runtime.
    ///
    /// ```
    /// let rt = gsched::Runtime::builder().workers(2).build().unwrap();
    /// let handle = gsched::Builder::new().name("worker").spawn_on(&rt, || 6 * 7).unwrap();
    /// assert_eq!(handle.join().unwrap(), 42);
    /// ```
    ///
    /// # Errors
    ///
    /// [`SpawnError::StackSize`] for a stack size `runtime` cannot give. Nothing runs then, and
    /// `f` is dropped.
    #[track_caller]
    pub fn spawn_on<F, T>(self, runtime: &super::Runtime, f: F) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawn_into(&runtime.shared, f, Location::caller())
    }

    /// Starts `f` on the runtime whose shared state is `runtime`.
    pub(crate) fn spawn_into<F, T>(
        self,
        runtime: &Arc<RuntimeShared>,
        f: F,
        location: &'static Location<'static>,
    ) -> Result<JoinHandle<T>, SpawnError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        finish_spawn(self.queue(runtime, f, location))
    }

    /// Queues `f` on `runtime`, running no code of the caller's: on failure the closure comes
    /// back to be dropped by `finish_spawn`, outside any borrow of the worker.
    fn queue<F, T>(
        self,
        runtime: &Arc<RuntimeShared>,
        f: F,
        location: &'static Location<'static>,
    ) -> Result<JoinHandle<T>, (SpawnError, JoinSlot<F, T>)>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let placement = self.placement;
        let task = new_task(runtime, self, JoinSlot::new(f), location)?;
        let (id, name) = (task.id, task.name.clone());
        // SAFETY: both conversions only unsize, to traits `JoinSlot` implements.
        let (joinable, task) = unsafe {
            (
                task.clone().view::<dyn Joinable<T>>(|task| task),
                task.view::<dyn Body>(|task| task),
            )
        };
        runtime.spawn(task, placement);
        Ok(JoinHandle {
            packet: PacketRef::InTask(joinable),
            id,
            name,
            joined: false,
            marker: PhantomData,
        })
    }
}

/// Ends a spawn outside any borrow of the worker: drops the closure of one that failed, or
/// passes a checkpoint after one that succeeded (a loop that only spawns is a loop through the
/// library: it shares its worker).
fn finish_spawn<H, B>(queued: Result<H, (SpawnError, B)>) -> Result<H, SpawnError> {
    match queued {
        Ok(handle) => {
            crate::checkpoint();
            Ok(handle)
        }
        Err((err, body)) => {
            drop(body);
            Err(err)
        }
    }
}

/// A task for `body` on `runtime`, not yet queued; its stack size checked (else the body
/// comes back with the error).
fn new_task<B: Body>(
    runtime: &Arc<RuntimeShared>,
    builder: Builder,
    body: B,
    location: &'static Location<'static>,
) -> Result<TaskRef<B>, (SpawnError, B)> {
    let stack_size = match builder.stack_size {
        Some(requested) => match runtime.stacks.check_goroutine_stack(requested) {
            Ok(size) => size,
            Err(max) => {
                let err = SpawnError::StackSize {
                    requested,
                    min: MIN_STACK_SIZE,
                    max,
                };
                return Err((err, body));
            }
        },
        None => runtime.stacks.default_size(),
    };
    let stack_size = u32::try_from(stack_size).expect("stack sizes are at most MAX_STACK_SIZE");
    let id = next_goroutine_id();
    if let Some(name) = &builder.name {
        runtime.name_goroutine(id, Arc::clone(name));
    }
    Ok(TaskRef::new(Task::new(
        id,
        builder.name,
        location,
        builder.migratable || runtime.config.all_migratable,
        stack_size,
        RuntimeRef::new(runtime),
        body,
    )))
}

/// Queues a boxed closure as a goroutine on the current runtime (or the default one).
pub(crate) fn spawn_boxed(
    builder: Builder,
    function: BoxedFn,
    location: &'static Location<'static>,
) -> Result<(u64, Option<Arc<str>>), SpawnError> {
    let queued = super::context::with_spawn_target(|runtime| {
        let placement = builder.placement;
        let task = new_task(runtime, builder, BoxedBody::new(function), location)?;
        let (id, name) = (task.id, task.name.clone());
        // SAFETY: the conversion only unsizes, to a trait `BoxedBody` implements.
        runtime.spawn(unsafe { task.view::<dyn Body>(|task| task) }, placement);
        Ok((id, name))
    })?;
    finish_spawn(queued)
}
