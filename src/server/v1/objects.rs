//! Reading and writing whole objects and paths inside them: hosts, tags and documents.

use axum::http::Method;
use serde_json::Value;

use super::access::Writer;
use super::value::{self, get_path, host_properties, host_view, is_managed, to_yaml};
use super::{lines, members, meta, Answer, Request, V1Error, V1};
use crate::hostdb::model::{Document, Expect, Host, HostQuery, Tag, Write};

/// The namespaces v1 always has.
const BUILTIN: &[&str] = &["hosts", "tags"];

pub fn does_not_exist(ns: &str, key: &str) -> V1Error {
    V1Error::not_found(format!("Object {ns}/{key} does not exist."))
}

/// A GET of a namespace list, a key list, a value or a path inside one.
pub fn get(v1: &V1, req: &Request, id: &[&str]) -> Result<String, V1Error> {
    match id {
        [] => {
            let mut all: Vec<String> = BUILTIN.iter().map(|s| s.to_string()).collect();
            all.extend(v1.store.document_namespaces()?);
            Ok(lines(all))
        }
        [ns] => Ok(lines(keys(v1, ns)?)),
        [ns, key, "members", rest @ ..] => members::get(v1, req, ns, key, rest),
        [ns, key, path @ ..] => {
            let revision = match req.param("revision") {
                Some(r) => Some(
                    r.parse::<u64>()
                        .map_err(|_| V1Error::bad_request(format!("unknown revision `{r}`")))?,
                ),
                None => None,
            };
            let value = match revision {
                Some(rev) => meta::at_revision(v1, ns, key, rev)?,
                None => current(v1, ns, key)?.0,
            };
            let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
            let sub = get_path(&value, &path).ok_or_else(|| {
                V1Error::not_found(format!("{}/{key}/{} does not exist", ns, path.join("/")))
            })?;
            Ok(to_yaml(sub))
        }
    }
}

/// Every key of a namespace, sorted.
pub fn keys(v1: &V1, ns: &str) -> Result<Vec<String>, V1Error> {
    Ok(match ns {
        "hosts" => v1
            .store
            .all_hosts(&HostQuery::default())?
            .into_iter()
            .map(|h| h.name)
            .collect(),
        "tags" => v1.store.list_tags()?.into_iter().map(|t| t.name).collect(),
        _ => {
            crate::hostdb::documents::check_namespace(ns)?;
            v1.store.list_documents(ns)?
        }
    })
}

/// An object as v1 shows it, and the index its compare-and-set must expect.
pub fn current(v1: &V1, ns: &str, key: &str) -> Result<(Value, u64), V1Error> {
    let found = match ns {
        "hosts" => v1
            .store
            .get_host(key)?
            .map(|h| (host_view(&h), h.modified_index)),
        "tags" => v1
            .store
            .get_tag(key)?
            .map(|t| (Value::Object(t.properties), t.modified_index)),
        _ => {
            crate::hostdb::documents::check_namespace(ns)?;
            v1.store
                .get_document(ns, key)?
                .map(|d| (d.value, d.modified_index))
        }
    };
    found.ok_or_else(|| does_not_exist(ns, key))
}

/// A PUT, POST or DELETE.
pub fn write(v1: &V1, req: &Request, id: &[&str], w: &Writer) -> Result<Answer, V1Error> {
    match id {
        [] | [_] => Err(V1Error::unsupported()),
        [ns, key, "members", rest @ ..] => members::write(v1, req, ns, key, rest, w),
        [ns, key] => match req.method {
            Method::PUT => {
                let value = value::parse_yaml(req.param("value").unwrap_or(""))?;
                put(v1, ns, key, value, None, w)?;
                Ok(Answer::created())
            }
            Method::POST => {
                let newname = newname(req)?;
                rename(v1, ns, key, newname, w)?;
                Ok(Answer::created())
            }
            Method::DELETE => {
                delete(v1, ns, key, w)?;
                Ok(Answer::deleted())
            }
            _ => Err(V1Error::unsupported()),
        },
        [ns, key, path @ ..] => {
            let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
            let (mut value, index) = current(v1, ns, key)?;
            let answer = match req.method {
                Method::PUT => {
                    let new = value::parse_yaml(req.param("value").unwrap_or(""))?;
                    value::set_path(&mut value, &path, new)?;
                    Answer::created()
                }
                Method::POST => {
                    value::rename_path(&mut value, &path, newname(req)?)?;
                    Answer::created()
                }
                Method::DELETE => {
                    value::delete_path(&mut value, &path)?;
                    Answer::deleted()
                }
                _ => return Err(V1Error::unsupported()),
            };
            put(v1, ns, key, value, Some(index), w)?;
            Ok(answer)
        }
    }
}

pub fn newname(req: &Request) -> Result<&str, V1Error> {
    match req.param("newname").map(str::trim) {
        Some(n) if !n.is_empty() => Ok(n),
        _ => Err(V1Error::bad_request("Missing parameter: newname")),
    }
}

/// Write a whole value; `expect_index` makes it a compare-and-set (a path edit read first).
fn put(
    v1: &V1,
    ns: &str,
    key: &str,
    value: Value,
    expect_index: Option<u64>,
    w: &Writer,
) -> Result<u64, V1Error> {
    let write = match ns {
        "hosts" => {
            let cur = v1.store.get_host(key)?;
            let properties = host_properties(cur.as_ref(), value)?;
            let (mut host, expect) = match cur {
                Some(h) => {
                    let e = Expect::Index(expect_index.unwrap_or(h.modified_index));
                    (h, e)
                }
                // Hosts created through v1 are containers nobody owns: no plan touches them.
                None => (Host::container(key), Expect::Absent),
            };
            host.properties = properties;
            Write::PutHost { host, expect }
        }
        "tags" => {
            let properties = match value {
                Value::Null => Default::default(),
                Value::Object(m) => m,
                _ => return Err(V1Error::bad_request("a tag's value must be a YAML mapping")),
            };
            let (mut tag, expect) = match v1.store.get_tag(key)? {
                Some(t) => {
                    let e = Expect::Index(expect_index.unwrap_or(t.modified_index));
                    (t, e)
                }
                None => (Tag::new(key), Expect::Absent),
            };
            tag.properties = properties;
            Write::PutTag { tag, expect }
        }
        _ => {
            let expect = match expect_index {
                Some(i) => Expect::Index(i),
                None => Expect::Any,
            };
            Write::PutDocument {
                document: Document {
                    namespace: ns.to_string(),
                    key: key.to_string(),
                    value,
                    modified_index: 0,
                },
                expect,
            }
        }
    };
    Ok(v1.store.write(vec![write], &w.actor)?)
}

fn refuse_managed(host: &Host, what: &str) -> Result<(), V1Error> {
    if is_managed(host) {
        return Err(V1Error::forbidden(format!(
            "host {} is managed by kloud ({}); {what} it through kloud, not the HostDB v1 API",
            host.name,
            host.owner.as_deref().map_or_else(
                || format!("a {}", host.kind.as_str()),
                |o| format!("owner {o}")
            )
        )));
    }
    Ok(())
}

/// Rename an object; a host keeps its memberships, a tag is renamed in every members list.
fn rename(v1: &V1, ns: &str, key: &str, newname: &str, w: &Writer) -> Result<u64, V1Error> {
    let writes = match ns {
        "hosts" => {
            let host = v1
                .store
                .get_host(key)?
                .ok_or_else(|| does_not_exist(ns, key))?;
            refuse_managed(&host, "rename")?;
            let mut renamed = host.clone();
            renamed.name = newname.to_string();
            vec![
                Write::DeleteHost {
                    name: key.to_string(),
                    expect: Expect::Index(host.modified_index),
                },
                Write::PutHost {
                    host: renamed,
                    expect: Expect::Absent,
                },
            ]
        }
        "tags" => members::rename_tag_writes(v1, key, newname)?,
        _ => {
            let doc = v1
                .store
                .get_document(ns, key)?
                .ok_or_else(|| does_not_exist(ns, key))?;
            vec![
                Write::DeleteDocument {
                    namespace: ns.to_string(),
                    key: key.to_string(),
                    expect: Expect::Index(doc.modified_index),
                },
                Write::PutDocument {
                    document: Document {
                        key: newname.to_string(),
                        ..doc
                    },
                    expect: Expect::Absent,
                },
            ]
        }
    };
    v1.store.write(writes, &w.actor).map_err(|e| match e {
        crate::hostdb::StoreError::Conflict {
            actual: Some(_), ..
        } => V1Error::conflict(format!("{ns}/{newname} already exists")),
        other => other.into(),
    })
}

fn delete(v1: &V1, ns: &str, key: &str, w: &Writer) -> Result<u64, V1Error> {
    let writes = match ns {
        "hosts" => {
            let host = v1
                .store
                .get_host(key)?
                .ok_or_else(|| does_not_exist(ns, key))?;
            refuse_managed(&host, "delete")?;
            vec![Write::DeleteHost {
                name: key.to_string(),
                expect: Expect::Index(host.modified_index),
            }]
        }
        "tags" => members::delete_tag_writes(v1, key)?,
        _ => {
            let doc = v1
                .store
                .get_document(ns, key)?
                .ok_or_else(|| does_not_exist(ns, key))?;
            vec![Write::DeleteDocument {
                namespace: ns.to_string(),
                key: key.to_string(),
                expect: Expect::Index(doc.modified_index),
            }]
        }
    };
    Ok(v1.store.write(writes, &w.actor)?)
}
