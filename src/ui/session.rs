//! Sessions in the browser: the `kloud_session` cookie, the CSRF token, signing in and out.
//!
//! The cookie holds the HostDB session token [`Identity::login`] made, and every request
//! verifies it with the store (sessions are never cached, so a sign-out anywhere ends it
//! everywhere). The CSRF token of a session is `SHA-256("kloud-ui-csrf:" + token)`: tied to
//! the session, the same on every replica, and useless without the cookie's secret. The
//! sign-in form, which has no session yet, gets a random token in a short-lived cookie of its
//! own (`kloud_login`) that the POST must repeat.
//!
//! [`Identity::login`]: crate::identity::Identity::login

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::Ui;
use crate::hostdb::model::Role;
use crate::hostdb::util::{hex, now_ms, random_hex};
use crate::identity::IdentityError;

/// The session cookie.
pub const COOKIE: &str = "kloud_session";
/// The sign-in form's own CSRF cookie.
pub const LOGIN_COOKIE: &str = "kloud_login";

/// A person signed in, as the pages see them.
#[derive(Debug, Clone, Serialize)]
pub struct Signed {
    #[serde(skip)]
    pub token: String,
    pub user: String,
    pub role: Role,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
}

impl Signed {
    /// The owner HostDB records for this person's self-service hosts.
    pub fn owner(&self) -> String {
        format!("user:{}", self.user)
    }
}

/// The CSRF token of the session whose secret is `token`.
pub fn csrf_for(token: &str) -> String {
    hex(&Sha256::digest(format!("kloud-ui-csrf:{token}").as_bytes()))
}

/// Compare two secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The value of cookie `name`, if the request carries it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, `Secure` over TLS; `max_age` 0 removes.
pub fn set_cookie(ui: &Ui, name: &str, value: &str, path: &str, max_age: u64) -> HeaderValue {
    let secure = if ui.options.tls { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The person whose session cookie this request carries, if it is a valid session.
pub async fn signed(ui: &Ui, headers: &HeaderMap) -> Option<Signed> {
    let token = cookie(headers, COOKIE)?;
    // Session tokens are hex; anything else is not worth a database read.
    if token.len() > 200
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return None;
    }
    let info = ui.identity.verify(&token).await.ok()??;
    // Only sessions sign a browser in: an API token pasted into the cookie is refused.
    if info.expires_ms.is_none() || info.expired(now_ms()) {
        return None;
    }
    Some(Signed {
        csrf: csrf_for(&token),
        token,
        user: info.name,
        role: info.role,
    })
}

/// The session, or the answer that sends the browser to the sign-in form (and back here
/// afterwards).
pub async fn require(ui: &Ui, headers: &HeaderMap, uri: &Uri) -> Result<Signed, Response> {
    match signed(ui, headers).await {
        Some(s) => Ok(s),
        None => {
            let here = uri.path_and_query().map_or("/ui/", |p| p.as_str());
            let next: String = form_urlencoded::byte_serialize(here.as_bytes()).collect();
            Err(Redirect::to(&format!("/ui/login?next={next}")).into_response())
        }
    }
}

/// The fields of a urlencoded form body.
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(body: &[u8]) -> Form {
        Form(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of field `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A POST of a signed-in page: the session (else to the sign-in form) and the form, whose
/// CSRF token must be the session's (else 403).
pub async fn post_form(
    ui: &Ui,
    headers: &HeaderMap,
    uri: &Uri,
    body: &[u8],
) -> Result<(Signed, Form), Response> {
    let who = require(ui, headers, uri).await?;
    let form = Form::parse(body);
    match form.get("csrf") {
        Some(t) if same_secret(t, &who.csrf) => Ok((who, form)),
        _ => Err(super::pages::error(
            ui,
            StatusCode::FORBIDDEN,
            "Forbidden",
            "This form's CSRF token is missing or is not this session's: reload the page and try again",
            Some(&who),
        )),
    }
}

/// Where to go after signing in: a path under `/ui/` (never another site).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/ui/") && !n.contains("//") && !n.contains('\\') => n.to_string(),
        _ => "/ui/".to_string(),
    }
}

/// `GET /ui/login`: the sign-in form (or straight on, when already signed in).
pub async fn login_form(State(ui): State<Arc<Ui>>, headers: HeaderMap, uri: Uri) -> Response {
    let query = Form::parse(uri.query().unwrap_or("").as_bytes());
    let next = safe_next(query.get("next"));
    if signed(&ui, &headers).await.is_some() {
        return Redirect::to(&next).into_response();
    }
    login_page(&ui, StatusCode::OK, &next, None, "")
}

/// The sign-in form with a fresh CSRF cookie; `error` shown above it.
fn login_page(
    ui: &Ui,
    status: StatusCode,
    next: &str,
    error: Option<&str>,
    username: &str,
) -> Response {
    let Ok(csrf) = random_hex(32) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no randomness").into_response();
    };
    let mut resp = ui.page(
        status,
        "login.html",
        context! { title => "Sign in", csrf, next, error, username },
    );
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(ui, LOGIN_COOKIE, &csrf, "/ui/login", 3600),
    );
    resp
}

/// `POST /ui/login`: check the form's CSRF token against its cookie, sign in with LDAP, set
/// the session cookie and go on.
pub async fn login(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form = Form::parse(&body);
    let next = safe_next(form.get("next"));
    let expected = cookie(&headers, LOGIN_COOKIE);
    match (form.get("csrf"), expected.as_deref()) {
        (Some(a), Some(b)) if same_secret(a, b) => {}
        _ => {
            return super::pages::error(
                &ui,
                StatusCode::FORBIDDEN,
                "Forbidden",
                "The sign-in form's CSRF token is missing or wrong: open the sign-in page again",
                None,
            )
        }
    }
    let username = form.get("username").unwrap_or("").trim().to_string();
    let password = form.get("password").unwrap_or("");
    match ui.identity.login(&username, password).await {
        Ok(session) => {
            let ttl = session.expires_ms.saturating_sub(now_ms()) / 1000;
            let mut resp = Redirect::to(&next).into_response();
            let h = resp.headers_mut();
            h.append(
                header::SET_COOKIE,
                set_cookie(&ui, COOKIE, &session.token, "/ui", ttl),
            );
            h.append(
                header::SET_COOKIE,
                set_cookie(&ui, LOGIN_COOKIE, "", "/ui/login", 0),
            );
            resp
        }
        Err(e) => {
            let status = match e {
                IdentityError::BadCredentials => StatusCode::UNAUTHORIZED,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            login_page(&ui, status, &next, Some(&e.to_string()), &username)
        }
    }
}

/// `POST /ui/logout`: end the session (on every replica) and remove the cookie.
pub async fn logout(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    uri: Uri,
    body: axum::body::Bytes,
) -> Response {
    let (who, _) = match post_form(&ui, &headers, &uri, &body).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    if let Err(e) = ui.identity.logout(&who.token).await {
        return super::pages::error(
            &ui,
            StatusCode::SERVICE_UNAVAILABLE,
            "Not signed out",
            &e.to_string(),
            Some(&who),
        );
    }
    let mut resp = Redirect::to("/ui/login").into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, set_cookie(&ui, COOKIE, "", "/ui", 0));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_the_ui() {
        assert_eq!(safe_next(Some("/ui/fleet?tag=web")), "/ui/fleet?tag=web");
        assert_eq!(safe_next(Some("https://evil.example/")), "/ui/");
        assert_eq!(safe_next(Some("/ui//evil.example")), "/ui/");
        assert_eq!(safe_next(Some("/v1/tokens")), "/ui/");
        assert_eq!(safe_next(None), "/ui/");
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; kloud_session=abc; b=2"),
        );
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn csrf_is_tied_to_the_session() {
        assert_ne!(csrf_for("one"), csrf_for("two"));
        assert_eq!(csrf_for("one"), csrf_for("one"));
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
