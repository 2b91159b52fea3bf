//! The store logic shared by the SQL backends.
//!
//! SQLite and PostgreSQL differ only in how they connect, open transactions, bind values and
//! map errors; everything else — validation, compare-and-set, the change log, tag cycles,
//! leases, tokens, queries — is written once here against the tiny [`Sql`] interface, so both
//! backends behave identically by construction and the shared test suite checks it.
//! Statements use `$N` placeholders, which both dialects accept (SQLite rewrites them).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::derive::derive_config;
use super::documents;
use super::error::StoreError;
use super::model::{
    Actor, Change, Document, Expect, Host, HostQuery, Lease, Members, ObjectKind, Page, Role,
    Snapshot, Tag, TokenInfo, Write,
};
use super::names;
use super::store::Store;
use super::util::{ms, now_ms, random_hex, token_hash};

/// A value bound to or read from a statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    I(i64),
    T(String),
    Null,
}

impl Val {
    fn int(&self) -> Result<i64, StoreError> {
        match self {
            Val::I(i) => Ok(*i),
            other => Err(corrupt(format!(
                "expected an integer column, got {other:?}"
            ))),
        }
    }

    fn text(self) -> Result<String, StoreError> {
        match self {
            Val::T(s) => Ok(s),
            other => Err(corrupt(format!("expected a text column, got {other:?}"))),
        }
    }

    fn opt_text(self) -> Result<Option<String>, StoreError> {
        match self {
            Val::Null => Ok(None),
            other => other.text().map(Some),
        }
    }

    fn u64(&self) -> Result<u64, StoreError> {
        u64::try_from(self.int()?).map_err(|_| corrupt("negative index".to_string()))
    }
}

fn corrupt(msg: String) -> StoreError {
    StoreError::Backend(format!("unexpected data in the store: {msg}"))
}

fn int(n: u64) -> Val {
    Val::I(i64::try_from(n).unwrap_or(i64::MAX))
}

fn text(s: &str) -> Val {
    Val::T(s.to_string())
}

fn opt(s: &Option<String>) -> Val {
    s.as_deref().map_or(Val::Null, text)
}

/// One connection or transaction of a backend.
pub(crate) trait Sql {
    /// Run a statement; the number of rows it changed.
    fn exec(&mut self, sql: &str, args: &[Val]) -> Result<u64, StoreError>;
    /// Run a query; every row as values.
    fn query(&mut self, sql: &str, args: &[Val]) -> Result<Vec<Vec<Val>>, StoreError>;
    /// The database's clock, in ms since the epoch: leases expire by it, so every client of
    /// one database agrees on when (an embedded database's clock is this computer's).
    fn now_ms(&mut self) -> Result<u64, StoreError> {
        Ok(now_ms())
    }
}

/// A SQL database HostDB can live in.
pub(crate) trait Backend: Send + Sync + 'static {
    fn url(&self) -> String;
    /// Run `f` on a connection, outside a transaction (single statements).
    fn read<R>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<R, StoreError>,
    ) -> Result<R, StoreError>;
    /// Run `f` in a read transaction that sees one consistent state.
    fn read_consistent<R>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<R, StoreError>,
    ) -> Result<R, StoreError>;
    /// Run `f` in a write transaction, serialized against every other writer; commit when it
    /// returns `Ok`, roll back otherwise.
    fn write<R>(
        &self,
        f: impl FnOnce(&mut dyn Sql) -> Result<R, StoreError>,
    ) -> Result<R, StoreError>;
}

/// The schema; `{SEQ}` is the dialect's auto-increment primary key.
pub(crate) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS meta (id BIGINT PRIMARY KEY, idx BIGINT NOT NULL)",
    "INSERT INTO meta (id, idx) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
    "CREATE TABLE IF NOT EXISTS hosts (name TEXT PRIMARY KEY, kind TEXT NOT NULL, class TEXT, \
     owner TEXT, machine TEXT, ip TEXT, created_index BIGINT NOT NULL, \
     modified_index BIGINT NOT NULL, doc TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS hosts_kind ON hosts (kind, name)",
    "CREATE INDEX IF NOT EXISTS hosts_class ON hosts (class, name)",
    "CREATE INDEX IF NOT EXISTS hosts_owner ON hosts (owner, name)",
    "CREATE INDEX IF NOT EXISTS hosts_machine ON hosts (machine, name)",
    "CREATE INDEX IF NOT EXISTS hosts_ip ON hosts (ip)",
    "CREATE TABLE IF NOT EXISTS host_tags (tag TEXT NOT NULL, host TEXT NOT NULL, \
     PRIMARY KEY (tag, host))",
    "CREATE INDEX IF NOT EXISTS host_tags_host ON host_tags (host)",
    "CREATE TABLE IF NOT EXISTS host_props (key TEXT NOT NULL, value TEXT NOT NULL, \
     host TEXT NOT NULL, PRIMARY KEY (key, value, host))",
    "CREATE INDEX IF NOT EXISTS host_props_host ON host_props (host)",
    "CREATE TABLE IF NOT EXISTS tags (name TEXT PRIMARY KEY, modified_index BIGINT NOT NULL, \
     doc TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tag_parents (child TEXT NOT NULL, parent TEXT NOT NULL, \
     PRIMARY KEY (child, parent))",
    "CREATE INDEX IF NOT EXISTS tag_parents_parent ON tag_parents (parent, child)",
    "CREATE TABLE IF NOT EXISTS changes ({SEQ}, idx BIGINT NOT NULL, object TEXT NOT NULL, \
     kind TEXT NOT NULL, before TEXT, after TEXT, actor TEXT NOT NULL, message TEXT, \
     time_ms BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS changes_object ON changes (object, seq)",
    "CREATE TABLE IF NOT EXISTS locks (name TEXT PRIMARY KEY, holder TEXT NOT NULL, \
     id TEXT NOT NULL UNIQUE, since_ms BIGINT NOT NULL, expires_ms BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tokens (id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, \
     name TEXT NOT NULL, role TEXT NOT NULL, created_ms BIGINT NOT NULL)",
    // Added for the HostDB v1 API and sessions (design §10, §11); see `documents`.
    "CREATE TABLE IF NOT EXISTS documents (ns TEXT NOT NULL, key TEXT NOT NULL, \
     modified_index BIGINT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (ns, key))",
    "CREATE TABLE IF NOT EXISTS token_sessions (id TEXT PRIMARY KEY, \
     expires_ms BIGINT NOT NULL, groups TEXT NOT NULL)",
    // Added for tokens scoped to one owner (issue 13): a table of its own, so databases made
    // before it need no migration.
    "CREATE TABLE IF NOT EXISTS token_owners (id TEXT PRIMARY KEY, owner TEXT NOT NULL)",
];

fn parse<T: DeserializeOwned>(doc: &str) -> Result<T, StoreError> {
    serde_json::from_str(doc).map_err(|e| corrupt(format!("bad stored document: {e}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(format!("encoding JSON: {e}")))
}

/// Parse stored documents into a vector sized once, freeing each document as it is parsed
/// (a snapshot of 100,000 hosts is ~50 MB of documents, and the vector of hosts grew by
/// doubling before).
fn parse_all<T: DeserializeOwned>(docs: Vec<String>) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::with_capacity(docs.len());
    for doc in docs {
        out.push(parse(&doc)?);
    }
    Ok(out)
}

/// The first column of every row, as text.
fn texts(sql: &mut dyn Sql, q: &str, args: &[Val]) -> Result<Vec<String>, StoreError> {
    let rows = sql.query(q, args)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(first(row).and_then(Val::text)?);
    }
    Ok(out)
}

fn first(row: Vec<Val>) -> Result<Val, StoreError> {
    row.into_iter()
        .next()
        .ok_or_else(|| corrupt("empty row".to_string()))
}

fn one_text(sql: &mut dyn Sql, q: &str, args: &[Val]) -> Result<Option<String>, StoreError> {
    Ok(texts(sql, q, args)?.into_iter().next())
}

fn host_doc(sql: &mut dyn Sql, name: &str) -> Result<Option<String>, StoreError> {
    one_text(sql, "SELECT doc FROM hosts WHERE name = $1", &[text(name)])
}

fn tag_doc(sql: &mut dyn Sql, name: &str) -> Result<Option<String>, StoreError> {
    one_text(sql, "SELECT doc FROM tags WHERE name = $1", &[text(name)])
}

fn current_index(sql: &mut dyn Sql) -> Result<u64, StoreError> {
    let rows = sql.query("SELECT idx FROM meta WHERE id = 1", &[])?;
    match rows.into_iter().next() {
        Some(row) => first(row)?.u64(),
        None => Err(corrupt("missing meta row".to_string())),
    }
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

fn sort_dedup(v: &mut Vec<String>) {
    v.sort();
    v.dedup();
}

/// Check names and normalise memberships before anything is written.
fn validate(w: &mut Write) -> Result<(), StoreError> {
    match w {
        Write::PutHost { host, .. } => {
            names::check("host", &host.name)?;
            sort_dedup(&mut host.tags);
            for t in &host.tags {
                names::check("tag", t)?;
            }
            if let Some(m) = &host.machine {
                names::check("machine", m)?;
            }
            if let Some(ip) = &host.ip {
                if ip.parse::<std::net::IpAddr>().is_err() {
                    return Err(StoreError::Invalid(format!(
                        "host `{}`: `{}` is not an IP address",
                        host.name,
                        ip.escape_default()
                    )));
                }
            }
            if host.labels.keys().any(|k| k.is_empty()) {
                return Err(StoreError::Invalid(format!(
                    "host `{}`: empty label key",
                    host.name
                )));
            }
        }
        Write::PutTag { tag, .. } => {
            names::check("tag", &tag.name)?;
            sort_dedup(&mut tag.tags);
            for t in &tag.tags {
                names::check("tag", t)?;
            }
        }
        Write::DeleteHost { name, .. } => names::check("host", name)?,
        Write::DeleteTag { name, .. } => names::check("tag", name)?,
        Write::Fence { lock, .. } => check_lock_name(lock)?,
        Write::PutDocument { document, .. } => {
            documents::check_namespace(&document.namespace)?;
            documents::check_key(&document.key)?;
        }
        Write::DeleteDocument { namespace, key, .. } => {
            documents::check_namespace(namespace)?;
            documents::check_key(key)?;
        }
    }
    Ok(())
}

/// How a property value is indexed for `--property K=V` queries.
fn prop_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The index and wall-clock time a write transaction stamps on its changes.
pub(super) struct Stamp<'a> {
    pub(super) idx: u64,
    pub(super) now: u64,
    pub(super) actor: &'a Actor,
}

/// One change-log row: the history every write leaves (hosts, tags, documents, events).
pub(super) fn record(
    sql: &mut dyn Sql,
    at: &Stamp<'_>,
    object: &str,
    kind: ObjectKind,
    before: Option<String>,
    after: Option<String>,
) -> Result<(), StoreError> {
    let Stamp { idx, now, actor } = *at;
    sql.exec(
        "INSERT INTO changes (idx, object, kind, before, after, actor, message, time_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            int(idx),
            text(object),
            text(kind.as_str()),
            opt(&before),
            opt(&after),
            text(&actor.name),
            opt(&actor.message),
            int(now),
        ],
    )?;
    Ok(())
}

/// Child tag → its parents, as recorded.
fn load_edges(sql: &mut dyn Sql) -> Result<BTreeMap<String, BTreeSet<String>>, StoreError> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for row in sql.query("SELECT child, parent FROM tag_parents", &[])? {
        let mut it = row.into_iter();
        let (Some(c), Some(p)) = (it.next(), it.next()) else {
            return Err(corrupt("short tag_parents row".to_string()));
        };
        edges.entry(c.text()?).or_default().insert(p.text()?);
    }
    Ok(edges)
}

/// Whether `start` can reach itself through parent edges.
fn has_cycle(edges: &BTreeMap<String, BTreeSet<String>>, start: &str) -> bool {
    let mut stack: Vec<&str> = edges
        .get(start)
        .map(|p| p.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let mut seen = BTreeSet::new();
    while let Some(t) = stack.pop() {
        if t == start {
            return true;
        }
        if seen.insert(t) {
            if let Some(ps) = edges.get(t) {
                stack.extend(ps.iter().map(String::as_str));
            }
        }
    }
    false
}

/// Rows per multi-row statement: well under both dialects' limits on bound parameters.
const CHUNK: usize = 100;
/// Host writes in one transaction from which the multi-row path pays off.
const BATCH_FROM: usize = 8;

/// `($1, $2), ($3, $4)` for `rows` rows of `cols` values.
fn value_rows(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let ps: Vec<String> = (1..=cols).map(|c| format!("${}", r * cols + c)).collect();
            format!("({})", ps.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$1, $2, …, $n`.
fn list_of(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Many host writes with multi-row statements (a few statements per hundred hosts instead
/// of several per host: it is round trips that make a large apply slow on PostgreSQL). Only
/// used when every host in the batch is named once, so the order of writes cannot matter.
fn apply_host_batch(
    sql: &mut dyn Sql,
    writes: Vec<Write>,
    at: &Stamp<'_>,
) -> Result<(), StoreError> {
    let names: Vec<String> = writes.iter().map(|w| w.object().to_string()).collect();
    let mut current: BTreeMap<String, String> = BTreeMap::new();
    for chunk in names.chunks(CHUNK) {
        let q = format!(
            "SELECT name, doc FROM hosts WHERE name IN ({})",
            list_of(chunk.len())
        );
        let args: Vec<Val> = chunk.iter().map(|n| text(n)).collect();
        for row in sql.query(&q, &args)? {
            let mut it = row.into_iter();
            let (Some(n), Some(d)) = (it.next(), it.next()) else {
                return Err(corrupt("short hosts row".to_string()));
            };
            current.insert(n.text()?, d.text()?);
        }
    }
    let mut puts: Vec<(Host, String)> = Vec::new();
    let mut deletes: Vec<String> = Vec::new();
    let mut changes: Vec<(String, Option<String>, Option<String>)> = Vec::new();
    for w in writes {
        match w {
            Write::PutHost { mut host, expect } => {
                let before = current.get(&host.name).cloned();
                let cur: Option<Host> = before.as_deref().map(parse).transpose()?;
                check_expect(&host.name, expect, cur.as_ref().map(|h| h.modified_index))?;
                host.created_index = cur.map_or(at.idx, |h| h.created_index);
                host.modified_index = at.idx;
                let doc = to_json(&host)?;
                changes.push((host.name.clone(), before, Some(doc.clone())));
                puts.push((host, doc));
            }
            Write::DeleteHost { name, expect } => {
                let before = current.get(&name).cloned();
                let cur: Option<Host> = before.as_deref().map(parse).transpose()?;
                check_expect(&name, expect, cur.as_ref().map(|h| h.modified_index))?;
                if before.is_some() {
                    changes.push((name.clone(), before, None));
                    deletes.push(name);
                }
            }
            other => {
                return Err(StoreError::Backend(format!(
                    "host batch given a tag write on `{}`",
                    other.object()
                )))
            }
        }
    }
    let touched: Vec<&String> = puts.iter().map(|(h, _)| &h.name).chain(&deletes).collect();
    for chunk in touched.chunks(CHUNK) {
        let args: Vec<Val> = chunk.iter().map(|n| text(n)).collect();
        for table in ["host_tags", "host_props"] {
            let q = format!(
                "DELETE FROM {table} WHERE host IN ({})",
                list_of(chunk.len())
            );
            sql.exec(&q, &args)?;
        }
    }
    for chunk in deletes.chunks(CHUNK) {
        let q = format!("DELETE FROM hosts WHERE name IN ({})", list_of(chunk.len()));
        let args: Vec<Val> = chunk.iter().map(|n| text(n)).collect();
        sql.exec(&q, &args)?;
    }
    for chunk in puts.chunks(CHUNK) {
        let q = format!(
            "INSERT INTO hosts (name, kind, class, owner, machine, ip, created_index, \
             modified_index, doc) VALUES {} ON CONFLICT (name) DO UPDATE SET \
             kind = excluded.kind, class = excluded.class, owner = excluded.owner, \
             machine = excluded.machine, ip = excluded.ip, \
             created_index = excluded.created_index, \
             modified_index = excluded.modified_index, doc = excluded.doc",
            value_rows(chunk.len(), 9)
        );
        let mut args = Vec::with_capacity(chunk.len() * 9);
        for (h, doc) in chunk {
            args.extend([
                text(&h.name),
                text(h.kind.as_str()),
                opt(&h.class),
                opt(&h.owner),
                opt(&h.machine),
                opt(&h.ip),
                int(h.created_index),
                int(h.modified_index),
                Val::T(doc.clone()),
            ]);
        }
        sql.exec(&q, &args)?;
    }
    let tag_rows: Vec<[Val; 2]> = puts
        .iter()
        .flat_map(|(h, _)| h.tags.iter().map(|t| [text(t), text(&h.name)]))
        .collect();
    for chunk in tag_rows.chunks(CHUNK) {
        let q = format!(
            "INSERT INTO host_tags (tag, host) VALUES {}",
            value_rows(chunk.len(), 2)
        );
        sql.exec(&q, &chunk.concat())?;
    }
    let prop_rows: Vec<[Val; 3]> = puts
        .iter()
        .flat_map(|(h, _)| {
            h.properties
                .iter()
                .map(|(k, v)| [text(k), Val::T(prop_text(v)), text(&h.name)])
        })
        .collect();
    for chunk in prop_rows.chunks(CHUNK) {
        let q = format!(
            "INSERT INTO host_props (key, value, host) VALUES {}",
            value_rows(chunk.len(), 3)
        );
        sql.exec(&q, &chunk.concat())?;
    }
    for chunk in changes.chunks(CHUNK) {
        let q = format!(
            "INSERT INTO changes (idx, object, kind, before, after, actor, message, time_ms) \
             VALUES {}",
            value_rows(chunk.len(), 8)
        );
        let mut args = Vec::with_capacity(chunk.len() * 8);
        for (name, before, after) in chunk {
            args.extend([
                int(at.idx),
                text(name),
                text(ObjectKind::Host.as_str()),
                opt(before),
                opt(after),
                text(&at.actor.name),
                opt(&at.actor.message),
                int(at.now),
            ]);
        }
        sql.exec(&q, &args)?;
    }
    Ok(())
}

/// The body of `Store::write`, run inside one serialized transaction.
/// The lease `id` of `lock` is held and unexpired, by the database's clock.
fn check_fence(sql: &mut dyn Sql, lock: &str, id: &str) -> Result<(), StoreError> {
    let now = sql.now_ms()?;
    let rows = sql.query(
        "SELECT expires_ms FROM locks WHERE name = $1 AND id = $2",
        &[text(lock), text(id)],
    )?;
    let expires = match rows.into_iter().next() {
        Some(row) => first(row)?.u64()?,
        None => 0,
    };
    if expires > now {
        Ok(())
    } else {
        Err(StoreError::LeaseLost {
            name: lock.to_string(),
            id: id.to_string(),
        })
    }
}

fn apply_writes(
    sql: &mut dyn Sql,
    mut writes: Vec<Write>,
    actor: &Actor,
) -> Result<u64, StoreError> {
    if actor.name.trim().is_empty() {
        return Err(StoreError::Invalid("the actor name is empty".to_string()));
    }
    for w in &mut writes {
        validate(w)?;
    }
    let (fences, writes): (Vec<Write>, Vec<Write>) = writes
        .into_iter()
        .partition(|w| matches!(w, Write::Fence { .. }));
    for f in &fences {
        if let Write::Fence { lock, id } = f {
            check_fence(sql, lock, id)?;
        }
    }
    if writes.is_empty() {
        return current_index(sql);
    }
    let now = sql.now_ms()?;
    let rows = sql.query(
        "UPDATE meta SET idx = idx + 1 WHERE id = 1 RETURNING idx",
        &[],
    )?;
    let idx = match rows.into_iter().next() {
        Some(row) => first(row)?.u64()?,
        None => return Err(corrupt("missing meta row".to_string())),
    };
    let at = Stamp { idx, now, actor };
    let (host_writes, writes): (Vec<Write>, Vec<Write>) = writes
        .into_iter()
        .partition(|w| matches!(w, Write::PutHost { .. } | Write::DeleteHost { .. }));
    let unique = host_writes
        .iter()
        .map(Write::object)
        .collect::<BTreeSet<_>>()
        .len()
        == host_writes.len();
    // Host and tag writes touch different rows, so hosts may go first as a batch.
    let writes = if unique && host_writes.len() >= BATCH_FROM {
        apply_host_batch(sql, host_writes, &at)?;
        writes
    } else {
        host_writes.into_iter().chain(writes).collect()
    };
    let mut edges = None;
    for w in writes {
        apply_one(sql, w, &at, &mut edges)?;
    }
    Ok(idx)
}

/// One host or tag write of a transaction; `edges` is the tag graph, loaded on first need.
fn apply_one(
    sql: &mut dyn Sql,
    w: Write,
    at: &Stamp,
    edges: &mut Option<BTreeMap<String, BTreeSet<String>>>,
) -> Result<(), StoreError> {
    let idx = at.idx;
    match w {
        Write::PutHost { mut host, expect } => {
            let before = host_doc(sql, &host.name)?;
            let cur: Option<Host> = before.as_deref().map(parse).transpose()?;
            check_expect(&host.name, expect, cur.as_ref().map(|h| h.modified_index))?;
            host.created_index = cur.map_or(idx, |h| h.created_index);
            host.modified_index = idx;
            let doc = to_json(&host)?;
            sql.exec(
                "INSERT INTO hosts (name, kind, class, owner, machine, ip, created_index, \
             modified_index, doc) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, \
             class = excluded.class, owner = excluded.owner, \
             machine = excluded.machine, ip = excluded.ip, \
             created_index = excluded.created_index, \
             modified_index = excluded.modified_index, doc = excluded.doc",
                &[
                    text(&host.name),
                    text(host.kind.as_str()),
                    opt(&host.class),
                    opt(&host.owner),
                    opt(&host.machine),
                    opt(&host.ip),
                    int(host.created_index),
                    int(idx),
                    Val::T(doc.clone()),
                ],
            )?;
            sql.exec("DELETE FROM host_tags WHERE host = $1", &[text(&host.name)])?;
            for t in &host.tags {
                sql.exec(
                    "INSERT INTO host_tags (tag, host) VALUES ($1, $2)",
                    &[text(t), text(&host.name)],
                )?;
            }
            sql.exec(
                "DELETE FROM host_props WHERE host = $1",
                &[text(&host.name)],
            )?;
            for (k, v) in &host.properties {
                sql.exec(
                    "INSERT INTO host_props (key, value, host) VALUES ($1, $2, $3)",
                    &[text(k), Val::T(prop_text(v)), text(&host.name)],
                )?;
            }
            record(sql, at, &host.name, ObjectKind::Host, before, Some(doc))?;
        }
        Write::DeleteHost { name, expect } => {
            let before = host_doc(sql, &name)?;
            let cur: Option<Host> = before.as_deref().map(parse).transpose()?;
            check_expect(&name, expect, cur.as_ref().map(|h| h.modified_index))?;
            if before.is_none() {
                return Ok(());
            }
            for q in [
                "DELETE FROM hosts WHERE name = $1",
                "DELETE FROM host_tags WHERE host = $1",
                "DELETE FROM host_props WHERE host = $1",
            ] {
                sql.exec(q, &[text(&name)])?;
            }
            record(sql, at, &name, ObjectKind::Host, before, None)?;
        }
        Write::PutTag { mut tag, expect } => {
            let before = tag_doc(sql, &tag.name)?;
            let cur: Option<Tag> = before.as_deref().map(parse).transpose()?;
            check_expect(&tag.name, expect, cur.as_ref().map(|t| t.modified_index))?;
            let e = match edges {
                Some(e) => e,
                None => edges.insert(load_edges(sql)?),
            };
            e.insert(tag.name.clone(), tag.tags.iter().cloned().collect());
            if has_cycle(e, &tag.name) {
                return Err(StoreError::Invalid(format!(
                    "tag `{}` would be nested inside itself",
                    tag.name
                )));
            }
            tag.created_index = cur.map_or(idx, |t| t.created_index);
            tag.modified_index = idx;
            let doc = to_json(&tag)?;
            sql.exec(
                "INSERT INTO tags (name, modified_index, doc) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET modified_index = excluded.modified_index, \
             doc = excluded.doc",
                &[text(&tag.name), int(idx), Val::T(doc.clone())],
            )?;
            sql.exec(
                "DELETE FROM tag_parents WHERE child = $1",
                &[text(&tag.name)],
            )?;
            for p in &tag.tags {
                sql.exec(
                    "INSERT INTO tag_parents (child, parent) VALUES ($1, $2)",
                    &[text(&tag.name), text(p)],
                )?;
            }
            record(sql, at, &tag.name, ObjectKind::Tag, before, Some(doc))?;
        }
        Write::DeleteTag { name, expect } => {
            let before = tag_doc(sql, &name)?;
            let cur: Option<Tag> = before.as_deref().map(parse).transpose()?;
            check_expect(&name, expect, cur.as_ref().map(|t| t.modified_index))?;
            if before.is_none() {
                return Ok(());
            }
            sql.exec("DELETE FROM tags WHERE name = $1", &[text(&name)])?;
            sql.exec("DELETE FROM tag_parents WHERE child = $1", &[text(&name)])?;
            if let Some(e) = edges {
                e.remove(&name);
            }
            record(sql, at, &name, ObjectKind::Tag, before, None)?;
        }
        Write::PutDocument { document, expect } => {
            documents::apply_put(sql, idx, at.now, at.actor, document, expect)?;
        }
        Write::DeleteDocument {
            namespace,
            key,
            expect,
        } => {
            documents::apply_delete(sql, idx, at.now, at.actor, (&namespace, &key), expect)?;
        }
        // Checked before anything was written (see `apply_writes`).
        Write::Fence { .. } => {}
    }
    Ok(())
}

/// Each queried tag with every tag nested in it, at any depth: membership is transitive, so a
/// host tagged `web` is in `prod` when `web` is nested in `prod`. Expanded here rather than
/// with a recursive query, which the two dialects type differently.
fn expand_tags(sql: &mut dyn Sql, tags: &[String]) -> Result<Vec<Vec<String>>, StoreError> {
    let mut children: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (child, parents) in load_edges(sql)? {
        for p in parents {
            children.entry(p).or_default().push(child.clone());
        }
    }
    Ok(tags
        .iter()
        .map(|t| {
            let mut seen = BTreeSet::from([t.clone()]);
            let mut stack = vec![t.clone()];
            while let Some(cur) = stack.pop() {
                for c in children.get(&cur).into_iter().flatten() {
                    if seen.insert(c.clone()) {
                        stack.push(c.clone());
                    }
                }
            }
            seen.into_iter().collect()
        })
        .collect())
}

/// The SQL and arguments of a host listing (one row more than the page, to know if there is
/// a next page); `expanded` holds each queried tag's set from [`expand_tags`].
fn list_sql(q: &HostQuery, expanded: &[Vec<String>]) -> (String, Vec<Val>) {
    let mut sql = String::from("SELECT doc FROM hosts WHERE 1 = 1");
    let mut args = Vec::new();
    let bind = |args: &mut Vec<Val>, v: Val| {
        args.push(v);
        format!("${}", args.len())
    };
    for (col, v) in [
        ("kind", q.kind.map(|k| k.as_str().to_string())),
        ("class", q.class.clone()),
        ("owner", q.owner.clone()),
        ("machine", q.machine.clone()),
    ] {
        if let Some(v) = v {
            let p = bind(&mut args, Val::T(v));
            sql.push_str(&format!(" AND {col} = {p}"));
        }
    }
    if let Some(after) = &q.after {
        let p = bind(&mut args, text(after));
        sql.push_str(&format!(" AND name > {p}"));
    }
    for set in expanded {
        let ps: Vec<String> = set.iter().map(|t| bind(&mut args, text(t))).collect();
        sql.push_str(&format!(
            " AND name IN (SELECT host FROM host_tags WHERE tag IN ({}))",
            ps.join(", ")
        ));
    }
    for (k, v) in &q.properties {
        let pk = bind(&mut args, text(k));
        let pv = bind(&mut args, text(v));
        sql.push_str(&format!(
            " AND name IN (SELECT host FROM host_props WHERE key = {pk} AND value = {pv})"
        ));
    }
    sql.push_str(" ORDER BY name");
    if let Some(limit) = q.limit {
        let p = bind(&mut args, int(limit as u64 + 1));
        sql.push_str(&format!(" LIMIT {p}"));
    }
    (sql, args)
}

fn lease_from(name: &str, row: Vec<Val>) -> Result<Lease, StoreError> {
    let mut it = row.into_iter();
    let (Some(holder), Some(id), Some(since), Some(expires)) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return Err(corrupt("short locks row".to_string()));
    };
    Ok(Lease {
        name: name.to_string(),
        holder: holder.text()?,
        id: id.text()?,
        since_ms: since.u64()?,
        expires_ms: expires.u64()?,
    })
}

fn token_from(row: Vec<Val>) -> Result<TokenInfo, StoreError> {
    let mut it = row.into_iter();
    let (Some(id), Some(name), Some(role), Some(created)) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return Err(corrupt("short tokens row".to_string()));
    };
    let role = role.text()?;
    let (expires_ms, groups) = documents::session_columns(it.next(), it.next())?;
    let owner = match it.next() {
        None => None,
        Some(v) => v.opt_text()?,
    };
    Ok(TokenInfo {
        id: id.text()?,
        name: name.text()?,
        role: Role::parse(&role).ok_or_else(|| corrupt(format!("unknown role `{role}`")))?,
        created_ms: created.u64()?,
        expires_ms,
        groups,
        owner,
    })
}

/// The columns of a token row, sessions' and scope included, for `token_from`.
const TOKEN_SELECT: &str = "SELECT t.id, t.name, t.role, t.created_ms, s.expires_ms, s.groups, \
     o.owner FROM tokens t LEFT JOIN token_sessions s ON s.id = t.id \
     LEFT JOIN token_owners o ON o.id = t.id";

/// Refuses, inside the write's transaction, any write a token scoped to `scope` may not make:
/// a host write whose record is, before or after, not owned by `scope`, and any tag or
/// document write (they have no owner and are shared by every owner).
fn check_scope(sql: &mut dyn Sql, writes: &[Write], scope: &str) -> Result<(), StoreError> {
    let forbidden = |object: &str, owner: Option<String>| StoreError::ForbiddenOwner {
        object: object.to_string(),
        owner,
        scope: scope.to_string(),
    };
    for w in writes {
        let name = match w {
            Write::Fence { .. } => continue,
            Write::PutHost { host, .. } => {
                if host.owner.as_deref() != Some(scope) {
                    return Err(forbidden(&host.name, host.owner.clone()));
                }
                &host.name
            }
            Write::DeleteHost { name, .. } => name,
            Write::PutTag { .. }
            | Write::DeleteTag { .. }
            | Write::PutDocument { .. }
            | Write::DeleteDocument { .. } => return Err(forbidden(w.object(), None)),
        };
        let rows = sql.query("SELECT owner FROM hosts WHERE name = $1", &[text(name)])?;
        if let Some(row) = rows.into_iter().next() {
            let owner = first(row)?.opt_text()?;
            if owner.as_deref() != Some(scope) {
                return Err(forbidden(name, owner));
            }
        }
    }
    Ok(())
}

fn check_lock_name(name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "lock name `{}` must be 1 to 200 printable characters",
            name.escape_default()
        )));
    }
    Ok(())
}

/// A [`Store`] over any SQL [`Backend`].
pub struct SqlStore<B> {
    pub(crate) backend: B,
}

impl<B: Backend> Store for SqlStore<B> {
    fn url(&self) -> String {
        self.backend.url()
    }

    fn index(&self) -> Result<u64, StoreError> {
        self.backend.read(current_index)
    }

    fn get_host(&self, name: &str) -> Result<Option<Host>, StoreError> {
        self.backend
            .read(|sql| host_doc(sql, name)?.as_deref().map(parse).transpose())
    }

    fn list_hosts(&self, q: &HostQuery) -> Result<Page<Host>, StoreError> {
        if q.limit == Some(0) {
            return Err(StoreError::Invalid("limit must be at least 1".to_string()));
        }
        let docs = self.backend.read(|sql| {
            let expanded = if q.tags.is_empty() {
                Vec::new()
            } else {
                expand_tags(sql, &q.tags)?
            };
            let (query, args) = list_sql(q, &expanded);
            texts(sql, &query, &args)
        })?;
        let mut items: Vec<Host> = parse_all(docs)?;
        let mut next = None;
        if let Some(limit) = q.limit {
            if items.len() > limit {
                items.truncate(limit);
                next = items.last().map(|h| h.name.clone());
            }
        }
        Ok(Page { items, next })
    }

    fn get_tag(&self, name: &str) -> Result<Option<Tag>, StoreError> {
        self.backend
            .read(|sql| tag_doc(sql, name)?.as_deref().map(parse).transpose())
    }

    fn list_tags(&self) -> Result<Vec<Tag>, StoreError> {
        let docs = self
            .backend
            .read(|sql| texts(sql, "SELECT doc FROM tags ORDER BY name", &[]))?;
        parse_all(docs)
    }

    fn tag_members(&self, name: &str) -> Result<Members, StoreError> {
        self.backend.read_consistent(|sql| {
            Ok(Members {
                hosts: texts(
                    sql,
                    "SELECT host FROM host_tags WHERE tag = $1 ORDER BY host",
                    &[text(name)],
                )?,
                tags: texts(
                    sql,
                    "SELECT child FROM tag_parents WHERE parent = $1 ORDER BY child",
                    &[text(name)],
                )?,
            })
        })
    }

    fn write(&self, writes: Vec<Write>, actor: &Actor) -> Result<u64, StoreError> {
        self.backend.write(|sql| apply_writes(sql, writes, actor))
    }

    fn write_scoped(
        &self,
        writes: Vec<Write>,
        actor: &Actor,
        owner: Option<&str>,
    ) -> Result<u64, StoreError> {
        self.backend.write(|sql| {
            if let Some(scope) = owner {
                check_scope(sql, &writes, scope)?;
            }
            apply_writes(sql, writes, actor)
        })
    }

    fn snapshot(&self, owner: &str) -> Result<Snapshot, StoreError> {
        let (index, machines, hosts, others, tags) = self.backend.read_consistent(|sql| {
            Ok((
                current_index(sql)?,
                texts(
                    sql,
                    "SELECT doc FROM hosts WHERE kind = 'machine' ORDER BY name",
                    &[],
                )?,
                texts(
                    sql,
                    "SELECT doc FROM hosts WHERE owner = $1 AND kind = 'container' ORDER BY name",
                    &[text(owner)],
                )?,
                // Every other container on a machine: capacity is global (design §8).
                texts(
                    sql,
                    "SELECT doc FROM hosts WHERE kind = 'container' AND machine IS NOT NULL \
                     AND (owner IS NULL OR owner <> $1) ORDER BY name",
                    &[text(owner)],
                )?,
                texts(sql, "SELECT doc FROM tags ORDER BY name", &[])?,
            ))
        })?;
        Ok(Snapshot {
            index,
            machines: parse_all(machines)?,
            hosts: parse_all(hosts)?,
            others: parse_all(others)?,
            tags: parse_all(tags)?,
        })
    }

    fn used_ips(&self) -> Result<Vec<String>, StoreError> {
        self.backend.read(|sql| {
            texts(
                sql,
                "SELECT DISTINCT ip FROM hosts WHERE ip IS NOT NULL ORDER BY ip",
                &[],
            )
        })
    }

    fn derived_config(&self, name: &str) -> Result<Option<Map<String, Value>>, StoreError> {
        self.backend.read_consistent(|sql| {
            let Some(doc) = host_doc(sql, name)? else {
                return Ok(None);
            };
            let host: Host = parse(&doc)?;
            let config = derive_config(&host, |t| {
                tag_doc(sql, t)?.as_deref().map(parse).transpose()
            })?;
            Ok(Some(config))
        })
    }

    fn history(&self, object: &str) -> Result<Vec<Change>, StoreError> {
        let rows = self.backend.read(|sql| {
            sql.query(
                "SELECT idx, kind, before, after, actor, message, time_ms FROM changes \
                 WHERE object = $1 ORDER BY seq",
                &[text(object)],
            )
        })?;
        rows.into_iter()
            .map(|row| {
                let mut it = row.into_iter();
                let (Some(idx), Some(kind), Some(before), Some(after), Some(actor)) =
                    (it.next(), it.next(), it.next(), it.next(), it.next())
                else {
                    return Err(corrupt("short changes row".to_string()));
                };
                let (Some(message), Some(time)) = (it.next(), it.next()) else {
                    return Err(corrupt("short changes row".to_string()));
                };
                let kind = match kind.text()?.as_str() {
                    "tag" => ObjectKind::Tag,
                    "document" => ObjectKind::Document,
                    "event" => ObjectKind::Event,
                    _ => ObjectKind::Host,
                };
                Ok(Change {
                    index: idx.u64()?,
                    object: object.to_string(),
                    kind,
                    before: before.opt_text()?.as_deref().map(parse).transpose()?,
                    after: after.opt_text()?.as_deref().map(parse).transpose()?,
                    actor: actor.text()?,
                    message: message.opt_text()?,
                    time_ms: time.u64()?,
                })
            })
            .collect()
    }

    fn last_change(&self, object: &str) -> Result<u64, StoreError> {
        let rows = self.backend.read(|sql| {
            sql.query(
                "SELECT MAX(idx) FROM changes WHERE object = $1",
                &[text(object)],
            )
        })?;
        match rows.into_iter().next().map(first).transpose()? {
            Some(Val::Null) | None => Ok(0),
            Some(v) => v.u64(),
        }
    }

    fn lock_acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<Lease, StoreError> {
        check_lock_name(name)?;
        if holder.is_empty() {
            return Err(StoreError::Invalid("the lock holder is empty".to_string()));
        }
        let id = random_hex(16)?;
        self.backend.write(|sql| {
            let now = sql.now_ms()?;
            let rows = sql.query(
                "SELECT holder, id, since_ms, expires_ms FROM locks WHERE name = $1",
                &[text(name)],
            )?;
            if let Some(row) = rows.into_iter().next() {
                let cur = lease_from(name, row)?;
                if cur.expires_ms > now {
                    return Err(StoreError::Held {
                        name: name.to_string(),
                        holder: cur.holder,
                        since_ms: cur.since_ms,
                        id: cur.id,
                    });
                }
            }
            let lease = Lease {
                name: name.to_string(),
                holder: holder.to_string(),
                id,
                since_ms: now,
                expires_ms: now.saturating_add(ms(ttl)),
            };
            sql.exec(
                "INSERT INTO locks (name, holder, id, since_ms, expires_ms) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET \
                 holder = excluded.holder, id = excluded.id, since_ms = excluded.since_ms, \
                 expires_ms = excluded.expires_ms",
                &[
                    text(name),
                    text(holder),
                    text(&lease.id),
                    int(lease.since_ms),
                    int(lease.expires_ms),
                ],
            )?;
            Ok(lease)
        })
    }

    fn lock_renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease, StoreError> {
        self.backend.write(|sql| {
            let now = sql.now_ms()?;
            let rows = sql.query(
                "SELECT holder, id, since_ms, expires_ms FROM locks WHERE name = $1",
                &[text(&lease.name)],
            )?;
            let cur = match rows.into_iter().next() {
                Some(row) => Some(lease_from(&lease.name, row)?),
                None => None,
            };
            match cur {
                Some(mut cur) if cur.id == lease.id && cur.expires_ms > now => {
                    cur.expires_ms = now.saturating_add(ms(ttl));
                    sql.exec(
                        "UPDATE locks SET expires_ms = $1 WHERE id = $2",
                        &[int(cur.expires_ms), text(&cur.id)],
                    )?;
                    Ok(cur)
                }
                _ => Err(StoreError::LeaseLost {
                    name: lease.name.clone(),
                    id: lease.id.clone(),
                }),
            }
        })
    }

    fn lock_release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.backend.write(|sql| {
            sql.exec(
                "DELETE FROM locks WHERE name = $1 AND id = $2",
                &[text(&lease.name), text(&lease.id)],
            )
            .map(|_| ())
        })
    }

    fn lock_force_release(&self, id: &str) -> Result<(), StoreError> {
        let n = self
            .backend
            .write(|sql| sql.exec("DELETE FROM locks WHERE id = $1", &[text(id)]))?;
        if n == 0 {
            return Err(StoreError::NotFound {
                object: format!("lease {id}"),
            });
        }
        Ok(())
    }

    fn list_locks(&self) -> Result<Vec<Lease>, StoreError> {
        let rows = self.backend.read(|sql| {
            let now = sql.now_ms()?;
            sql.query(
                "SELECT name, holder, id, since_ms, expires_ms FROM locks \
                 WHERE expires_ms > $1 ORDER BY name",
                &[int(now)],
            )
        })?;
        rows.into_iter()
            .map(|row| {
                let mut it = row.into_iter();
                let name = it
                    .next()
                    .ok_or_else(|| corrupt("short locks row".to_string()))?
                    .text()?;
                lease_from(&name, it.collect())
            })
            .collect()
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
        if owner.is_some_and(|o| o.is_empty() || o.len() > 200 || o.chars().any(char::is_control)) {
            return Err(StoreError::Invalid(
                "a token's owner must be 1 to 200 printable characters".to_string(),
            ));
        }
        if owner.is_some() && role == Role::Admin {
            // An admin manages tokens, so a scope would not hold it.
            return Err(StoreError::Invalid(
                "a token scoped to an owner cannot be an admin token".to_string(),
            ));
        }
        if name.is_empty() || name.len() > 200 {
            return Err(StoreError::Invalid(
                "a token name must be 1 to 200 characters".to_string(),
            ));
        }
        let secret = format!("hdb_{}", random_hex(32)?);
        let info = TokenInfo {
            id: random_hex(8)?,
            name: name.to_string(),
            role,
            created_ms: now_ms(),
            expires_ms: None,
            groups: Vec::new(),
            owner: owner.map(str::to_string),
        };
        self.backend.write(|sql| {
            if let Some(o) = &info.owner {
                sql.exec(
                    "INSERT INTO token_owners (id, owner) VALUES ($1, $2)",
                    &[text(&info.id), text(o)],
                )?;
            }
            sql.exec(
                "INSERT INTO tokens (id, hash, name, role, created_ms) VALUES ($1, $2, $3, $4, $5)",
                &[
                    text(&info.id),
                    Val::T(token_hash(&secret)),
                    text(&info.name),
                    text(role.as_str()),
                    int(info.created_ms),
                ],
            )
        })?;
        Ok((info, secret))
    }

    fn token_verify(&self, secret: &str) -> Result<Option<TokenInfo>, StoreError> {
        let rows = self.backend.read(|sql| {
            sql.query(
                &format!("{TOKEN_SELECT} WHERE t.hash = $1"),
                &[Val::T(token_hash(secret))],
            )
        })?;
        let found = rows.into_iter().next().map(token_from).transpose()?;
        // An expired session is no token at all.
        Ok(found.filter(|t| !t.expired(now_ms())))
    }

    fn token_list(&self) -> Result<Vec<TokenInfo>, StoreError> {
        let rows = self
            .backend
            .read(|sql| sql.query(&format!("{TOKEN_SELECT} ORDER BY t.name, t.id"), &[]))?;
        let now = now_ms();
        let tokens: Vec<TokenInfo> = rows.into_iter().map(token_from).collect::<Result<_, _>>()?;
        Ok(tokens.into_iter().filter(|t| !t.expired(now)).collect())
    }

    fn token_delete(&self, id: &str) -> Result<(), StoreError> {
        let n = self.backend.write(|sql| {
            sql.exec("DELETE FROM token_sessions WHERE id = $1", &[text(id)])?;
            sql.exec("DELETE FROM token_owners WHERE id = $1", &[text(id)])?;
            sql.exec("DELETE FROM tokens WHERE id = $1", &[text(id)])
        })?;
        if n == 0 {
            return Err(StoreError::NotFound {
                object: format!("token {id}"),
            });
        }
        Ok(())
    }

    fn session_create(
        &self,
        name: &str,
        role: Role,
        groups: &[String],
        ttl: Duration,
    ) -> Result<(TokenInfo, String), StoreError> {
        self.backend
            .write(|sql| documents::session_create(sql, name, role, groups, ttl))
    }

    fn record_event(&self, object: &str, event: &Value, actor: &Actor) -> Result<(), StoreError> {
        self.backend
            .write(|sql| documents::record_event(sql, object, event, actor))
    }

    fn get_document(&self, namespace: &str, key: &str) -> Result<Option<Document>, StoreError> {
        self.backend.read(|sql| documents::get(sql, namespace, key))
    }

    fn list_documents(&self, namespace: &str) -> Result<Vec<String>, StoreError> {
        self.backend.read(|sql| documents::keys(sql, namespace))
    }

    fn document_namespaces(&self) -> Result<Vec<String>, StoreError> {
        self.backend.read(documents::namespaces)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edges(pairs: &[(&str, &str)]) -> BTreeMap<String, BTreeSet<String>> {
        let mut e: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (c, p) in pairs {
            e.entry(c.to_string()).or_default().insert(p.to_string());
        }
        e
    }

    #[test]
    fn finds_cycles() {
        assert!(!has_cycle(&edges(&[("a", "b"), ("b", "c")]), "a"));
        assert!(has_cycle(
            &edges(&[("a", "b"), ("b", "c"), ("c", "a")]),
            "a"
        ));
        assert!(has_cycle(&edges(&[("a", "a")]), "a"));
        // A diamond is not a cycle.
        assert!(!has_cycle(
            &edges(&[("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]),
            "a"
        ));
    }

    #[test]
    fn list_sql_binds_in_order() {
        let q = HostQuery {
            tags: vec!["web".into()],
            properties: vec![("env".into(), "prod".into())],
            kind: Some(crate::hostdb::model::Kind::Container),
            after: Some("a".into()),
            limit: Some(10),
            ..HostQuery::default()
        };
        let (sql, args) = list_sql(&q, &[vec!["web".into()]]);
        assert_eq!(args.len(), 6);
        assert!(
            sql.contains("kind = $1") && sql.contains("LIMIT $6"),
            "{sql}"
        );
        assert_eq!(args[5], Val::I(11));
    }
}
