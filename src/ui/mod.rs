//! The web UI at `/ui/` (design §10): sign-in, the fleet, the machine map, host and tag pages,
//! "my hosts" (self-service), following HostDB live.
//!
//! Server-rendered: every page is a minijinja template compiled into the binary
//! ([`render`]); the CSS and the one small script are served from the binary too
//! ([`assets`]). Pages read without JavaScript; with it, the part of a page marked `#live` is
//! fetched again whenever HostDB changes (server-sent events from `/ui/events`, [`events`]).
//!
//! Every route but the sign-in form and the static files needs a session ([`session`]): the
//! cookie `kloud_session` holds a HostDB session token (HttpOnly, SameSite=Strict, Secure
//! when served over TLS). Every form carries a CSRF token derived from the session and every
//! POST checks it. Every answer carries a strict Content-Security-Policy (no inline script or
//! style). What a role may see or do is one table ([`authz`]).

pub mod assets;
pub mod authz;
pub mod events;
pub mod fleet;
pub mod host;
pub mod map;
pub mod myhosts;
pub mod pages;
pub mod render;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue};
use axum::routing::{get, post};
use axum::Router;

use crate::hostdb::Store;
use crate::identity::Identity;
use crate::selfservice::SelfService;
use crate::server::watch::Notifier;

/// The Content-Security-Policy of every answer under `/ui/`: only this origin's script, style
/// and images, no inline code, no framing, forms posting only here.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// How often the UI looks at the store's index to tell pages that HostDB changed.
pub const POLL_EVERY: Duration = Duration::from_millis(200);

/// Settings of the UI.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Served over TLS: the session cookie gets `Secure`.
    pub tls: bool,
    /// The HostDB index to start from, read by the caller outside the runtime (PostgreSQL's
    /// client blocks on a runtime of its own); `None` reads it here.
    pub index: Option<u64>,
}

/// What every UI route shares.
pub struct Ui {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) identity: Arc<Identity>,
    pub(crate) selfservice: Option<Arc<SelfService>>,
    pub(crate) options: Options,
    pub(crate) notifier: Notifier,
    pub(crate) closing: tokio::sync::watch::Sender<bool>,
    pub(crate) map_cache: map::Cache,
    pub(crate) templates: render::Templates,
}

/// Ends the UI's live streams (server-sent events) so a graceful shutdown does not wait for
/// them.
#[derive(Clone)]
pub struct Closer(tokio::sync::watch::Sender<bool>);

impl Closer {
    pub fn close(&self) {
        let _ = self.0.send(true);
    }
}

impl Ui {
    /// The UI over `store`. Must be called inside a tokio runtime (it starts the index poller).
    /// Without `selfservice` the "my hosts" page says self-service is not configured.
    pub fn new(
        store: Arc<dyn Store>,
        identity: Arc<Identity>,
        selfservice: Option<Arc<SelfService>>,
        options: Options,
    ) -> Arc<Ui> {
        let index = options.index.unwrap_or_else(|| store.index().unwrap_or(0));
        let notifier = Notifier::new(index);
        notifier.spawn_poller(store.clone(), POLL_EVERY);
        let (closing, _) = tokio::sync::watch::channel(false);
        Arc::new(Ui {
            store,
            identity,
            selfservice,
            options,
            notifier,
            closing,
            map_cache: map::Cache::default(),
            templates: render::Templates::new(),
        })
    }

    /// A page, stamped with the HostDB index it was drawn at (`<body data-index>`): a page
    /// whose event stream starts at a later index knows it missed a change.
    pub(crate) fn page(
        &self,
        status: axum::http::StatusCode,
        name: &str,
        ctx: impl serde::Serialize,
    ) -> axum::response::Response {
        let ctx = minijinja::Value::from_serialize(ctx);
        let index = self.notifier.index();
        self.templates
            .page(status, name, minijinja::context! { index, ..ctx })
    }

    /// What ends the live streams at shutdown.
    pub fn closer(&self) -> Closer {
        Closer(self.closing.clone())
    }
}

/// The routes under `/ui/`, for `kloud serve` to merge.
pub fn router(ui: Arc<Ui>) -> Router {
    Router::new()
        .route("/ui", get(pages::to_index))
        .route("/ui/", get(pages::index))
        .route("/ui/login", get(session::login_form).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/fleet", get(fleet::page))
        .route("/ui/map", get(map::page))
        .route("/ui/hosts/{name}", get(host::page))
        .route("/ui/tags", get(pages::tags))
        .route("/ui/my", get(myhosts::page))
        .route("/ui/my/request", post(myhosts::request))
        .route("/ui/my/{name}/delete", post(myhosts::delete))
        .route("/ui/my/{name}/recreate", post(myhosts::recreate))
        .route("/ui/events", get(events::stream))
        .route("/ui/static/{file}", get(assets::serve))
        .with_state(ui)
        .layer(axum::middleware::map_response(security_headers))
}

/// The headers every UI answer carries.
async fn security_headers(mut resp: axum::response::Response) -> axum::response::Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}
