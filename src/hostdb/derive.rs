//! Derived config: what a host's tags say about it, overridden by what the host says itself.
//!
//! Tags are visited breadth first from the host's own tags up through their parents. A tag
//! nearer to the host wins over a farther one; among tags at the same distance the one whose
//! name sorts last wins, so the result never depends on storage order. Merging is by top-level
//! key: a key set by a nearer tag replaces the whole value from a farther one.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::error::StoreError;
use super::model::{Host, Tag};

/// Where a derived key's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "from", content = "tag", rename_all = "lowercase")]
pub enum Origin {
    /// The host's own properties.
    Own,
    /// This tag (the host's own, or one it inherits through nesting).
    Tag(String),
}

/// Merge the properties of `host`'s tags (looked up with `get_tag`) and then its own.
/// Tags that are referenced but not recorded contribute nothing.
pub fn derive_config(
    host: &Host,
    get_tag: impl FnMut(&str) -> Result<Option<Tag>, StoreError>,
) -> Result<Map<String, Value>, StoreError> {
    Ok(derive_config_origins(host, get_tag)?
        .into_iter()
        .map(|(k, (v, _))| (k, v))
        .collect())
}

/// [`derive_config`], each key with where its value comes from (what the web UI's host page
/// shows). One walk serves both, so they cannot disagree.
pub fn derive_config_origins(
    host: &Host,
    mut get_tag: impl FnMut(&str) -> Result<Option<Tag>, StoreError>,
) -> Result<BTreeMap<String, (Value, Origin)>, StoreError> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut levels: Vec<Vec<Tag>> = Vec::new();
    let mut frontier: BTreeSet<String> = host.tags.iter().cloned().collect();
    while !frontier.is_empty() {
        let mut level = Vec::new();
        let mut next = BTreeSet::new();
        for name in frontier {
            if !seen.insert(name.clone()) {
                continue;
            }
            if let Some(tag) = get_tag(&name)? {
                next.extend(tag.tags.iter().cloned());
                level.push(tag);
            }
        }
        levels.push(level);
        frontier = next.into_iter().filter(|t| !seen.contains(t)).collect();
    }
    let mut out = BTreeMap::new();
    for level in levels.iter().rev() {
        for tag in level {
            for (k, v) in &tag.properties {
                out.insert(k.clone(), (v.clone(), Origin::Tag(tag.name.clone())));
            }
        }
    }
    for (k, v) in &host.properties {
        out.insert(k.clone(), (v.clone(), Origin::Own));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tag(name: &str, parents: &[&str], props: Value) -> Tag {
        let mut t = Tag::new(name);
        t.tags = parents.iter().map(|s| s.to_string()).collect();
        t.properties = props.as_object().cloned().unwrap_or_default();
        t
    }

    #[test]
    fn nearest_wins_then_host() {
        let tags: BTreeMap<String, Tag> = [
            tag("web", &["prod"], json!({"port": 80, "team": "web"})),
            tag("prod", &["all"], json!({"env": "prod", "port": 1})),
            tag("all", &[], json!({"env": "none", "dc": "dc1"})),
            tag("zz", &[], json!({"team": "zz"})),
        ]
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
        let mut h = Host::container("w1");
        h.tags = vec!["web".into(), "zz".into(), "missing".into()];
        h.properties = json!({"own": true})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let got = derive_config(&h, |n| Ok(tags.get(n).cloned())).unwrap();
        assert_eq!(
            Value::Object(got),
            json!({"port": 80, "team": "zz", "env": "prod", "dc": "dc1", "own": true})
        );
    }

    #[test]
    fn host_overrides_tags() {
        let t = tag("web", &[], json!({"port": 80}));
        let mut h = Host::container("w1");
        h.tags = vec!["web".into()];
        h.properties = json!({"port": 8080})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let got = derive_config(&h, |_| Ok(Some(t.clone()))).unwrap();
        assert_eq!(Value::Object(got), json!({"port": 8080}));
    }

    #[test]
    fn origins_name_the_tag_or_the_host() {
        let tags: BTreeMap<String, Tag> = [
            tag("web", &["prod"], json!({"port": 80})),
            tag("prod", &[], json!({"env": "prod", "port": 1})),
        ]
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
        let mut h = Host::container("w1");
        h.tags = vec!["web".into()];
        h.properties = json!({"env": "dev"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let got = derive_config_origins(&h, |n| Ok(tags.get(n).cloned())).unwrap();
        assert_eq!(got["port"], (json!(80), Origin::Tag("web".into())));
        assert_eq!(got["env"], (json!("dev"), Origin::Own));
        assert_eq!(got.len(), 2);
    }
}
