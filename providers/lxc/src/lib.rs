//! kloud's LXC compute driver: containers made with the `lxc-*` tools on a machine, run
//! locally or through ssh.
//!
//! Each machine keeps its containers under its own LXC path, `<root>/<machine FQDN>`
//! (`lxc-* -P`), so several machines that are one computer (`connect = "local"`) stay apart
//! and `list` answers exactly for one machine. A container joins a bridge named after its
//! network (created with the gateway address when missing), gets a fixed address, hostname and
//! MAC through its LXC config, and cpu (CFS quota) and memory limits through cgroups.
//!
//! What LXC cannot do here is said, not hidden: the `dir` backing store does not limit disk
//! usage (a warning diagnostic says so); the `loop` backing store does, but cannot grow a disk
//! in place.

pub mod conf;
pub mod debian;
pub mod images;
pub mod names;
pub mod registry;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;

use kloud_provider_api::boot;
use kloud_provider_api::compute::{
    ComputeDriver, ContainerSpec, ContainerState, CreateResponse, DriverError, FirstBoot,
    ListResponse, MachineRef, Observed, Response,
};
use kloud_provider_api::{Cpu, Diagnostic};
use kloud_provider_exec::{failed, quote_argv, Runner, SshOptions};

use conf::Cgroup;
pub use images::{ImageMap, ImageMapError, ImageSpec};
pub use names::bridge_name;
pub use registry::REGISTRY;

/// Where containers' root filesystems live; decides how fast a create is and whether disk
/// sizes are enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backing {
    /// An overlayfs snapshot of the image's base container: a create writes almost nothing
    /// (the fastest), the base must stay, no disk limit.
    #[default]
    Overlay,
    /// A directory of its own: a full copy of the image, no disk limit.
    Dir,
    /// An ext4 image file of `disk_gib` on a loop device: the size is a hard limit.
    Loop,
}

impl Backing {
    fn name(self) -> &'static str {
        match self {
            Backing::Overlay => "overlay",
            Backing::Dir => "dir",
            Backing::Loop => "loop",
        }
    }
}

/// Settings of an [`LxcDriver`].
#[derive(Debug, Clone)]
pub struct LxcConfig {
    /// Directory on each machine under which every machine gets its LXC path.
    pub root: PathBuf,
    pub backing: Backing,
    pub images: ImageMap,
    /// Seconds `lxc-stop` waits for a clean shutdown before killing.
    pub stop_timeout_s: u32,
    /// Build each image once per computer as a base container (under `<root>/.images`) and
    /// make containers by copying it, instead of running the template for every container.
    pub clone_images: bool,
    /// Where debootstrap images (`debian-12`) are built, once per computer, shared by every
    /// LXC root on it.
    pub image_cache: PathBuf,
    /// Seconds first boot may take inside a container before it counts as failed.
    pub first_boot_timeout_s: u32,
    pub ssh: SshOptions,
}

impl Default for LxcConfig {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/var/lib/kloud/lxc"),
            backing: Backing::Overlay,
            images: ImageMap::default(),
            stop_timeout_s: 10,
            clone_images: true,
            image_cache: PathBuf::from("/var/lib/kloud/images"),
            first_boot_timeout_s: 1800,
            ssh: SshOptions::default(),
        }
    }
}

/// Why the driver's settings were refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Images(#[from] ImageMapError),
    #[error("`KLOUD_LXC_BACKING` must be `overlay`, `dir` or `loop`, not `{0}`")]
    Backing(String),
}

impl LxcConfig {
    /// Defaults, changed by `KLOUD_LXC_ROOT` (directory), `KLOUD_LXC_BACKING` (`dir`|`loop`),
    /// `KLOUD_LXC_CLONE=0` (run the template for every container)
    /// `KLOUD_IMAGE_CACHE` (where `debian-12` is built), `KLOUD_FIRST_BOOT_TIMEOUT` (seconds)
    /// and `KLOUD_LXC_IMAGES` (path of a JSON image map, see [`ImageMap::with_file`]), with
    /// ssh settings from [`SshOptions::from_env`].
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut c = Self {
            ssh: SshOptions::from_env(),
            ..Self::default()
        };
        if let Some(root) = std::env::var_os("KLOUD_LXC_ROOT") {
            c.root = PathBuf::from(root);
        }
        if let Ok(b) = std::env::var("KLOUD_LXC_BACKING") {
            c.backing = match b.as_str() {
                "overlay" => Backing::Overlay,
                "dir" => Backing::Dir,
                "loop" => Backing::Loop,
                other => return Err(ConfigError::Backing(other.to_string())),
            };
        }
        if std::env::var("KLOUD_LXC_CLONE").is_ok_and(|v| v == "0") {
            c.clone_images = false;
        }
        if let Some(dir) = std::env::var_os("KLOUD_IMAGE_CACHE") {
            c.image_cache = PathBuf::from(dir);
        }
        if let Some(s) = std::env::var("KLOUD_FIRST_BOOT_TIMEOUT")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            c.first_boot_timeout_s = s;
        }
        if let Some(path) = std::env::var_os("KLOUD_LXC_IMAGES") {
            c.images = ImageMap::with_file(&PathBuf::from(path))?;
        }
        Ok(c)
    }
}

/// The LXC driver. One value serves every machine, from many threads.
#[derive(Debug)]
pub struct LxcDriver {
    config: LxcConfig,
    runner: Runner,
    /// cgroup layout per machine, asked once.
    cgroups: Mutex<BTreeMap<String, Cgroup>>,
}

/// A container's presence on a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Presence {
    Absent,
    Present(ContainerState),
}

/// Everything `create` does on the machine, in one call (one ssh session for a remote
/// machine), under the container's lock: adopt the container if it exists and carries kloud's
/// mark (starting it; when it cannot start, the start fails the call and the container is left
/// as it is), else make the bridge, build the image's base once, copy it (or run the
/// template), write kloud's config block with the ownership mark (stdin) over the template's
/// values, and start. It destroys only a container it made in this call, whose first start
/// failed. Before it copies or creates, it leaves `.kloud-making-NAME` beside the container
/// until the mark is written, so the remains of a create interrupted in between (killed, a
/// lost ssh session) are known as kloud's: the next create finishes them (configure, start). Before each step it prints `kloud-step: <step>` on stderr, so a failure names the
/// command that failed. Prints `ADOPTED`, `CREATED`, or `NOT-OURS` (an existing container
/// without kloud's mark: nothing was done).
///
/// Arguments: path, name, busybox-init (yes|no), bridge (`-` for none), gateway/prefix, mode
/// (copy|create), images path, base name, the template's options (quoted for the shell),
/// then the backing-store options of `lxc-copy` or `lxc-create`.
const ENSURE_SCRIPT: &str = r#"set -e
P="$1"; N="$2"; BB="$3"; BR="$4"; GW="$5"; MODE="$6"; I="$7"; B="$8"; TARGS="$9"; shift 9
step() { printf 'kloud-step: %s\n' "$1" >&2; }
W="$P/.kloud-making-$N"
resume=no
if [ -f "$P/$N/config" ] && ! grep -q '^# kloud\.owner = ' "$P/$N/config"; then
  # No mark: either kloud's own create, interrupted before it wrote the config (the
  # making-file says so), which this call finishes; or someone else's container.
  [ -f "$W" ] || { echo NOT-OURS; exit 0; }
  resume=yes
fi
if [ "$resume" = no ] && [ -f "$P/$N/config" ]; then
  step info
  state=$(lxc-info -P "$P" -n "$N" -s -H)
  if [ "$state" = RUNNING ]; then echo ADOPTED; exit 0; fi
  step start-existing
  lxc-start -P "$P" -n "$N" || {
    echo "kloud: the existing container did not start; it is left as it is (kloud apply --replace $N remakes it)" >&2
    exit 1
  }
  echo ADOPTED; exit 0
fi
if [ "$BR" != - ]; then
  step bridge
  ip link show dev "$BR" >/dev/null 2>&1 || ip link add name "$BR" type bridge 2>/dev/null || ip link show dev "$BR" >/dev/null
  ip addr replace "$GW" dev "$BR"
  ip link set dev "$BR" up
fi
mkdir -p "$P"
f=$(mktemp "$P/.kloud-create.XXXXXX")
trap 'rm -f "$f"; [ -f "$P/$N/config" ] || rm -f "$W"' EXIT
cat > "$f"
if [ "$resume" = yes ]; then
  # The interrupted create may not have recorded its use of the base yet.
  if [ "$MODE" = copy ] && [ -d "$I/$B" ]; then
    grep -qxF "$P/$N" "$I/$B/users" 2>/dev/null || echo "$P/$N" >> "$I/$B/users"
  fi
elif [ "$MODE" = copy ]; then
  touch "$W"
  step base
  mkdir -p "$I"
  (
    flock 9
    if [ ! -f "$I/$B/kloud-ready" ]; then
      lxc-destroy -P "$I" -n "$B" -f >/dev/null 2>&1 || true
      eval "lxc-create -P \"\$I\" -n \"\$B\" -B dir $TARGS" >/dev/null
      touch "$I/$B/kloud-ready"
    fi
  ) 9>>"$I/.lock"
  step copy
  lxc-copy -P "$I" -n "$B" -p "$P" -N "$N" "$@" >/dev/null
  echo "$P/$N" >> "$I/$B/users"
else
  step create
  touch "$W"
  eval "lxc-create -P \"\$P\" -n \"\$N\" -f \"\$f\" \"\$@\" $TARGS" >/dev/null
fi
step configure
if [ "$BB" = yes ]; then
  printf '#!/bin/sh\n# kloud: eth0 keeps the address from the LXC config (no udhcpc)\n/bin/syslogd\n/bin/mount -a\n' > "$P/$N/kloud-rcS"
  chmod 755 "$P/$N/kloud-rcS"
fi
c="$P/$N/config"
grep -v -e '^lxc\.uts\.name' -e '^lxc\.net\.' -e '^lxc\.cgroup2\{0,1\}\.' -e '^lxc\.mount\.entry.*kloud-rcS' -e '^# kloud\.' "$c" > "$c.kloud" || true
cat "$f" >> "$c.kloud"
mv "$c.kloud" "$c"
rm -f "$W"
step start
if ! lxc-start -P "$P" -n "$N"; then
  if [ "$resume" = yes ]; then
    echo "kloud: the container did not start; it is left as it is (kloud apply --replace $N remakes it)" >&2
    exit 1
  fi
  # Made in this call and never started: removing it leaves the machine as it was.
  lxc-destroy -P "$P" -n "$N" -f >/dev/null 2>&1 || true
  exit 1
fi
echo CREATED
"#;

/// Destroys a container if it exists and carries kloud's mark, or is the remains of kloud's
/// own create interrupted before the mark was written (`.kloud-making-NAME`); any other is
/// left alone and `NOT-OURS` printed. A container whose start once failed can leave
/// LXC's monitor cgroup behind; rmdir removes it only if it is empty. Arguments: path, name.
const DESTROY_SCRIPT: &str = r#"[ -f "$1/$2/config" ] || exit 0
grep -q '^# kloud\.owner = ' "$1/$2/config" || [ -f "$1/.kloud-making-$2" ] || { echo NOT-OURS; exit 0; }
lxc-destroy -P "$1" -n "$2" -f || exit $?
rm -f "$1/.kloud-making-$2"
for d in /sys/fs/cgroup/lxc.monitor."$2" /sys/fs/cgroup/*/lxc.monitor."$2"; do
  [ -d "$d" ] && rmdir "$d" 2>/dev/null
done
exit 0"#;

/// Prints `ABSENT` or the LXC state word of one container.
const STATE_SCRIPT: &str = r#"[ -f "$1/$2/config" ] || { echo ABSENT; exit 0; }
lxc-info -P "$1" -n "$2" -s -H"#;

/// Lists a machine: `lxc-ls` rows, a marker, then `name<TAB>configured address` lines.
const LIST_SCRIPT: &str = r#"P="$1"
[ -d "$P" ] || exit 0
lxc-ls -P "$P" -f -F NAME,STATE,IPV4 || exit $?
echo '--kloud-config--'
for c in "$P"/*/config; do
  [ -f "$c" ] || continue
  d=${c%/config}; n=${d##*/}
  a=$(sed -n 's/^lxc\.net\.0\.ipv4\.address *= *\([^/ ]*\).*/\1/p' "$c" | tail -n 1)
  printf '%s\t%s\n' "$n" "$a"
done"#;

/// Runs a command holding the container's lock (`<path>/.lock-<name>`), so the calls on one
/// container never interleave, even with calls left running by a kloud process that was
/// killed. Arguments: path, name, then the command.
///
/// When the container does not exist after the command (destroyed, or never created), the
/// lock file is removed while still held, so destroyed containers leave nothing behind. A
/// call that was waiting on the removed file then holds a lock on a file no longer at that
/// path, which excludes nobody: so after taking the lock, a call checks that the path still
/// names the file it locked (device and inode), and otherwise opens the path again.
const LOCK_SCRIPT: &str = r#"P="$1"; N="$2"; shift 2
L="$P/.lock-$N"
mkdir -p "$P" || exit 1
while :; do
  exec 9>>"$L" || exit 1
  flock 9 || exit 1
  if [ "$(stat -L -c %d:%i /proc/self/fd/9)" = "$(stat -c %d:%i "$L" 2>/dev/null)" ]; then
    "$@"; s=$?
    [ -f "$P/$N/config" ] || rm -f "$L"
    exit $s
  fi
  exec 9>&-
done"#;

/// Writes stdin to a file atomically (a crash leaves the old config or the new, never half).
const WRITE_SCRIPT: &str = r#"cat > "$1.kloud" && mv "$1.kloud" "$1""#;

const GIB: u64 = 1024 * 1024 * 1024;

/// The refusal to adopt or destroy a container whose config lacks kloud's mark.
fn not_ours(m: &MachineRef, path: &str, name: &str) -> DriverError {
    DriverError::NotOurs {
        machine: m.name.clone(),
        name: name.to_string(),
        mark: format!("no `{}…` line in {path}/{name}/config", conf::MARK_OWNER),
    }
}

/// The warning that a disk size is only recorded, not enforced.
fn unenforced_disk(backing: Backing, disk_gib: u64, name: &str) -> Diagnostic {
    Diagnostic::warning(format!(
        "disk size {disk_gib} GiB of `{name}` is not enforced: the LXC `{}` backing store has no quota",
        backing.name()
    ))
    .with_detail("set KLOUD_LXC_BACKING=loop for a fixed-size disk image per container")
}

/// The base container of an image: named by the image and a hash of how it is built, so
/// changing an image's template or arguments builds a new base instead of reusing the old.
fn base_name(image: &str, spec: &ImageSpec) -> String {
    let mut recipe = spec.template.clone();
    for a in &spec.args {
        recipe.push('\0');
        recipe.push_str(a);
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
        names::hash(recipe.as_bytes()) & 0xffff_ffff
    )
}

impl LxcDriver {
    pub fn new(config: LxcConfig) -> Self {
        let runner = Runner::new(config.ssh.clone());
        Self {
            config,
            runner,
            cgroups: Mutex::new(BTreeMap::new()),
        }
    }

    /// A driver configured from the environment (see [`LxcConfig::from_env`]).
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self::new(LxcConfig::from_env()?))
    }

    pub fn config(&self) -> &LxcConfig {
        &self.config
    }

    fn runner(&self) -> &Runner {
        &self.runner
    }

    /// The LXC path (`-P`) of a machine on that machine.
    pub fn machine_path(&self, m: &MachineRef) -> Result<String, DriverError> {
        if !names::is_safe_component(&m.name) {
            return Err(DriverError::Invalid {
                machine: m.name.clone(),
                name: String::new(),
                reason: "the machine name cannot be a directory name".into(),
            });
        }
        Ok(self.config.root.join(&m.name).display().to_string())
    }

    /// Where base containers of images live on a machine; machine names cannot start with
    /// a dot, so this never clashes with a machine's path.
    fn images_path(&self) -> String {
        self.config.root.join(".images").display().to_string()
    }

    fn check_name(m: &MachineRef, name: &str) -> Result<(), DriverError> {
        if names::is_safe_component(name) {
            Ok(())
        } else {
            Err(DriverError::Invalid {
                machine: m.name.clone(),
                name: name.to_string(),
                reason: "not a usable LXC container name (letters, digits, `-`, `.`, `_`)".into(),
            })
        }
    }

    /// Runs `argv` on the machine under the container's lock (see `LOCK_SCRIPT`).
    fn locked(
        &self,
        m: &MachineRef,
        path: &str,
        name: &str,
        argv: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<kloud_provider_exec::Output, DriverError> {
        let mut all = vec![path, name];
        all.extend_from_slice(argv);
        self.runner.script(m, LOCK_SCRIPT, &all, stdin)
    }

    /// As [`Self::locked`], failing on a non-zero exit with `argv` as the command shown.
    fn lxc_locked(
        &self,
        m: &MachineRef,
        path: &str,
        name: &str,
        argv: &[&str],
    ) -> Result<String, DriverError> {
        let out = self.locked(m, path, name, argv, None)?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(failed(m, argv, &out))
        }
    }

    fn presence(&self, m: &MachineRef, path: &str, name: &str) -> Result<Presence, DriverError> {
        let out = self.locked(
            m,
            path,
            name,
            &["sh", "-c", STATE_SCRIPT, "kloud", path, name],
            None,
        )?;
        if !out.success() {
            return Err(failed(m, &["lxc-info", "-P", path, "-n", name, "-s"], &out));
        }
        let word = out.stdout.trim();
        Ok(if word == "ABSENT" {
            Presence::Absent
        } else {
            Presence::Present(conf::state(word))
        })
    }

    fn cgroup(&self, m: &MachineRef) -> Result<Cgroup, DriverError> {
        if let Some(cg) = self.lock_cgroups().get(&m.name) {
            return Ok(*cg);
        }
        let fs = self
            .runner
            .check(m, &["stat", "-f", "-c", "%T", "/sys/fs/cgroup/"], None)?;
        let cg = if fs.trim() == "cgroup2fs" {
            Cgroup::V2
        } else {
            Cgroup::V1
        };
        self.lock_cgroups().insert(m.name.clone(), cg);
        Ok(cg)
    }

    fn lock_cgroups(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Cgroup>> {
        // The map is a cache; a panic elsewhere cannot leave it inconsistent.
        self.cgroups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lxc(&self, m: &MachineRef, argv: &[&str]) -> Result<String, DriverError> {
        self.runner.check(m, argv, None)
    }

    /// Runs first boot in a running container (see [`kloud_provider_api::boot`]), under the
    /// container's lock: the script goes in on stdin, is written to `/run` inside, and runs
    /// from there with its input closed, so no command can read the rest of it.
    fn first_boot(
        &self,
        m: &MachineRef,
        path: &str,
        spec: &ContainerSpec,
    ) -> Result<FirstBoot, DriverError> {
        let script = boot::script(spec);
        let timeout = self.config.first_boot_timeout_s.to_string();
        let argv = [
            "timeout",
            "-s",
            "KILL",
            &timeout,
            "lxc-attach",
            "-P",
            path,
            "-n",
            &spec.name,
            "--clear-env",
            "--",
            "/bin/sh",
            "-c",
            boot::RUN_FROM_STDIN,
        ];
        let out = self.locked(m, path, &spec.name, &argv, Some(script.as_bytes()))?;
        Ok(boot::parse(&out.stdout, &out.stderr, out.status))
    }

    fn start_in(&self, m: &MachineRef, path: &str, name: &str) -> Result<(), DriverError> {
        self.lxc_locked(m, path, name, &["lxc-start", "-P", path, "-n", name])
            .map(drop)
    }

    /// Checks a spec and works out what to run for it.
    fn prepare(
        &self,
        m: &MachineRef,
        path: &str,
        spec: &ContainerSpec,
        image: &ImageSpec,
    ) -> Result<Prepared, DriverError> {
        let invalid = |reason: String| DriverError::Invalid {
            machine: m.name.clone(),
            name: spec.name.clone(),
            reason,
        };
        let net = &spec.network;
        let IpAddr::V4(address) = net.address else {
            return Err(invalid(format!(
                "address `{}` is not IPv4; the LXC driver configures IPv4 only",
                net.address
            )));
        };
        let gateway = match net.gateway {
            IpAddr::V4(g) if g != address => Some(g),
            IpAddr::V4(_) => None,
            IpAddr::V6(g) => return Err(invalid(format!("gateway `{g}` is not IPv4"))),
        };
        if net.prefix_len == 0 || net.prefix_len > 32 {
            return Err(invalid(format!(
                "prefix length {} is not in 1..32",
                net.prefix_len
            )));
        }
        if spec.cpu.is_zero() || spec.memory_mib == 0 {
            return Err(invalid("cpu and memory must be above zero".into()));
        }
        if !names::is_safe_component(&spec.hostname) {
            return Err(invalid(format!(
                "hostname `{}` is not usable",
                spec.hostname
            )));
        }

        let mut diagnostics = Vec::new();
        let bridge = bridge_name(&net.name);
        let gw_cidr = match gateway {
            Some(gw) => format!("{gw}/{}", net.prefix_len),
            None => {
                diagnostics.push(Diagnostic::warning(format!(
                    "network `{}` has no usable gateway: bridge `{bridge}` must exist on `{}` already",
                    net.name, m.name
                )));
                String::new()
            }
        };

        let cg = self.cgroup(m)?;
        let rcs = image
            .uses_busybox_init()
            .then(|| format!("{path}/{}/kloud-rcS", spec.name));
        // A real system's hostname is its FQDN (design §9); busybox keeps the short name.
        let hostname = if image.boots() {
            &spec.name
        } else {
            &spec.hostname
        };
        let block = conf::render(&conf::Block {
            hostname,
            bridge: &bridge,
            address,
            prefix_len: net.prefix_len,
            gateway,
            busybox_rcs: rcs.clone(),
            cgroup: cg,
            cpu: spec.cpu,
            memory_mib: spec.memory_mib,
        });

        let mut template: Vec<String> = vec!["-t".into(), image.template.clone()];
        if !image.args.is_empty() {
            template.push("--".into());
            template.extend(image.args.iter().cloned());
        }
        let backing = self.config.backing;
        match backing {
            Backing::Overlay | Backing::Dir => {
                diagnostics.push(unenforced_disk(backing, spec.disk_gib, &spec.name));
            }
            Backing::Loop if spec.disk_gib == 0 => {
                return Err(invalid(
                    "disk must be above zero for the loop backing store".into(),
                ));
            }
            Backing::Loop => {}
        }
        let fssize = format!("{}G", spec.disk_gib);

        // Either copy the image's base container (built once), or run the template. An
        // overlay is a snapshot of the base, so it always copies.
        let clone = self.config.clone_images || backing == Backing::Overlay || image.boots();
        let mut opts: Vec<String> = Vec::new();
        if clone && backing == Backing::Overlay {
            opts.push("-s".into());
        }
        opts.extend(["-B".into(), backing.name().into()]);
        if backing == Backing::Loop {
            opts.extend([if clone { "-L" } else { "--fssize" }.into(), fssize]);
        }
        Ok(Prepared {
            busybox: rcs.is_some(),
            bridge: if gateway.is_some() {
                bridge
            } else {
                "-".into()
            },
            gw_cidr,
            clone,
            base: base_name(&spec.image, image),
            template,
            opts,
            block,
            diagnostics,
        })
    }

    /// The command a step of `ENSURE_SCRIPT` ran, for an error message.
    fn step_command(&self, step: &str, path: &str, name: &str, p: &Prepared) -> Vec<String> {
        let images = self.images_path();
        let mut v: Vec<String> = Vec::new();
        let mut push = |items: &[&str]| v.extend(items.iter().map(|s| s.to_string()));
        match step {
            "info" => push(&["lxc-info", "-P", path, "-n", name, "-s"]),
            "start" | "start-existing" => push(&["lxc-start", "-P", path, "-n", name]),
            "bridge" => push(&["ip", "link", "add", "name", &p.bridge, "type", "bridge"]),
            "base" => {
                push(&["lxc-create", "-P", &images, "-n", &p.base, "-B", "dir"]);
                v.extend(p.template.iter().cloned());
            }
            "copy" => {
                push(&[
                    "lxc-copy", "-P", &images, "-n", &p.base, "-p", path, "-N", name,
                ]);
                v.extend(p.opts.iter().cloned());
            }
            "create" => {
                push(&["lxc-create", "-P", path, "-n", name]);
                v.extend(p.opts.iter().cloned());
                v.extend(p.template.iter().cloned());
            }
            "configure" => push(&["write", &format!("{path}/{name}/config")]),
            _ => push(&["sh", "-c", "<kloud create script>"]),
        }
        v
    }
}

/// What `create` sends to the machine, worked out before anything runs there.
struct Prepared {
    busybox: bool,
    /// Bridge to ensure, or `-` when the network has no gateway to give it.
    bridge: String,
    gw_cidr: String,
    clone: bool,
    base: String,
    /// `-t TEMPLATE [-- ARGS]`.
    template: Vec<String>,
    /// Backing-store options of `lxc-copy` or `lxc-create`.
    opts: Vec<String>,
    block: String,
    diagnostics: Vec<Diagnostic>,
}

impl ComputeDriver for LxcDriver {
    fn kind(&self) -> &'static str {
        "lxc"
    }

    fn create(&self, m: &MachineRef, spec: &ContainerSpec) -> Result<CreateResponse, DriverError> {
        // A host whose first boot ends with a puppet agent run is made from the image's
        // puppet variant (`debian-12+puppet`), which has the agent: containers cannot
        // download it at first boot.
        let (image_name, image) = self
            .config
            .images
            .resolve(&spec.image, spec.boot.puppet_server.is_some());
        let image = image.ok_or_else(|| DriverError::UnknownImage {
            driver: "lxc".into(),
            image: spec.image.clone(),
            known: self.config.images.names(),
        })?;
        Self::check_name(m, &spec.name)?;
        let path = self.machine_path(m)?;
        let mut p = self.prepare(m, &path, spec, image)?;
        p.block = format!("{}{}", conf::mark(&spec.owner, &spec.name), p.block);
        // A debootstrap image is built once per computer in the image cache (waiting for a
        // build another apply runs), and copied from its current generation.
        let images = if image.boots() {
            p.base = self.ensure_image(m, image_name, image, false)?;
            self.image_cache()
        } else {
            self.images_path()
        };

        let targs = quote_argv(&p.template.iter().map(String::as_str).collect::<Vec<_>>());
        let mut argv: Vec<&str> = vec![
            "sh",
            "-c",
            ENSURE_SCRIPT,
            "kloud",
            &path,
            &spec.name,
            if p.busybox { "yes" } else { "no" },
            &p.bridge,
            &p.gw_cidr,
            if p.clone { "copy" } else { "create" },
            &images,
            &p.base,
            &targs,
        ];
        argv.extend(p.opts.iter().map(String::as_str));
        let out = self.locked(m, &path, &spec.name, &argv, Some(p.block.as_bytes()))?;

        if !out.success() {
            let step = out
                .stderr
                .lines()
                .filter_map(|l| l.strip_prefix("kloud-step: "))
                .next_back()
                .unwrap_or("");
            let shown = self.step_command(step, &path, &spec.name, &p);
            let cleaned = kloud_provider_exec::Output {
                stderr: out
                    .stderr
                    .lines()
                    .filter(|l| !l.starts_with("kloud-step: "))
                    .collect::<Vec<_>>()
                    .join("\n"),
                ..out
            };
            let shown: Vec<&str> = shown.iter().map(String::as_str).collect();
            return Err(failed(m, &shown, &cleaned));
        }
        let result = out.stdout.lines().next_back().unwrap_or("").trim();
        if result == "NOT-OURS" {
            return Err(not_ours(m, &path, &spec.name));
        }
        // First boot runs on an adopted container too: it finishes what did not finish.
        let first_boot = if image.boots() {
            Some(self.first_boot(m, &path, spec)?)
        } else {
            None
        };
        if result == "ADOPTED" {
            // An adopted container keeps what it has; the checks' warnings are about a
            // container that was not made now.
            return Ok(CreateResponse {
                driver_id: None,
                adopted: true,
                diagnostics: Vec::new(),
                first_boot,
            });
        }
        let mut diagnostics = p.diagnostics;
        if !image.boots() && (spec.boot.login.is_some() || !spec.boot.commands.is_empty()) {
            diagnostics.push(
                Diagnostic::warning(format!(
                    "image `{}` of `{}` runs no first boot: its login and first_boot are ignored",
                    spec.image, spec.name
                ))
                .with_detail("use image \"debian-12\" for hosts people log into"),
            );
        }
        Ok(CreateResponse {
            driver_id: None,
            adopted: false,
            diagnostics,
            first_boot,
        })
    }

    fn can_resize_live(&self) -> bool {
        true
    }

    fn resize(
        &self,
        m: &MachineRef,
        name: &str,
        cpu: Cpu,
        memory_mib: u64,
        disk_gib: u64,
    ) -> Result<Response, DriverError> {
        Self::check_name(m, name)?;
        if cpu.is_zero() || memory_mib == 0 {
            return Err(DriverError::Invalid {
                machine: m.name.clone(),
                name: name.to_string(),
                reason: "cpu and memory must be above zero".into(),
            });
        }
        let path = self.machine_path(m)?;
        let state = match self.presence(m, &path, name)? {
            Presence::Absent => {
                return Err(DriverError::NotFound {
                    machine: m.name.clone(),
                    name: name.to_string(),
                })
            }
            Presence::Present(s) => s,
        };
        let cg = self.cgroup(m)?;
        let config_path = format!("{path}/{name}/config");
        let config = self.lxc_locked(m, &path, name, &["cat", &config_path])?;
        let new = conf::set_limits(&config, cg, cpu, memory_mib);
        let out = self.locked(
            m,
            &path,
            name,
            &["sh", "-c", WRITE_SCRIPT, "kloud", &config_path],
            Some(new.as_bytes()),
        )?;
        if !out.success() {
            return Err(failed(m, &["tee", &config_path], &out));
        }
        if state == ContainerState::Running {
            for (key, value) in conf::limits(cg, cpu, memory_mib) {
                self.lxc_locked(
                    m,
                    &path,
                    name,
                    &["lxc-cgroup", "-P", &path, "-n", name, key, &value],
                )?;
            }
        }

        let mut diagnostics = Vec::new();
        match self.config.backing {
            b @ (Backing::Overlay | Backing::Dir) => {
                diagnostics.push(unenforced_disk(b, disk_gib, name))
            }
            Backing::Loop => {
                let size = self.lxc(m, &["stat", "-c", "%s", &format!("{path}/{name}/rootdev")])?;
                let have = size.trim().parse::<u64>().unwrap_or(0);
                if have / GIB != disk_gib {
                    diagnostics.push(Diagnostic::warning(format!(
                        "disk of `{name}` stays {} GiB, not {disk_gib} GiB: the loop backing store fixes it at creation",
                        have / GIB
                    )).with_detail("replace the host to change its disk size"));
                }
            }
        }
        Ok(Response { diagnostics })
    }

    fn start(&self, m: &MachineRef, name: &str) -> Result<Response, DriverError> {
        Self::check_name(m, name)?;
        let path = self.machine_path(m)?;
        match self.presence(m, &path, name)? {
            Presence::Absent => Err(DriverError::NotFound {
                machine: m.name.clone(),
                name: name.to_string(),
            }),
            Presence::Present(ContainerState::Running) => Ok(Response::default()),
            Presence::Present(_) => {
                self.start_in(m, &path, name)?;
                Ok(Response::default())
            }
        }
    }

    fn stop(&self, m: &MachineRef, name: &str) -> Result<Response, DriverError> {
        Self::check_name(m, name)?;
        let path = self.machine_path(m)?;
        match self.presence(m, &path, name)? {
            Presence::Absent => Err(DriverError::NotFound {
                machine: m.name.clone(),
                name: name.to_string(),
            }),
            Presence::Present(ContainerState::Stopped) => Ok(Response::default()),
            Presence::Present(_) => {
                let timeout = self.config.stop_timeout_s.to_string();
                self.lxc_locked(
                    m,
                    &path,
                    name,
                    &["lxc-stop", "-P", &path, "-n", name, "-t", &timeout],
                )?;
                Ok(Response::default())
            }
        }
    }

    fn destroy(&self, m: &MachineRef, name: &str) -> Result<Response, DriverError> {
        Self::check_name(m, name)?;
        let path = self.machine_path(m)?;
        let out = self.locked(
            m,
            &path,
            name,
            &["sh", "-c", DESTROY_SCRIPT, "kloud", &path, name],
            None,
        )?;
        if !out.success() {
            return Err(failed(
                m,
                &["lxc-destroy", "-P", &path, "-n", name, "-f"],
                &out,
            ));
        }
        if out.stdout.trim() == "NOT-OURS" {
            return Err(not_ours(m, &path, name));
        }
        Ok(Response::default())
    }

    fn list(&self, m: &MachineRef) -> Result<ListResponse, DriverError> {
        let path = self.machine_path(m)?;
        let out = self.runner.script(m, LIST_SCRIPT, &[&path], None)?;
        if !out.success() {
            return Err(failed(
                m,
                &["lxc-ls", "-P", &path, "-f", "-F", "NAME,STATE,IPV4"],
                &out,
            ));
        }
        let (table, configured) = out
            .stdout
            .split_once("--kloud-config--\n")
            .unwrap_or((out.stdout.as_str(), ""));
        let configured: BTreeMap<&str, &str> = configured
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .filter(|(_, a)| !a.is_empty())
            .collect();
        let mut containers: Vec<Observed> = conf::parse_ls(table)
            .into_iter()
            .map(|row| {
                let ip = row
                    .ipv4
                    .first()
                    .cloned()
                    .or_else(|| configured.get(row.name.as_str()).map(|a| a.to_string()));
                Observed {
                    name: row.name,
                    state: row.state,
                    ip,
                    driver_id: None,
                }
            })
            .collect();
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(ListResponse {
            containers,
            diagnostics: Vec::new(),
        })
    }

    fn images(&self) -> Vec<String> {
        self.config.images.names()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many calls on one never-created container, each removing the lock file as it ends
    /// (the container does not exist), still never overlap: a call that waited on a removed
    /// file takes the lock again on the new one. Needs only sh, flock(1) and stat(1).
    #[test]
    fn the_lock_excludes_even_while_its_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("machine");
        let path = path.to_str().unwrap();
        // The critical section: `mkdir` fails if another call is inside.
        let section =
            r#"mkdir "$0/inside" || { echo overlap; exit 3; }; sleep 0.005; rmdir "$0/inside""#;
        let calls: Vec<_> = (0..40)
            .map(|_| {
                std::process::Command::new("sh")
                    .args(["-c", LOCK_SCRIPT, "kloud", path, "c1.test"])
                    .args(["sh", "-c", section, path])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in calls {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let left: Vec<_> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    #[test]
    fn base_names_change_with_the_recipe_and_stay_usable() {
        let spec = |t: &str, args: &[&str]| ImageSpec {
            template: t.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            busybox_init: None,
            debootstrap: None,
        };
        let a = base_name("busybox", &spec("busybox", &[]));
        assert_eq!(a, base_name("busybox", &spec("busybox", &[])));
        assert!(a.starts_with("busybox-"));
        assert_ne!(a, base_name("busybox", &spec("busybox", &["-x"])));
        assert_ne!(
            base_name("d", &spec("local", &["a", "b"])),
            base_name("d", &spec("local", &["a b"]))
        );
        let odd = base_name("debian 12/x", &spec("local", &[]));
        assert!(names::is_safe_component(&odd), "{odd}");
    }
}
