//! Where an idle worker waits: in the runtime's driver when one is installed (an I/O poller),
//! else by parking its thread; and how others end that wait.

use std::any::Any;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use super::{RuntimeShared, WorkerLocal};
use crate::driver::Driver;

/// The runtime's driver, once installed: as the trait the workers call, and as `Any` for
/// `driver::install` to hand it back to the library that installed it.
pub(crate) struct InstalledDriver {
    pub(crate) driver: Arc<dyn Driver>,
    any: Arc<dyn Any + Send + Sync>,
}

impl InstalledDriver {
    pub(crate) fn new<D: Driver>(driver: D) -> Self {
        let driver = Arc::new(driver);
        InstalledDriver {
            driver: Arc::clone(&driver) as Arc<dyn Driver>,
            any: driver,
        }
    }

    pub(crate) fn downcast<D: Driver>(&self) -> Option<Arc<D>> {
        Arc::clone(&self.any).downcast::<D>().ok()
    }
}

impl RuntimeShared {
    /// Ends worker `index`'s wait, wherever it waits: its thread's park, or its driver.
    pub(crate) fn unpark_worker(&self, index: usize) {
        if let Some(thread) = self.workers[index].thread.get() {
            thread.unpark();
        }
        if let Some(installed) = self.driver.get() {
            installed.driver.wake(index);
        }
    }

    /// Installs the driver `make` builds, unless one is installed already; returns the
    /// runtime's driver. Workers asleep in their thread's park are woken, so that their next
    /// wait is in the driver.
    pub(crate) fn install_driver<D: Driver, E>(
        &self,
        make: impl FnOnce(usize) -> Result<D, E>,
    ) -> Result<&InstalledDriver, E> {
        if let Some(installed) = self.driver.get() {
            return Ok(installed);
        }
        let _installing = self
            .driver_installing
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(installed) = self.driver.get() {
            return Ok(installed);
        }
        let driver = make(self.workers.len())?;
        let installed = self.driver.get_or_init(|| InstalledDriver::new(driver));
        // A worker about to wait may have been unparked through its thread just before the
        // driver came (its waker saw none), and then wait in the driver: wake it both ways.
        for index in 0..self.workers.len() {
            self.unpark_worker(index);
        }
        Ok(installed)
    }
}

impl WorkerLocal {
    /// Waits, with nothing to run, until woken or until `deadline`.
    pub(crate) fn wait_idle(&self, deadline: Option<Instant>) {
        match self.shared.driver.get() {
            Some(installed) => {
                let timeout = deadline.map(|at| at.saturating_duration_since(Instant::now()));
                installed.driver.wait(self.index, timeout);
            }
            None => match deadline {
                Some(at) => thread::park_timeout(at.saturating_duration_since(Instant::now())),
                None => thread::park(),
            },
        }
    }

    /// Lets the driver handle what is ready without waiting: a busy worker's look, now and
    /// then, at what its idle wait would have found.
    #[inline]
    pub(crate) fn poll_driver(&self) {
        if let Some(installed) = self.shared.driver.get() {
            installed.driver.poll(self.index);
        }
    }
}
