//! The Nagios integration: object definitions for every host kloud manages, in a directory of
//! their own that the main `nagios.cfg` includes with `cfg_dir=`.
//!
//! Layout of the directory (every file starts with [`HEADER`], which is how kloud knows a file
//! is its own; files without it are never touched):
//! - `kloud-host-template.cfg`: the `kloud-host` and `kloud-service` templates carrying every
//!   directive Nagios requires of a host or service (check_command, max_check_attempts,
//!   check_interval, retry_interval, check_period, contact_groups, notification_interval,
//!   notification_period), so each object only adds what is its own;
//! - `host-<fqdn>.cfg`: one host (host_name, alias, address, its hostgroups, and custom
//!   variables `_CLASS`, `_MACHINE` and one per machine label), and one service per entry of
//!   the host's `nagios_checks` property (derived config, so usually set on a tag): `"http"`
//!   becomes service `http` running command `check_http`, on the `kloud-service` template;
//! - `hostgroup-class-<class>.cfg`, `hostgroup-tag-<tag>.cfg`: one hostgroup per class and per
//!   tag; hosts join them through their `hostgroups` directive, so no line grows with the fleet.
//!
//! Files are written atomically and only when their content changes; stale files of ours are
//! removed. Nagios must be reloaded afterwards to see changes (the lead's apply does that).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use kloud_provider_api::integration::{
    check_attributes, write_atomically_with_mode, Attrs, ConfigError, ConvergeRequest,
    ConvergeResponse, HostRecord, Integration, IntegrationError,
};
use kloud_provider_api::registry::{self, Attr, AttrType, Build};
use kloud_provider_api::Diagnostic;
use serde_json::Value;

/// The mode of the files written here: the monitoring group may read them, others not.
pub const FILE_MODE: u32 = 0o640;

/// The provider name as written in the config.
pub const PROVIDER: &str = "nagios";

/// Attributes of a `provider "nagios"` block.
pub const ATTRIBUTES: &[Attr] = &[
    Attr::required("dir", AttrType::String),
    Attr::optional("check_command", AttrType::String),
    Attr::optional("contact_groups", AttrType::String),
    Attr::optional("check_period", AttrType::String),
];

/// First line of every file kloud writes; marks it as kloud's to rewrite or remove.
pub const HEADER: &str =
    "# Managed by kloud: do not edit, this file is rewritten and removed by kloud";

pub const DEFAULT_CHECK_COMMAND: &str = "check-host-alive";
pub const DEFAULT_CONTACT_GROUPS: &str = "admins";
pub const DEFAULT_CHECK_PERIOD: &str = "24x7";
/// Name of the host template kloud generates.
pub const TEMPLATE: &str = "kloud-host";
/// Name of the service template kloud generates.
pub const SERVICE_TEMPLATE: &str = "kloud-service";
/// The derived-config property listing a host's service checks.
pub const CHECKS_PROPERTY: &str = "nagios_checks";
const TEMPLATE_FILE: &str = "kloud-host-template.cfg";

/// The `nagios` integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NagiosProvider {
    pub dir: PathBuf,
    pub check_command: String,
    pub contact_groups: String,
    pub check_period: String,
}

/// Nagios treats `;` as the start of a comment and has no line continuation: escape the one,
/// flatten the other.
fn value(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
        .replace(';', "\\;")
        .trim()
        .to_string()
}

/// Object names may not contain Nagios's `illegal_object_name_chars` (nor spaces or commas,
/// which separate lists); anything else than `[A-Za-z0-9._-]` becomes `_`.
fn object_name(text: &str) -> String {
    let s: String = text
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "_".to_string()
    } else {
        s
    }
}

/// Custom variable names are upper-cased by Nagios; keep them to `[A-Z0-9_]`.
fn custom_var(key: &str) -> String {
    format!(
        "_{}",
        key.chars()
            .map(|c| if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            })
            .collect::<String>()
    )
}

fn define(kind: &str, directives: &[(String, String)]) -> String {
    let width = directives.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut s = format!("define {kind} {{\n");
    for (k, v) in directives {
        s.push_str(&format!("    {k:width$}  {v}\n"));
    }
    s.push_str("}\n");
    s
}

/// A file of ours: the header, then its objects separated by blank lines.
fn file(objects: &[String]) -> String {
    format!("{HEADER}\n{}", objects.join("\n"))
}

/// The service checks a host asks for through its `nagios_checks` property (a list of names,
/// or one name), sanitised, sorted and de-duplicated; plus what could not be used.
pub fn checks(host: &HostRecord) -> (Vec<String>, Vec<String>) {
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    match host.properties.get(CHECKS_PROPERTY) {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => ok.push(object_name(s)),
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::String(s) if !s.trim().is_empty() => ok.push(object_name(s)),
                    other => bad.push(other.to_string()),
                }
            }
        }
        Some(other) => bad.push(other.to_string()),
    }
    ok.sort();
    ok.dedup();
    (ok, bad)
}

fn d(k: &str, v: impl Into<String>) -> (String, String) {
    (k.to_string(), v.into())
}

pub fn class_group(class: &str) -> String {
    format!("class-{}", object_name(class))
}

pub fn tag_group(tag: &str) -> String {
    format!("tag-{}", object_name(tag))
}

impl NagiosProvider {
    /// Build from a `provider "nagios" { … }` block; a relative `dir` is resolved against
    /// `base_dir` (the config directory).
    pub fn from_block(
        attrs: &BTreeMap<String, Value>,
        base_dir: &Path,
    ) -> Result<Self, Vec<ConfigError>> {
        check_attributes(PROVIDER, ATTRIBUTES, attrs)?;
        let a = Attrs::new(PROVIDER, attrs);
        let one = |e| vec![e];
        let dir = a
            .opt_path("dir", base_dir)
            .map_err(one)?
            .ok_or_else(|| vec![a.invalid("dir", "missing")])?;
        let get = |attr: &str, default: &str| -> Result<String, Vec<ConfigError>> {
            let v = a
                .opt_str(attr)
                .map_err(one)?
                .unwrap_or_else(|| default.to_string());
            if v.trim().is_empty() || v.contains(['\n', ';']) {
                return Err(vec![a.invalid(attr, "must be a non-empty single value")]);
            }
            Ok(v.trim().to_string())
        };
        Ok(Self {
            check_command: get("check_command", DEFAULT_CHECK_COMMAND)?,
            contact_groups: get("contact_groups", DEFAULT_CONTACT_GROUPS)?,
            check_period: get("check_period", DEFAULT_CHECK_PERIOD)?,
            dir,
        })
    }

    fn template(&self) -> String {
        let common = |name: &str| {
            vec![
                d("name", name),
                d("max_check_attempts", "3"),
                d("check_interval", "5"),
                d("retry_interval", "1"),
                d("check_period", &self.check_period),
                d("contact_groups", &self.contact_groups),
                d("notification_interval", "30"),
                d("notification_period", &self.check_period),
                d("register", "0"),
            ]
        };
        let mut host = common(TEMPLATE);
        host.insert(1, d("check_command", &self.check_command));
        file(&[
            define("host", &host),
            define("service", &common(SERVICE_TEMPLATE)),
        ])
    }

    /// Every file kloud wants in the directory: file name → content.
    pub fn render(&self, hosts: &[HostRecord]) -> BTreeMap<String, String> {
        let mut files = BTreeMap::new();
        files.insert(TEMPLATE_FILE.to_string(), self.template());
        let mut groups: BTreeMap<String, String> = BTreeMap::new();
        for h in hosts {
            let name = object_name(&h.fqdn);
            let mut member_of = BTreeSet::new();
            let cg = class_group(&h.class);
            groups.insert(cg.clone(), format!("hosts of class {}", value(&h.class)));
            member_of.insert(cg);
            for t in &h.tags {
                let tg = tag_group(t);
                groups.insert(tg.clone(), format!("hosts tagged {}", value(t)));
                member_of.insert(tg);
            }
            let mut directives = vec![
                d("use", TEMPLATE),
                d("host_name", &name),
                d("alias", value(&h.fqdn)),
                // Without an address Nagios checks the host by its host_name (the FQDN).
                d(
                    "address",
                    if h.ip.trim().is_empty() {
                        value(&h.fqdn)
                    } else {
                        value(&h.ip)
                    },
                ),
                d(
                    "hostgroups",
                    member_of.into_iter().collect::<Vec<_>>().join(","),
                ),
                d("_CLASS", value(&h.class)),
                d("_MACHINE", value(&h.machine)),
            ];
            for (k, v) in &h.labels {
                let var = custom_var(k);
                if var != "_CLASS" && var != "_MACHINE" {
                    directives.push((var, value(v)));
                }
            }
            let mut objects = vec![define("host", &directives)];
            for check in checks(h).0 {
                objects.push(define(
                    "service",
                    &[
                        d("use", SERVICE_TEMPLATE),
                        d("host_name", &name),
                        d("service_description", &check),
                        d("check_command", format!("check_{check}")),
                    ],
                ));
            }
            files.insert(format!("host-{name}.cfg"), file(&objects));
        }
        for (group, alias) in groups {
            files.insert(
                format!("hostgroup-{group}.cfg"),
                file(&[define(
                    "hostgroup",
                    &[d("hostgroup_name", &group), d("alias", alias)],
                )]),
            );
        }
        files
    }

    /// Names of `.cfg` files in the directory that carry kloud's header.
    fn ours(&self) -> Result<BTreeMap<String, String>, IntegrationError> {
        let mut found = BTreeMap::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
            Err(source) => {
                return Err(IntegrationError::Io {
                    action: "listing",
                    path: self.dir.display().to_string(),
                    source,
                })
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".cfg") {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(entry.path()) {
                if text.lines().next() == Some(HEADER) {
                    found.insert(name, text);
                }
            }
        }
        Ok(found)
    }
}

impl Integration for NagiosProvider {
    fn name(&self) -> &str {
        PROVIDER
    }

    /// Write the directory. Counts are of host definitions; hostgroup and template files are
    /// kept in line alongside.
    fn converge(&self, req: &ConvergeRequest) -> Result<ConvergeResponse, IntegrationError> {
        let mut resp = ConvergeResponse::default();
        let wanted = self.render(&req.hosts);
        let existing = self.ours()?;
        let is_host = |n: &str| n.starts_with("host-");
        let mut seen = BTreeSet::new();
        for h in &req.hosts {
            for bad in checks(h).1 {
                resp.diagnostics.push(Diagnostic::warning(format!(
                    "nagios: `{}`: ignored `{CHECKS_PROPERTY}` entry {bad}: expected a check name",
                    h.fqdn
                )));
            }
            if !seen.insert(object_name(&h.fqdn)) {
                resp.diagnostics.push(Diagnostic::warning(format!(
                    "nagios: `{}` appears twice; the last definition wins",
                    h.fqdn
                )));
            }
        }
        let mut writes = Vec::new();
        for (name, content) in &wanted {
            match existing.get(name) {
                Some(old) if old == content => {}
                Some(_) => {
                    resp.updated += usize::from(is_host(name));
                    writes.push((name, content));
                }
                None => {
                    resp.added += usize::from(is_host(name));
                    writes.push((name, content));
                }
            }
        }
        let stale: Vec<&String> = existing
            .keys()
            .filter(|n| !wanted.contains_key(*n))
            .collect();
        resp.removed = stale.iter().filter(|n| is_host(n)).count();
        if req.dry_run {
            return Ok(resp);
        }
        std::fs::create_dir_all(&self.dir).map_err(|source| IntegrationError::Io {
            action: "creating directory",
            path: self.dir.display().to_string(),
            source,
        })?;
        for (name, content) in writes {
            write_atomically_with_mode(&self.dir.join(name), content.as_bytes(), Some(FILE_MODE))?;
        }
        for name in stale {
            let path = self.dir.join(name);
            std::fs::remove_file(&path).map_err(|source| IntegrationError::Io {
                action: "removing",
                path: path.display().to_string(),
                source,
            })?;
        }
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
    Ok(Box::new(NagiosProvider::from_block(attrs, base_dir)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn host(fqdn: &str, class: &str, tags: &[&str]) -> HostRecord {
        HostRecord {
            fqdn: fqdn.into(),
            ip: "10.0.0.1".into(),
            class: class.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            labels: BTreeMap::from([("rack".to_string(), "r1;x".to_string())]),
            machine: "hw-1".into(),
            roles: vec![],
            properties: Default::default(),
        }
    }

    fn provider(dir: &Path) -> NagiosProvider {
        NagiosProvider::from_block(
            &BTreeMap::from([("dir".to_string(), json!("kloud.d"))]),
            dir,
        )
        .unwrap()
    }

    #[test]
    fn render_makes_template_hosts_and_groups() {
        let p = provider(Path::new("/etc/nagios4"));
        assert_eq!(p.dir, PathBuf::from("/etc/nagios4/kloud.d"));
        let files = p.render(&[host("web-1.dc1", "web", &["checkout", "web"])]);
        let names: Vec<&str> = files.keys().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "host-web-1.dc1.cfg",
                "hostgroup-class-web.cfg",
                "hostgroup-tag-checkout.cfg",
                "hostgroup-tag-web.cfg",
                "kloud-host-template.cfg"
            ]
        );
        let h = &files["host-web-1.dc1.cfg"];
        assert!(h.starts_with(HEADER));
        assert!(
            h.contains("hostgroups  class-web,tag-checkout,tag-web\n"),
            "{h}"
        );
        assert!(h.contains("_RACK       r1\\;x\n"), "{h}");
        assert!(!h.contains("define service"), "{h}");
        let mut with_checks = host("web-2.dc1", "web", &[]);
        with_checks
            .properties
            .insert(CHECKS_PROPERTY.into(), json!(["http", "ssh", "http", 7]));
        let files = p.render(&[with_checks]);
        let h = &files["host-web-2.dc1.cfg"];
        assert_eq!(h.matches("define service").count(), 2, "{h}");
        assert!(h.contains("check_command        check_http\n"), "{h}");
        assert!(h.contains("service_description  ssh\n"), "{h}");
        let t = &files["kloud-host-template.cfg"];
        assert!(
            t.contains("define service") && t.contains(SERVICE_TEMPLATE),
            "{t}"
        );
        for directive in [
            "check_command",
            "max_check_attempts",
            "check_period",
            "contact_groups",
            "notification_interval",
            "notification_period",
        ] {
            assert!(t.contains(directive), "{directive} missing: {t}");
        }
    }

    #[test]
    fn converge_removes_only_stale_files_of_ours() {
        let dir = tempfile::tempdir().unwrap();
        let p = provider(dir.path());
        let req = |hosts| ConvergeRequest {
            hosts,
            force: false,
            dry_run: false,
        };
        let r = p
            .converge(&req(vec![
                host("a.dc1", "web", &["x"]),
                host("b.dc1", "db", &[]),
            ]))
            .unwrap();
        assert_eq!((r.added, r.updated, r.removed), (2, 0, 0));
        std::fs::write(p.dir.join("local.cfg"), "define command {}\n").unwrap();
        let r = p
            .converge(&req(vec![host("a.dc1", "web", &["x"])]))
            .unwrap();
        assert_eq!((r.added, r.updated, r.removed), (0, 0, 1));
        let mut names: Vec<String> = std::fs::read_dir(&p.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "host-a.dc1.cfg",
                "hostgroup-class-web.cfg",
                "hostgroup-tag-x.cfg",
                "kloud-host-template.cfg",
                "local.cfg"
            ]
        );
        let dry = p
            .converge(&ConvergeRequest {
                hosts: vec![],
                force: false,
                dry_run: true,
            })
            .unwrap();
        assert_eq!(dry.removed, 1);
        assert!(
            p.dir.join("host-a.dc1.cfg").exists(),
            "a dry run removed a file"
        );
        let r = p.converge(&req(vec![])).unwrap();
        assert_eq!(r.removed, 1);
        let r = p
            .converge(&req(vec![host("a.dc1", "web", &["x"])]))
            .unwrap();
        assert_eq!(r.added, 1);
        let mut moved = host("a.dc1", "web", &["x"]);
        moved.ip = "10.0.0.9".into();
        let r = p.converge(&req(vec![moved])).unwrap();
        assert_eq!((r.added, r.updated, r.removed), (0, 1, 0));
    }
}
