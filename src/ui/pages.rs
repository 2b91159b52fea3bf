//! The small pages: `/ui/` (where a person starts), the tags page, and error pages.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Serialize;

use super::authz::{allowed, Action};
use super::session::{require, Signed};
use super::Ui;
use crate::hostdb::StoreError;

/// `GET /ui` → `/ui/`.
pub async fn to_index() -> Redirect {
    Redirect::permanent("/ui/")
}

/// `GET /ui/`: the fleet for those who may read it, "my hosts" for everyone else.
pub async fn index(State(ui): State<Arc<Ui>>, headers: HeaderMap, uri: Uri) -> Response {
    match require(&ui, &headers, &uri).await {
        Ok(who) if allowed(who.role, Action::ReadFleet) => {
            Redirect::to("/ui/fleet").into_response()
        }
        Ok(_) => Redirect::to("/ui/my").into_response(),
        Err(resp) => resp,
    }
}

/// An error page (with the navigation when someone is signed in).
pub fn error(
    ui: &Ui,
    status: StatusCode,
    title: &str,
    message: &str,
    who: Option<&Signed>,
) -> Response {
    ui.page(
        status,
        "error.html",
        context! { title, message, me => who, nav => "", status => status.as_u16() },
    )
}

/// The 403 page of a role that may not see a page.
pub fn forbidden(ui: &Ui, who: &Signed) -> Response {
    error(
        ui,
        StatusCode::FORBIDDEN,
        "Not for your role",
        &format!(
            "Role `{}` may use self-service only: see your hosts under \"My hosts\"",
            who.role.as_str()
        ),
        Some(who),
    )
}

/// The error page of a store failure.
pub fn store_error(ui: &Ui, e: StoreError, who: &Signed) -> Response {
    error(
        ui,
        StatusCode::SERVICE_UNAVAILABLE,
        "HostDB cannot answer",
        &e.to_string(),
        Some(who),
    )
}

/// Run a store call on the blocking pool.
pub async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, StoreError> + Send + 'static,
) -> Result<R, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
}

/// One row of the tags page.
#[derive(Serialize)]
struct TagRow {
    name: String,
    parents: Vec<String>,
    properties: Vec<(String, String)>,
}

/// `GET /ui/tags`: every tag with its parents and properties, each linking to its members in
/// the fleet.
pub async fn tags(State(ui): State<Arc<Ui>>, headers: HeaderMap, uri: Uri) -> Response {
    let who = match require(&ui, &headers, &uri).await {
        Ok(w) => w,
        Err(resp) => return resp,
    };
    if !allowed(who.role, Action::ReadFleet) {
        return forbidden(&ui, &who);
    }
    let store = ui.store.clone();
    let tags = match blocking(move || store.list_tags()).await {
        Ok(t) => t,
        Err(e) => return store_error(&ui, e, &who),
    };
    let rows: Vec<TagRow> = tags
        .into_iter()
        .map(|t| TagRow {
            name: t.name,
            parents: t.tags,
            properties: t
                .properties
                .iter()
                .map(|(k, v)| (k.clone(), super::host::show_value(v)))
                .collect(),
        })
        .collect();
    ui.page(
        StatusCode::OK,
        "tags.html",
        context! { title => "Tags", me => who, nav => "tags", tags => rows },
    )
}
