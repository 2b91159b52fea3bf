//! `provider "openvz" { ostemplates, ssh_identity }`: this driver's entry in kloud's provider
//! table.
//!
//! The block's attributes set the driver's settings; the environment, when set, wins:
//! `KLOUD_OPENVZ_IMAGES` over `ostemplates`, and an `IdentityFile` in `KLOUD_SSH_OPTIONS`
//! over `ssh_identity` (ssh takes the first value it is given, and the environment's options
//! come first).

use std::ffi::OsString;
use std::path::Path;

use kloud_provider_api::compute::ComputeDriver;
use kloud_provider_api::integration::{check_attributes, Attrs, ConfigError};
use kloud_provider_api::registry::{self, Attr, AttrType, Build};
use serde_json::Value;

use crate::{OpenVzConfig, OpenVzDriver};

/// The provider name, as written in `provider "openvz"` and `driver = "openvz"`.
pub const PROVIDER: &str = "openvz";

/// Attributes of a `provider "openvz"` block.
pub const ATTRIBUTES: &[Attr] = &[
    // Image name → OS template (`--ostemplate`), added to the built-in ones.
    Attr::optional("ostemplates", AttrType::Map),
    // The private key ssh uses to reach the machines.
    Attr::optional("ssh_identity", AttrType::String),
];

/// This driver's entry in kloud's provider table.
pub const REGISTRY: registry::Provider = registry::Provider {
    name: PROVIDER,
    attributes: ATTRIBUTES,
    build: Build::Compute(build),
};

fn build(
    attrs: &registry::Attributes,
    base_dir: &Path,
) -> Result<Box<dyn ComputeDriver>, Vec<ConfigError>> {
    let mut config = OpenVzConfig::from_env().map_err(|e| {
        vec![ConfigError::Environment {
            provider: PROVIDER.to_string(),
            variable: "KLOUD_OPENVZ_IMAGES".to_string(),
            reason: e.to_string(),
        }]
    })?;
    apply_block(&mut config, attrs, base_dir, &|v| std::env::var_os(v))?;
    Ok(Box::new(OpenVzDriver::new(config)))
}

/// Set what the block says on `config`, except where `env` has the variable that overrides
/// the attribute. A relative `ssh_identity` is relative to the config directory.
pub fn apply_block(
    config: &mut OpenVzConfig,
    attrs: &registry::Attributes,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<(), Vec<ConfigError>> {
    check_attributes(PROVIDER, ATTRIBUTES, attrs)?;
    let a = Attrs::new(PROVIDER, attrs);
    if env("KLOUD_OPENVZ_IMAGES").is_none() {
        if let Some(Value::Object(map)) = attrs.get("ostemplates") {
            for (image, template) in map {
                let Some(template) = template.as_str().filter(|t| !t.trim().is_empty()) else {
                    let reason = format!("`{image}` must name an OS template (a string)");
                    return Err(vec![a.invalid("ostemplates", reason)]);
                };
                config.images.insert(image.clone(), template.to_string());
            }
        }
    }
    if let Some(key) = a.opt_path("ssh_identity", base_dir).map_err(|e| vec![e])? {
        config
            .ssh
            .options
            .push(format!("IdentityFile={}", key.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(v: Value) -> registry::Attributes {
        v.as_object()
            .map(|m| m.clone().into_iter().collect())
            .unwrap_or_default()
    }

    #[test]
    fn the_block_adds_templates_and_the_identity() {
        let mut c = OpenVzConfig::default();
        let a = attrs(json!({
            "ostemplates": {"debian-12": "debian-12.0-x86_64-minimal", "alma-9": "almalinux-9"},
            "ssh_identity": "keys/id_ed25519"
        }));
        apply_block(&mut c, &a, Path::new("/etc/kloud"), &|_| None).unwrap();
        assert_eq!(c.images["debian-12"], "debian-12.0-x86_64-minimal");
        assert_eq!(c.images["alma-9"], "almalinux-9");
        assert_eq!(c.images["centos-7"], "centos-7-x86_64");
        assert_eq!(
            c.ssh.options,
            vec!["IdentityFile=/etc/kloud/keys/id_ed25519".to_string()]
        );
    }

    #[test]
    fn the_environment_wins_over_the_block() {
        let mut c = OpenVzConfig::default();
        c.ssh.options = vec!["IdentityFile=/from/env".to_string()];
        let before = c.images.clone();
        let a = attrs(json!({"ostemplates": {"x": "y"}, "ssh_identity": "/from/block"}));
        let env = |v: &str| (v == "KLOUD_OPENVZ_IMAGES").then(|| OsString::from("set"));
        apply_block(&mut c, &a, Path::new("/"), &env).unwrap();
        assert_eq!(c.images, before);
        // The environment's IdentityFile comes first, so ssh uses it.
        assert_eq!(c.ssh.options[0], "IdentityFile=/from/env");
    }

    #[test]
    fn a_template_that_is_not_a_string_is_refused() {
        let mut c = OpenVzConfig::default();
        let a = attrs(json!({"ostemplates": {"debian-12": 12}}));
        let errs = apply_block(&mut c, &a, Path::new("/"), &|_| None).unwrap_err();
        assert!(
            matches!(&errs[..], [ConfigError::Invalid { attr, .. }] if attr == "ostemplates"),
            "{errs:?}"
        );
    }
}
