//! `kloud hostdb serve`: HostDB over HTTP (axum), with bearer-token auth and blocking queries.
//!
//! The store is synchronous; every call runs on tokio's blocking pool. [`router`] builds the
//! service; [`serve`] runs it on a listener until a shutdown future resolves; [`spawn`] runs it
//! on its own thread (tests, benchmarks, embedding).

mod api;

pub mod auth;
pub mod error;
pub mod limits;
pub mod pages;
pub mod sd;
pub mod tls;
pub mod v1;
pub mod watch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;

pub use crate::hostdb::protocol as api_consts;
use crate::hostdb::store::Store;
pub use limits::Limits;

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Serve reads without a token.
    pub anonymous_read: bool,
    /// Largest accepted request body, in bytes.
    pub max_body: usize,
    /// Longest a blocking query may be held.
    pub max_wait: Duration,
    /// How often to look for writes made by other processes sharing the database.
    pub poll_every: Duration,
    /// Timeouts, connection and held-query caps, page size (see [`limits`]).
    pub limits: Limits,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            anonymous_read: false,
            max_body: 1024 * 1024,
            max_wait: Duration::from_secs(300),
            // A one-row read five times a second; it bounds how late watchers (`sync --watch`
            // over HTTP) see writes made straight into the database by other processes.
            poll_every: Duration::from_millis(200),
            limits: Limits::default(),
        }
    }
}

/// The HTTP service over `store`. Must be called inside a tokio runtime (it starts the poller).
/// Reads the index from the store on this thread: a store that blocks on its own runtime
/// (PostgreSQL) needs [`router_at`] instead.
pub fn router(store: Arc<dyn Store>, config: ServerConfig) -> Router {
    let index = store.index().unwrap_or(0);
    router_at(store, config, index)
}

/// [`router`] starting from `index`, read by the caller outside the runtime.
pub fn router_at(store: Arc<dyn Store>, config: ServerConfig, index: u64) -> Router {
    let notifier = watch::Notifier::new(index);
    let timeout = config.limits.request_timeout;
    with_limits(api::router(store, config, notifier), timeout)
}

/// The request-timeout layer over the routes.
fn with_limits(app: Router, request_timeout: Duration) -> Router {
    app.layer(axum::middleware::from_fn_with_state(
        request_timeout,
        limits::request_timeout,
    ))
}

/// Serve on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Arc<dyn Store>,
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let start = store.clone();
    let index = tokio::task::spawn_blocking(move || start.index())
        .await
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)?;
    let notifier = watch::Notifier::new(index);
    let lim = config.limits.clone();
    let app = with_limits(
        api::router(store, config, notifier.clone()),
        lim.request_timeout,
    );
    limits::serve(listener, app, &lim, async move {
        shutdown.await;
        // Let held queries answer now instead of holding the shutdown for minutes.
        notifier.close();
    })
    .await
}

/// A server running on its own thread; stops when dropped.
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// `http://ADDR`, the URL a client opens.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Start a server on `addr` (port 0 picks a free one) on a new thread with `threads` workers.
pub fn spawn(
    addr: SocketAddr,
    store: Arc<dyn Store>,
    config: ServerConfig,
    threads: usize,
) -> std::io::Result<Running> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?;
    let listener = rt.block_on(tokio::net::TcpListener::bind(addr))?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("hostdb-server".to_string())
        .spawn(move || {
            let _ = rt.block_on(serve(listener, store, config, async {
                let _ = rx.await;
            }));
            rt.shutdown_timeout(Duration::from_secs(2));
        })?;
    Ok(Running {
        addr,
        stop: Some(tx),
        thread: Some(thread),
    })
}
