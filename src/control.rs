//! The process's control thread: background work that must never run on a
//! worker's event loop (JWKS refresh, the admin listener, the Redis link,
//! upstream probes, signals). One thread, `wsguard-control`, with a
//! current-thread tokio runtime of its own; it runs until the [`Control`]
//! is dropped.
//!
//! Tests that run a proxy inside a tokio test runtime pass that runtime's
//! [`tokio::runtime::Handle`] wherever a control handle is taken, so the
//! same background code runs there.

use std::future::Future;
use std::io;
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The thread's name (Linux shows 15 characters).
const THREAD_NAME: &str = "wsguard-control";

/// The control thread; dropping it stops the thread and joins it (tasks
/// still running on it are dropped).
#[derive(Debug)]
pub struct Control {
    /// Its runtime, to spawn on.
    handle: Handle,
    /// Dropped (or sent) to stop the thread.
    stop: Option<oneshot::Sender<()>>,
    /// The thread.
    thread: Option<JoinHandle<()>>,
}

impl Control {
    /// Starts the control thread.
    pub fn start() -> io::Result<Control> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                runtime.block_on(async move {
                    let _ = stopped.await;
                });
            })?;
        Ok(Control {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where background tasks run.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Runs `future` on the control thread and waits for its result from a
    /// thread that is not inside a runtime (start-up: the first key sets).
    pub fn run<F>(&self, future: F) -> io::Result<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (done, result) = std::sync::mpsc::channel();
        self.handle.spawn(async move {
            let _ = done.send(future.await);
        });
        result
            .recv()
            .map_err(|_| io::Error::other("the control thread stopped"))
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_work_on_its_own_thread_and_stops_when_dropped() {
        let control = Control::start().expect("start");
        let name = control
            .run(async { std::thread::current().name().map(str::to_owned) })
            .expect("run");
        assert_eq!(name.as_deref(), Some(THREAD_NAME));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        control.handle().spawn(async move {
            // Never finishes: dropped with the runtime.
            let _tx = tx;
            std::future::pending::<()>().await;
        });
        drop(control);
        assert!(rx.recv().is_err(), "the task was dropped with the thread");
    }
}
