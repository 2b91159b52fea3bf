//! Who may read and write through v1: sessions (from §10's identity), `can_modify`, and the
//! per-namespace writers given to LDAP groups.
//!
//! Reads need no session unless `anonymous_read = false`. A write needs a valid session or
//! token and a `log` message; operators and admins write every namespace, anyone else only the
//! namespaces whose `writers` list one of their groups.

use super::{Answer, Request, V1Error, V1};
use crate::hostdb::model::{Actor, Role, TokenInfo};

/// Who is writing, and the change-log actor their write is recorded with.
pub struct Writer {
    pub actor: Actor,
}

/// The change-log name of a token's holder: `user:NAME` for a person's session.
pub fn actor_name(t: &TokenInfo) -> String {
    if t.expires_ms.is_some() {
        format!("user:{}", t.name)
    } else {
        t.name.clone()
    }
}

fn session_of(v1: &V1, req: &Request) -> Result<Option<TokenInfo>, V1Error> {
    match &req.session {
        None => Ok(None),
        Some(secret) => Ok(v1.store.token_verify(secret)?),
    }
}

/// Refuse an anonymous read when the config requires a session.
pub fn check_read(v1: &V1, req: &Request) -> Result<(), V1Error> {
    if v1.access.anonymous_read {
        return Ok(());
    }
    match session_of(v1, req)? {
        Some(_) => Ok(()),
        None => Err(V1Error::unauthorized(
            "reads need a session here: sign in with POST /hostdb/v1/auth/session",
        )),
    }
}

/// Whether `token` may write namespace `ns`.
pub fn can_write(v1: &V1, token: &TokenInfo, ns: &str) -> bool {
    // A token scoped to an owner writes only that owner's host records, never documents.
    if token.owner.is_some() {
        return false;
    }
    token.role >= Role::Operator
        || v1
            .access
            .writers
            .get(ns)
            .is_some_and(|groups| groups.iter().any(|g| token.groups.contains(g)))
}

/// The writer of a PUT, POST or DELETE on `id`, or why they may not.
pub fn writer(v1: &V1, req: &Request, id: &[&str]) -> Result<Writer, V1Error> {
    let token = session_of(v1, req)?.ok_or_else(|| {
        V1Error::unauthorized(
            "writes need a valid session: sign in with POST /hostdb/v1/auth/session",
        )
    })?;
    let log = req.param("log").map(str::trim).unwrap_or("");
    if log.is_empty() {
        return Err(V1Error::bad_request("Missing parameter: log"));
    }
    let ns = id.first().copied().unwrap_or("");
    if !can_write(v1, &token, ns) {
        return Err(V1Error::forbidden(format!(
            "User {} does not have write permission on {}",
            token.name,
            id.join("/")
        )));
    }
    let actor = Actor {
        name: actor_name(&token),
        message: Some(log.to_string()),
    };
    Ok(Writer { actor })
}

/// `POST auth/session` with `username` and `password`: the session id as text, and the
/// `HostDB` cookie the original sets.
pub async fn create_session(v1: &V1, req: &Request) -> Result<Answer, V1Error> {
    let (Some(user), Some(password)) = (req.param("username"), req.param("password")) else {
        return Err(V1Error::bad_request("Missing username or password"));
    };
    let session = v1.identity.login(user, password).await?;
    let cookie = format!(
        "HostDB={}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
        session.token,
        session
            .expires_ms
            .saturating_sub(crate::hostdb::util::now_ms())
            / 1000
    );
    Ok(Answer {
        status: 200,
        body: session.token,
        cookie: Some(cookie),
    })
}

/// `GET auth/session/ID` (the user name) and `GET auth/can_modify?user=U&id=ID` (`1` or `0`).
pub fn auth_call(v1: &V1, req: &Request, rest: &[&str]) -> Result<Answer, V1Error> {
    if req.method != axum::http::Method::GET {
        return Err(V1Error::unsupported());
    }
    match rest {
        ["session", secret] => match v1.store.token_verify(secret)? {
            Some(t) => Ok(Answer::text(t.name)),
            None => Err(V1Error::unauthorized("Invalid or expired session")),
        },
        ["session"] => match session_of(v1, req)? {
            Some(t) => Ok(Answer::text(t.name)),
            None => Err(V1Error::unauthorized("Invalid or expired session")),
        },
        ["can_modify"] => {
            let (Some(user), Some(id)) = (req.param("user"), req.param("id")) else {
                return Err(V1Error::bad_request("Missing username or resource ID"));
            };
            let ns = id.trim_start_matches('/').split('/').next().unwrap_or("");
            // What a person may do is what their live sessions say (role and groups).
            let allowed = v1
                .store
                .token_list()?
                .iter()
                .filter(|t| t.name == user && t.expires_ms.is_some())
                .any(|t| can_write(v1, t, ns));
            Ok(Answer::text(if allowed { "1" } else { "0" }.to_string()))
        }
        _ => Err(V1Error::not_found(format!(
            "auth/{} does not exist",
            rest.join("/")
        ))),
    }
}
