//! Keyed documents, sessions and events: the SQL behind the HostDB v1 API's other namespaces
//! and the sign-ins of people (design §10, §11), written once against [`Sql`] like the rest of
//! the engine.
//!
//! A document write is one more kind of [`Write`]: it bumps the index and is recorded in the
//! change log as object `NAMESPACE/KEY` (host and tag names cannot contain `/`, so the two never
//! collide). A session is a token with an expiry and the person's groups in `token_sessions`.
//! An event (a sign-in) is a change-log row at the current index that does not bump it: nothing
//! a watcher covers changed.

use std::time::Duration;

use serde_json::Value;

use super::engine::{Sql, Val};
use super::error::StoreError;
use super::model::{Actor, Document, Expect, ObjectKind, Role, TokenInfo};
use super::util::{ms, now_ms, random_hex, token_hash};

/// Namespaces the v1 API maps onto hosts and tags, or keeps for itself.
pub const RESERVED_NAMESPACES: &[&str] = &["hosts", "tags", "auth"];

/// Check a namespace name: 1–64 of `a-z0-9_-`, starting with a letter or digit, not reserved.
pub fn check_namespace(ns: &str) -> Result<(), StoreError> {
    let b = ns.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-');
    if !ok {
        return Err(StoreError::Invalid(format!(
            "namespace `{}` must be 1 to 64 of a-z, 0-9, `_` and `-`",
            ns.escape_default()
        )));
    }
    if RESERVED_NAMESPACES.contains(&ns) {
        return Err(StoreError::Invalid(format!(
            "namespace `{ns}` is not a document namespace"
        )));
    }
    Ok(())
}

/// Check a document key: 1–255 printable characters without `/`.
pub fn check_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() || key.len() > 255 || key.chars().any(|c| c.is_control() || c == '/') {
        return Err(StoreError::Invalid(format!(
            "key `{}` must be 1 to 255 printable characters without `/`",
            key.escape_default()
        )));
    }
    Ok(())
}

/// The change-log object of a document.
pub fn object(namespace: &str, key: &str) -> String {
    format!("{namespace}/{key}")
}

fn int(n: u64) -> Val {
    Val::I(i64::try_from(n).unwrap_or(i64::MAX))
}

fn text(s: &str) -> Val {
    Val::T(s.to_string())
}

fn corrupt(msg: &str) -> StoreError {
    StoreError::Backend(format!("unexpected data in the store: {msg}"))
}

fn as_text(v: Val) -> Result<String, StoreError> {
    match v {
        Val::T(s) => Ok(s),
        _ => Err(corrupt("expected a text column")),
    }
}

fn as_u64(v: &Val) -> Result<u64, StoreError> {
    match v {
        Val::I(i) => u64::try_from(*i).map_err(|_| corrupt("negative number")),
        _ => Err(corrupt("expected an integer column")),
    }
}

fn doc_row(sql: &mut dyn Sql, ns: &str, key: &str) -> Result<Option<Document>, StoreError> {
    let rows = sql.query(
        "SELECT modified_index, doc FROM documents WHERE ns = $1 AND key = $2",
        &[text(ns), text(key)],
    )?;
    let Some(row) = rows.into_iter().next() else {
        return Ok(None);
    };
    let mut it = row.into_iter();
    let (Some(idx), Some(doc)) = (it.next(), it.next()) else {
        return Err(corrupt("short documents row"));
    };
    let value: Value = serde_json::from_str(&as_text(doc)?)
        .map_err(|e| StoreError::Backend(format!("stored document does not parse: {e}")))?;
    Ok(Some(Document {
        namespace: ns.to_string(),
        key: key.to_string(),
        value,
        modified_index: as_u64(&idx)?,
    }))
}

/// The document, if any.
pub fn get(sql: &mut dyn Sql, ns: &str, key: &str) -> Result<Option<Document>, StoreError> {
    doc_row(sql, ns, key)
}

/// Keys of a namespace, sorted.
pub fn keys(sql: &mut dyn Sql, ns: &str) -> Result<Vec<String>, StoreError> {
    sql.query(
        "SELECT key FROM documents WHERE ns = $1 ORDER BY key",
        &[text(ns)],
    )?
    .into_iter()
    .map(|row| {
        row.into_iter()
            .next()
            .map_or(Err(corrupt("empty row")), as_text)
    })
    .collect()
}

/// Namespaces holding at least one document, sorted.
pub fn namespaces(sql: &mut dyn Sql) -> Result<Vec<String>, StoreError> {
    sql.query("SELECT DISTINCT ns FROM documents ORDER BY ns", &[])?
        .into_iter()
        .map(|row| {
            row.into_iter()
                .next()
                .map_or(Err(corrupt("empty row")), as_text)
        })
        .collect()
}

fn check_expect(object: &str, expect: Expect, actual: Option<u64>) -> Result<(), StoreError> {
    let ok = match expect {
        Expect::Any => true,
        Expect::Absent => actual.is_none(),
        Expect::Index(i) => actual == Some(i),
    };
    if ok {
        Ok(())
    } else {
        Err(StoreError::Conflict {
            object: object.to_string(),
            expected: expect,
            actual,
        })
    }
}

#[allow(clippy::too_many_arguments)]
fn record(
    sql: &mut dyn Sql,
    idx: u64,
    now: u64,
    actor: &Actor,
    object: &str,
    kind: ObjectKind,
    before: Option<String>,
    after: Option<String>,
) -> Result<(), StoreError> {
    let at = super::engine::Stamp { idx, now, actor };
    super::engine::record(sql, &at, object, kind, before, after)
}

fn doc_text(value: &Value) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(e.to_string()))
}

/// Write one document inside a write transaction stamped `idx`.
pub fn apply_put(
    sql: &mut dyn Sql,
    idx: u64,
    now: u64,
    actor: &Actor,
    document: Document,
    expect: Expect,
) -> Result<(), StoreError> {
    check_namespace(&document.namespace)?;
    check_key(&document.key)?;
    let object = object(&document.namespace, &document.key);
    let before = doc_row(sql, &document.namespace, &document.key)?;
    check_expect(&object, expect, before.as_ref().map(|d| d.modified_index))?;
    let doc = doc_text(&document.value)?;
    sql.exec(
        "INSERT INTO documents (ns, key, modified_index, doc) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (ns, key) DO UPDATE SET modified_index = excluded.modified_index, \
         doc = excluded.doc",
        &[
            text(&document.namespace),
            text(&document.key),
            int(idx),
            Val::T(doc.clone()),
        ],
    )?;
    let before = before.map(|d| doc_text(&d.value)).transpose()?;
    record(
        sql,
        idx,
        now,
        actor,
        &object,
        ObjectKind::Document,
        before,
        Some(doc),
    )
}

/// Delete one document inside a write transaction stamped `idx`; deleting nothing is not an
/// error (like hosts and tags) unless `expect` says it must exist.
pub fn apply_delete(
    sql: &mut dyn Sql,
    idx: u64,
    now: u64,
    actor: &Actor,
    (namespace, key): (&str, &str),
    expect: Expect,
) -> Result<(), StoreError> {
    check_namespace(namespace)?;
    check_key(key)?;
    let object = object(namespace, key);
    let before = doc_row(sql, namespace, key)?;
    check_expect(&object, expect, before.as_ref().map(|d| d.modified_index))?;
    let Some(before) = before else {
        return Ok(());
    };
    sql.exec(
        "DELETE FROM documents WHERE ns = $1 AND key = $2",
        &[text(namespace), text(key)],
    )?;
    let before = doc_text(&before.value)?;
    record(
        sql,
        idx,
        now,
        actor,
        &object,
        ObjectKind::Document,
        Some(before),
        None,
    )
}

/// Record an event about `object` at the current index, without bumping it.
pub fn record_event(
    sql: &mut dyn Sql,
    object: &str,
    event: &Value,
    actor: &Actor,
) -> Result<(), StoreError> {
    if actor.name.trim().is_empty() {
        return Err(StoreError::Invalid("the actor name is empty".to_string()));
    }
    let rows = sql.query("SELECT idx FROM meta WHERE id = 1", &[])?;
    let idx = match rows.into_iter().next().and_then(|r| r.into_iter().next()) {
        Some(v) => as_u64(&v)?,
        None => return Err(corrupt("missing meta row")),
    };
    record(
        sql,
        idx,
        now_ms(),
        actor,
        object,
        ObjectKind::Event,
        None,
        Some(doc_text(event)?),
    )
}

/// Create a session: a token with an expiry and the person's groups. Sessions that expired are
/// removed on the way.
pub fn session_create(
    sql: &mut dyn Sql,
    name: &str,
    role: Role,
    groups: &[String],
    ttl: Duration,
) -> Result<(TokenInfo, String), StoreError> {
    if name.is_empty() || name.len() > 200 {
        return Err(StoreError::Invalid(
            "a session name must be 1 to 200 characters".to_string(),
        ));
    }
    let now = now_ms();
    sql.exec(
        "DELETE FROM tokens WHERE id IN (SELECT id FROM token_sessions WHERE expires_ms <= $1)",
        &[int(now)],
    )?;
    sql.exec(
        "DELETE FROM token_sessions WHERE expires_ms <= $1",
        &[int(now)],
    )?;
    let mut groups = groups.to_vec();
    groups.sort();
    groups.dedup();
    let secret = format!("hdb_{}", random_hex(32)?);
    let info = TokenInfo {
        id: random_hex(8)?,
        name: name.to_string(),
        role,
        created_ms: now,
        expires_ms: Some(now.saturating_add(ms(ttl))),
        groups,
        owner: None,
    };
    sql.exec(
        "INSERT INTO tokens (id, hash, name, role, created_ms) VALUES ($1, $2, $3, $4, $5)",
        &[
            text(&info.id),
            Val::T(token_hash(&secret)),
            text(&info.name),
            text(role.as_str()),
            int(info.created_ms),
        ],
    )?;
    sql.exec(
        "INSERT INTO token_sessions (id, expires_ms, groups) VALUES ($1, $2, $3)",
        &[
            text(&info.id),
            int(info.expires_ms.unwrap_or(now)),
            Val::T(serde_json::to_string(&info.groups).unwrap_or_else(|_| "[]".to_string())),
        ],
    )?;
    Ok((info, secret))
}

/// The session columns of a token row (`expires_ms`, `groups`), both NULL for an API token.
pub fn session_columns(
    expires: Option<Val>,
    groups: Option<Val>,
) -> Result<(Option<u64>, Vec<String>), StoreError> {
    let expires = match expires {
        None | Some(Val::Null) => None,
        Some(v) => Some(as_u64(&v)?),
    };
    let groups = match groups {
        None | Some(Val::Null) => Vec::new(),
        Some(v) => serde_json::from_str(&as_text(v)?)
            .map_err(|e| StoreError::Backend(format!("stored session groups: {e}")))?,
    };
    Ok((expires, groups))
}
