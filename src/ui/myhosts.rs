//! "My hosts": the person's self-service hosts with the offers and the quota left, request /
//! delete / recreate, and the ssh command to copy.
//!
//! The page calls the self-service engine ([`SelfService`], design §10) as the person signed
//! in: the engine decides quotas, placement and ownership (a person can only release or
//! recreate their own hosts), and its error messages are shown as they are. The engine lists
//! every person's hosts to an operator; this page shows the person's own.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Serialize;

use super::authz::{allowed, Action};
use super::session::{post_form, require, Form, Signed};
use super::Ui;
use crate::selfservice::{HostView, OfferView, Person, SelfError, SelfService};

/// The HTTP status of a refused or failed self-service call (as the API answers it).
fn status_of(e: &SelfError) -> StatusCode {
    match e {
        SelfError::QuotaExceeded { .. } => StatusCode::CONFLICT,
        SelfError::UnknownOffer(_) | SelfError::NotFound(_) => StatusCode::NOT_FOUND,
        SelfError::BadName(_) | SelfError::BadKey(_) | SelfError::NoKeys => StatusCode::BAD_REQUEST,
        SelfError::NoCapacity { .. } | SelfError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
        SelfError::Engine(_) | SelfError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn person(who: &Signed) -> Person {
    Person {
        name: who.user.clone(),
        role: who.role,
    }
}

/// An offer row: the offer and how many more the person may have.
#[derive(Serialize)]
struct OfferRow {
    #[serde(flatten)]
    offer: OfferView,
    memory: String,
    disk: String,
    left: u32,
}

/// A host row with the command that logs in to it.
#[derive(Serialize)]
struct HostRow {
    #[serde(flatten)]
    host: HostView,
    ssh: String,
}

/// What the page says after a POST (`?done=…&name=…`).
#[derive(Default)]
pub struct Done {
    done: String,
    name: String,
}

impl Done {
    fn from_query(query: Option<&str>) -> Done {
        let form = Form::parse(query.unwrap_or("").as_bytes());
        Done {
            done: form.get("done").unwrap_or("").to_string(),
            name: form.get("name").unwrap_or("").to_string(),
        }
    }

    /// The notice, when the query names a host (a link cannot put other words on the page).
    fn notice(&self) -> Option<String> {
        let name = self.name.trim();
        let host_name = |n: &str| {
            !n.is_empty()
                && n.len() <= 253
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        };
        if !host_name(name) {
            return None;
        }
        let what = match self.done.as_str() {
            "requested" => "Requested",
            "deleted" => "Deleted",
            "recreated" => "Recreating",
            _ => return None,
        };
        Some(format!("{what} {name}"))
    }
}

/// `GET /ui/my`.
pub async fn page(State(ui): State<Arc<Ui>>, headers: HeaderMap, uri: Uri) -> Response {
    let done = Done::from_query(uri.query());
    match require(&ui, &headers, &uri).await {
        Ok(who) => render(&ui, &who, StatusCode::OK, done.notice(), None).await,
        Err(resp) => resp,
    }
}

/// The page with a notice or an error above it.
async fn render(
    ui: &Ui,
    who: &Signed,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let base = context! {
        title => "My hosts", me => who, nav => "my", notice, error,
        reader => allowed(who.role, Action::ReadFleet),
    };
    let Some(svc) = ui.selfservice.as_ref() else {
        let ctx = context! { configured => false, offers => Vec::<()>::new(), hosts => Vec::<()>::new(), ..base };
        return ui.page(status, "my.html", ctx);
    };
    let p = person(who);
    let (offers, hosts) = match (svc.offers(&p).await, svc.list(&p).await) {
        (Ok(o), Ok(h)) => (o, h),
        (Err(e), _) | (_, Err(e)) => {
            return super::pages::error(
                ui,
                status_of(&e),
                "Self-service cannot answer",
                &e.to_string(),
                Some(who),
            )
        }
    };
    let offers: Vec<OfferRow> = offers
        .into_iter()
        .map(|o| OfferRow {
            memory: crate::size::format_mib(o.memory_mib),
            disk: crate::size::format_gib(o.disk_gib),
            left: o.per_user.saturating_sub(o.used),
            offer: o,
        })
        .collect();
    let owner = p.owner();
    let hosts: Vec<HostRow> = hosts
        .into_iter()
        .filter(|h| h.owner == owner)
        .map(|h| HostRow {
            ssh: format!("ssh {}@{}", h.user, h.ip.as_deref().unwrap_or(&h.name)),
            host: h,
        })
        .collect();
    let ctx = context! { configured => true, offers, hosts, ..base };
    ui.page(status, "my.html", ctx)
}

/// After a change: back to the page, saying what was done.
fn done(what: &str, name: &str) -> Response {
    let name: String = form_urlencoded::byte_serialize(name.as_bytes()).collect();
    Redirect::to(&format!("/ui/my?done={what}&name={name}")).into_response()
}

/// The self-service engine, or the page saying there is none.
async fn engine<'a>(ui: &'a Ui, who: &Signed) -> Result<&'a Arc<SelfService>, Response> {
    match ui.selfservice.as_ref() {
        Some(s) if allowed(who.role, Action::SelfService) => Ok(s),
        Some(_) => Err(super::pages::forbidden(ui, who)),
        None => Err(render(
            ui,
            who,
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            Some("self-service is not configured on this server".into()),
        )
        .await),
    }
}

/// `POST /ui/my/request` (`offer`, optional `ssh_keys`, one per line).
pub async fn request(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    uri: Uri,
    body: axum::body::Bytes,
) -> Response {
    let (who, form) = match post_form(&ui, &headers, &uri, &body).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let svc = match engine(&ui, &who).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let offer = form.get("offer").unwrap_or("").to_string();
    let keys: Vec<String> = form
        .get("ssh_keys")
        .unwrap_or("")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    match svc.request(&person(&who), &offer, keys).await {
        Ok(h) => done("requested", &h.name),
        Err(e) => render(&ui, &who, status_of(&e), None, Some(e.to_string())).await,
    }
}

/// `POST /ui/my/{name}/delete`.
pub async fn delete(
    State(ui): State<Arc<Ui>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: axum::body::Bytes,
) -> Response {
    let (who, _) = match post_form(&ui, &headers, &uri, &body).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let svc = match engine(&ui, &who).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    match svc.release(&person(&who), &name).await {
        Ok(_) => done("deleted", &name),
        Err(e) => render(&ui, &who, status_of(&e), None, Some(e.to_string())).await,
    }
}

/// `POST /ui/my/{name}/recreate`.
pub async fn recreate(
    State(ui): State<Arc<Ui>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: axum::body::Bytes,
) -> Response {
    let (who, _) = match post_form(&ui, &headers, &uri, &body).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let svc = match engine(&ui, &who).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    match svc.recreate(&person(&who), &name).await {
        Ok(h) => done("recreated", &h.name),
        Err(e) => render(&ui, &who, status_of(&e), None, Some(e.to_string())).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_name_only_hosts() {
        let done = |d: &str, n: &str| {
            Done {
                done: d.into(),
                name: n.into(),
            }
            .notice()
        };
        assert_eq!(
            done("requested", "small-carol-1.qs").as_deref(),
            Some("Requested small-carol-1.qs")
        );
        assert_eq!(done("deleted", "your account is locked, call 555"), None);
        assert_eq!(done("other", "a"), None);
    }
}
