//! The server's limits: how long a client may take, how many may connect, how many blocking
//! queries may be held, and the accept loop that enforces them.
//!
//! - **header read** — a connection must send a request's headers within
//!   [`Limits::header_read_timeout`] of opening or of its previous answer (hyper starts the
//!   timer whenever it waits for a request head), so a slow or idle client is closed before it
//!   is authenticated; this is also the keep-alive idle limit.
//! - **request** — a call that is not a blocking query is answered within
//!   [`Limits::request_timeout`] (else `503 timeout`), its body upload included.
//! - **connections** — at most [`Limits::max_connections`] are served; more wait in the
//!   kernel's accept queue until one closes.
//! - **held queries** — at most [`Limits::max_held`] blocking queries (`?index=N`) are held at
//!   once; one more is answered `503 too_many_watchers`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;

/// The server's limits; see the module docs. Every field has a default fit for a few
/// thousand watchers on a small machine.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest wait for a request's headers (first request and between keep-alive requests).
    pub header_read_timeout: Duration,
    /// Longest a call that is not a blocking query may take.
    pub request_timeout: Duration,
    /// Connections served at once; more queue in the accept backlog.
    pub max_connections: usize,
    /// Blocking queries held at once; more are refused with 503.
    pub max_held: usize,
    /// Most items one list answer holds (`limit` above it is refused; lists page with `after`).
    pub page_limit: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 8192,
            max_held: 4096,
            page_limit: 1000,
        }
    }
}

/// The permits for held blocking queries.
#[derive(Clone)]
pub struct HeldQueries {
    permits: Arc<Semaphore>,
}

impl HeldQueries {
    pub fn new(max: usize) -> HeldQueries {
        HeldQueries {
            permits: Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))),
        }
    }

    /// A permit to hold one query, or the 503 that says there are too many.
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.permits.clone().try_acquire_owned().map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_watchers",
                "the server holds as many blocking queries as it may; retry later or poll",
            )
        })
    }
}

/// Middleware: answer `503 timeout` when a call that is not a blocking query takes longer
/// than `limit`. A write cut off this way may still commit: the message says to read first.
pub async fn request_timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    let blocking = req
        .uri()
        .query()
        .is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "index"));
    if blocking {
        return next.run(req).await;
    }
    let write = !matches!(req.method().as_str(), "GET" | "HEAD");
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            let msg = if write {
                format!("not answered within {limit:?}; the write may still be made: read before retrying")
            } else {
                format!("not answered within {limit:?}")
            };
            // A 503 carries `Retry-After` (see `error`).
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", msg).into_response()
        }
    }
}

/// Accept connections on `listener` and serve `app` on each under `limits`, until `shutdown`
/// resolves; then stop accepting, let open connections finish their current request, and
/// return when they have.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: &Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.map_err(std::io::Error::other)?,
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of descriptors or the like: wait a little rather than spin.
                Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        tasks.spawn(connection(
            stream,
            app.clone(),
            limits.header_read_timeout,
            stop_rx.clone(),
            permit,
        ));
        // Reap finished connections so the set stays the size of the open ones.
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Serve one connection (HTTP/1.1 with keep-alive) until it closes or the server stops.
async fn connection(
    stream: tokio::net::TcpStream,
    app: Router,
    header_read_timeout: Duration,
    mut stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Some(header_read_timeout))
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = stop.wait_for(|s| *s) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}
