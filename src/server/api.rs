//! The routes of the HostDB HTTP API (`/v1/...`); `schema/hostdb.openapi.yaml` describes them.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::auth::{authorize, Caller, TokenCache};
use super::error::{json_errors, ApiError};
use super::pages;
use super::sd::{prometheus_body, PrometheusQuery, PROMETHEUS_PARAMS};
use super::watch::{self, Covers, Notifier};
use super::ServerConfig;
use crate::hostdb::error::StoreError;
use crate::hostdb::model::{Actor, Expect, Host, HostQuery, Kind, Lease, Role, Tag, Write};
use crate::hostdb::protocol::{
    ACTOR_HEADER, DEFAULT_LIMIT, INDEX_HEADER, MAX_LIMIT, MESSAGE_HEADER,
};
use crate::hostdb::store::Store;
use crate::hostdb::util::parse_duration;

/// How long a blocking query is held when `index` is given without `wait`.
const DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// One read of a host shared by every held query answered at the same index, so a write
/// seen by a thousand watchers of one host costs one store read, not a thousand.
type SharedReads = std::sync::Mutex<
    std::collections::HashMap<(String, u64), Arc<tokio::sync::OnceCell<Option<Host>>>>,
>;

/// Shared reads kept before the table is cleared (entries are only useful for an instant).
const MAX_SHARED_READS: usize = 1024;

#[derive(Clone)]
struct AppState {
    store: Arc<dyn Store>,
    config: Arc<ServerConfig>,
    notifier: Notifier,
    tokens: Arc<TokenCache>,
    shared: Arc<SharedReads>,
    held: super::limits::HeldQueries,
}

pub(super) fn router(store: Arc<dyn Store>, config: ServerConfig, notifier: Notifier) -> Router {
    notifier.spawn_poller(store.clone(), config.poll_every);
    let max_body = config.max_body;
    let held = super::limits::HeldQueries::new(config.limits.max_held);
    let state = AppState {
        store,
        config: Arc::new(config),
        notifier,
        tokens: Arc::new(TokenCache::default()),
        shared: Arc::new(SharedReads::default()),
        held,
    };
    Router::new()
        .route("/v1/index", get(get_index))
        .route("/v1/whoami", get(whoami))
        .route("/v1/hosts", get(list_hosts))
        .route(
            "/v1/hosts/{name}",
            get(get_host).put(put_host).delete(delete_host),
        )
        .route("/v1/hosts/{name}/config", get(get_config))
        .route("/v1/tags", get(list_tags))
        .route(
            "/v1/tags/{name}",
            get(get_tag).put(put_tag).delete(delete_tag),
        )
        .route("/v1/tags/{name}/members", get(get_members))
        .route("/v1/history/{name}", get(get_history))
        .route("/v1/txn", post(post_txn))
        .route("/v1/snapshot", get(get_snapshot))
        .route("/v1/ips", get(get_ips))
        .route("/v1/sd/prometheus", get(get_prometheus_sd))
        .route("/v1/locks", get(list_locks))
        .route(
            "/v1/locks/{name}",
            post(acquire_lock).put(renew_lock).delete(release_lock),
        )
        .route("/v1/leases/{id}", delete(force_release))
        .route("/v1/tokens", get(list_tokens).post(create_token))
        .route("/v1/tokens/{id}", delete(delete_token))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(json_errors))
        .with_state(state)
}

/// A JSON body whose rejections (syntax, types, unknown fields, size) are API errors.
struct ApiJson<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rej) => {
                let status = rej.status();
                let code = match status.as_u16() {
                    413 => "body_too_large",
                    415 => "unsupported_media_type",
                    422 => "invalid",
                    _ => "bad_request",
                };
                Err(ApiError::new(status, code, rej.body_text()))
            }
        }
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
}

impl AppState {
    async fn auth(&self, headers: &HeaderMap, need: Role) -> Result<Caller, ApiError> {
        authorize(
            &self.store,
            &self.tokens,
            headers,
            need,
            self.config.anonymous_read,
        )
        .await
    }

    /// The preamble of every read: a reader's token, the query parameters (those in `allowed`
    /// and the blocking-query ones, in order) and the blocking-query arguments.
    async fn read(
        &self,
        headers: &HeaderMap,
        query: Option<String>,
        allowed: &[&str],
    ) -> Result<(Vec<(String, String)>, WatchArgs), ApiError> {
        self.auth(headers, Role::Reader).await?;
        let allowed: Vec<&str> = allowed.iter().chain(&WATCH).copied().collect();
        let p = params(query, &allowed)?;
        let mut w = watch_args(&p, self.config.max_wait)?;
        if w.index.is_some() {
            w.held = Some(self.held.admit()?);
        }
        Ok((p, w))
    }

    /// Run a store call on the blocking pool.
    async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, ApiError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&*store))
            .await
            .map_err(internal)?
            .map_err(ApiError::from)
    }

    /// Hold a blocking query until what it covers changes (see [`watch`]).
    async fn hold(&self, w: &WatchArgs, object: Option<&str>) {
        let Some(index) = w.index else { return };
        let covers = match object {
            Some(o) => Covers::Object(o),
            None => Covers::Anything,
        };
        let obj = object.map(str::to_string);
        let store = self.store.clone();
        watch::wait(&self.notifier, index, w.wait, covers, move |after| {
            let store = store.clone();
            let obj = obj.clone();
            async move {
                let Some(obj) = obj else { return true };
                tokio::task::spawn_blocking(move || store.last_change(&obj).map(|c| c > after))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    // On a store error, answer rather than hold: the read reports the error.
                    .unwrap_or(true)
            }
        })
        .await;
    }

    /// The host as of (at least) `index`, read once for all held queries answered together.
    async fn shared_host(&self, name: &str, index: u64) -> Result<Option<Host>, ApiError> {
        let cell = {
            let mut map = self.shared.lock().map_err(internal)?;
            if map.len() >= MAX_SHARED_READS {
                map.clear();
            }
            map.entry((name.to_string(), index)).or_default().clone()
        };
        let n = name.to_string();
        cell.get_or_try_init(|| self.run(move |s| s.get_host(&n)))
            .await
            .cloned()
    }

    /// The preamble of a write to the object named `path` in the URL: an operator's token; a
    /// body that names another object is refused; then the `If-Match`/`If-None-Match`
    /// precondition and who writes (in that order, which is the order errors are reported in).
    async fn writing(
        &self,
        headers: &HeaderMap,
        path: &str,
        body: Option<&str>,
    ) -> Result<Writing, ApiError> {
        let caller = self.auth(headers, Role::Operator).await?;
        if let Some(body) = body.filter(|b| *b != path) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!("the body names `{body}` but the path `{path}`"),
            ));
        }
        let (expect, from_header) = expect_from(headers)?;
        Ok(Writing {
            expect,
            from_header,
            actor: actor_from(headers, &caller),
            scope: caller.scope(),
        })
    }

    /// Run the write of `name` that `write` makes, wake held queries, answer with its index.
    /// A conflict on a precondition sent as a header is `412 Precondition Failed`.
    async fn written(
        &self,
        name: String,
        from_header: bool,
        write: impl FnOnce(&dyn Store) -> Result<u64, StoreError> + Send + 'static,
    ) -> Result<Response, ApiError> {
        let index = self
            .run(write)
            .await
            .map_err(|e| precondition(e, from_header))?;
        self.published(index, [name]);
        Ok(with_index(index, Json(IndexBody { index })))
    }

    /// A delete without a precondition of an object that is not there is `404`.
    async fn must_exist(
        &self,
        name: &str,
        expect: Expect,
        exists: impl FnOnce(&dyn Store) -> Result<bool, StoreError> + Send + 'static,
    ) -> Result<(), ApiError> {
        if expect == Expect::Any && !self.run(exists).await? {
            return Err(ApiError::not_found(name));
        }
        Ok(())
    }

    /// Record a write's index and objects for held queries.
    fn published(&self, index: u64, objects: impl IntoIterator<Item = String>) -> u64 {
        self.notifier
            .publish(index, Some(objects.into_iter().collect::<BTreeSet<_>>()));
        index
    }
}

/// Query parameters in order; names outside `allowed` are rejected.
fn params(raw: Option<String>, allowed: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let raw = raw.unwrap_or_default();
    let mut out = Vec::new();
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        if !allowed.contains(&k.as_ref()) {
            return Err(ApiError::bad_request(format!(
                "unknown query parameter `{}`; expected one of: {}",
                k.escape_default(),
                allowed.join(", ")
            )));
        }
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(out)
}

fn single<'a>(p: &'a [(String, String)], key: &str) -> Result<Option<&'a str>, ApiError> {
    let mut found = p.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let first = found.next();
    if found.next().is_some() {
        return Err(ApiError::bad_request(format!(
            "`{key}` given more than once"
        )));
    }
    Ok(first)
}

struct WatchArgs {
    index: Option<u64>,
    wait: Duration,
    /// The permit a held query keeps until it is answered (see `limits::HeldQueries`).
    held: Option<tokio::sync::OwnedSemaphorePermit>,
}

const WATCH: [&str; 2] = ["index", "wait"];

fn watch_args(p: &[(String, String)], max: Duration) -> Result<WatchArgs, ApiError> {
    let index = single(p, "index")?
        .map(|s| {
            s.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("`index` must be a non-negative integer, got `{s}`"))
            })
        })
        .transpose()?;
    let wait = single(p, "wait")?
        .map(|s| {
            parse_duration(s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "`wait` must be a duration such as `30s`, `500ms` or `5m`, got `{s}`"
                ))
            })
        })
        .transpose()?
        .unwrap_or(DEFAULT_WAIT)
        .min(max);
    Ok(WatchArgs {
        index,
        wait,
        held: None,
    })
}

fn with_index(index: u64, body: impl IntoResponse) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(INDEX_HEADER, HeaderValue::from(index));
    resp
}

/// The compare-and-set condition of `If-Match: "N"` / `If-None-Match: *`.
fn expect_from(headers: &HeaderMap) -> Result<(Expect, bool), ApiError> {
    if let Some(v) = headers.get("if-none-match") {
        return match v.to_str().map(str::trim) {
            Ok("*") => Ok((Expect::Absent, true)),
            _ => Err(ApiError::bad_request("`If-None-Match` must be `*`")),
        };
    }
    if let Some(v) = headers.get("if-match") {
        let s = v.to_str().unwrap_or("").trim();
        let s = s.strip_prefix("W/").unwrap_or(s).trim_matches('"');
        return s
            .parse::<u64>()
            .map(|i| (Expect::Index(i), true))
            .map_err(|_| ApiError::bad_request("`If-Match` must be an index such as `\"42\"`"));
    }
    Ok((Expect::Any, false))
}

/// A failed `If-Match` is 412; a failed compare-and-set inside a transaction stays 409.
fn precondition(e: ApiError, from_header: bool) -> ApiError {
    if from_header && e.code == "conflict" {
        ApiError {
            status: StatusCode::PRECONDITION_FAILED,
            ..e
        }
    } else {
        e
    }
}

fn actor_from(headers: &HeaderMap, caller: &Caller) -> Actor {
    let header = |h: &str| {
        headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let name = match header(ACTOR_HEADER) {
        Some(a) if a != caller.name() => format!("{a} (token {})", caller.name()),
        _ => caller.name().to_string(),
    };
    Actor {
        name,
        message: header(MESSAGE_HEADER),
    }
}

async fn whoami(State(st): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    match st.auth(&headers, Role::Reader).await? {
        Caller::Token(info) => Ok(Json(info).into_response()),
        Caller::Anonymous => Err(super::auth::unauthorized("no token given")),
    }
}

#[derive(Serialize)]
struct IndexBody {
    index: u64,
}

/// What a write to one object needs from its request.
struct Writing {
    expect: Expect,
    /// The precondition came from a header (a conflict is then 412, not 409).
    from_header: bool,
    actor: Actor,
    /// The owner a scoped token writes for; checked by [`Store::write_scoped`].
    scope: Option<String>,
}

async fn get_index(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let (_, w) = st.read(&headers, q, &[]).await?;
    st.hold(&w, None).await;
    let index = st.run(|s| s.index()).await?;
    st.notifier.publish(index, None);
    Ok(with_index(index, Json(IndexBody { index })))
}

async fn list_hosts(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let (p, w) = st
        .read(
            &headers,
            q,
            &[
                "tag", "property", "kind", "class", "owner", "machine", "after", "limit",
            ],
        )
        .await?;
    let mut query = HostQuery::default();
    for (k, v) in &p {
        match k.as_str() {
            "tag" => query.tags.push(v.clone()),
            "property" => {
                let (key, val) = v.split_once('=').ok_or_else(|| {
                    ApiError::bad_request(format!("`property` must be KEY=VALUE, got `{v}`"))
                })?;
                query.properties.push((key.to_string(), val.to_string()));
            }
            _ => {}
        }
    }
    query.kind = single(&p, "kind")?
        .map(|k| {
            Kind::parse(k).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "`kind` must be `machine` or `container`, got `{k}`"
                ))
            })
        })
        .transpose()?;
    query.class = single(&p, "class")?.map(str::to_string);
    query.owner = single(&p, "owner")?.map(str::to_string);
    query.machine = single(&p, "machine")?.map(str::to_string);
    query.after = single(&p, "after")?.map(str::to_string);
    let limit = match single(&p, "limit")? {
        None => DEFAULT_LIMIT,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "`limit` must be an integer from 1 to {MAX_LIMIT}, got `{s}`"
                )))
            }
        },
    };
    query.limit = Some(limit);
    st.hold(&w, None).await;
    let index = st.notifier.index();
    let page = st.run(move |s| s.list_hosts(&query)).await?;
    Ok(with_index(index, Json(page)))
}

async fn get_host(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let (_, w) = st.read(&headers, q, &[]).await?;
    st.hold(&w, Some(&name)).await;
    let index = st.notifier.index();
    let host = if w.index.is_some() {
        st.shared_host(&name, index).await?
    } else {
        let n = name.clone();
        st.run(move |s| s.get_host(&n)).await?
    };
    let host = host.ok_or_else(|| ApiError::not_found(&name))?;
    Ok(with_index(index, Json(host)))
}

async fn put_host(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    ApiJson(host): ApiJson<Host>,
) -> Result<Response, ApiError> {
    let w = st.writing(&headers, &name, Some(&host.name)).await?;
    let put = Write::PutHost {
        host,
        expect: w.expect,
    };
    st.written(name, w.from_header, move |s| {
        s.write_scoped(vec![put], &w.actor, w.scope.as_deref())
    })
    .await
}

async fn delete_host(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let w = st.writing(&headers, &name, None).await?;
    let n = name.clone();
    st.must_exist(&name, w.expect, move |s| Ok(s.get_host(&n)?.is_some()))
        .await?;
    let delete = Write::DeleteHost {
        name: name.clone(),
        expect: w.expect,
    };
    st.written(name, w.from_header, move |s| {
        s.write_scoped(vec![delete], &w.actor, w.scope.as_deref())
    })
    .await
}

async fn get_config(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let (_, w) = st.read(&headers, q, &[]).await?;
    // Derived config also changes when a tag changes, so any write wakes it.
    st.hold(&w, None).await;
    let index = st.notifier.index();
    let n = name.clone();
    let config = st
        .run(move |s| s.derived_config(&n))
        .await?
        .ok_or_else(|| ApiError::not_found(&name))?;
    Ok(with_index(index, Json(config)))
}

async fn list_tags(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let (p, w) = st.read(&headers, q, &pages::PAGE_PARAMS).await?;
    let (limit, after) = pages::args(&p, st.config.limits.page_limit)?;
    st.hold(&w, None).await;
    let index = st.notifier.index();
    let tags = st.run(|s| s.list_tags()).await?;
    let (tags, next) = pages::tags(tags, after.as_deref(), limit);
    let mut resp = with_index(index, Json(tags));
    pages::link_next(&mut resp, "/v1/tags", &p, next.as_deref());
    Ok(resp)
}

async fn get_tag(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let (_, w) = st.read(&headers, q, &[]).await?;
    st.hold(&w, Some(&name)).await;
    let index = st.notifier.index();
    let n = name.clone();
    let tag = st
        .run(move |s| s.get_tag(&n))
        .await?
        .ok_or_else(|| ApiError::not_found(&name))?;
    Ok(with_index(index, Json(tag)))
}

async fn get_members(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let (_, w) = st.read(&headers, q, &[]).await?;
    st.hold(&w, None).await;
    let index = st.notifier.index();
    let members = st.run(move |s| s.tag_members(&name)).await?;
    Ok(with_index(index, Json(members)))
}

async fn put_tag(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    ApiJson(tag): ApiJson<Tag>,
) -> Result<Response, ApiError> {
    let w = st.writing(&headers, &name, Some(&tag.name)).await?;
    let put = Write::PutTag {
        tag,
        expect: w.expect,
    };
    st.written(name, w.from_header, move |s| {
        s.write_scoped(vec![put], &w.actor, w.scope.as_deref())
    })
    .await
}

async fn delete_tag(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let w = st.writing(&headers, &name, None).await?;
    let n = name.clone();
    st.must_exist(&name, w.expect, move |s| Ok(s.get_tag(&n)?.is_some()))
        .await?;
    let delete = Write::DeleteTag {
        name: name.clone(),
        expect: w.expect,
    };
    st.written(name, w.from_header, move |s| {
        s.write_scoped(vec![delete], &w.actor, w.scope.as_deref())
    })
    .await
}

async fn get_history(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let (p, w) = st.read(&headers, q, &pages::PAGE_PARAMS).await?;
    let (limit, after) = pages::args(&p, st.config.limits.page_limit)?;
    let start = pages::position(after.as_deref())?;
    st.hold(&w, Some(&name)).await;
    let index = st.notifier.index();
    let path = format!("/v1/history/{}", crate::hostdb::client::seg(&name));
    let history = st.run(move |s| s.history(&name)).await?;
    let (history, next) = pages::by_position(history, start, limit);
    let mut resp = with_index(index, Json(history));
    pages::link_next(&mut resp, &path, &p, next.as_deref());
    Ok(resp)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TxnBody {
    writes: Vec<Write>,
}

async fn post_txn(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<TxnBody>,
) -> Result<Response, ApiError> {
    let caller = st.auth(&headers, Role::Operator).await?;
    let actor = actor_from(&headers, &caller);
    let objects: Vec<String> = body.writes.iter().map(|w| w.object().to_string()).collect();
    let scope = caller.scope();
    let index = st
        .run(move |s| s.write_scoped(body.writes, &actor, scope.as_deref()))
        .await?;
    st.published(index, objects);
    Ok(with_index(index, Json(IndexBody { index })))
}

async fn get_snapshot(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let (p, w) = st.read(&headers, q, &["owner", "limit", "after"]).await?;
    let owner = single(&p, "owner")?
        .ok_or_else(|| ApiError::bad_request("`owner` is required"))?
        .to_string();
    let (limit, after) = pages::args(&p, st.config.limits.page_limit)?;
    st.hold(&w, None).await;
    let snap = st.run(move |s| s.snapshot(&owner)).await?;
    let page = pages::snapshot(snap, after.as_deref(), limit)?;
    Ok(with_index(page.snapshot.index, Json(page)))
}

async fn get_ips(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let (_, w) = st.read(&headers, q, &[]).await?;
    st.hold(&w, None).await;
    let index = st.notifier.index();
    let ips = st.run(|s| s.used_ips()).await?;
    Ok(with_index(index, Json(json!({ "ips": ips }))))
}

/// Prometheus http_sd: the target groups of every container the integrations converge.
async fn get_prometheus_sd(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let allowed: Vec<&str> = PROMETHEUS_PARAMS
        .iter()
        .chain(&pages::PAGE_PARAMS)
        .copied()
        .collect();
    let (p, w) = st.read(&headers, q, &allowed).await?;
    let query = PrometheusQuery::parse(single(&p, "port")?, single(&p, "owner")?)?;
    let (limit, after) = pages::args(&p, st.config.limits.page_limit)?;
    let start = pages::position(after.as_deref())?;
    st.hold(&w, None).await;
    let index = st.notifier.index();
    let body = st.run(move |s| prometheus_body(s, &query)).await?;
    let groups: Vec<Value> = serde_json::from_str(&body).map_err(internal)?;
    let (groups, next) = pages::by_position(groups, start, limit);
    let mut resp = with_index(index, Json(groups));
    pages::link_next(&mut resp, "/v1/sd/prometheus", &p, next.as_deref());
    // Prometheus refuses an http_sd answer that is not `application/json`.
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

async fn list_locks(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    st.auth(&headers, Role::Reader).await?;
    params(q, &[])?;
    let locks = st.run(|s| s.list_locks()).await?;
    Ok(Json(locks).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcquireBody {
    holder: String,
    ttl_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RenewBody {
    id: String,
    ttl_ms: u64,
}

fn ttl(ms: u64) -> Result<Duration, ApiError> {
    // A lease outliving a day is a forgotten lock, not a lease.
    if (1..=86_400_000).contains(&ms) {
        Ok(Duration::from_millis(ms))
    } else {
        Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "`ttl_ms` must be from 1 to 86400000",
        ))
    }
}

async fn acquire_lock(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<AcquireBody>,
) -> Result<Response, ApiError> {
    st.auth(&headers, Role::Operator).await?;
    let ttl = ttl(body.ttl_ms)?;
    let lease = st
        .run(move |s| s.lock_acquire(&name, &body.holder, ttl))
        .await?;
    Ok(Json(lease).into_response())
}

async fn renew_lock(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<RenewBody>,
) -> Result<Response, ApiError> {
    st.auth(&headers, Role::Operator).await?;
    let ttl = ttl(body.ttl_ms)?;
    let lease = Lease {
        name,
        holder: String::new(),
        id: body.id,
        since_ms: 0,
        expires_ms: 0,
    };
    let lease = st.run(move |s| s.lock_renew(&lease, ttl)).await?;
    Ok(Json(lease).into_response())
}

async fn release_lock(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    st.auth(&headers, Role::Operator).await?;
    let p = params(q, &["id"])?;
    let id = single(&p, "id")?
        .ok_or_else(|| ApiError::bad_request("`id` (the lease id) is required"))?
        .to_string();
    let lease = Lease {
        name,
        holder: String::new(),
        id,
        since_ms: 0,
        expires_ms: 0,
    };
    st.run(move |s| s.lock_release(&lease)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn force_release(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    st.auth(&headers, Role::Operator).await?;
    st.run(move |s| s.lock_force_release(&id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_tokens(
    State(st): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    st.auth(&headers, Role::Admin).await?;
    params(q, &[])?;
    let tokens = st.run(|s| s.token_list()).await?;
    Ok(Json(tokens).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    name: String,
    role: Role,
    /// Scope the token to one owner's records.
    #[serde(default)]
    owner: Option<String>,
}

async fn create_token(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<TokenBody>,
) -> Result<Response, ApiError> {
    st.auth(&headers, Role::Admin).await?;
    let (info, secret) = st
        .run(move |s| s.token_create_scoped(&body.name, body.role, body.owner.as_deref()))
        .await?;
    st.tokens.clear();
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": info, "secret": secret })),
    )
        .into_response())
}

async fn delete_token(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    st.auth(&headers, Role::Admin).await?;
    st.run(move |s| s.token_delete(&id)).await?;
    st.tokens.clear();
    Ok(StatusCode::NO_CONTENT.into_response())
}
