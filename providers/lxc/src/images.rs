//! Which LXC template builds which image name, and how operators add their own.
//!
//! Only the `busybox` template builds without a network, so it is the only image known out of
//! the box. Operators map more names to templates in a JSON file (`KLOUD_LXC_IMAGES`), e.g. a
//! `debian-12` built by the `local` template from a rootfs tarball they keep on the machine.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// How to build one image.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// LXC template name (`busybox`, `local`, `download`...), passed as `lxc-create -t`.
    pub template: String,
    /// Arguments for the template, after `--`.
    #[serde(default)]
    pub args: Vec<String>,
    /// Whether the rootfs runs busybox's init, whose `rcS` starts `udhcpc`; udhcpc flushes the
    /// static address LXC puts on eth0, so kloud binds its own `rcS` over it. Defaults to true
    /// for the `busybox` template.
    #[serde(default)]
    pub busybox_init: Option<bool>,
}

impl ImageSpec {
    pub fn uses_busybox_init(&self) -> bool {
        self.busybox_init.unwrap_or(self.template == "busybox")
    }
}

/// Image name → how to build it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMap(pub BTreeMap<String, ImageSpec>);

/// Why an image map file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ImageMapError {
    #[error("cannot read LXC image map `{path}`: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid LXC image map `{path}`: {source}")]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid LXC image map `{path}`: image `{image}` has an empty template")]
    EmptyTemplate { path: String, image: String },
}

impl Default for ImageMap {
    fn default() -> Self {
        let mut m = BTreeMap::new();
        m.insert(
            "busybox".to_string(),
            ImageSpec {
                template: "busybox".into(),
                args: Vec::new(),
                busybox_init: None,
            },
        );
        ImageMap(m)
    }
}

impl ImageMap {
    /// The defaults plus the entries of a JSON file `{ "name": { "template": ..., "args": [...] } }`;
    /// the file's entries win.
    pub fn with_file(path: &Path) -> Result<Self, ImageMapError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ImageMapError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::with_json(&text, &shown)
    }

    /// As [`ImageMap::with_file`], from the text of the file; `origin` names it in errors.
    pub fn with_json(text: &str, origin: &str) -> Result<Self, ImageMapError> {
        let extra: BTreeMap<String, ImageSpec> =
            serde_json::from_str(text).map_err(|source| ImageMapError::Parse {
                path: origin.to_string(),
                source,
            })?;
        let mut map = Self::default();
        for (name, spec) in extra {
            if spec.template.trim().is_empty() {
                return Err(ImageMapError::EmptyTemplate {
                    path: origin.to_string(),
                    image: name,
                });
            }
            map.0.insert(name, spec);
        }
        Ok(map)
    }

    pub fn get(&self, image: &str) -> Option<&ImageSpec> {
        self.0.get(image)
    }

    /// Sorted image names.
    pub fn names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_know_only_busybox() {
        let m = ImageMap::default();
        assert_eq!(m.names(), vec!["busybox"]);
        assert!(m.get("busybox").unwrap().uses_busybox_init());
        assert!(m.get("debian-12").is_none());
    }

    #[test]
    fn file_entries_add_to_and_override_defaults() {
        let m = ImageMap::with_json(
            r#"{"debian-12": {"template": "local", "args": ["-m", "/srv/m.tar.xz"]},
                "busybox": {"template": "busybox", "busybox_init": false}}"#,
            "test",
        )
        .unwrap();
        assert_eq!(m.names(), vec!["busybox", "debian-12"]);
        let d = m.get("debian-12").unwrap();
        assert_eq!(d.template, "local");
        assert_eq!(d.args, vec!["-m", "/srv/m.tar.xz"]);
        assert!(!d.uses_busybox_init());
        assert!(!m.get("busybox").unwrap().uses_busybox_init());
    }

    #[test]
    fn bad_files_are_refused_with_their_origin() {
        let e = ImageMap::with_json(r#"{"x": {"templat": "busybox"}}"#, "/etc/x.json").unwrap_err();
        assert!(e.to_string().contains("/etc/x.json"), "{e}");
        let e = ImageMap::with_json(r#"{"x": {"template": " "}}"#, "f").unwrap_err();
        assert!(matches!(e, ImageMapError::EmptyTemplate { .. }));
    }
}
