//! Images built by debootstrap (`debian-12`): once per computer, locked, kept in the image
//! cache, and listed, rebuilt and pruned by `kloud images`.
//!
//! The cache (`KLOUD_IMAGE_CACHE`, default `/var/lib/kloud/images`) is an LXC path shared by
//! every machine directory on the computer. An image's base name carries a hash of its recipe
//! (suite and packages), and every build of it is a numbered generation `<base>-gN` holding
//! `rootfs/`, an LXC `config`, its identity `kloud-image.json` (built when, from which archive,
//! how long it took, the digest of its package list) and `packages.txt`. `<base>.current`
//! names the generation new containers copy; containers already made keep the generation they
//! were cloned from (an overlay needs its lower layer), which is why a rebuild makes a new
//! generation instead of changing one in place, and why prune only removes generations that are
//! neither current nor used. Each copy records the container's directory in the generation's
//! `users` file.

use serde::{Deserialize, Serialize};

use kloud_provider_api::compute::{DriverError, MachineRef};
use kloud_provider_exec::failed;

use crate::images::{Debootstrap, ImageSpec};
use crate::LxcDriver;

/// The build script (see its header).
const BUILD_SCRIPT: &str = include_str!("scripts/build-debian.sh");

/// Prints every generation in the cache: `GEN <name> <current|old> <ready|partial>`, its
/// identity line `ID <json>`, then `USER <container dir>` for each user whose config still
/// points at it. Arguments: the cache dir.
const LIST_SCRIPT: &str = r#"I="$1"
[ -d "$I" ] || exit 0
for d in "$I"/*-g*; do
  [ -d "$d" ] || continue
  g=${d##*/}; b=${g%-g*}
  cur=old; [ -f "$I/$b.current" ] && [ "$(cat "$I/$b.current")" = "$g" ] && cur=current
  ready=partial; [ -f "$d/kloud-ready" ] && ready=ready
  echo "GEN $g $cur $ready"
  [ -f "$d/kloud-image.json" ] && echo "ID $(cat "$d/kloud-image.json")"
  [ -f "$d/users" ] || continue
  sort -u "$d/users" | while read -r u; do
    [ -f "$u/config" ] && grep -q "$d/rootfs" "$u/config" && echo "USER $u"
  done
done
exit 0"#;

/// Removes one generation under its image's lock, unless it became current or used meanwhile.
/// Arguments: the cache dir, the generation.
const REMOVE_SCRIPT: &str = r#"I="$1"; G="$2"; B=${G%-g*}
exec 8>>"$I/.lock-$B"
flock 8
[ -f "$I/$B.current" ] && [ "$(cat "$I/$B.current")" = "$G" ] && { echo "KEPT current"; exit 0; }
if [ -f "$I/$G/users" ]; then
  for u in $(sort -u "$I/$G/users"); do
    [ -f "$u/config" ] && grep -q "$I/$G/rootfs" "$u/config" && { echo "KEPT used by $u"; exit 0; }
  done
fi
rm -rf "${I:?}/$G"
echo REMOVED"#;

/// The identity a build records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub image: String,
    pub generation: String,
    pub suite: String,
    pub mirror: String,
    /// UTC, RFC 3339.
    pub built_at: String,
    pub build_seconds: u64,
    /// How many packages are installed, and the SHA-256 of `dpkg-query -W` sorted.
    pub packages: u64,
    pub packages_sha256: String,
}

/// One generation of an image in the cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Generation {
    pub name: String,
    /// The one new containers copy.
    pub current: bool,
    /// The build finished (a partial one is a build that was killed).
    pub ready: bool,
    pub identity: Option<Identity>,
    /// Container directories cloned from it that still use it.
    pub users: Vec<String>,
}

/// What a prune did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    /// Generations removed.
    pub removed: Vec<String>,
    /// Old generations kept, with why (still current, or used by a container).
    pub kept: Vec<(String, String)>,
}

/// Parses the output of `LIST_SCRIPT`.
pub fn parse_list(out: &str) -> Vec<Generation> {
    let mut gens: Vec<Generation> = Vec::new();
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("GEN ") {
            let mut w = rest.split_whitespace();
            let name = w.next().unwrap_or("").to_string();
            gens.push(Generation {
                name,
                current: w.next() == Some("current"),
                ready: w.next() == Some("ready"),
                identity: None,
                users: Vec::new(),
            });
        } else if let (Some(json), Some(g)) = (line.strip_prefix("ID "), gens.last_mut()) {
            g.identity = serde_json::from_str(json).ok();
        } else if let (Some(u), Some(g)) = (line.strip_prefix("USER "), gens.last_mut()) {
            g.users.push(u.to_string());
        }
    }
    gens.sort_by(|a, b| a.name.cmp(&b.name));
    gens
}

/// The base name of a debootstrap recipe: readable image name plus a hash of suite and packages.
pub fn base_name(image: &str, d: &Debootstrap) -> String {
    let mut recipe = d.suite.clone();
    for p in &d.include {
        recipe.push('\0');
        recipe.push_str(p);
    }
    let readable: String = image
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    format!(
        "{readable}-{:08x}",
        crate::names::hash(recipe.as_bytes()) & 0xffff_ffff
    )
}

impl LxcDriver {
    /// The image cache on a machine.
    pub fn image_cache(&self) -> String {
        self.config().image_cache.display().to_string()
    }

    /// Makes sure `image` is built on the machine and returns the generation to copy. Waits
    /// for a build another apply is running; builds one when there is none, or when `rebuild`.
    pub fn ensure_image(
        &self,
        m: &MachineRef,
        image: &str,
        spec: &ImageSpec,
        rebuild: bool,
    ) -> Result<String, DriverError> {
        let Some(d) = &spec.debootstrap else {
            return Err(DriverError::Invalid {
                machine: m.name.clone(),
                name: image.to_string(),
                reason: "only debootstrap images are built in the image cache".into(),
            });
        };
        let cache = self.image_cache();
        let base = base_name(image, d);
        let include = d.include.join(",");
        let args = [
            cache.as_str(),
            base.as_str(),
            d.suite.as_str(),
            include.as_str(),
            if rebuild { "yes" } else { "no" },
        ];
        let out = self.runner().script(m, BUILD_SCRIPT, &args, None)?;
        let generation = out
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix("IMAGE "))
            .next_back()
            .map(str::to_string);
        match generation {
            Some(g) if out.success() => Ok(g),
            _ => {
                let step = out
                    .stderr
                    .lines()
                    .filter_map(|l| l.strip_prefix("kloud-step: "))
                    .next_back()
                    .unwrap_or("build")
                    .to_string();
                let shown: Vec<&str> = match step.as_str() {
                    "debootstrap" => vec!["debootstrap", "--variant=minbase", &d.suite, &cache],
                    _ => vec!["sh", "-c", "<kloud image build>", &step],
                };
                let cleaned = kloud_provider_exec::Output {
                    stderr: out
                        .stderr
                        .lines()
                        .filter(|l| !l.starts_with("kloud-step: "))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    ..out
                };
                Err(failed(m, &shown, &cleaned))
            }
        }
    }

    /// Every generation in the machine's image cache.
    pub fn list_images(&self, m: &MachineRef) -> Result<Vec<Generation>, DriverError> {
        let cache = self.image_cache();
        let out = self.runner().script(m, LIST_SCRIPT, &[&cache], None)?;
        if !out.success() {
            return Err(failed(m, &["ls", &cache], &out));
        }
        Ok(parse_list(&out.stdout))
    }

    /// Removes the generations that are neither current nor used by a container; returns what
    /// was removed and, for each kept old generation, why it was kept.
    pub fn prune_images(&self, m: &MachineRef) -> Result<Pruned, DriverError> {
        let cache = self.image_cache();
        let mut removed = Vec::new();
        let mut kept = Vec::new();
        for g in self.list_images(m)? {
            if g.current && g.ready {
                continue;
            }
            let out = self
                .runner()
                .script(m, REMOVE_SCRIPT, &[&cache, &g.name], None)?;
            if !out.success() {
                return Err(failed(m, &["rm", "-rf", &g.name], &out));
            }
            match out.stdout.trim().strip_prefix("KEPT ") {
                Some(why) => kept.push((g.name, why.to_string())),
                None => removed.push(g.name),
            }
        }
        Ok(Pruned { removed, kept })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_output_parses_into_generations_with_identity_and_users() {
        let out = "GEN debian-12-1a2b3c4d-g2 current ready\n\
                   ID {\"image\":\"debian-12-1a2b3c4d\",\"generation\":\"debian-12-1a2b3c4d-g2\",\"suite\":\"bookworm\",\"mirror\":\"http://deb.debian.org/debian\",\"built_at\":\"2026-12-01T22:51:59Z\",\"build_seconds\":41,\"packages\":136,\"packages_sha256\":\"f1a8\"}\n\
                   USER /var/lib/kloud/lxc/m1/web-1.dc1\n\
                   GEN debian-12-1a2b3c4d-g1 old ready\n\
                   GEN debian-12-1a2b3c4d-g3 old partial\n";
        let g = parse_list(out);
        assert_eq!(g.len(), 3);
        assert_eq!(g[1].name, "debian-12-1a2b3c4d-g2");
        assert!(g[1].current && g[1].ready);
        assert_eq!(g[1].users, ["/var/lib/kloud/lxc/m1/web-1.dc1"]);
        let id = g[1].identity.as_ref().unwrap();
        assert_eq!((id.build_seconds, id.packages), (41, 136));
        assert!(!g[0].current && g[0].identity.is_none());
        assert!(!g[2].ready);
    }

    #[test]
    fn base_names_follow_the_recipe() {
        let d = |pkgs: &[&str]| Debootstrap {
            suite: "bookworm".into(),
            include: pkgs.iter().map(|p| p.to_string()).collect(),
        };
        let a = base_name("debian-12", &d(&["sudo"]));
        assert!(a.starts_with("debian-12-"), "{a}");
        assert_eq!(a, base_name("debian-12", &d(&["sudo"])));
        assert_ne!(a, base_name("debian-12", &d(&["sudo", "vim"])));
        assert!(crate::names::is_safe_component(&a));
    }
}
