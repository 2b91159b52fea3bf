//! `?meta=parents|derived|revisions`, `?revision=ID` and `?foreach=`.
//!
//! Revision ids are HostDB indexes: the object as it was at the newest change at or before that
//! index. A rollback is a PUT of what `?revision=` returned.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::members::expanded;
use super::objects::{current, does_not_exist, keys};
use super::value::{get_path, host_view, to_yaml};
use super::{lines, Request, V1Error, V1};
use crate::hostdb::model::{Host, HostQuery, ObjectKind, Tag};
use crate::hostdb::util::format_time;

/// Revisions listed when no `limit` is given, as the original.
const DEFAULT_LIMIT: usize = 50;

/// The change-log object of an id.
fn object(ns: &str, key: &str) -> String {
    match ns {
        "hosts" | "tags" => key.to_string(),
        _ => crate::hostdb::documents::object(ns, key),
    }
}

/// The kind of change-log entry an id's changes are. A host and a tag may share a name, and
/// so a change-log object: each namespace reads only its own kind.
fn kind(ns: &str) -> ObjectKind {
    match ns {
        "hosts" => ObjectKind::Host,
        "tags" => ObjectKind::Tag,
        _ => ObjectKind::Document,
    }
}

/// The changes of an id, oldest first.
fn changes(v1: &V1, ns: &str, key: &str) -> Result<Vec<crate::hostdb::model::Change>, V1Error> {
    let kind = kind(ns);
    let mut history = v1.store.history(&object(ns, key))?;
    history.retain(|c| c.kind == kind);
    Ok(history)
}

pub fn get(v1: &V1, req: &Request, id: &[&str], meta: &str) -> Result<String, V1Error> {
    let [ns, key, ..] = id else {
        return Err(V1Error::bad_request(format!(
            "meta={meta} needs an object: NAMESPACE/KEY"
        )));
    };
    match meta {
        "revisions" => {
            let limit = match req.param("limit") {
                Some(l) => l
                    .parse::<usize>()
                    .map_err(|_| V1Error::bad_request(format!("bad limit `{l}`")))?,
                None => DEFAULT_LIMIT,
            };
            revisions(v1, ns, key, limit)
        }
        "parents" | "parent" | "derived" => {
            if *ns != "hosts" {
                return Err(V1Error::new(405, "Namespace should be hosts."));
            }
            let from = req
                .param("from")
                .ok_or_else(|| V1Error::bad_request("Namespace missing."))?;
            let parents = parents(v1, key, from)?;
            if meta == "derived" {
                derived(v1, &parents)
            } else {
                Ok(lines(parents))
            }
        }
        other => Err(V1Error::bad_request(format!(
            "unknown meta `{other}`: use parents, derived or revisions"
        ))),
    }
}

/// Newest first: `INDEX TIME ACTOR MESSAGE`, one a line.
fn revisions(v1: &V1, ns: &str, key: &str, limit: usize) -> Result<String, V1Error> {
    let history = changes(v1, ns, key)?;
    if history.is_empty() {
        return Err(does_not_exist(ns, key));
    }
    Ok(lines(history.iter().rev().take(limit).map(|c| {
        format!(
            "{} {} {} {}",
            c.index,
            format_time(c.time_ms),
            c.actor,
            c.message.as_deref().unwrap_or("").replace('\n', " ")
        )
    })))
}

/// The object as v1 showed it at revision `rev`.
pub fn at_revision(v1: &V1, ns: &str, key: &str, rev: u64) -> Result<Value, V1Error> {
    let history = changes(v1, ns, key)?;
    let change = history
        .iter()
        .rev()
        .find(|c| c.index <= rev)
        .ok_or_else(|| V1Error::not_found(format!("{ns}/{key} has no revision {rev}")))?;
    let after = change
        .after
        .clone()
        .ok_or_else(|| V1Error::not_found(format!("{ns}/{key} did not exist at revision {rev}")))?;
    let broken = |e: serde_json::Error| V1Error::new(500, format!("stored revision: {e}"));
    Ok(match ns {
        "hosts" => host_view(&serde_json::from_value::<Host>(after).map_err(broken)?),
        "tags" => Value::Object(
            serde_json::from_value::<Tag>(after)
                .map_err(broken)?
                .properties,
        ),
        _ => after,
    })
}

/// Every tag `host` is in, directly or through nested tags, sorted.
fn parents(v1: &V1, host: &str, from: &str) -> Result<Vec<String>, V1Error> {
    let host = v1
        .store
        .get_host(host)?
        .ok_or_else(|| does_not_exist("hosts", host))?;
    if from != "tags" {
        // Documents have no members, so no host has parents there.
        crate::hostdb::documents::check_namespace(from)?;
        return Ok(Vec::new());
    }
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut todo: Vec<String> = host.tags.clone();
    while let Some(t) = todo.pop() {
        if !seen.insert(t.clone()) {
            continue;
        }
        if let Some(tag) = v1.store.get_tag(&t)? {
            todo.extend(tag.tags);
        }
    }
    Ok(seen.into_iter().collect())
}

/// Each parent's own value, by name (what the original's `meta=derived` gives).
fn derived(v1: &V1, parents: &[String]) -> Result<String, V1Error> {
    let mut out = Map::new();
    for p in parents {
        let props = v1
            .store
            .get_tag(p)?
            .map(|t| Value::Object(t.properties))
            .unwrap_or(Value::Null);
        out.insert(p.clone(), props);
    }
    Ok(to_yaml(&Value::Object(out)))
}

/// `GET NS/*/PATH?foreach=LIST`: the value at PATH for every key LIST names, as one YAML
/// mapping. LIST is `tags/T/members` (expanded) or a namespace (its keys).
pub fn foreach(v1: &V1, id: &[&str], list: &str) -> Result<String, V1Error> {
    let [ns, _, path @ ..] = id else {
        return Err(V1Error::bad_request(
            "foreach needs an id like hosts/*/Network/IP",
        ));
    };
    let list: Vec<&str> = list.split('/').filter(|s| !s.is_empty()).collect();
    let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
    let mut out = Map::new();
    match (*ns, list.as_slice()) {
        // The common case, in one query: a value of every host of a tag.
        ("hosts", ["tags", tag, "members"]) => {
            let q = HostQuery {
                tags: vec![tag.to_string()],
                ..HostQuery::default()
            };
            for host in v1.store.all_hosts(&q)? {
                let view = host_view(&host);
                out.insert(
                    host.name,
                    get_path(&view, &path).cloned().unwrap_or(Value::Null),
                );
            }
        }
        (_, list) => {
            let names = match list {
                ["tags", tag, "members"] => expanded(v1, tag)?,
                [list_ns] => keys(v1, list_ns)?,
                _ => {
                    return Err(V1Error::bad_request(
                        "foreach takes tags/TAG/members or a namespace",
                    ))
                }
            };
            for key in names {
                let value = if ns == &"tags" && path.first().map(String::as_str) == Some("members")
                {
                    expanded(v1, &key).ok().map(|m| Value::String(m.join(" ")))
                } else {
                    current(v1, ns, &key)
                        .ok()
                        .and_then(|(v, _)| get_path(&v, &path).cloned())
                };
                out.insert(key, value.unwrap_or(Value::Null));
            }
        }
    }
    Ok(to_yaml(&Value::Object(out)))
}
