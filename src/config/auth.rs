//! The `auth { }` block (design §10): people from LDAP, their roles, session lifetime, and who
//! may read and write through the HostDB v1 API (design §11).
//!
//! ```hcl
//! auth {
//!   ldap {
//!     url     = "ldap://127.0.0.1:3890"       # ldaps:// too; start_tls = true upgrades ldap://
//!     user_dn = "uid={{ username }},ou=People,dc=example,dc=org"
//!     groups  = "ou=Groups,dc=example,dc=org" # groupOfNames with member = the user's DN
//!     ssh_key_attribute = "sshPublicKey"
//!     ca_file = "ldap-ca.pem"                  # optional: trust this CA (PEM) for TLS
//!   }
//!   roles       = { ops = "operator", admins = "admin" }   # group cn → role; others "user"
//!   session_ttl = "8h"
//!   hostdb_v1 {
//!     anonymous_read = true                     # default, as the original HostDB
//!     writers = { dns = ["dns-editors"] }       # namespace → groups that may write it
//!   }
//! }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hcl_edit::structure::Block;

use super::diag::{Diagnostic, Diagnostics, SourceFile};
use super::eval::Evaluator;
use super::reader::{header_span, Reader};
use super::schema::{AUTH_ATTRS, AUTH_BLOCKS, AUTH_HOSTDB_V1_ATTRS, AUTH_LDAP_ATTRS};

/// The roles a person may be given (`hostdb::Role` names).
pub const ROLE_NAMES: &[&str] = &["user", "reader", "operator", "admin"];

/// The decoded `auth` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    pub ldap: Option<LdapConfig>,
    /// LDAP group cn → role name (one of [`ROLE_NAMES`]).
    pub roles: BTreeMap<String, String>,
    pub session_ttl: Duration,
    pub hostdb_v1: HostDbV1Access,
}

/// The `ldap { }` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapConfig {
    pub url: String,
    /// DN template with `{{ username }}`.
    pub user_dn: String,
    /// Base DN of the groups; none means nobody has a group.
    pub groups: Option<String>,
    pub ssh_key_attribute: Option<String>,
    /// Upgrade an `ldap://` connection with StartTLS.
    pub start_tls: bool,
    /// PEM file of the CA(s) to trust, relative to the config directory; none means the
    /// system's roots.
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
}

/// The `hostdb_v1 { }` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDbV1Access {
    pub anonymous_read: bool,
    /// Namespace → LDAP groups whose members may write it (operators and admins write all).
    pub writers: BTreeMap<String, Vec<String>>,
}

impl Default for HostDbV1Access {
    fn default() -> Self {
        HostDbV1Access {
            anonymous_read: true,
            writers: BTreeMap::new(),
        }
    }
}

pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
const DEFAULT_LDAP_TIMEOUT: Duration = Duration::from_secs(5);

/// Decode the `auth` blocks (at most one) of a config in `dir`.
pub fn decode(
    items: &[(&Arc<SourceFile>, &Block)],
    dir: &Path,
    eval: &Evaluator,
    diags: &mut Diagnostics,
) -> Option<AuthConfig> {
    let (file, block) = *items.first()?;
    for (extra_file, extra) in &items[1..] {
        let (line, col) = file.line_col(header_span(block).start);
        diags.push(
            Diagnostic::new(
                "kloud::config::duplicate_name",
                "the `auth` block is declared more than once",
            )
            .at(extra_file, header_span(extra))
            .label("declared again here")
            .help(format!(
                "first declared at {}:{line}:{col}; merge them",
                file.name
            )),
        );
    }
    let mut r = Reader::new(
        file,
        "the `auth` block".into(),
        header_span(block),
        &block.body,
        AUTH_ATTRS,
        AUTH_BLOCKS,
        eval,
        diags,
    );
    let roles = decode_roles(&mut r);
    let session_ttl = duration(&mut r, "session_ttl").unwrap_or(DEFAULT_SESSION_TTL);
    drop(r);
    let ldap = block
        .body
        .get_blocks("ldap")
        .next()
        .and_then(|b| decode_ldap(file, b, dir, eval, diags));
    let hostdb_v1 = block
        .body
        .get_blocks("hostdb_v1")
        .next()
        .map(|b| decode_v1(file, b, eval, diags))
        .unwrap_or_default();
    Some(AuthConfig {
        ldap,
        roles,
        session_ttl,
        hostdb_v1,
    })
}

fn decode_roles(r: &mut Reader) -> BTreeMap<String, String> {
    let roles = r.string_map("roles").unwrap_or_default();
    for (group, role) in &roles {
        if !ROLE_NAMES.contains(&role.as_str()) {
            let span = r.span_or_header("roles");
            let file = r.file.clone();
            r.report(
                Diagnostic::new(
                    "kloud::config::invalid_value",
                    format!("group `{group}` is given the unknown role `{role}`"),
                )
                .at(&file, span)
                .label("unknown role")
                .help(format!("the roles are: {}", ROLE_NAMES.join(", "))),
            );
        }
    }
    roles
        .into_iter()
        .filter(|(_, role)| ROLE_NAMES.contains(&role.as_str()))
        .collect()
}

fn boolean(r: &mut Reader, name: &str) -> Option<bool> {
    let (value, span) = r.value(name)?;
    match value {
        hcl::Value::Bool(b) => Some(b),
        other => {
            let file = r.file.clone();
            r.report(
                Diagnostic::new(
                    "kloud::config::wrong_type",
                    format!(
                        "`{name}` must be true or false, not {}",
                        crate::config::eval::type_name(&other)
                    ),
                )
                .at(&file, span)
                .label("not a boolean")
                .help(format!("write `{name} = true` or `{name} = false`")),
            );
            None
        }
    }
}

fn duration(r: &mut Reader, name: &str) -> Option<Duration> {
    let text = r.string(name, false)?;
    match crate::hostdb::util::parse_duration(&text) {
        Some(d) if !d.is_zero() => Some(d),
        _ => {
            let span = r.span_or_header(name);
            let file = r.file.clone();
            r.report(
                Diagnostic::new(
                    "kloud::config::invalid_value",
                    format!("`{name}` = \"{text}\" is not a duration"),
                )
                .at(&file, span)
                .label("not a duration")
                .help("write a positive duration such as \"30m\", \"8h\" or \"90s\""),
            );
            None
        }
    }
}

fn decode_ldap(
    file: &Arc<SourceFile>,
    block: &Block,
    dir: &Path,
    eval: &Evaluator,
    diags: &mut Diagnostics,
) -> Option<LdapConfig> {
    let mut r = Reader::new(
        file,
        "the `ldap` block of `auth`".into(),
        header_span(block),
        &block.body,
        AUTH_LDAP_ATTRS,
        &[],
        eval,
        diags,
    );
    let url = r.string("url", true);
    let user_dn = r.string("user_dn", true);
    let groups = r.string("groups", false);
    let ssh_key_attribute = r.string("ssh_key_attribute", false);
    let start_tls = boolean(&mut r, "start_tls").unwrap_or(false);
    let ca_file = r.string("ca_file", false).map(|p| dir.join(p));
    let timeout = duration(&mut r, "timeout").unwrap_or(DEFAULT_LDAP_TIMEOUT);
    let (url, user_dn) = (url?, user_dn?);
    if !(url.starts_with("ldap://") || url.starts_with("ldaps://")) {
        let span = r.span_or_header("url");
        r.report(
            Diagnostic::new(
                "kloud::config::invalid_value",
                format!("unsupported LDAP URL `{url}`"),
            )
            .at(file, span)
            .label("unknown scheme")
            .help("use \"ldap://host:port\" (with `start_tls = true` for StartTLS) or \"ldaps://host:port\""),
        );
        return None;
    }
    if !user_dn.contains("{{ username }}") {
        let span = r.span_or_header("user_dn");
        r.report(
            Diagnostic::new(
                "kloud::config::invalid_value",
                "`user_dn` does not say where the user name goes",
            )
            .at(file, span)
            .label("no `{{ username }}`")
            .help("write it as \"uid={{ username }},ou=People,dc=example,dc=org\""),
        );
        return None;
    }
    Some(LdapConfig {
        url,
        user_dn,
        groups,
        ssh_key_attribute,
        start_tls,
        ca_file,
        timeout,
    })
}

fn decode_v1(
    file: &Arc<SourceFile>,
    block: &Block,
    eval: &Evaluator,
    diags: &mut Diagnostics,
) -> HostDbV1Access {
    let mut r = Reader::new(
        file,
        "the `hostdb_v1` block of `auth`".into(),
        header_span(block),
        &block.body,
        AUTH_HOSTDB_V1_ATTRS,
        &[],
        eval,
        diags,
    );
    let anonymous_read = boolean(&mut r, "anonymous_read").unwrap_or(true);
    let mut writers = BTreeMap::new();
    if let Some((value, span)) = r.value("writers") {
        match crate::config::eval::to_json(&value) {
            serde_json::Value::Object(map) => {
                for (ns, groups) in map {
                    let list: Option<Vec<String>> = groups
                        .as_array()
                        .and_then(|a| a.iter().map(|g| g.as_str().map(str::to_string)).collect());
                    match list {
                        Some(list) => {
                            writers.insert(ns, list);
                        }
                        None => r.report(
                            Diagnostic::new(
                                "kloud::config::wrong_type",
                                format!(
                                    "the writers of namespace `{ns}` must be a list of group names"
                                ),
                            )
                            .at(file, span.clone())
                            .label("not a list of strings")
                            .help("write it as `writers = { dns = [\"dns-editors\"] }`"),
                        ),
                    }
                }
            }
            _ => r.report(
                Diagnostic::new(
                    "kloud::config::wrong_type",
                    "`writers` must map namespaces to lists of groups",
                )
                .at(file, span)
                .label("not an object")
                .help("write it as `writers = { dns = [\"dns-editors\"] }`"),
            ),
        }
    }
    HostDbV1Access {
        anonymous_read,
        writers,
    }
}
