//! The HostDB v1 API (design §11): the REST API of the original Flipkart HostDB at
//! `/hostdb/v1/`, over the same store as kloud's own API, so its Perl and Go clients keep
//! working with `server = "HOST:PORT/hostdb"`.
//!
//! An id is `NAMESPACE[/KEY[/members[/MEMBER]|/PATH...]]`. `hosts` are HostDB hosts (their
//! YAML is their properties plus kloud's read-only fields), `tags` are HostDB tags (members are
//! hosts and `@tag`s), any other namespace holds keyed documents. Answers are text: lists one
//! item a line, values as YAML; errors are HTTP statuses with the message in an `Error` header
//! (and `CallTrace`, the header the original server and its Go client use). Writes need a
//! session (`session` form field or query parameter, the `HostDB` cookie, or a bearer token)
//! and a `log` message; they are recorded in history with the session's actor and the message.
//! See `docs/hostdb-v1.md`.

mod access;
mod members;
mod meta;
mod objects;
pub mod value;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

use crate::config::auth::HostDbV1Access;
use crate::hostdb::store::Store;
use crate::hostdb::StoreError;
use crate::identity::{Identity, IdentityError};

/// Where the API is mounted.
pub const PREFIX: &str = "/hostdb/v1";

/// An error answer: a status and a message for the `Error` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Error {
    pub status: u16,
    pub message: String,
}

impl V1Error {
    pub fn new(status: u16, message: impl Into<String>) -> V1Error {
        V1Error {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> V1Error {
        V1Error::new(400, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> V1Error {
        V1Error::new(401, message)
    }
    pub fn forbidden(message: impl Into<String>) -> V1Error {
        V1Error::new(403, message)
    }
    pub fn not_found(message: impl Into<String>) -> V1Error {
        V1Error::new(404, message)
    }
    pub fn conflict(message: impl Into<String>) -> V1Error {
        V1Error::new(409, message)
    }
    pub fn unsupported() -> V1Error {
        V1Error::new(405, "Not Supported")
    }
}

impl From<StoreError> for V1Error {
    fn from(e: StoreError) -> V1Error {
        let status = match &e {
            StoreError::NotFound { .. } => 404,
            StoreError::Conflict { .. } | StoreError::Held { .. } => 409,
            StoreError::Invalid(_) => 400,
            StoreError::Unauthorized(_) => 401,
            StoreError::Forbidden(_) => 403,
            StoreError::Unavailable(_) => 503,
            _ => 500,
        };
        V1Error::new(status, e.to_string())
    }
}

impl From<IdentityError> for V1Error {
    fn from(e: IdentityError) -> V1Error {
        let status = match &e {
            IdentityError::BadCredentials | IdentityError::UnknownSession => 401,
            IdentityError::LdapUnavailable(_) | IdentityError::NotConfigured => 503,
            IdentityError::NotASession => 400,
            IdentityError::Tls(_) => 500,
            IdentityError::Store(s) => return V1Error::from(s.clone()),
        };
        V1Error::new(status, e.to_string())
    }
}

/// A header value from a message: one line, printable ASCII.
fn header_text(message: &str) -> HeaderValue {
    let clean: String = message
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                ' '
            }
        })
        .take(1000)
        .collect();
    HeaderValue::from_str(&clean).unwrap_or_else(|_| HeaderValue::from_static("error"))
}

impl IntoResponse for V1Error {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let value = header_text(&self.message);
        let mut res = (status, format!("{}\n", self.message)).into_response();
        res.headers_mut().insert("Error", value.clone());
        res.headers_mut().insert("CallTrace", value);
        res
    }
}

/// A successful answer.
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub cookie: Option<String>,
}

impl Answer {
    pub fn text(body: String) -> Answer {
        Answer {
            status: 200,
            body,
            cookie: None,
        }
    }
    /// The original answers writes with `201 Object created` (and deletes with 200).
    pub fn created() -> Answer {
        Answer {
            status: 201,
            body: String::new(),
            cookie: None,
        }
    }
    pub fn deleted() -> Answer {
        Answer::text(String::new())
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        let mut res = (status, self.body).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Some(cookie) = self.cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
            res.headers_mut().insert(header::SET_COOKIE, cookie);
        }
        res
    }
}

/// What the v1 handlers share.
pub struct V1 {
    pub store: Arc<dyn Store>,
    pub identity: Arc<Identity>,
    pub access: HostDbV1Access,
}

/// One request, parsed: the id's segments and every parameter (form body first, then query).
pub struct Request {
    pub method: Method,
    pub id: Vec<String>,
    pub params: BTreeMap<String, String>,
    /// The session secret: `session` parameter, `HostDB` cookie or bearer token.
    pub session: Option<String>,
}

impl Request {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// The v1 router, mounted at [`PREFIX`].
pub fn router(store: Arc<dyn Store>, identity: Arc<Identity>, access: HostDbV1Access) -> Router {
    let state = Arc::new(V1 {
        store,
        identity,
        access,
    });
    Router::new()
        .route(PREFIX, any(handle))
        .route(&format!("{PREFIX}/"), any(handle))
        .route(&format!("{PREFIX}/{{*id}}"), any(handle))
        .with_state(state)
}

/// The methods an id has calls for (HEAD as GET), as an `Allow` header says them.
fn allowed(id: &[String]) -> &'static str {
    let id: Vec<&str> = id.iter().map(String::as_str).collect();
    match id.as_slice() {
        // The namespace list and a namespace's key list are read-only.
        [] | [_] => "GET, HEAD",
        ["auth", "session"] => "GET, HEAD, POST",
        ["auth", ..] => "GET, HEAD",
        ["tags", _, "members"] => "GET, HEAD, PUT, DELETE",
        _ => "GET, HEAD, PUT, POST, DELETE",
    }
}

/// A 405 with the methods the id has.
fn not_supported(allow: &'static str) -> Response {
    let mut res = V1Error::unsupported().into_response();
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    res
}

async fn handle(
    State(v1): State<Arc<V1>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = match parse(method, &uri, &headers, &body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    // A method the id has no call for is 405 at once, not a demand for a session and a log.
    let allow = allowed(&req.id);
    if !allow.split(", ").any(|m| m == req.method.as_str()) {
        return not_supported(allow);
    }
    // Signing in talks to LDAP (async); everything else is store calls on the blocking pool.
    if req.method == Method::POST && req.id == ["auth", "session"] {
        return access::create_session(&v1, &req).await.into_response();
    }
    let result = tokio::task::spawn_blocking(move || dispatch(&v1, &req)).await;
    let mut res = match result {
        Ok(Ok(answer)) => answer.into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(e) => V1Error::new(500, e.to_string()).into_response(),
    };
    // Every 405 says what is allowed (`meta=parents` of a document is the original's 405).
    if res.status() == StatusCode::METHOD_NOT_ALLOWED {
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    res
}

fn parse(method: Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<Request, V1Error> {
    let path = uri.path().strip_prefix(PREFIX).unwrap_or("");
    let id: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect::<Result<_, _>>()?;
    let mut params = BTreeMap::new();
    // Clients send forms without a content type (the Go client's PUT): read any body as a form.
    if method != Method::GET && method != Method::HEAD {
        for (k, v) in form_urlencoded::parse(body) {
            params
                .entry(k.into_owned())
                .or_insert_with(|| v.into_owned());
        }
    }
    if let Some(q) = uri.query() {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            params
                .entry(k.into_owned())
                .or_insert_with(|| v.into_owned());
        }
    }
    // No name, key, path, message or YAML holds a NUL (YAML forbids it), and PostgreSQL cannot
    // store or even look up text with one: refuse it here rather than fail in the store.
    if id.iter().any(|s| s.contains('\0')) {
        return Err(V1Error::bad_request("the id holds a NUL character"));
    }
    if let Some(name) = params
        .iter()
        .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        .map(|(k, _)| k)
    {
        return Err(V1Error::bad_request(format!(
            "parameter `{}` holds a NUL character",
            name.escape_default()
        )));
    }
    let session = params
        .get("session")
        .filter(|s| !s.is_empty())
        .cloned()
        .or_else(|| cookie(headers, "HostDB"))
        .or_else(|| crate::server::auth::bearer(headers).ok().flatten());
    Ok(Request {
        method,
        id,
        params,
        session,
    })
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

fn percent_decode(seg: &str) -> Result<String, V1Error> {
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(v) => {
                    out.push(v);
                    i += 3;
                    continue;
                }
                None => return Err(V1Error::bad_request(format!("bad escape in `{seg}`"))),
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).map_err(|_| V1Error::bad_request(format!("`{seg}` is not UTF-8")))
}

/// Route a parsed request.
fn dispatch(v1: &V1, req: &Request) -> Result<Answer, V1Error> {
    let id: Vec<&str> = req.id.iter().map(String::as_str).collect();
    if id.first() == Some(&"auth") {
        return access::auth_call(v1, req, &id[1..]);
    }
    let is_read = matches!(req.method, Method::GET | Method::HEAD);
    let writer = if is_read {
        access::check_read(v1, req)?;
        None
    } else {
        Some(access::writer(v1, req, &id)?)
    };
    let answer = match writer {
        None => read(v1, req, &id)?,
        Some(w) => objects::write(v1, req, &id, &w)?,
    };
    Ok(answer)
}

/// A GET: metadata, a multi-get, or a value; then `?search=` filters its lines.
fn read(v1: &V1, req: &Request, id: &[&str]) -> Result<Answer, V1Error> {
    let body = if let Some(m) = req.param("meta") {
        meta::get(v1, req, id, m)?
    } else if let Some(list) = req.param("foreach") {
        meta::foreach(v1, id, list)?
    } else {
        objects::get(v1, req, id)?
    };
    let body = match req.param("search") {
        Some(re) => search(&body, re)?,
        None => body,
    };
    Ok(Answer::text(body))
}

fn search(body: &str, re: &str) -> Result<String, V1Error> {
    let re = regex::RegexBuilder::new(re)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| V1Error::bad_request(format!("bad search regex: {e}")))?;
    Ok(body
        .lines()
        .filter(|l| re.is_match(l))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Lines joined the way the original lists are (no trailing newline).
pub fn lines<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> String {
    items
        .into_iter()
        .map(|s| s.as_ref().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_path_segments() {
        assert_eq!(percent_decode("a%20b").unwrap(), "a b");
        assert_eq!(percent_decode("%40web").unwrap(), "@web");
        assert!(percent_decode("a%2").is_err());
        assert!(percent_decode("%zz").is_err());
    }

    #[test]
    fn refuses_nul_in_ids_and_parameters() {
        let parse_put = |uri: &str, body: &str| {
            let uri: Uri = uri.parse().unwrap();
            parse(Method::PUT, &uri, &HeaderMap::new(), body.as_bytes())
        };
        assert!(parse_put("/hostdb/v1/dns/a%20b", "log=x").is_ok());
        let e = parse_put("/hostdb/v1/dns/a%00b", "log=x").err().unwrap();
        assert_eq!(e.status, 400);
        let e = parse_put("/hostdb/v1/dns/k", "log=a%00b").err().unwrap();
        assert_eq!(
            (e.status, e.message.as_str()),
            (400, "parameter `log` holds a NUL character")
        );
        let e = parse_put("/hostdb/v1/dns/k?foreach=tags/a%00/members", "")
            .err()
            .unwrap();
        assert_eq!(e.status, 400);
    }

    #[test]
    fn search_keeps_matching_lines() {
        assert_eq!(
            search("web-1\ndb-1\nweb-2", "^web").unwrap(),
            "web-1\nweb-2"
        );
        assert!(search("x", "(").is_err());
    }
}
