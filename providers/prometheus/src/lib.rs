//! The Prometheus integration: scrape targets for every host kloud manages, as a file_sd JSON
//! file written atomically (Prometheus watches it) and as the same JSON body for an http_sd
//! endpoint (served by `kloud hostdb serve` at `GET /v1/sd/prometheus`; see [`http_sd_body`]).
//!
//! One target group per host: `{"targets": ["ip:port"], "labels": {...}}` with labels
//! `instance` (the FQDN), `class`, `tags` (`,a,b,` so `=~".*,web,.*"` matches a tag), `machine`
//! and every topology label of its machine (`rack`, `switch`, …). Groups are sorted by FQDN,
//! labels by name, so the output is byte-for-byte deterministic.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use kloud_provider_api::integration::{
    check_attributes, write_atomically_with_mode, Attrs, ConfigError, ConvergeRequest,
    ConvergeResponse, HostRecord, Integration, IntegrationError,
};
use kloud_provider_api::registry::{self, Attr, AttrType, Build};
use kloud_provider_api::Diagnostic;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The mode of the files written here: the monitoring group may read them, others not.
pub const FILE_MODE: u32 = 0o640;

/// The provider name as written in the config.
pub const PROVIDER: &str = "prometheus";

/// Attributes of a `provider "prometheus"` block.
pub const ATTRIBUTES: &[Attr] = &[
    Attr::optional("file_sd", AttrType::String),
    Attr::optional("port", AttrType::Number),
    Attr::optional("http_sd", AttrType::Bool),
];

/// The exporter port scraped when the block gives none (node_exporter's).
pub const DEFAULT_PORT: u16 = 9100;

/// One file_sd / http_sd target group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetGroup {
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Prometheus label names match `[a-zA-Z_][a-zA-Z0-9_]*` and `__` is reserved; anything else
/// in a machine label's key is replaced so the file is always accepted.
fn label_name(key: &str) -> String {
    let mut s: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    if s.starts_with("__") {
        s.insert_str(0, "label");
    }
    s
}

fn target(ip: &str, port: u16) -> String {
    match ip.trim().parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
        Ok(IpAddr::V4(v4)) => format!("{v4}:{port}"),
        // Not an address: pass it through (a resolvable name still works as a target).
        Err(_) => format!("{}:{port}", ip.trim()),
    }
}

/// The target groups for `hosts`, one per host, sorted by FQDN then address. A host without
/// an address (not yet allocated) has nothing to scrape and gets no group.
pub fn target_groups(hosts: &[HostRecord], port: u16) -> Vec<TargetGroup> {
    let mut groups: Vec<TargetGroup> = hosts
        .iter()
        .filter(|h| !h.ip.trim().is_empty())
        .map(|h| {
            let mut labels: BTreeMap<String, String> = h
                .labels
                .iter()
                .map(|(k, v)| (label_name(k), v.clone()))
                .collect();
            let mut tags = h.tags.clone();
            tags.sort();
            tags.dedup();
            // kloud's own labels win over machine labels of the same name.
            labels.insert("instance".into(), h.fqdn.clone());
            labels.insert("class".into(), h.class.clone());
            labels.insert("machine".into(), h.machine.clone());
            labels.insert(
                "tags".into(),
                if tags.is_empty() {
                    String::new()
                } else {
                    format!(",{},", tags.join(","))
                },
            );
            TargetGroup {
                targets: vec![target(&h.ip, port)],
                labels,
            }
        })
        .collect();
    groups.sort_by(|a, b| {
        (a.labels.get("instance"), &a.targets).cmp(&(b.labels.get("instance"), &b.targets))
    });
    groups
}

fn to_json(groups: &[TargetGroup]) -> String {
    // Serializing plain strings and maps cannot fail; an empty list is the safe fallback.
    let mut s = serde_json::to_string_pretty(groups).unwrap_or_else(|_| "[]".to_string());
    s.push('\n');
    s
}

/// The file_sd JSON for `hosts`.
pub fn file_sd_json(hosts: &[HostRecord], port: u16) -> String {
    to_json(&target_groups(hosts, port))
}

/// The http_sd response body for `hosts` (serve it as `application/json`). Identical in shape
/// to the file_sd file, as Prometheus specifies.
pub fn http_sd_body(hosts: &[HostRecord], port: u16) -> String {
    to_json(&target_groups(hosts, port))
}

/// The `prometheus` integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrometheusProvider {
    /// Where the file_sd JSON goes; None when only http_sd is used.
    pub file_sd: Option<PathBuf>,
    pub port: u16,
    /// Whether the operator wants the http_sd endpoint served (by `kloud hostdb serve`).
    pub http_sd: bool,
}

impl PrometheusProvider {
    /// Build from a `provider "prometheus" { … }` block; relative paths are resolved against
    /// `base_dir` (the config directory).
    pub fn from_block(
        attrs: &BTreeMap<String, Value>,
        base_dir: &Path,
    ) -> Result<Self, Vec<ConfigError>> {
        check_attributes(PROVIDER, ATTRIBUTES, attrs)?;
        let a = Attrs::new(PROVIDER, attrs);
        let one = |e| vec![e];
        let file_sd = a.opt_path("file_sd", base_dir).map_err(one)?;
        let port = match a.opt_u64("port").map_err(one)? {
            None => DEFAULT_PORT,
            Some(p) if (1..=65535).contains(&p) => p as u16,
            Some(_) => return Err(vec![a.invalid("port", "must be between 1 and 65535")]),
        };
        let http_sd = a.opt_bool("http_sd").map_err(one)?.unwrap_or(false);
        if file_sd.is_none() && !http_sd {
            return Err(vec![a.invalid(
                "file_sd",
                "set `file_sd` (a path) or `http_sd = true`, or both",
            )]);
        }
        Ok(Self {
            file_sd,
            port,
            http_sd,
        })
    }

    /// The http_sd body for `hosts` with this provider's port.
    pub fn http_sd_body(&self, hosts: &[HostRecord]) -> String {
        http_sd_body(hosts, self.port)
    }
}

fn key(g: &TargetGroup) -> String {
    g.labels
        .get("instance")
        .cloned()
        .unwrap_or_else(|| g.targets.join(","))
}

impl Integration for PrometheusProvider {
    fn name(&self) -> &str {
        PROVIDER
    }

    /// Rewrite the file_sd file when its content differs. Counts are of target groups (hosts)
    /// compared with the file as it was.
    fn converge(&self, req: &ConvergeRequest) -> Result<ConvergeResponse, IntegrationError> {
        let mut resp = ConvergeResponse::default();
        for h in req.hosts.iter().filter(|h| h.ip.trim().is_empty()) {
            resp.diagnostics.push(Diagnostic::warning(format!(
                "prometheus: `{}` has no address yet; not a target",
                h.fqdn
            )));
        }
        let Some(path) = &self.file_sd else {
            return Ok(resp);
        };
        let wanted = target_groups(&req.hosts, self.port);
        let body = to_json(&wanted);
        let old_text = match std::fs::read_to_string(path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(IntegrationError::Io {
                    action: "reading",
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        let old: Vec<TargetGroup> = match &old_text {
            None => Vec::new(),
            Some(t) => serde_json::from_str(t).unwrap_or_else(|e| {
                resp.diagnostics.push(Diagnostic::warning(format!(
                    "prometheus: `{}` was not valid file_sd JSON ({e}); replacing it",
                    path.display()
                )));
                Vec::new()
            }),
        };
        let old: BTreeMap<String, &TargetGroup> = old.iter().map(|g| (key(g), g)).collect();
        let new: BTreeMap<String, &TargetGroup> = wanted.iter().map(|g| (key(g), g)).collect();
        for (k, g) in &new {
            match old.get(k) {
                None => resp.added += 1,
                Some(o) if o != g => resp.updated += 1,
                Some(_) => {}
            }
        }
        resp.removed = old.keys().filter(|k| !new.contains_key(*k)).count();
        if req.dry_run || old_text.as_deref() == Some(body.as_str()) {
            return Ok(resp);
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| IntegrationError::Io {
                action: "creating directory",
                path: dir.display().to_string(),
                source,
            })?;
        }
        write_atomically_with_mode(path, body.as_bytes(), Some(FILE_MODE))?;
        Ok(resp)
    }
}

/// This provider's entry in kloud's provider table.
pub const REGISTRY: registry::Provider = registry::Provider {
    name: PROVIDER,
    attributes: ATTRIBUTES,
    build: Build::Integration {
        new: build,
        sync: true,
    },
};

fn build(
    attrs: &registry::Attributes,
    base_dir: &Path,
) -> Result<Box<dyn Integration>, Vec<ConfigError>> {
    Ok(Box::new(PrometheusProvider::from_block(attrs, base_dir)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn host(fqdn: &str, ip: &str, tags: &[&str]) -> HostRecord {
        HostRecord {
            fqdn: fqdn.into(),
            ip: ip.into(),
            class: "web".into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            labels: BTreeMap::from([
                ("rack".to_string(), "r1".to_string()),
                ("power-feed".to_string(), "a".to_string()),
            ]),
            machine: "hw-1".into(),
            roles: vec![],
            properties: Default::default(),
        }
    }

    #[test]
    fn groups_are_sorted_labelled_and_deterministic() {
        let hosts = vec![
            host("web-2.dc1", "10.0.0.2", &["web", "checkout"]),
            host("web-1.dc1", "fd00::1", &[]),
        ];
        let json: Value = serde_json::from_str(&file_sd_json(&hosts, 9100)).unwrap();
        assert_eq!(
            json,
            json!([
                {"targets": ["[fd00::1]:9100"], "labels": {"class": "web", "instance": "web-1.dc1",
                  "machine": "hw-1", "power_feed": "a", "rack": "r1", "tags": ""}},
                {"targets": ["10.0.0.2:9100"], "labels": {"class": "web", "instance": "web-2.dc1",
                  "machine": "hw-1", "power_feed": "a", "rack": "r1", "tags": ",checkout,web,"}}
            ])
        );
        let mut no_ip = host("web-3.dc1", " ", &[]);
        no_ip.ip = String::new();
        assert_eq!(target_groups(&[no_ip], 9100), vec![]);
        let mut reversed = hosts.clone();
        reversed.reverse();
        assert_eq!(file_sd_json(&hosts, 9100), http_sd_body(&reversed, 9100));
    }

    #[test]
    fn label_names_are_made_valid() {
        assert_eq!(label_name("rack"), "rack");
        assert_eq!(label_name("power-feed"), "power_feed");
        assert_eq!(label_name("1row"), "_1row");
        assert_eq!(label_name("__meta"), "label__meta");
    }

    #[test]
    fn converge_counts_against_the_file_and_writes_only_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("targets.json");
        let p = PrometheusProvider::from_block(
            &BTreeMap::from([("file_sd".to_string(), json!("sub/targets.json"))]),
            dir.path(),
        )
        .unwrap();
        assert_eq!(p.file_sd.as_deref(), Some(path.as_path()));
        let req = |hosts| ConvergeRequest {
            hosts,
            force: false,
            dry_run: false,
        };
        let a = host("a.dc1", "10.0.0.1", &[]);
        let b = host("b.dc1", "10.0.0.2", &[]);
        let dry = p
            .converge(&ConvergeRequest {
                hosts: vec![a.clone(), b.clone()],
                force: false,
                dry_run: true,
            })
            .unwrap();
        assert_eq!(dry.added, 2);
        assert!(!path.exists(), "a dry run wrote the file");
        let r = p.converge(&req(vec![a.clone(), b.clone()])).unwrap();
        assert_eq!((r.added, r.updated, r.removed), (2, 0, 0));
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        let r = p.converge(&req(vec![b.clone(), a.clone()])).unwrap();
        assert!(r.is_noop());
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);
        let mut b2 = b.clone();
        b2.ip = "10.0.0.3".into();
        let r = p.converge(&req(vec![b2])).unwrap();
        assert_eq!((r.added, r.updated, r.removed), (0, 1, 1));
        let groups: Vec<TargetGroup> =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].targets, vec!["10.0.0.3:9100"]);

        std::fs::write(&path, "not json").unwrap();
        let r = p.converge(&req(vec![a])).unwrap();
        assert_eq!(r.added, 1);
        assert_eq!(r.diagnostics.len(), 1);
    }

    #[test]
    fn block_needs_file_sd_or_http_sd_and_a_valid_port() {
        let base = Path::new("/etc/kloud");
        let block = |v: Value| -> BTreeMap<String, Value> {
            v.as_object().unwrap().clone().into_iter().collect()
        };
        assert!(PrometheusProvider::from_block(&block(json!({"port": 9100})), base).is_err());
        assert!(PrometheusProvider::from_block(
            &block(json!({"http_sd": true, "port": 70000})),
            base
        )
        .is_err());
        let p = PrometheusProvider::from_block(&block(json!({"http_sd": true})), base).unwrap();
        assert_eq!((p.port, p.http_sd, p.file_sd), (DEFAULT_PORT, true, None));
    }
}
