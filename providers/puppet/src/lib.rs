//! The Puppet integration: an External Node Classifier. `kloud enc HOST` prints
//! [`enc_yaml`] for the host, which `puppet apply|agent --node_terminus=exec` consumes:
//! `classes` from the host's puppet roles, `parameters` from its derived config (plus
//! `kloud_*` facts of its own), and the `environment`.
//!
//! The YAML is written by hand rather than through a YAML library: every string is
//! double-quoted with YAML escapes, so nothing in a property can change the document's shape,
//! and numbers keep a form YAML 1.1 (Ruby's Psych, which Puppet uses) reads as numbers.
//!
//! Puppet pulls: there is nothing to push at apply time, so [`PuppetProvider::converge`] only
//! checks that roles and parameter names are usable by Puppet and reports what is not.

use std::collections::BTreeMap;
use std::path::Path;

use kloud_provider_api::integration::{
    check_attributes, Attrs, ConfigError, ConvergeRequest, ConvergeResponse, HostRecord,
    Integration, IntegrationError,
};
use kloud_provider_api::registry::{self, Attr, AttrType, Build};
use kloud_provider_api::Diagnostic;
use serde_json::{Map, Value};

/// The provider name as written in the config.
pub const PROVIDER: &str = "puppet";

/// Attributes of a `provider "puppet"` block.
/// `server` is read by first boot (its `puppet agent --onetime`), not by the ENC.
pub const ATTRIBUTES: &[Attr] = &[
    Attr::optional("environment", AttrType::String),
    Attr::optional("server", AttrType::String),
];

pub const DEFAULT_ENVIRONMENT: &str = "production";

fn quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            // Control characters, and the Unicode line breaks YAML would fold.
            c if (c as u32) < 0x20
                || c as u32 == 0x7f
                || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}') =>
            {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    // YAML 1.1 floats need a dot and no bare exponent; Rust's Display never uses one.
    let s = format!("{f}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// A scalar or empty collection on the same line, or None when it needs a block of its own.
fn inline(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number(n),
        Value::String(s) => {
            let mut o = String::new();
            quote(s, &mut o);
            o
        }
        Value::Array(a) if a.is_empty() => "[]".to_string(),
        Value::Object(m) if m.is_empty() => "{}".to_string(),
        _ => return None,
    })
}

fn emit_map(m: &Map<String, Value>, indent: usize, out: &mut String) {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    for k in keys {
        out.push_str(&" ".repeat(indent));
        quote(k, out);
        out.push(':');
        emit_value(&m[k], indent, out);
    }
}

fn emit_value(v: &Value, indent: usize, out: &mut String) {
    if let Some(s) = inline(v) {
        out.push(' ');
        out.push_str(&s);
        out.push('\n');
        return;
    }
    out.push('\n');
    match v {
        Value::Object(m) => emit_map(m, indent + 2, out),
        Value::Array(a) => emit_seq(a, indent + 2, out),
        _ => {}
    }
}

fn emit_seq(a: &[Value], indent: usize, out: &mut String) {
    for v in a {
        out.push_str(&" ".repeat(indent));
        out.push('-');
        emit_value(v, indent, out);
    }
}

/// The ENC parameters of a host: its derived config, then kloud's own facts (`kloud_class`,
/// `kloud_tags`, `kloud_machine`, `kloud_labels`, `kloud_ip`, `kloud_fqdn`), which win over
/// a property of the same name.
pub fn parameters(host: &HostRecord) -> Map<String, Value> {
    let mut p = host.properties.clone();
    let mut tags = host.tags.clone();
    tags.sort();
    tags.dedup();
    p.insert("kloud_fqdn".into(), Value::String(host.fqdn.clone()));
    p.insert("kloud_ip".into(), Value::String(host.ip.clone()));
    p.insert("kloud_class".into(), Value::String(host.class.clone()));
    p.insert("kloud_machine".into(), Value::String(host.machine.clone()));
    p.insert(
        "kloud_tags".into(),
        Value::Array(tags.into_iter().map(Value::String).collect()),
    );
    p.insert(
        "kloud_labels".into(),
        Value::Object(
            host.labels
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        ),
    );
    p
}

/// The External Node Classifier document for `host`.
pub fn enc_yaml(host: &HostRecord, environment: &str) -> String {
    let mut out = String::from("---\n");
    out.push_str("\"environment\": ");
    quote(environment, &mut out);
    out.push_str("\n\"classes\":");
    let roles: Vec<Value> = host.roles.iter().cloned().map(Value::String).collect();
    emit_value(&Value::Array(roles), 0, &mut out);
    out.push_str("\"parameters\":");
    emit_value(&Value::Object(parameters(host)), 0, &mut out);
    out
}

/// Puppet class names: lower-case segments separated by `::`.
pub fn valid_class_name(name: &str) -> bool {
    let name = name.strip_prefix("::").unwrap_or(name);
    !name.is_empty()
        && name.split("::").all(|seg| {
            let mut chars = seg.chars();
            matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
}

/// Whether `$name` can be referenced in a manifest.
pub fn valid_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The `puppet` integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PuppetProvider {
    pub environment: String,
}

impl PuppetProvider {
    pub fn from_block(
        attrs: &BTreeMap<String, Value>,
        _base_dir: &Path,
    ) -> Result<Self, Vec<ConfigError>> {
        check_attributes(PROVIDER, ATTRIBUTES, attrs)?;
        let a = Attrs::new(PROVIDER, attrs);
        let environment = a
            .opt_str("environment")
            .map_err(|e| vec![e])?
            .unwrap_or_else(|| DEFAULT_ENVIRONMENT.to_string());
        // Puppet environment names are directory names matching \A[a-z0-9_]+\z.
        if environment.is_empty()
            || !environment
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(vec![a.invalid(
                "environment",
                "must be lower-case letters, digits and `_`",
            )]);
        }
        Ok(Self { environment })
    }

    /// The ENC YAML of `host` in this provider's environment.
    pub fn enc_yaml(&self, host: &HostRecord) -> String {
        enc_yaml(host, &self.environment)
    }
}

impl Integration for PuppetProvider {
    fn name(&self) -> &str {
        PROVIDER
    }

    fn converge(&self, req: &ConvergeRequest) -> Result<ConvergeResponse, IntegrationError> {
        let mut resp = ConvergeResponse::default();
        for h in &req.hosts {
            for role in &h.roles {
                if !valid_class_name(role) {
                    resp.diagnostics.push(
                        Diagnostic::error(format!(
                            "puppet: role `{role}` of `{}` is not a valid Puppet class name",
                            h.fqdn
                        ))
                        .with_detail("class names are lower-case segments joined by `::`"),
                    );
                }
            }
            for key in parameters(h).keys() {
                if !valid_variable_name(key) {
                    resp.diagnostics.push(Diagnostic::warning(format!(
                        "puppet: property `{key}` of `{}` is not a valid Puppet variable name; \
                         manifests cannot refer to it",
                        h.fqdn
                    )));
                }
            }
        }
        Ok(resp)
    }
}

/// This provider's entry in kloud's provider table (not synced on its own: agents pull through `kloud enc`).
pub const REGISTRY: registry::Provider = registry::Provider {
    name: PROVIDER,
    attributes: ATTRIBUTES,
    build: Build::Integration {
        new: build,
        sync: false,
    },
};

fn build(
    attrs: &registry::Attributes,
    base_dir: &Path,
) -> Result<Box<dyn Integration>, Vec<ConfigError>> {
    Ok(Box::new(PuppetProvider::from_block(attrs, base_dir)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn host(props: Value) -> HostRecord {
        HostRecord {
            fqdn: "web-1.dc1.test".into(),
            ip: "10.0.0.1".into(),
            class: "web".into(),
            tags: vec!["web".into(), "checkout".into()],
            labels: BTreeMap::from([("rack".to_string(), "r1".to_string())]),
            machine: "hw-1".into(),
            roles: vec!["role::nginx".into(), "role::base".into()],
            properties: props.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn enc_yaml_has_the_expected_shape() {
        let y = enc_yaml(
            &host(json!({"team": "checkout", "limits": {"fds": 1024, "ratio": 0.5}, "empty": []})),
            "production",
        );
        assert_eq!(
            y,
            "---\n\"environment\": \"production\"\n\"classes\":\n  - \"role::nginx\"\n  - \"role::base\"\n\
             \"parameters\":\n  \"empty\": []\n  \"kloud_class\": \"web\"\n  \"kloud_fqdn\": \"web-1.dc1.test\"\n\
             \x20 \"kloud_ip\": \"10.0.0.1\"\n  \"kloud_labels\":\n    \"rack\": \"r1\"\n  \"kloud_machine\": \"hw-1\"\n\
             \x20 \"kloud_tags\":\n    - \"checkout\"\n    - \"web\"\n  \"limits\":\n    \"fds\": 1024\n    \"ratio\": 0.5\n\
             \x20 \"team\": \"checkout\"\n"
        );
    }

    #[test]
    fn strings_cannot_break_out_of_their_scalar() {
        let mut out = String::new();
        quote("a\"b\\c\nd: e\u{2028}\u{1}", &mut out);
        assert_eq!(out, "\"a\\\"b\\\\c\\nd: e\\u2028\\u0001\"");
        assert_eq!(
            number(&serde_json::Number::from_f64(1e21).unwrap()),
            "1000000000000000000000.0"
        );
        assert_eq!(number(&serde_json::Number::from_f64(-2.0).unwrap()), "-2.0");
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_class_name("role::nginx"));
        assert!(valid_class_name("::role::web_2"));
        assert!(!valid_class_name("Role::Nginx"));
        assert!(!valid_class_name("role::"));
        assert!(valid_variable_name("team"));
        assert!(!valid_variable_name("team-name"));
        let p = PuppetProvider {
            environment: "production".into(),
        };
        let mut h = host(json!({"team-name": "x"}));
        h.roles.push("Bad Role".into());
        let r = p
            .converge(&ConvergeRequest {
                hosts: vec![h],
                force: false,
                dry_run: false,
            })
            .unwrap();
        assert_eq!(r.diagnostics.len(), 2, "{:?}", r.diagnostics);
        assert!(PuppetProvider::from_block(
            &BTreeMap::from([("environment".to_string(), json!("Prod-1"))]),
            Path::new(".")
        )
        .is_err());
    }
}
