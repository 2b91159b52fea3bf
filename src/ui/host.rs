//! The host page: a host's properties, its derived config with where each key comes from
//! (its own properties or which tag), its tags, and its history as diffs.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use minijinja::context;
use serde::Serialize;
use serde_json::Value;
use similar::{ChangeTag, TextDiff};

use super::authz::{allowed, Action};
use super::pages::{blocking, error, forbidden, store_error};
use super::session::require;
use super::Ui;
use crate::hostdb::derive::{derive_config_origins, Origin};
use crate::hostdb::model::{Change, Host};
use crate::hostdb::util::format_time;

/// Most history entries one page shows (newest first).
pub const HISTORY_SHOWN: usize = 100;

/// A JSON value as a page shows it: strings bare, everything else as compact JSON.
pub fn show_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One key of the derived config.
#[derive(Debug, Serialize)]
pub struct Derived {
    pub key: String,
    pub value: String,
    /// `None`: the host's own; else the tag it comes from.
    pub tag: Option<String>,
}

/// One line of a diff: `+`, `-` or ` ` (context), and the text.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct DiffLine {
    pub sign: &'static str,
    pub text: String,
}

/// One history entry.
#[derive(Debug, Serialize)]
pub struct Entry {
    pub index: u64,
    pub time: String,
    pub actor: String,
    pub message: Option<String>,
    /// `created`, `deleted`, `changed` or `event`.
    pub what: &'static str,
    pub diff: Vec<DiffLine>,
}

fn pretty(v: &Option<Value>) -> String {
    v.as_ref()
        .map(|v| serde_json::to_string_pretty(v).unwrap_or_default() + "\n")
        .unwrap_or_default()
}

/// The lines that changed between `before` and `after` (pretty JSON), with two lines of
/// context around each change.
pub fn diff(before: &Option<Value>, after: &Option<Value>) -> Vec<DiffLine> {
    let (a, b) = (pretty(before), pretty(after));
    let diff = TextDiff::from_lines(&a, &b);
    let mut out = Vec::new();
    for (i, group) in diff.grouped_ops(2).iter().enumerate() {
        if i > 0 {
            out.push(DiffLine {
                sign: "…",
                text: String::new(),
            });
        }
        for op in group {
            for change in diff.iter_changes(op) {
                let sign = match change.tag() {
                    ChangeTag::Delete => "-",
                    ChangeTag::Insert => "+",
                    ChangeTag::Equal => " ",
                };
                let text = change.value().trim_end_matches('\n').to_string();
                out.push(DiffLine { sign, text });
            }
        }
    }
    out
}

/// A change-log entry as the page shows it.
pub fn entry(c: &Change) -> Entry {
    let what = match (&c.before, &c.after) {
        _ if c.kind == crate::hostdb::ObjectKind::Event => "event",
        (None, Some(_)) => "created",
        (Some(_), None) => "deleted",
        _ => "changed",
    };
    Entry {
        index: c.index,
        time: format_time(c.time_ms),
        actor: c.actor.clone(),
        message: c.message.clone(),
        what,
        diff: diff(&c.before, &c.after),
    }
}

/// The properties of a host as `(key, value)` rows, and the fields as rows.
fn fields(h: &Host) -> Vec<(&'static str, String)> {
    let opt = |v: &Option<String>| v.clone();
    let num = |v: Option<u64>| v.map(|n| n.to_string());
    [
        ("kind", Some(h.kind.as_str().to_string())),
        ("state", h.state.map(|s| s.as_str().to_string())),
        ("class", opt(&h.class)),
        ("owner", opt(&h.owner)),
        ("machine", opt(&h.machine)),
        ("ip", opt(&h.ip)),
        ("image", opt(&h.image)),
        ("cpu", h.cpu.map(|c| c.to_string())),
        ("memory", h.memory_mib.map(crate::size::format_mib)),
        ("disk", h.disk_gib.map(crate::size::format_gib)),
        ("driver", opt(&h.driver)),
        ("connect", opt(&h.connect)),
        ("driver id", opt(&h.driver_id)),
        ("roles", (!h.roles.is_empty()).then(|| h.roles.join(", "))),
        (
            "labels",
            (!h.labels.is_empty()).then(|| {
                h.labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
        ),
        ("modified at index", num(Some(h.modified_index))),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect()
}

/// `GET /ui/hosts/{name}`.
pub async fn page(
    State(ui): State<Arc<Ui>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let who = match require(&ui, &headers, &uri).await {
        Ok(w) => w,
        Err(resp) => return resp,
    };
    let store = ui.store.clone();
    let wanted = name.clone();
    let found = blocking(move || {
        let Some(host) = store.get_host(&wanted)? else {
            return Ok(None);
        };
        let derived = derive_config_origins(&host, |t| store.get_tag(t))?;
        let history = store.history(&wanted)?;
        Ok(Some((host, derived, history)))
    })
    .await;
    let (host, derived, history) = match found {
        Ok(Some(x)) => x,
        Ok(None) => {
            return error(
                &ui,
                StatusCode::NOT_FOUND,
                "No such host",
                &format!("HostDB has no host `{name}`"),
                Some(&who),
            )
        }
        Err(e) => return store_error(&ui, e, &who),
    };
    let own = host.owner.as_deref() == Some(who.owner().as_str());
    if !allowed(who.role, Action::ReadHost { own }) {
        return forbidden(&ui, &who);
    }
    let derived: Vec<Derived> = derived
        .into_iter()
        .map(|(key, (v, origin))| Derived {
            key,
            value: show_value(&v),
            tag: match origin {
                Origin::Own => None,
                Origin::Tag(t) => Some(t),
            },
        })
        .collect();
    let total = history.len();
    let history: Vec<Entry> = history
        .iter()
        .rev()
        .take(HISTORY_SHOWN)
        .map(entry)
        .collect();
    let properties: Vec<(String, String)> = host
        .properties
        .iter()
        .map(|(k, v)| (k.clone(), show_value(v)))
        .collect();
    ui.page(
        StatusCode::OK,
        "host.html",
        context! {
            title => host.name.clone(), me => who, nav => "fleet", fields => fields(&host),
            host, properties, derived, history, total,
            reader => allowed(who.role, Action::ReadFleet),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diffs_show_what_changed_with_context() {
        let before = Some(json!({"name": "w1", "state": "creating", "a": 1, "b": 2, "c": 3}));
        let after = Some(json!({"name": "w1", "state": "running", "a": 1, "b": 2, "c": 3}));
        let lines: Vec<String> = diff(&before, &after)
            .into_iter()
            .map(|l| format!("{}{}", l.sign, l.text))
            .collect();
        assert_eq!(
            lines,
            [
                "   \"c\": 3,",
                "   \"name\": \"w1\",",
                "-  \"state\": \"creating\"",
                "+  \"state\": \"running\"",
                " }",
            ]
        );
    }

    #[test]
    fn a_creation_is_all_additions() {
        let lines = diff(&None, &Some(json!({"name": "w1"})));
        assert!(lines.iter().all(|l| l.sign == "+"), "{lines:?}");
        assert_eq!(lines.len(), 3);
    }
}
