//! The HTTP client: a [`Store`] backed by a remote `kloud hostdb serve`, so a config with
//! `hostdb = "http://…"` plans and applies exactly as with the embedded file.
//!
//! Errors come back as the same [`StoreError`] variants the server mapped them from. A server
//! that cannot be reached is `StoreError::Unavailable`. The token comes from
//! `KLOUD_HOSTDB_TOKEN`. Plain HTTP only in this build (put a TLS proxy in front, or use a
//! tunnel, for traffic leaving the machine).

use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::StoreError;
use super::model::{
    Actor, Change, Expect, Host, HostQuery, Lease, Members, Page, Role, Snapshot, Tag, TokenInfo,
    Write,
};
use super::protocol::{ACTOR_HEADER, INDEX_HEADER, MAX_LIMIT, MESSAGE_HEADER, NEXT_HEADER};
use super::store::Store;

/// How much longer than the hold a blocking query may take before it counts as lost.
const HOLD_GRACE: Duration = Duration::from_secs(10);

/// A remote HostDB.
pub struct HttpStore {
    base: String,
    token: Option<String>,
    http: Client,
}

/// Percent-encode one path segment.
pub(crate) fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Header values must be visible ASCII; anything else is escaped rather than dropped.
fn header_text(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                vec![c]
            } else {
                c.escape_default().collect()
            }
        })
        .collect()
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorInner,
}

#[derive(Deserialize)]
struct ErrorInner {
    code: String,
    message: String,
    #[serde(default)]
    details: Option<Value>,
}

fn transport(e: reqwest::Error) -> StoreError {
    StoreError::Unavailable(format!("hostdb server: {e}"))
}

fn detail_str(d: &Option<Value>, key: &str) -> String {
    d.as_ref()
        .and_then(|d| d.get(key))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The `StoreError` a JSON error answer stands for.
fn error_from(status: u16, body: &str) -> StoreError {
    let Ok(ErrorBody { error }) = serde_json::from_str::<ErrorBody>(body) else {
        return match status {
            502..=504 => StoreError::Unavailable(format!("HTTP {status}: {body}")),
            _ => StoreError::Backend(format!("HTTP {status}: {body}")),
        };
    };
    let d = error.details;
    match error.code.as_str() {
        "not_found" => StoreError::NotFound {
            object: match detail_str(&d, "object") {
                o if o.is_empty() => error.message,
                o => o,
            },
        },
        "conflict" => StoreError::Conflict {
            object: detail_str(&d, "object"),
            expected: d
                .as_ref()
                .and_then(|d| d.get("expected").cloned())
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or(Expect::Any),
            actual: d
                .as_ref()
                .and_then(|d| d.get("actual"))
                .and_then(Value::as_u64),
        },
        "lock_held" => StoreError::Held {
            name: detail_str(&d, "name"),
            holder: detail_str(&d, "holder"),
            since_ms: d
                .as_ref()
                .and_then(|d| d.get("since_ms"))
                .and_then(Value::as_u64)
                .unwrap_or(0),
            id: detail_str(&d, "id"),
        },
        "lease_lost" => StoreError::LeaseLost {
            name: detail_str(&d, "name"),
            id: detail_str(&d, "id"),
        },
        "unauthorized" => StoreError::Unauthorized(error.message),
        "forbidden" => StoreError::Forbidden(error.message),
        "forbidden_owner" => StoreError::ForbiddenOwner {
            object: detail_str(&d, "object"),
            owner: d
                .as_ref()
                .and_then(|d| d.get("owner"))
                .and_then(Value::as_str)
                .map(str::to_string),
            scope: detail_str(&d, "scope"),
        },
        "unavailable" => StoreError::Unavailable(error.message),
        "invalid" | "bad_request" | "body_too_large" | "unsupported_media_type" => {
            StoreError::Invalid(error.message)
        }
        _ => StoreError::Backend(error.message),
    }
}

/// How many times a client reads a paged answer again from its first page when HostDB
/// changed between two of its pages.
const PAGE_ATTEMPTS: usize = 5;

fn changing(what: &str) -> StoreError {
    StoreError::Unavailable(format!(
        "HostDB changed while the pages of `{what}` were read, {PAGE_ATTEMPTS} times; retry"
    ))
}

impl HttpStore {
    /// A client for the server at `url` (`http://host:port`), authenticating with `token`.
    pub fn new(url: &str, token: Option<String>) -> Result<HttpStore, StoreError> {
        if url.starts_with("https://") {
            return Err(StoreError::Url {
                url: url.to_string(),
                reason: "this build speaks plain HTTP only; reach the server over a TLS \
                         terminating proxy on loopback or an SSH tunnel"
                    .to_string(),
            });
        }
        if !url.starts_with("http://") {
            return Err(StoreError::Url {
                url: url.to_string(),
                reason: "expected `http://HOST:PORT`".to_string(),
            });
        }
        let http = Client::builder()
            .timeout(Duration::from_secs(120))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| StoreError::Backend(format!("building the HTTP client: {e}")))?;
        Ok(HttpStore {
            base: url.trim_end_matches('/').to_string(),
            token: token.filter(|t| !t.is_empty()),
            http,
        })
    }

    /// A client with the token from `KLOUD_HOSTDB_TOKEN`.
    pub fn from_env(url: &str) -> Result<HttpStore, StoreError> {
        HttpStore::new(url, std::env::var("KLOUD_HOSTDB_TOKEN").ok())
    }

    fn req(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    fn send(&self, rb: RequestBuilder) -> Result<Response, StoreError> {
        let resp = rb.send().map_err(transport)?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let body = resp.text().unwrap_or_default();
        Err(error_from(status, &body))
    }

    fn json<T: DeserializeOwned>(&self, rb: RequestBuilder) -> Result<T, StoreError> {
        self.send(rb)?
            .json()
            .map_err(|e| StoreError::Backend(format!("decoding the server's answer: {e}")))
    }

    /// `Ok(None)` on 404.
    fn optional<T: DeserializeOwned>(&self, rb: RequestBuilder) -> Result<Option<T>, StoreError> {
        match self.json(rb) {
            Ok(v) => Ok(Some(v)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn actor(rb: RequestBuilder, actor: &Actor) -> RequestBuilder {
        let rb = rb.header(ACTOR_HEADER, header_text(&actor.name));
        match &actor.message {
            Some(m) => rb.header(MESSAGE_HEADER, header_text(m)),
            None => rb,
        }
    }

    /// Every item of the paged array answer at `path` (no query string), following
    /// `X-Hostdb-Next` from page to page. With `consistent`, the pages must all be read at
    /// one index (nothing changed in between); when one is not, reading starts again, up to
    /// [`PAGE_ATTEMPTS`] times.
    fn all_pages<T: DeserializeOwned>(
        &self,
        path: &str,
        consistent: bool,
    ) -> Result<Vec<T>, StoreError> {
        'attempt: for _ in 0..PAGE_ATTEMPTS {
            let mut items = Vec::new();
            let mut after: Option<String> = None;
            let mut first_index = None;
            loop {
                let url = match &after {
                    None => path.to_string(),
                    Some(a) => format!("{path}?after={}", seg(a)),
                };
                let resp = self.send(self.req(Method::GET, &url))?;
                let header = |h: &str| {
                    resp.headers()
                        .get(h)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                let (next, index) = (header(NEXT_HEADER), header(INDEX_HEADER));
                if consistent && *first_index.get_or_insert(index.clone()) != index {
                    continue 'attempt;
                }
                let page: Vec<T> = resp.json().map_err(|e| {
                    StoreError::Backend(format!("decoding the server's answer: {e}"))
                })?;
                items.extend(page);
                match next {
                    Some(n) => after = Some(n),
                    None => return Ok(items),
                }
            }
        }
        Err(changing(path))
    }

    fn page(&self, q: &HostQuery, limit: usize) -> Result<Page<Host>, StoreError> {
        let mut qs = form_urlencoded::Serializer::new(String::new());
        for t in &q.tags {
            qs.append_pair("tag", t);
        }
        for (k, v) in &q.properties {
            qs.append_pair("property", &format!("{k}={v}"));
        }
        if let Some(k) = q.kind {
            qs.append_pair("kind", k.as_str());
        }
        for (key, v) in [
            ("class", &q.class),
            ("owner", &q.owner),
            ("machine", &q.machine),
            ("after", &q.after),
        ] {
            if let Some(v) = v {
                qs.append_pair(key, v);
            }
        }
        qs.append_pair("limit", &limit.to_string());
        self.json(self.req(Method::GET, &format!("/v1/hosts?{}", qs.finish())))
    }
}

#[derive(Deserialize)]
struct IndexBody {
    index: u64,
}

impl Store for HttpStore {
    fn url(&self) -> String {
        self.base.clone()
    }

    fn index(&self) -> Result<u64, StoreError> {
        let b: IndexBody = self.json(self.req(Method::GET, "/v1/index"))?;
        Ok(b.index)
    }

    /// One blocking query on the index: the server answers as soon as anything is written
    /// after `after`, or when the wait (capped by its `--max-wait`) ends.
    fn wait_for_change(
        &self,
        after: u64,
        timeout: Duration,
        poll: Duration,
    ) -> Result<u64, StoreError> {
        let started = std::time::Instant::now();
        // The `wait` parameter takes at most nine digits.
        let ms = timeout.as_millis().min(999_999_999) as u64;
        let rb = self
            .req(Method::GET, &format!("/v1/index?index={after}&wait={ms}ms"))
            // The client's default timeout would cut a long hold short; a dead peer is still
            // noticed a little after the hold should have ended.
            .timeout(Duration::from_millis(ms) + HOLD_GRACE);
        let b: IndexBody = self.json(rb)?;
        let left = timeout.saturating_sub(started.elapsed());
        if b.index == after && !left.is_zero() {
            // Answered early with nothing new: the server holds queries for less than asked,
            // or its database was restored behind its back (its notifier is ahead, so every
            // query returns at once). Pause a poll interval so a caller's loop cannot spin.
            std::thread::sleep(poll.min(left));
        }
        Ok(b.index)
    }

    fn get_host(&self, name: &str) -> Result<Option<Host>, StoreError> {
        self.optional(self.req(Method::GET, &format!("/v1/hosts/{}", seg(name))))
    }

    fn list_hosts(&self, q: &HostQuery) -> Result<Page<Host>, StoreError> {
        match q.limit {
            Some(0) => Err(StoreError::Invalid("limit must be at least 1".to_string())),
            Some(n) => self.page(q, n.min(MAX_LIMIT)),
            None => {
                let mut q = q.clone();
                let mut items = Vec::new();
                loop {
                    let page = self.page(&q, MAX_LIMIT)?;
                    items.extend(page.items);
                    match page.next {
                        Some(n) => q.after = Some(n),
                        None => return Ok(Page { items, next: None }),
                    }
                }
            }
        }
    }

    fn get_tag(&self, name: &str) -> Result<Option<Tag>, StoreError> {
        self.optional(self.req(Method::GET, &format!("/v1/tags/{}", seg(name))))
    }

    fn list_tags(&self) -> Result<Vec<Tag>, StoreError> {
        self.all_pages("/v1/tags", true)
    }

    fn tag_members(&self, name: &str) -> Result<Members, StoreError> {
        self.json(self.req(Method::GET, &format!("/v1/tags/{}/members", seg(name))))
    }

    fn write(&self, writes: Vec<Write>, actor: &Actor) -> Result<u64, StoreError> {
        // The server would fall back to the token's name; refuse as the local stores do.
        if actor.name.trim().is_empty() {
            return Err(StoreError::Invalid("the actor name is empty".to_string()));
        }
        let rb = self
            .req(Method::POST, "/v1/txn")
            .json(&json!({ "writes": writes }));
        let b: IndexBody = self.json(HttpStore::actor(rb, actor))?;
        Ok(b.index)
    }

    /// Follows the snapshot's pages (`next`); they must all be read at one index, else
    /// reading starts again (a snapshot is consistent, or it is not given).
    fn snapshot(&self, owner: &str) -> Result<Snapshot, StoreError> {
        #[derive(Deserialize)]
        struct SnapshotPage {
            #[serde(flatten)]
            snapshot: Snapshot,
            #[serde(default)]
            next: Option<String>,
        }
        for _ in 0..PAGE_ATTEMPTS {
            let mut after: Option<String> = None;
            let mut all: Option<Snapshot> = None;
            loop {
                let mut qs = form_urlencoded::Serializer::new(String::new());
                qs.append_pair("owner", owner);
                if let Some(a) = &after {
                    qs.append_pair("after", a);
                }
                let page: SnapshotPage =
                    self.json(self.req(Method::GET, &format!("/v1/snapshot?{}", qs.finish())))?;
                let p = page.snapshot;
                match &mut all {
                    None => all = Some(p),
                    Some(a) if a.index != p.index => break,
                    Some(a) => {
                        a.machines.extend(p.machines);
                        a.hosts.extend(p.hosts);
                        a.others.extend(p.others);
                        a.tags.extend(p.tags);
                    }
                }
                match page.next {
                    Some(n) => after = Some(n),
                    None => return all.ok_or_else(|| changing("/v1/snapshot")),
                }
            }
        }
        Err(changing("/v1/snapshot"))
    }

    fn used_ips(&self) -> Result<Vec<String>, StoreError> {
        #[derive(Deserialize)]
        struct Ips {
            ips: Vec<String>,
        }
        let b: Ips = self.json(self.req(Method::GET, "/v1/ips"))?;
        Ok(b.ips)
    }

    fn derived_config(&self, name: &str) -> Result<Option<Map<String, Value>>, StoreError> {
        self.optional(self.req(Method::GET, &format!("/v1/hosts/{}/config", seg(name))))
    }

    /// Follows the pages of an object's history; history only grows at its end, so pages
    /// read at different indexes still join up.
    fn history(&self, object: &str) -> Result<Vec<Change>, StoreError> {
        self.all_pages(&format!("/v1/history/{}", seg(object)), false)
    }

    fn last_change(&self, object: &str) -> Result<u64, StoreError> {
        Ok(self.history(object)?.last().map_or(0, |c| c.index))
    }

    fn lock_acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<Lease, StoreError> {
        if name.is_empty() {
            return Err(StoreError::Invalid("the lock name is empty".to_string()));
        }
        let rb = self
            .req(Method::POST, &format!("/v1/locks/{}", seg(name)))
            .json(&json!({ "holder": holder, "ttl_ms": ttl.as_millis() as u64 }));
        self.json(rb)
    }

    fn lock_renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease, StoreError> {
        let rb = self
            .req(Method::PUT, &format!("/v1/locks/{}", seg(&lease.name)))
            .json(&json!({ "id": lease.id, "ttl_ms": ttl.as_millis() as u64 }));
        self.json(rb)
    }

    fn lock_release(&self, lease: &Lease) -> Result<(), StoreError> {
        let qs = form_urlencoded::Serializer::new(String::new())
            .append_pair("id", &lease.id)
            .finish();
        self.send(self.req(
            Method::DELETE,
            &format!("/v1/locks/{}?{qs}", seg(&lease.name)),
        ))
        .map(|_| ())
    }

    fn lock_force_release(&self, id: &str) -> Result<(), StoreError> {
        self.send(self.req(Method::DELETE, &format!("/v1/leases/{}", seg(id))))
            .map(|_| ())
    }

    fn list_locks(&self) -> Result<Vec<Lease>, StoreError> {
        self.json(self.req(Method::GET, "/v1/locks"))
    }

    fn token_create(&self, name: &str, role: Role) -> Result<(TokenInfo, String), StoreError> {
        self.token_create_scoped(name, role, None)
    }

    fn token_create_scoped(
        &self,
        name: &str,
        role: Role,
        owner: Option<&str>,
    ) -> Result<(TokenInfo, String), StoreError> {
        #[derive(Deserialize)]
        struct Created {
            token: TokenInfo,
            secret: String,
        }
        let mut body = json!({ "name": name, "role": role });
        if let Some(o) = owner {
            body["owner"] = json!(o);
        }
        let rb = self.req(Method::POST, "/v1/tokens").json(&body);
        let c: Created = self.json(rb)?;
        Ok((c.token, c.secret))
    }

    fn token_verify(&self, secret: &str) -> Result<Option<TokenInfo>, StoreError> {
        let rb = self
            .http
            .get(format!("{}/v1/whoami", self.base))
            .bearer_auth(secret);
        match self.json(rb) {
            Ok(info) => Ok(Some(info)),
            Err(StoreError::Unauthorized(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn token_list(&self) -> Result<Vec<TokenInfo>, StoreError> {
        self.json(self.req(Method::GET, "/v1/tokens"))
    }

    fn token_delete(&self, id: &str) -> Result<(), StoreError> {
        self.send(self.req(Method::DELETE, &format!("/v1/tokens/{}", seg(id))))
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_segments() {
        assert_eq!(seg("web-1.dc1"), "web-1.dc1");
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn maps_errors() {
        let e = error_from(
            409,
            r#"{"error":{"code":"conflict","message":"m","details":{"object":"a","expected":{"index":3},"actual":4}}}"#,
        );
        assert_eq!(
            e,
            StoreError::Conflict {
                object: "a".into(),
                expected: Expect::Index(3),
                actual: Some(4)
            }
        );
        assert!(matches!(
            error_from(502, "bad gateway"),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            error_from(
                503,
                r#"{"error":{"code":"unavailable","message":"pg down"}}"#
            ),
            StoreError::Unavailable(_)
        ));
    }
}
