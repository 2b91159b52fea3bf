//! Members of a tag: hosts and `@tag`s (nested tags), raw or expanded, and their edits.
//!
//! kloud keeps memberships on the members (a host's `tags`, a tag's parent `tags`), so every
//! edit here is a compare-and-set write of the member records, in one transaction; the store
//! refuses a cycle of tags.

use axum::http::Method;

use super::access::Writer;
use super::objects::{does_not_exist, newname};
use super::{lines, Answer, Request, V1Error, V1};
use crate::hostdb::model::{Expect, HostQuery, Tag, Write};

/// A line of a members list.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Member {
    Host(String),
    Tag(String),
}

impl Member {
    fn parse(line: &str) -> Option<Member> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        Some(match line.strip_prefix('@') {
            Some(tag) => Member::Tag(tag.trim().to_string()),
            None => Member::Host(line.to_string()),
        })
    }
}

fn only_tags(ns: &str) -> Result<(), V1Error> {
    if ns == "tags" {
        Ok(())
    } else {
        Err(V1Error::not_found(format!(
            "members are kept for tags only; {ns} has none"
        )))
    }
}

/// Hosts that are members of `tag`, directly or through nested tags, sorted.
pub fn expanded(v1: &V1, tag: &str) -> Result<Vec<String>, V1Error> {
    let q = HostQuery {
        tags: vec![tag.to_string()],
        ..HostQuery::default()
    };
    Ok(v1
        .store
        .all_hosts(&q)?
        .into_iter()
        .map(|h| h.name)
        .collect())
}

/// Direct members: hosts, then `@tag`s.
fn raw(v1: &V1, tag: &str) -> Result<Vec<String>, V1Error> {
    let m = v1.store.tag_members(tag)?;
    Ok(m.hosts
        .into_iter()
        .chain(m.tags.into_iter().map(|t| format!("@{t}")))
        .collect())
}

/// `GET tags/T/members[?raw=true]` and `GET tags/T/members/M`.
pub fn get(v1: &V1, req: &Request, ns: &str, tag: &str, rest: &[&str]) -> Result<String, V1Error> {
    only_tags(ns)?;
    match rest {
        [] if req.param("raw").is_some_and(|r| r == "true" || r == "1") => Ok(lines(raw(v1, tag)?)),
        [] => Ok(lines(expanded(v1, tag)?)),
        [member] => {
            if raw(v1, tag)?.iter().any(|m| m == member) {
                Ok(member.to_string())
            } else {
                Err(V1Error::not_found(format!(
                    "{member} is not a member of tags/{tag}"
                )))
            }
        }
        _ => Err(V1Error::not_found("no such resource")),
    }
}

/// Edits of a members list.
pub fn write(
    v1: &V1,
    req: &Request,
    ns: &str,
    tag: &str,
    rest: &[&str],
    w: &Writer,
) -> Result<Answer, V1Error> {
    only_tags(ns)?;
    if v1.store.get_tag(tag)?.is_none() {
        return Err(does_not_exist("tags", tag));
    }
    let current: Vec<Member> = raw(v1, tag)?
        .iter()
        .filter_map(|m| Member::parse(m))
        .collect();
    let (add, remove, answer): (Vec<Member>, Vec<Member>, Answer) = match (&req.method, rest) {
        (&Method::PUT, []) => {
            let wanted: Vec<Member> = req
                .param("value")
                .unwrap_or("")
                .lines()
                .filter_map(Member::parse)
                .collect();
            let add = wanted
                .iter()
                .filter(|m| !current.contains(m))
                .cloned()
                .collect();
            let remove = current
                .iter()
                .filter(|m| !wanted.contains(m))
                .cloned()
                .collect();
            (add, remove, Answer::created())
        }
        (&Method::DELETE, []) => (Vec::new(), current.clone(), Answer::deleted()),
        (&Method::PUT, [m]) => (parse_one(m)?, Vec::new(), Answer::created()),
        (&Method::DELETE, [m]) => {
            let m = parse_one(m)?;
            if !current.contains(&m[0]) {
                return Err(V1Error::not_found(format!(
                    "{} is not a member of tags/{tag}",
                    rest[0]
                )));
            }
            (Vec::new(), m, Answer::deleted())
        }
        (&Method::POST, [m]) => {
            let old = parse_one(m)?;
            if !current.contains(&old[0]) {
                return Err(V1Error::not_found(format!(
                    "{} is not a member of tags/{tag}",
                    rest[0]
                )));
            }
            (parse_one(newname(req)?)?, old, Answer::created())
        }
        _ => return Err(V1Error::unsupported()),
    };
    let writes = member_writes(v1, tag, &add, &remove)?;
    if !writes.is_empty() {
        v1.store.write(writes, &w.actor)?;
    }
    Ok(answer)
}

fn parse_one(m: &str) -> Result<Vec<Member>, V1Error> {
    Member::parse(m)
        .map(|m| vec![m])
        .ok_or_else(|| V1Error::bad_request("empty member name"))
}

/// The member records to write so `tag` gains `add` and loses `remove`.
fn member_writes(
    v1: &V1,
    tag: &str,
    add: &[Member],
    remove: &[Member],
) -> Result<Vec<Write>, V1Error> {
    let mut writes = Vec::new();
    let edits = add
        .iter()
        .map(|m| (m, true))
        .chain(remove.iter().map(|m| (m, false)));
    for (member, adding) in edits {
        match member {
            Member::Host(name) => {
                let mut host = v1
                    .store
                    .get_host(name)?
                    .ok_or_else(|| does_not_exist("hosts", name))?;
                let expect = Expect::Index(host.modified_index);
                edit(&mut host.tags, tag, adding);
                writes.push(Write::PutHost { host, expect });
            }
            Member::Tag(name) => {
                if adding && (name == tag || is_ancestor(v1, name, tag)?) {
                    return Err(V1Error::bad_request(format!(
                        "Adding {name} to {tag} will result in a cycle."
                    )));
                }
                let mut child = v1
                    .store
                    .get_tag(name)?
                    .ok_or_else(|| does_not_exist("tags", name))?;
                let expect = Expect::Index(child.modified_index);
                edit(&mut child.tags, tag, adding);
                writes.push(Write::PutTag { tag: child, expect });
            }
        }
    }
    Ok(writes)
}

/// Whether `ancestor` is `tag` or a tag `tag` is nested in, at any depth.
fn is_ancestor(v1: &V1, ancestor: &str, tag: &str) -> Result<bool, V1Error> {
    let mut seen = std::collections::BTreeSet::new();
    let mut todo = vec![tag.to_string()];
    while let Some(t) = todo.pop() {
        if t == ancestor {
            return Ok(true);
        }
        if seen.insert(t.clone()) {
            if let Some(found) = v1.store.get_tag(&t)? {
                todo.extend(found.tags);
            }
        }
    }
    Ok(false)
}

fn edit(tags: &mut Vec<String>, tag: &str, adding: bool) {
    tags.retain(|t| t != tag);
    if adding {
        tags.push(tag.to_string());
        tags.sort();
    }
}

/// Rename a tag: the new tag, every member moved to it, the old one deleted.
pub fn rename_tag_writes(v1: &V1, old: &str, new: &str) -> Result<Vec<Write>, V1Error> {
    let tag = v1
        .store
        .get_tag(old)?
        .ok_or_else(|| does_not_exist("tags", old))?;
    let members: Vec<Member> = raw(v1, old)?
        .iter()
        .filter_map(|m| Member::parse(m))
        .collect();
    let mut writes = vec![Write::PutTag {
        tag: Tag {
            name: new.to_string(),
            ..tag.clone()
        },
        expect: Expect::Absent,
    }];
    writes.extend(member_writes(v1, new, &members, &[])?);
    // The members' records were read once: rewrite each with the old name removed too.
    for w in &mut writes[1..] {
        match w {
            Write::PutHost { host, .. } => host.tags.retain(|t| t != old),
            Write::PutTag { tag, .. } => tag.tags.retain(|t| t != old),
            _ => {}
        }
    }
    writes.push(Write::DeleteTag {
        name: old.to_string(),
        expect: Expect::Index(tag.modified_index),
    });
    Ok(writes)
}

/// Delete a tag and every membership in it.
pub fn delete_tag_writes(v1: &V1, name: &str) -> Result<Vec<Write>, V1Error> {
    let tag = v1
        .store
        .get_tag(name)?
        .ok_or_else(|| does_not_exist("tags", name))?;
    let members: Vec<Member> = raw(v1, name)?
        .iter()
        .filter_map(|m| Member::parse(m))
        .collect();
    let mut writes = member_writes(v1, name, &[], &members)?;
    writes.push(Write::DeleteTag {
        name: name.to_string(),
        expect: Expect::Index(tag.modified_index),
    });
    Ok(writes)
}
