//! `provider "lxc" { lxcpath, images }`: this driver's entry in kloud's provider table.
//!
//! The block's attributes set the driver's settings; an environment variable, when set, wins
//! over the attribute it corresponds to (`KLOUD_LXC_ROOT` over `lxcpath`, `KLOUD_LXC_IMAGES`
//! over `images`). The settings the block has no attribute for come from the environment only
//! (see [`LxcConfig::from_env`]).

use std::ffi::OsString;
use std::path::Path;

use kloud_provider_api::compute::ComputeDriver;
use kloud_provider_api::integration::{check_attributes, Attrs, ConfigError};
use kloud_provider_api::registry::{self, Attr, AttrType, Build};

use crate::{ImageMap, LxcConfig, LxcDriver};

/// The provider name, as written in `provider "lxc"` and `driver = "lxc"`.
pub const PROVIDER: &str = "lxc";

/// Attributes of a `provider "lxc"` block.
pub const ATTRIBUTES: &[Attr] = &[
    // The directory under which every machine gets its LXC path (`-P`).
    Attr::optional("lxcpath", AttrType::String),
    // More images, as in a `KLOUD_LXC_IMAGES` file: `{ name = { template = "…", args = […] } }`.
    Attr::optional("images", AttrType::Map),
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
    let mut config = LxcConfig::from_env().map_err(|e| {
        vec![ConfigError::Environment {
            provider: PROVIDER.to_string(),
            variable: "KLOUD_LXC_*".to_string(),
            reason: e.to_string(),
        }]
    })?;
    apply_block(&mut config, attrs, base_dir, &|v| std::env::var_os(v))?;
    Ok(Box::new(LxcDriver::new(config)))
}

/// Set what the block says on `config`, except where `env` has the variable that overrides
/// the attribute. A relative `lxcpath` is relative to the config directory.
pub fn apply_block(
    config: &mut LxcConfig,
    attrs: &registry::Attributes,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<(), Vec<ConfigError>> {
    check_attributes(PROVIDER, ATTRIBUTES, attrs)?;
    let a = Attrs::new(PROVIDER, attrs);
    if env("KLOUD_LXC_ROOT").is_none() {
        if let Some(root) = a.opt_path("lxcpath", base_dir).map_err(|e| vec![e])? {
            config.root = root;
        }
    }
    if env("KLOUD_LXC_IMAGES").is_none() {
        if let Some(images) = attrs.get("images") {
            config.images = ImageMap::with_json(&images.to_string(), "provider \"lxc\" images")
                .map_err(|e| vec![a.invalid("images", e.to_string())])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(v: serde_json::Value) -> registry::Attributes {
        v.as_object()
            .map(|m| m.clone().into_iter().collect())
            .unwrap_or_default()
    }

    #[test]
    fn the_block_sets_the_root_and_adds_images() {
        let mut c = LxcConfig::default();
        let a = attrs(json!({
            "lxcpath": "lxc-root",
            "images": {"alpine": {"template": "download", "args": ["-d", "alpine"]}}
        }));
        apply_block(&mut c, &a, Path::new("/etc/kloud"), &|_| None).unwrap();
        assert_eq!(c.root, Path::new("/etc/kloud/lxc-root"));
        assert_eq!(
            c.images.get("alpine").map(|s| s.template.as_str()),
            Some("download")
        );
        // The built-in images stay.
        assert!(c.images.get("busybox").is_some());
    }

    #[test]
    fn the_environment_wins_over_the_block() {
        let mut c = LxcConfig::default();
        let before = c.clone();
        let a =
            attrs(json!({"lxcpath": "/srv/lxc", "images": {"alpine": {"template": "download"}}}));
        let env = |v: &str| {
            ["KLOUD_LXC_ROOT", "KLOUD_LXC_IMAGES"]
                .contains(&v)
                .then(|| OsString::from("set"))
        };
        apply_block(&mut c, &a, Path::new("/"), &env).unwrap();
        assert_eq!(c.root, before.root);
        assert_eq!(c.images, before.images);
    }

    #[test]
    fn a_bad_image_map_names_the_attribute() {
        let mut c = LxcConfig::default();
        let a = attrs(json!({"images": {"alpine": {"template": " "}}}));
        let errs = apply_block(&mut c, &a, Path::new("/"), &|_| None).unwrap_err();
        assert!(
            matches!(&errs[..], [ConfigError::Invalid { attr, .. }] if attr == "images"),
            "{errs:?}"
        );
    }
}
