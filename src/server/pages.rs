//! Pages of the list answers that had none: `/v1/snapshot`, `/v1/history/{name}`, `/v1/tags`
//! and `/v1/sd/prometheus` answer at most [`Limits::page_limit`](super::Limits) items.
//!
//! Each takes `limit` (1 to the page limit; the limit when absent, a larger one is `400`) and
//! `after`, the cursor a previous page gave. The snapshot, a JSON object, says the next
//! cursor in its `next` field; the others stay JSON arrays (Prometheus reads an array) and
//! say it in the `X-Hostdb-Next` header and a `Link: <…>; rel="next"` header. No cursor: the
//! last page. Tags page by name; a snapshot by section and name (`m:`, `h:`, `o:`, `t:`
//! then the name: machines, the owner's hosts, others' hosts, tags); history and Prometheus
//! target groups by position (history only grows at its end). Every page carries the index
//! it was read at, so a client that sees the index change between pages starts again.

use axum::http::HeaderValue;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::hostdb::protocol::NEXT_HEADER;
use crate::hostdb::{Host, Snapshot, Tag};

/// The paging parameters every paged list accepts.
pub const PAGE_PARAMS: [&str; 2] = ["limit", "after"];

/// A snapshot page as sent: the snapshot's fields and the next cursor.
#[derive(Debug, Serialize, Deserialize)]
pub struct SnapshotPage {
    #[serde(flatten)]
    pub snapshot: Snapshot,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `limit` and `after` of a request, `limit` checked against the server's page limit.
pub fn args(p: &[(String, String)], max: usize) -> Result<(usize, Option<String>), ApiError> {
    let one = |key: &str| -> Result<Option<&str>, ApiError> {
        let mut it = p.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str());
        let first = it.next();
        if it.next().is_some() {
            return Err(ApiError::bad_request(format!(
                "`{key}` given more than once"
            )));
        }
        Ok(first)
    };
    let max = max.max(1);
    let limit = match one("limit")? {
        None => max,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                "`limit` must be an integer from 1 to {max} (the server's page limit), got `{s}`"
            )))
            }
        },
    };
    Ok((limit, one("after")?.map(str::to_string)))
}

/// A position cursor (`after` of history and Prometheus pages): how many items came before.
pub fn position(after: Option<&str>) -> Result<usize, ApiError> {
    match after {
        None => Ok(0),
        Some(s) => s.parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!(
                "`after` must be the cursor a previous page gave, got `{s}`"
            ))
        }),
    }
}

/// Items `start..start+limit` of `items`, and the cursor after them if more follow.
pub fn by_position<T>(mut items: Vec<T>, start: usize, limit: usize) -> (Vec<T>, Option<String>) {
    let total = items.len();
    let end = start.saturating_add(limit).min(total);
    let start = start.min(total);
    items.truncate(end);
    let page: Vec<T> = items.drain(start..).collect();
    let next = (end < total).then(|| end.to_string());
    (page, next)
}

/// Tags after the one named `after`, at most `limit`; `tags` sorted by name.
pub fn tags(tags: Vec<Tag>, after: Option<&str>, limit: usize) -> (Vec<Tag>, Option<String>) {
    let rest: Vec<Tag> = tags
        .into_iter()
        .filter(|t| after.is_none_or(|a| t.name.as_str() > a))
        .collect();
    let more = rest.len() > limit;
    let page: Vec<Tag> = rest.into_iter().take(limit).collect();
    let next = if more {
        page.last().map(|t| t.name.clone())
    } else {
        None
    };
    (page, next)
}

/// The sections of a snapshot in page order, by their cursor prefixes.
const SECTIONS: [&str; 4] = ["m", "h", "o", "t"];

/// One item of a snapshot, in its section.
enum Item {
    Host(usize, Box<Host>),
    Tag(Tag),
}

/// At most `limit` items of a snapshot after cursor `after` (see the module docs); the
/// page's `index` is the snapshot's. Items are ordered by (section, name): each section of a
/// snapshot is sorted by name.
pub fn snapshot(
    snap: Snapshot,
    after: Option<&str>,
    limit: usize,
) -> Result<SnapshotPage, ApiError> {
    let after = match after {
        None => None,
        Some(c) => {
            let (s, name) = c.split_once(':').ok_or_else(|| bad_cursor(c))?;
            let i = SECTIONS
                .iter()
                .position(|x| *x == s)
                .ok_or_else(|| bad_cursor(c))?;
            Some((i, name.to_string()))
        }
    };
    let index = snap.index;
    let mut all: Vec<(usize, String, Item)> = Vec::new();
    for (i, hosts) in [snap.machines, snap.hosts, snap.others]
        .into_iter()
        .enumerate()
    {
        all.extend(
            hosts
                .into_iter()
                .map(|h| (i, h.name.clone(), Item::Host(i, Box::new(h)))),
        );
    }
    all.extend(
        snap.tags
            .into_iter()
            .map(|t| (3, t.name.clone(), Item::Tag(t))),
    );
    all.retain(|(s, n, _)| {
        after
            .as_ref()
            .is_none_or(|(a_s, a_n)| (*s, n.as_str()) > (*a_s, a_n.as_str()))
    });
    all.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let more = all.len() > limit;
    all.truncate(limit);
    let next = if more {
        all.last().map(|(s, n, _)| format!("{}:{n}", SECTIONS[*s]))
    } else {
        None
    };
    let mut page = Snapshot {
        index,
        machines: Vec::new(),
        hosts: Vec::new(),
        others: Vec::new(),
        tags: Vec::new(),
    };
    for (_, _, item) in all {
        match item {
            Item::Host(0, h) => page.machines.push(*h),
            Item::Host(1, h) => page.hosts.push(*h),
            Item::Host(_, h) => page.others.push(*h),
            Item::Tag(t) => page.tags.push(t),
        }
    }
    Ok(SnapshotPage {
        snapshot: page,
        next,
    })
}

fn bad_cursor(c: &str) -> ApiError {
    ApiError::bad_request(format!(
        "`after` must be the `next` a previous snapshot page gave, got `{c}`"
    ))
}

/// Adds the next-page headers to an array answer: `X-Hostdb-Next: CURSOR` and
/// `Link: <PATH?QUERY&after=CURSOR>; rel="next"`, keeping the request's other parameters.
pub fn link_next(resp: &mut Response, path: &str, p: &[(String, String)], next: Option<&str>) {
    let Some(next) = next else { return };
    let mut qs = form_urlencoded::Serializer::new(String::new());
    for (k, v) in p.iter().filter(|(k, _)| k != "after") {
        qs.append_pair(k, v);
    }
    qs.append_pair("after", next);
    let link = format!("<{path}?{}>; rel=\"next\"", qs.finish());
    if let (Ok(n), Ok(l)) = (HeaderValue::from_str(next), HeaderValue::from_str(&link)) {
        resp.headers_mut().insert(NEXT_HEADER, n);
        resp.headers_mut().insert(axum::http::header::LINK, l);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_past_the_end_give_an_empty_last_page() {
        let (page, next) = by_position(vec![1, 2, 3, 4, 5], 2, 2);
        assert_eq!((page, next.as_deref()), (vec![3, 4], Some("4")));
        let (page, next) = by_position(vec![1, 2, 3], 2, 5);
        assert_eq!((page, next), (vec![3], None));
        let (page, next) = by_position(vec![1, 2, 3], 9, 5);
        assert_eq!((page, next), (Vec::<i32>::new(), None));
        assert!(position(Some("x")).is_err());
    }

    #[test]
    fn a_snapshot_page_ending_at_a_section_end_continues_with_the_next_section() {
        let hosts = |names: &[&str]| names.iter().map(|n| Host::machine(n)).collect::<Vec<_>>();
        let snap = Snapshot {
            index: 4,
            machines: hosts(&["m1", "m2"]),
            hosts: hosts(&["h1"]),
            others: Vec::new(),
            tags: vec![Tag::new("t1")],
        };
        let first = snapshot(snap.clone(), None, 2).unwrap();
        assert_eq!(first.snapshot.machines.len(), 2);
        assert_eq!(first.next.as_deref(), Some("m:m2"));
        let second = snapshot(snap.clone(), first.next.as_deref(), 2).unwrap();
        assert_eq!(second.snapshot.hosts.len(), 1);
        assert_eq!(second.snapshot.tags.len(), 1);
        assert_eq!((second.snapshot.index, second.next), (4, None));
        assert!(snapshot(snap.clone(), Some("x:y"), 2).is_err());
        assert!(snapshot(snap, Some("nocolon"), 2).is_err());
    }
}
