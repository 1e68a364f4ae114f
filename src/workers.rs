//! nginx-style workers: `N` OS threads, each running its own single-threaded
//! tokio runtime and [`crate::listener::run`] on a clone of one listening
//! socket. The kernel hands each new connection to one worker's `accept`;
//! the connection (its HTTP serving, session task and upstream socket) then
//! lives on that worker only. There is no work stealing and no cross-thread
//! wake-up on the relay path.
//!
//! Shutdown: [`serve`] awaits the one shutdown future on the calling thread
//! and broadcasts it to every worker; a worker that ends for any other reason
//! (a setup error, a panic) stops the others too.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;

use crate::process::{Local, Process};
use crate::proxy::Proxy;

/// Pending connections the kernel queues before `accept` (the value tokio's
/// own `TcpListener::bind` uses; the kernel caps it at `net.core.somaxconn`).
pub const LISTEN_BACKLOG: i32 = 1024;

/// The workers' thread names are this prefix and the worker's index.
pub const THREAD_NAME_PREFIX: &str = "wsguard-w";

/// Binds `count` listening TCP sockets to `addr`, one per worker, with
/// `SO_REUSEPORT` so that the kernel spreads new connections evenly over
/// the workers (one shared socket would give each connection to whichever
/// worker wakes first, which can load one worker with most of them). Each
/// socket is bound as tokio's `TcpListener::bind` would (`SO_REUSEADDR`, a
/// backlog of [`LISTEN_BACKLOG`]; `std::net::TcpListener::bind` would queue
/// only 128). With port 0 the first socket picks the port and the others
/// join it.
///
/// `SO_REUSEPORT` would also let a second wsguard (or anything else of the
/// same user setting it) silently share a fixed port and take part of the
/// connections; so the address is first bound once without it, which fails
/// with `AddrInUse` while anyone listens there.
pub fn bind(addr: SocketAddr, count: usize) -> io::Result<Vec<std::net::TcpListener>> {
    if addr.port() != 0 {
        drop(tcp_socket(addr, false)?);
    }
    let mut listeners: Vec<std::net::TcpListener> = Vec::with_capacity(count.max(1));
    let mut addr = addr;
    for _ in 0..count.max(1) {
        let socket = tcp_socket(addr, true)?;
        socket.listen(LISTEN_BACKLOG)?;
        let listener: std::net::TcpListener = socket.into();
        addr = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// A TCP socket bound to `addr` with `SO_REUSEADDR` (as tokio binds) and,
/// when asked, `SO_REUSEPORT`.
fn tcp_socket(addr: SocketAddr, reuse_port: bool) -> io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    #[cfg(not(all(unix, not(any(target_os = "solaris", target_os = "illumos")))))]
    let _ = reuse_port;
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// One worker per CPU the process may use (1 when that cannot be told).
pub fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Serves connections from `listeners` on `workers` independent
/// single-threaded event loops until `shutdown` completes. Worker `i` accepts
/// from `listeners[i]` (see [`bind`]); workers beyond the listeners given
/// share a clone of the first.
///
/// Starts threads named `wsguard-w0` … `wsguard-w{workers-1}` (short enough for the 15 characters Linux shows),
/// each with a current-thread tokio runtime running [`crate::listener::run`]
/// on its listening socket. `shutdown` is awaited on the calling
/// thread (in a small current-thread runtime of its own, so it may use
/// timers and signals, e.g. `tokio::signal::ctrl_c()`). Returns once every
/// worker's accept loop has returned and its thread has been joined; the
/// connections still open are dropped with their worker's runtime.
///
/// Errors: `workers` is 0, no listener is given, a listener clone or a runtime could not be made,
/// or a worker panicked. Blocks the calling thread, so it must not be called
/// from inside an async runtime.
pub fn serve(
    listeners: Vec<std::net::TcpListener>,
    proxy: Arc<Proxy>,
    process: Arc<Process>,
    header_read_timeout: Duration,
    workers: usize,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    if workers == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "at least one worker is needed",
        ));
    }
    let mut own = listeners.into_iter();
    let Some(first) = own.next() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "at least one listening socket is needed",
        ));
    };
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (stop, stopped) = watch::channel(false);
    let stop = StopOnDrop(stop);
    let mut threads = Vec::with_capacity(workers);
    for index in 0..workers {
        let socket = match index {
            0 => first.try_clone(),
            _ => own.next().map_or_else(|| first.try_clone(), Ok),
        };
        let started = socket.and_then(|listener| {
            let worker = Worker {
                index,
                listener,
                proxy: proxy.clone(),
                local: process.local(index),
                header_read_timeout,
                stop: StopOnDrop(stop.0.clone()),
                stopped: stopped.clone(),
            };
            std::thread::Builder::new()
                .name(format!("{THREAD_NAME_PREFIX}{index}"))
                .spawn(move || worker.run())
        });
        match started {
            Ok(thread) => threads.push(thread),
            Err(e) => {
                stop.stop();
                let _ = join(threads);
                return Err(e);
            }
        }
    }
    drop(first);
    let mut any_stopped = stopped;
    control.block_on(async {
        tokio::select! {
            () = shutdown => {}
            // A worker ended on its own (setup error or panic).
            _ = any_stopped.wait_for(|stop| *stop) => {}
        }
    });
    stop.stop();
    drop(control);
    join(threads)
}

/// Joins every worker thread; the first error (or panic) is the result.
fn join(threads: Vec<JoinHandle<io::Result<()>>>) -> io::Result<()> {
    let mut result = Ok(());
    for (index, thread) in threads.into_iter().enumerate() {
        let ended = thread.join().unwrap_or_else(|_| {
            Err(io::Error::other(format!(
                "{THREAD_NAME_PREFIX}{index} panicked"
            )))
        });
        if let (Ok(()), Err(e)) = (&result, ended) {
            result = Err(e);
        }
    }
    result
}

/// Broadcasts the stop to every worker when told to, or when dropped
/// (a worker's copy is dropped however its thread ends, panics included).
struct StopOnDrop(
    /// The channel every worker (and `serve`) watches.
    watch::Sender<bool>,
);

impl StopOnDrop {
    fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What one worker thread owns.
struct Worker {
    /// Its number, from 0 (also in its thread name).
    index: usize,
    /// Its listening socket.
    listener: std::net::TcpListener,
    /// The shared proxy state.
    proxy: Arc<Proxy>,
    /// The process-owned state, with its shard of the registry of live connections.
    local: Local,
    /// Passed to [`crate::listener::run`].
    header_read_timeout: Duration,
    /// Stops the other workers when this one ends, however it ends.
    stop: StopOnDrop,
    /// Becomes `true` when the workers are to stop.
    stopped: watch::Receiver<bool>,
}

impl Worker {
    /// The thread's body: a current-thread runtime running the accept loop
    /// until the stop is broadcast.
    fn run(self) -> io::Result<()> {
        let Worker {
            index,
            listener,
            proxy,
            local,
            header_read_timeout,
            stop: _stop,
            mut stopped,
        } = self;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            tracing::debug!(worker = index, "worker accepting");
            let mut stop = stopped.clone();
            crate::listener::run(listener, proxy, local, header_read_timeout, async move {
                let _ = stop.wait_for(|stop| *stop).await;
            })
            .await;
            // Draining: the listening socket is closed; the connections go
            // on until the stop.
            let _ = stopped.wait_for(|stop| *stop).await;
            Ok(())
        })
    }
}
