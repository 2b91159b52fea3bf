//! Integrations: DNS, monitoring, puppet.
//!
//! An integration receives the COMPLETE desired set of hosts kloud manages and converges the
//! outside system to it: it adds what is missing, updates what differs and removes what kloud
//! put there earlier but no longer wants. It never touches anything it did not create.
//!
//! Each integration crate also exposes `from_block(attrs, base_dir)` and an `ATTRIBUTES` list
//! (in its [`crate::registry::Provider`] entry) so the config loader can validate a
//! `provider "NAME" { … }` block; the shared pieces for that ([`ConfigError`],
//! [`check_attributes`] and the typed attribute readers) live here.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diag::Diagnostic;
use crate::registry::Attr;

/// What an integration needs to know about one host kloud manages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostRecord {
    /// Fully qualified name, without a trailing dot (e.g. `web-1.dc1.example.internal`).
    pub fqdn: String,
    /// The container's address (IPv4 or IPv6, textual).
    pub ip: String,
    /// The host class it belongs to.
    pub class: String,
    /// Tag memberships, sorted.
    pub tags: Vec<String>,
    /// Topology labels of its machine (rack, switch, …).
    pub labels: BTreeMap<String, String>,
    /// The FQDN of the machine it runs on.
    pub machine: String,
    /// Puppet roles, in the order the config lists them.
    pub roles: Vec<String>,
    /// Derived config: its tags' properties merged, then its own.
    pub properties: serde_json::Map<String, Value>,
}

/// The desired state handed to [`Integration::converge`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConvergeRequest {
    /// The COMPLETE desired set of hosts kloud manages; anything of ours not listed is removed.
    pub hosts: Vec<HostRecord>,
    /// Allow large deletions that a safety guard would otherwise refuse.
    pub force: bool,
    /// Compute and report the changes without making them.
    pub dry_run: bool,
}

/// What a converge did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvergeResponse {
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
    pub diagnostics: Vec<Diagnostic>,
}

impl ConvergeResponse {
    /// True when the converge changed (or would change) nothing.
    pub fn is_noop(&self) -> bool {
        self.added == 0 && self.updated == 0 && self.removed == 0
    }
}

/// Why a converge failed. When `converge` returns an error, the caller must assume nothing was
/// done unless the error says otherwise (`Partial`).
#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    /// The remote side could not be reached (connection refused, timeout).
    #[error("cannot reach `{target}`: {reason}")]
    Unreachable { target: String, reason: String },
    /// The remote side refused our credentials (a wrong TSIG key, say).
    #[error("`{target}` refused our credentials: {reason}")]
    Auth { target: String, reason: String },
    /// A safety guard refused the change; `force` overrides it.
    #[error("refused: {0}")]
    Guard(String),
    /// The remote side answered something we did not expect.
    #[error("protocol error with `{target}`: {reason}")]
    Protocol { target: String, reason: String },
    /// Some changes were made before a failure; the counts say how far it got.
    #[error("partially converged ({added} added, {updated} updated, {removed} removed): {reason}")]
    Partial {
        added: usize,
        updated: usize,
        removed: usize,
        reason: String,
    },
    /// A desired host cannot be expressed (an invalid address or name, say).
    #[error("invalid host `{host}`: {reason}")]
    InvalidHost { host: String, reason: String },
    /// Reading or writing a local file failed.
    #[error("{action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A converger of one outside system.
pub trait Integration: Send + Sync {
    /// The provider name as written in `provider "NAME" { … }`.
    fn name(&self) -> &str;
    /// Bring the outside system in line with `req.hosts`; idempotent.
    fn converge(&self, req: &ConvergeRequest) -> Result<ConvergeResponse, IntegrationError>;
}

/// A problem with a `provider "NAME" { … }` block. The config loader attaches spans.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown attribute `{attr}` in provider `{provider}`")]
    UnknownAttribute { provider: String, attr: String },
    #[error("missing required attribute `{attr}` in provider `{provider}`")]
    MissingAttribute { provider: String, attr: String },
    #[error("attribute `{attr}` of provider `{provider}`: expected {expected}")]
    WrongType {
        provider: String,
        attr: String,
        expected: &'static str,
    },
    #[error("attribute `{attr}` of provider `{provider}`: {reason}")]
    Invalid {
        provider: String,
        attr: String,
        reason: String,
    },
    /// A setting read from the environment (which overrides the block) is refused.
    #[error("{reason}")]
    Environment {
        provider: String,
        variable: String,
        reason: String,
    },
}

/// Check a block's attributes against a provider's `ATTRIBUTES` list. Reports every unknown
/// and every missing attribute, sorted, so one run shows all problems.
pub fn check_attributes(
    provider: &str,
    allowed: &[Attr],
    attrs: &BTreeMap<String, Value>,
) -> Result<(), Vec<ConfigError>> {
    let mut errors = Vec::new();
    for key in attrs.keys() {
        if !allowed.iter().any(|a| a.name == key) {
            errors.push(ConfigError::UnknownAttribute {
                provider: provider.to_string(),
                attr: key.clone(),
            });
        }
    }
    for a in allowed {
        if a.required && !attrs.contains_key(a.name) {
            errors.push(ConfigError::MissingAttribute {
                provider: provider.to_string(),
                attr: a.name.to_string(),
            });
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Typed access to a provider block's attributes, with errors that name the attribute.
pub struct Attrs<'a> {
    provider: &'a str,
    attrs: &'a BTreeMap<String, Value>,
}

impl<'a> Attrs<'a> {
    pub fn new(provider: &'a str, attrs: &'a BTreeMap<String, Value>) -> Self {
        Self { provider, attrs }
    }

    fn wrong(&self, attr: &str, expected: &'static str) -> ConfigError {
        ConfigError::WrongType {
            provider: self.provider.to_string(),
            attr: attr.to_string(),
            expected,
        }
    }

    /// An error about the value of `attr`, for checks a provider makes itself.
    pub fn invalid(&self, attr: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            provider: self.provider.to_string(),
            attr: attr.to_string(),
            reason: reason.into(),
        }
    }

    pub fn opt_str(&self, attr: &str) -> Result<Option<String>, ConfigError> {
        match self.attrs.get(attr) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.wrong(attr, "a string")),
        }
    }

    pub fn str(&self, attr: &str) -> Result<String, ConfigError> {
        self.opt_str(attr)?
            .ok_or_else(|| ConfigError::MissingAttribute {
                provider: self.provider.to_string(),
                attr: attr.to_string(),
            })
    }

    pub fn opt_u64(&self, attr: &str) -> Result<Option<u64>, ConfigError> {
        match self.attrs.get(attr) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.wrong(attr, "a non-negative integer")),
            // HCL values that went through string interpolation arrive as strings.
            Some(Value::String(s)) => s
                .trim()
                .parse::<u64>()
                .map(Some)
                .map_err(|_| self.wrong(attr, "a non-negative integer")),
            Some(_) => Err(self.wrong(attr, "a non-negative integer")),
        }
    }

    pub fn opt_bool(&self, attr: &str) -> Result<Option<bool>, ConfigError> {
        match self.attrs.get(attr) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.wrong(attr, "a boolean")),
        }
    }

    /// A path attribute, resolved against the config directory when relative.
    pub fn opt_path(
        &self,
        attr: &str,
        base_dir: &Path,
    ) -> Result<Option<std::path::PathBuf>, ConfigError> {
        Ok(self.opt_str(attr)?.map(|p| {
            let p = std::path::PathBuf::from(p);
            if p.is_absolute() {
                p
            } else {
                base_dir.join(p)
            }
        }))
    }
}

/// Replace `path` with `contents` so that a reader sees either the old file or the new one,
/// never a half-written one: a temp file in the same directory, fsync, rename, fsync of the
/// directory (so the rename itself survives a crash).
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), IntegrationError> {
    write_atomically_with_mode(path, contents, None)
}

/// [`write_atomically`], the new file getting exactly `mode` (e.g. `0o640`). The temp file is
/// created new (`O_EXCL`, so a symlink planted at its name is never followed) with `mode`
/// from the start, so the contents are never readable more widely.
pub fn write_atomically_with_mode(
    path: &Path,
    contents: &[u8],
    mode: Option<u32>,
) -> Result<(), IntegrationError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);

    let io_err = |action: &'static str, p: &Path| {
        let p = p.display().to_string();
        move |source| IntegrationError::Io {
            action,
            path: p,
            source,
        }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_string());
    let tmp = dir.join(format!(
        ".{file_name}.kloud-tmp.{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        if let Some(m) = mode {
            opts.mode(m);
        }
        let mut f = opts.open(&tmp).map_err(io_err("creating", &tmp))?;
        if let Some(m) = mode {
            // The umask may have taken bits away; set exactly what was asked.
            f.set_permissions(std::fs::Permissions::from_mode(m))
                .map_err(io_err("setting the mode of", &tmp))?;
        }
        f.write_all(contents).map_err(io_err("writing", &tmp))?;
        f.sync_all().map_err(io_err("syncing", &tmp))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(io_err("renaming into", path))?;
        if let Ok(d) = std::fs::File::open(&dir) {
            // Some filesystems cannot fsync a directory; the rename has happened regardless.
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(v: Value) -> BTreeMap<String, Value> {
        match v {
            Value::Object(m) => m.into_iter().collect(),
            _ => BTreeMap::new(),
        }
    }

    #[test]
    fn check_attributes_reports_unknown_and_missing_together() {
        use crate::registry::AttrType;
        let allowed = [
            Attr::required("server", AttrType::String),
            Attr::required("zone", AttrType::String),
            Attr::optional("ttl", AttrType::Number),
        ];
        let a = attrs(json!({"server": "x", "bogus": 1, "other": 2}));
        let errs = check_attributes("dns", &allowed, &a).unwrap_err();
        assert_eq!(
            errs,
            vec![
                ConfigError::UnknownAttribute {
                    provider: "dns".into(),
                    attr: "bogus".into()
                },
                ConfigError::UnknownAttribute {
                    provider: "dns".into(),
                    attr: "other".into()
                },
                ConfigError::MissingAttribute {
                    provider: "dns".into(),
                    attr: "zone".into()
                },
            ]
        );
        let ok = attrs(json!({"server": "x", "zone": "z"}));
        assert!(check_attributes("dns", &allowed, &ok).is_ok());
    }

    #[test]
    fn write_atomically_replaces_and_leaves_no_temp_files() {
        let dir = std::env::temp_dir().join(format!("kloud-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("targets.json");
        write_atomically(&target, b"one").unwrap();
        write_atomically(&target, b"two").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("targets.json")]);
        let missing = dir.join("no-such-dir").join("x.json");
        assert!(matches!(
            write_atomically(&missing, b"x"),
            Err(IntegrationError::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn typed_readers_reject_wrong_types_and_resolve_paths() {
        let a = attrs(json!({"port": "9100", "neg": -1, "flag": "yes", "file": "t.json"}));
        let r = Attrs::new("prometheus", &a);
        assert_eq!(r.opt_u64("port").unwrap(), Some(9100));
        assert!(matches!(
            r.opt_u64("neg"),
            Err(ConfigError::WrongType { .. })
        ));
        assert!(matches!(
            r.opt_bool("flag"),
            Err(ConfigError::WrongType { .. })
        ));
        assert_eq!(
            r.opt_path("file", Path::new("/etc/kloud")).unwrap(),
            Some(std::path::PathBuf::from("/etc/kloud/t.json"))
        );
        assert!(matches!(
            r.str("missing"),
            Err(ConfigError::MissingAttribute { .. })
        ));
    }
}
