//! Which LXC template builds which image name, and how operators add their own.
//!
//! Three images are known out of the box: `busybox` (the offline LXC template: seconds to build,
//! nobody logs in), `debian-12`, a real Debian 12 system built by debootstrap from the
//! machine's own apt sources (see [`crate::debian`]), and `debian-12+puppet`, the same with
//! Debian's `puppet-agent` in it: the driver makes a `debian-12` host from it when the config
//! names a puppet server, since containers cannot download the agent at first boot. Operators map more names in a JSON file
//! (`KLOUD_LXC_IMAGES`): to an LXC template (`local` with a rootfs tarball they keep, say) or to
//! another debootstrap recipe.

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
    /// Built by debootstrap instead of an LXC template: a systemd system that takes logins and
    /// runs first boot.
    #[serde(default)]
    pub debootstrap: Option<Debootstrap>,
}

/// A Debian system built by `debootstrap --variant=minbase` from the machine's apt sources.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Debootstrap {
    /// `bookworm`.
    pub suite: String,
    /// Packages added to minbase.
    pub include: Vec<String>,
}

/// What `debian-12` holds besides minbase: an init, a way in, and what first boot uses.
pub const DEBIAN_PACKAGES: &[&str] = &[
    "systemd-sysv",
    "openssh-server",
    "sudo",
    "iproute2",
    "ca-certificates",
    "iputils-ping",
    "netbase",
    "procps",
    "less",
];

/// What `debian-12+puppet` adds to `debian-12`: the agent first boot runs once. Its own
/// `puppet.service` is masked in the image (kloud runs the agent, once).
pub const PUPPET_PACKAGES: &[&str] = &["puppet-agent"];

/// The suffix of an image's puppet variant: `debian-12` → `debian-12+puppet`.
pub const PUPPET_VARIANT: &str = "+puppet";

impl ImageSpec {
    pub fn uses_busybox_init(&self) -> bool {
        self.busybox_init.unwrap_or(self.template == "busybox")
    }

    /// Whether containers of this image boot a real system that runs first boot.
    pub fn boots(&self) -> bool {
        self.debootstrap.is_some()
    }

    /// `debian-12`: bookworm minbase plus [`DEBIAN_PACKAGES`].
    pub fn debian_12() -> Self {
        ImageSpec {
            template: "debootstrap".into(),
            args: Vec::new(),
            busybox_init: Some(false),
            debootstrap: Some(Debootstrap {
                suite: "bookworm".into(),
                include: DEBIAN_PACKAGES.iter().map(|p| p.to_string()).collect(),
            }),
        }
    }

    /// `debian-12+puppet`: [`ImageSpec::debian_12`] plus [`PUPPET_PACKAGES`], from the same
    /// debootstrap (its own recipe, so its own base name and generations in the cache).
    pub fn debian_12_puppet() -> Self {
        let mut spec = Self::debian_12();
        if let Some(d) = spec.debootstrap.as_mut() {
            d.include
                .extend(PUPPET_PACKAGES.iter().map(|p| p.to_string()));
        }
        spec
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
                debootstrap: None,
            },
        );
        m.insert("debian-12".to_string(), ImageSpec::debian_12());
        m.insert(
            format!("debian-12{PUPPET_VARIANT}"),
            ImageSpec::debian_12_puppet(),
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

    /// The image a host of `image` is made from: its puppet variant (`<image>+puppet`) when
    /// the host runs a puppet agent at first boot and the map has a debootstrap variant, else
    /// `image` itself.
    pub fn resolve<'a>(&'a self, image: &'a str, puppet: bool) -> (&'a str, Option<&'a ImageSpec>) {
        if puppet && !image.ends_with(PUPPET_VARIANT) {
            if let Some((name, spec)) = self
                .0
                .get_key_value(&format!("{image}{PUPPET_VARIANT}"))
                .filter(|(_, s)| s.boots())
            {
                return (name.as_str(), Some(spec));
            }
        }
        (image, self.0.get(image))
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
    fn defaults_know_busybox_and_debian() {
        let m = ImageMap::default();
        assert_eq!(m.names(), vec!["busybox", "debian-12", "debian-12+puppet"]);
        assert!(m.get("busybox").unwrap().uses_busybox_init());
        assert!(!m.get("busybox").unwrap().boots());
        let d = m.get("debian-12").unwrap();
        assert!(d.boots() && !d.uses_busybox_init());
        let deb = d.debootstrap.as_ref().unwrap();
        assert_eq!(deb.suite, "bookworm");
        for p in ["systemd-sysv", "openssh-server", "sudo"] {
            assert!(deb.include.iter().any(|i| i == p), "{p}");
        }
        assert!(!deb.include.iter().any(|i| i == "puppet-agent"));
        // The variant is the same recipe plus the agent.
        let v = m
            .get("debian-12+puppet")
            .unwrap()
            .debootstrap
            .as_ref()
            .unwrap();
        assert_eq!(v.include[..deb.include.len()], deb.include[..]);
        assert_eq!(v.include[deb.include.len()..], ["puppet-agent"]);
    }

    #[test]
    fn hosts_with_a_puppet_server_get_the_puppet_variant() {
        let m = ImageMap::default();
        assert_eq!(m.resolve("debian-12", false).0, "debian-12");
        assert_eq!(m.resolve("debian-12", true).0, "debian-12+puppet");
        assert_eq!(m.resolve("debian-12+puppet", true).0, "debian-12+puppet");
        assert_eq!(m.resolve("busybox", true).0, "busybox");
        assert!(m.resolve("nope", true).1.is_none());
    }

    #[test]
    fn file_entries_add_to_and_override_defaults() {
        let m = ImageMap::with_json(
            r#"{"debian-12": {"template": "local", "args": ["-m", "/srv/m.tar.xz"]},
                "busybox": {"template": "busybox", "busybox_init": false}}"#,
            "test",
        )
        .unwrap();
        assert_eq!(m.names(), vec!["busybox", "debian-12", "debian-12+puppet"]);
        let d = m.get("debian-12").unwrap();
        assert_eq!(d.template, "local");
        assert!(!d.boots(), "the file's entry replaces the built-in recipe");
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
