//! Hosts people log into (design §9): a host class's `login { user, ssh_keys, sudo }` block and
//! `first_boot = [...]` commands, and a network's `dns = [...]` resolvers.
//!
//! The loader reads the rest of `host_class` and `network` blocks; this file decodes only these
//! parts of the same blocks (the loader lets them through: their names are in
//! [`super::schema`]), so every problem still comes with a span. [`boot_spec`] turns them into
//! what a compute driver runs at a container's first boot.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use hcl_edit::structure::{Block, BlockLabel, Body};

use super::diag::{Diagnostic, Diagnostics, SourceFile};
use super::eval::Evaluator;
use super::reader::{header_span, Reader};
use super::schema::LOGIN_ATTRS;
use super::Config;
use kloud_provider_api::compute::{BootSpec, LoginSpec};

/// The login user when a `login` block names none.
pub const DEFAULT_USER: &str = "kloud";

/// A host class's `login {}` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub user: String,
    pub ssh_keys: Vec<String>,
    pub sudo: bool,
}

/// What a host class's hosts do at first boot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassBoot {
    pub login: Option<Login>,
    pub first_boot: Vec<String>,
}

/// Everything of §9 in a config: per host class, and the resolvers per network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Logins {
    pub classes: BTreeMap<String, ClassBoot>,
    pub dns: BTreeMap<String, Vec<IpAddr>>,
}

/// A top-level block and its file.
pub type Blocks<'a> = [(&'a Arc<SourceFile>, &'a Block)];

fn label(b: &Block) -> String {
    match b.labels.first() {
        Some(BlockLabel::String(s)) => s.as_str().to_string(),
        Some(BlockLabel::Ident(i)) => i.as_str().to_string(),
        None => String::new(),
    }
}

/// A body holding only the attribute `name` of `block` (spans kept), so a reader of it reports
/// nothing about the attributes the loader reads.
fn only_attribute(block: &Block, name: &str) -> Body {
    block
        .body
        .get_attribute(name)
        .map(|a| Body::builder().attribute(a.clone()).build())
        .unwrap_or_default()
}

/// Decodes `login`, `first_boot` of the host classes and `dns` of the networks (the first
/// block of each name; duplicates were reported by the loader).
pub fn decode(
    host_classes: &Blocks,
    networks: &Blocks,
    eval: &Evaluator,
    diags: &mut Diagnostics,
) -> Logins {
    let mut out = Logins::default();
    for (file, block) in host_classes {
        let name = label(block);
        if out.classes.contains_key(&name) {
            continue;
        }
        let boot = decode_class(file, block, &name, eval, diags);
        out.classes.insert(name, boot);
    }
    for (file, block) in networks {
        let name = label(block);
        if out.dns.contains_key(&name) {
            continue;
        }
        let dns = decode_dns(file, block, &name, eval, diags);
        out.dns.insert(name, dns);
    }
    out
}

fn decode_class(
    file: &Arc<SourceFile>,
    block: &Block,
    name: &str,
    eval: &Evaluator,
    diags: &mut Diagnostics,
) -> ClassBoot {
    let mut boot = ClassBoot::default();
    let only = only_attribute(block, "first_boot");
    let mut r = Reader::new(
        file,
        format!("host_class \"{name}\""),
        header_span(block),
        &only,
        &["first_boot"],
        &[],
        eval,
        diags,
    );
    boot.first_boot = r.string_list("first_boot").unwrap_or_default();
    let span = r.span_or_header("first_boot");
    if boot.first_boot.iter().any(|c| c.trim().is_empty()) {
        r.report(
            Diagnostic::new(
                "kloud::config::invalid_value",
                "a first_boot command is empty",
            )
            .at(file, span)
            .label("empty command")
            .help("remove the empty string, or write the shell command it should run"),
        );
    }
    for (i, lb) in block.body.get_blocks("login").enumerate() {
        if !lb.labels.is_empty() || i > 0 {
            diags.push(
                Diagnostic::new(
                    "kloud::config::block_labels",
                    "a host class takes one unlabelled `login` block",
                )
                .at(file, header_span(lb))
                .label("unexpected")
                .help("merge them into a single `login { ... }`"),
            );
            continue;
        }
        boot.login = decode_login(file, lb, name, eval, diags);
    }
    boot
}

fn decode_login(
    file: &Arc<SourceFile>,
    lb: &Block,
    class: &str,
    eval: &Evaluator,
    diags: &mut Diagnostics,
) -> Option<Login> {
    let mut r = Reader::new(
        file,
        format!("the login of host_class \"{class}\""),
        header_span(lb),
        &lb.body,
        LOGIN_ATTRS,
        &[],
        eval,
        diags,
    );
    let user = r
        .string("user", false)
        .unwrap_or_else(|| DEFAULT_USER.to_string());
    if let Some(problem) = user_problem(&user) {
        let span = r.span_or_header("user");
        r.report(
            Diagnostic::new("kloud::config::invalid_value", problem)
                .at(file, span)
                .label("not a usable login name")
                .help("use lower-case letters, digits, `_` and `-`, starting with a letter, e.g. \"ops\""),
        );
    }
    let keys_given = r.has("ssh_keys");
    let ssh_keys = r.string_list("ssh_keys").unwrap_or_default();
    let keys_span = r.span_or_header("ssh_keys");
    if !keys_given {
        r.report(
            Diagnostic::new(
                "kloud::config::missing_attribute",
                format!("the login of host_class \"{class}\" has no `ssh_keys`"),
            )
            .at(file, header_span(lb))
            .label("nobody could log in")
            .help("password logins are refused: add `ssh_keys = [\"ssh-ed25519 AAAA... you@laptop\"]`"),
        );
    }
    for k in &ssh_keys {
        if !looks_like_public_key(k) {
            let shown: String = k.chars().take(40).collect();
            r.report(
                Diagnostic::new(
                    "kloud::config::invalid_value",
                    format!("`{shown}` is not an OpenSSH public key"),
                )
                .at(file, keys_span.clone())
                .label("not a public key")
                .help("give the one line of a `.pub` file: `ssh-ed25519 AAAA... comment`"),
            );
        }
    }
    let sudo = match r.value("sudo") {
        None => false,
        Some((hcl::Value::Bool(b), _)) => b,
        Some((_, span)) => {
            r.report(
                Diagnostic::new("kloud::config::wrong_type", "`sudo` must be true or false")
                    .at(file, span)
                    .label("expected true or false")
                    .help("write `sudo = true` for passwordless sudo"),
            );
            false
        }
    };
    Some(Login {
        user,
        ssh_keys,
        sudo,
    })
}

fn decode_dns(
    file: &Arc<SourceFile>,
    block: &Block,
    name: &str,
    eval: &Evaluator,
    diags: &mut Diagnostics,
) -> Vec<IpAddr> {
    let only = only_attribute(block, "dns");
    let mut r = Reader::new(
        file,
        format!("network \"{name}\""),
        header_span(block),
        &only,
        &["dns"],
        &[],
        eval,
        diags,
    );
    let list = r.string_list("dns").unwrap_or_default();
    let span = r.span_or_header("dns");
    let mut out = Vec::new();
    for s in list {
        match s.parse::<IpAddr>() {
            Ok(ip) => out.push(ip),
            Err(_) => diags.push(
                Diagnostic::new(
                    "kloud::config::invalid_value",
                    format!("`{s}` is not an IP address"),
                )
                .at(file, span.clone())
                .label("not a resolver address")
                .help("list resolver addresses, e.g. dns = [\"10.40.0.1\"]"),
            ),
        }
    }
    out
}

/// Why `user` cannot be a login name (useradd's rules, kept strict), or `None`.
pub fn user_problem(user: &str) -> Option<String> {
    let ok = !user.is_empty()
        && user.len() <= 32
        && user.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && user
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !ok {
        Some(format!("`{user}` is not a valid login name"))
    } else if user == "root" {
        Some("the login user cannot be `root`: log in as a user with `sudo = true`".into())
    } else {
        None
    }
}

/// An OpenSSH public key line: a known type, base64 data, an optional comment, one line.
pub fn looks_like_public_key(k: &str) -> bool {
    let mut w = k.split_whitespace();
    let (Some(kind), Some(data)) = (w.next(), w.next()) else {
        return false;
    };
    let known = kind.starts_with("ssh-")
        || kind.starts_with("ecdsa-sha2-")
        || kind.starts_with("sk-ssh-")
        || kind.starts_with("sk-ecdsa-");
    known
        && !k.contains('\n')
        && data.len() >= 16
        && data
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
}

/// What a host's first boot does: its class's login and commands, its network's resolvers, the
/// puppet server of `provider "puppet"`.
pub fn boot_spec(config: &Config, class: &str, network: &str, roles: &[String]) -> BootSpec {
    let c = config.login.classes.get(class);
    BootSpec {
        class: class.to_string(),
        roles: roles.to_vec(),
        login: c.and_then(|c| c.login.as_ref()).map(|l| LoginSpec {
            user: l.user.clone(),
            ssh_keys: l.ssh_keys.clone(),
            sudo: l.sudo,
        }),
        commands: c.map(|c| c.first_boot.clone()).unwrap_or_default(),
        dns: config.login.dns.get(network).cloned().unwrap_or_default(),
        puppet_server: config
            .providers
            .get("puppet")
            .and_then(|p| p.attributes.get("server"))
            .and_then(|v| v.as_str())
            .map(str::to_string),
    }
}

/// The login user of a class, if it has a `login` block.
pub fn login_user<'a>(config: &'a Config, class: &str) -> Option<&'a str> {
    config
        .login
        .classes
        .get(class)?
        .login
        .as_ref()
        .map(|l| l.user.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_names_follow_useradd() {
        for ok in ["ops", "kloud", "_svc", "web-admin2"] {
            assert_eq!(user_problem(ok), None, "{ok}");
        }
        for bad in ["", "Ops", "1ops", "a b", "root", "x;y", &"a".repeat(33)] {
            assert!(user_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn public_keys_are_recognised() {
        assert!(looks_like_public_key(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0x ops@laptop"
        ));
        assert!(looks_like_public_key(
            "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAy"
        ));
        for bad in [
            "",
            "ssh-ed25519",
            "AAAAC3NzaC1lZDI1NTE5AAAAIB0x",
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            "ssh-ed25519 short",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0x\nssh-rsa AAAA",
        ] {
            assert!(!looks_like_public_key(bad), "{bad:?}");
        }
    }
}

#[cfg(test)]
mod load_tests {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Arc;

    use crate::config::{load_sources, Diagnostics, SourceFile, VarOverrides};

    const BASE: &str = r#"
kloud { domain = "t.test" }
machine_class "b" {
  cpu    = 4
  memory = "4GiB"
  disk   = "10GiB"
}
machines "m" {
  class   = "b"
  count   = 1
  connect = "local"
}
provider "puppet" { server = "puppet.t.test:8140" }
"#;

    fn load(extra: &str) -> (Option<crate::config::Config>, Diagnostics) {
        let text = format!("{BASE}{extra}");
        let file = Arc::new(SourceFile::new("main.hcl", text.as_str()));
        let mut diags = Diagnostics::default();
        let c = load_sources(
            Path::new("."),
            vec![file],
            &VarOverrides::new(),
            &BTreeMap::new(),
            &mut diags,
        );
        (c, diags)
    }

    #[test]
    fn login_first_boot_and_dns_decode_into_a_boot_spec() {
        let (c, d) = load(
            r#"
network "n" {
  cidr    = "10.1.0.0/24"
  gateway = "10.1.0.1"
  dns     = ["10.1.0.1", "10.1.0.2"]
}
host_class "web" {
  count        = 1
  cpu          = 1
  memory       = "256MiB"
  disk         = "2GiB"
  image        = "debian-12"
  network      = "n"
  puppet_roles = ["role::web"]
  login {
    user     = "ops"
    ssh_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0x ops@laptop"]
    sudo     = true
  }
  first_boot = ["apt-get install -y nginx", "systemctl enable nginx"]
}
"#,
        );
        assert!(d.is_empty(), "{d:?}");
        let c = c.unwrap();
        let b = super::boot_spec(&c, "web", "n", &["role::web".to_string()]);
        let l = b.login.unwrap();
        assert_eq!((l.user.as_str(), l.sudo), ("ops", true));
        assert_eq!(l.ssh_keys.len(), 1);
        assert_eq!(b.commands.len(), 2);
        assert_eq!(b.dns.len(), 2);
        assert_eq!(b.puppet_server.as_deref(), Some("puppet.t.test:8140"));
        assert_eq!(b.class, "web");
        assert_eq!(super::login_user(&c, "web"), Some("ops"));
    }

    #[test]
    fn bad_logins_are_reported_with_spans() {
        let (_, d) = load(
            r#"
network "n" {
  cidr = "10.1.0.0/24"
  dns  = ["not-an-ip"]
}
host_class "web" {
  count   = 1
  cpu     = 1
  memory  = "256MiB"
  disk    = "2GiB"
  image   = "debian-12"
  network = "n"
  login {
    user = "root"
    sudo = "yes"
    shell = "/bin/zsh"
  }
  first_boot = ["echo ok", ""]
}
"#,
        );
        let messages: Vec<String> = d.0.iter().map(|x| x.message.clone()).collect();
        for want in [
            "`not-an-ip` is not an IP address",
            "the login user cannot be `root`",
            "has no `ssh_keys`",
            "`sudo` must be true or false",
            "has no attribute `shell`",
            "a first_boot command is empty",
        ] {
            assert!(
                messages.iter().any(|m| m.contains(want)),
                "no {want:?} in {messages:#?}"
            );
        }
        assert!(d.0.iter().all(|x| x.location.is_some()), "{d:?}");
    }
}
