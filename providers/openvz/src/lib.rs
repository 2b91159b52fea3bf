//! kloud's OpenVZ compute driver: containers made with vzctl(8) on a machine reached over
//! ssh (or on this computer).
//!
//! Containers are numbered by CTID; kloud picks the lowest free CTID above 100 (or reuses one
//! recorded in HostDB), gives the container the host's FQDN as its OpenVZ name and hostname,
//! and returns the CTID as the `driver_id` to record. Addresses go on venet (`--ipadd`), which
//! routes a single address per container, so the network's gateway and prefix are not used.
//! `vzctl set --ram/--diskspace/--cpus/--cpulimit --save` applies to a running container, so
//! resizes are live. A fractional cpu (`0.5`) is `--cpus` rounded up (the cores the container
//! sees) and `--cpulimit` in percent of one core (`50`): the time it may use.
//!
//! Each container kloud creates is marked as kloud's in its OpenVZ description
//! (`vzctl set CTID --description "kloud owner=OWNER record=FQDN" --save`, read back with
//! `vzlist -o description`); create adopts and destroy removes only containers with that mark,
//! so a container made by hand is never touched, whatever HostDB says.

pub mod registry;
pub mod vzlist;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use kloud_provider_api::boot;
use kloud_provider_api::compute::{
    ComputeDriver, ContainerSpec, ContainerState, CreateResponse, DriverError, FirstBoot,
    ListResponse, MachineRef, Observed, Response,
};
use kloud_provider_api::{Cpu, Diagnostic};
use kloud_provider_exec::{failed, Output, Runner, SshOptions};
use vzlist::{is_marked, mark, MARK_PREFIX};

pub use registry::REGISTRY;

/// vzctl's exit status when the CTID's private area already exists (vzerror.h).
const VZ_FS_PRVT_AREA_EXIST: i32 = 44;

/// vzctl's exit status when another vzctl holds the container's lock (vzerror.h).
const VZ_LOCKED: i32 = 9;

/// How many times create moves on to another CTID when one turns out to be taken by
/// something this process did not see (another operator, another tool).
const CTID_ATTEMPTS: usize = 5;

/// Settings of an [`OpenVzDriver`].
#[derive(Debug, Clone)]
pub struct OpenVzConfig {
    /// Image name → OS template name (`--ostemplate`).
    pub images: BTreeMap<String, String>,
    pub ssh: SshOptions,
    /// How long a call waits for a container locked by another vzctl before failing.
    pub lock_wait: Duration,
}

impl Default for OpenVzConfig {
    fn default() -> Self {
        let images = [
            ("centos-7", "centos-7-x86_64"),
            ("debian-11", "debian-11-x86_64"),
            ("debian-12", "debian-12-x86_64"),
            ("ubuntu-22.04", "ubuntu-22.04-x86_64"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        Self {
            images,
            ssh: SshOptions::default(),
            lock_wait: Duration::from_secs(60),
        }
    }
}

/// Why the driver's settings were refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read OpenVZ image map `{path}`: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "invalid OpenVZ image map `{path}` (expected {{\"image\": \"ostemplate\"}}): {source}"
    )]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

impl OpenVzConfig {
    /// Defaults plus the entries of the JSON file named by `KLOUD_OPENVZ_IMAGES`
    /// (`{"debian-12": "debian-12.0-x86_64-minimal"}`), whose entries win, with ssh settings
    /// from [`SshOptions::from_env`].
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut c = Self {
            ssh: SshOptions::from_env(),
            ..Self::default()
        };
        if let Some(path) = std::env::var_os("KLOUD_OPENVZ_IMAGES") {
            let path = PathBuf::from(path);
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                path: shown.clone(),
                source,
            })?;
            let extra: BTreeMap<String, String> =
                serde_json::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: shown,
                    source,
                })?;
            c.images.extend(extra);
        }
        Ok(c)
    }
}

/// The OpenVZ driver. One value serves every machine, from many threads.
#[derive(Debug)]
pub struct OpenVzDriver {
    config: OpenVzConfig,
    runner: Runner,
    /// Machine → CTIDs claimed by creates in flight, so parallel creates on one machine do
    /// not pick the same CTID.
    claimed: Mutex<BTreeMap<String, BTreeSet<u32>>>,
}

/// Releases a claimed CTID when a create ends, however it ends.
struct Claim<'a> {
    driver: &'a OpenVzDriver,
    machine: String,
    ctid: u32,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Some(set) = self.driver.lock_claims().get_mut(&self.machine) {
            set.remove(&self.ctid);
        }
    }
}

impl OpenVzDriver {
    pub fn new(config: OpenVzConfig) -> Self {
        let runner = Runner::new(config.ssh.clone());
        Self {
            config,
            runner,
            claimed: Mutex::new(BTreeMap::new()),
        }
    }

    /// A driver configured from the environment (see [`OpenVzConfig::from_env`]).
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self::new(OpenVzConfig::from_env()?))
    }

    fn lock_claims(&self) -> MutexGuard<'_, BTreeMap<String, BTreeSet<u32>>> {
        // Claims are released by guards; a panic elsewhere leaves the map usable.
        self.claimed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn vz(&self, m: &MachineRef, argv: &[&str]) -> Result<String, DriverError> {
        let out = self.run_vz(m, argv)?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(failed(m, argv, &out))
        }
    }

    /// Runs a vzctl command, waiting while the container is locked by another vzctl (one
    /// left running by a killed kloud, or an operator's).
    fn run_vz(&self, m: &MachineRef, argv: &[&str]) -> Result<Output, DriverError> {
        let deadline = Instant::now() + self.config.lock_wait;
        loop {
            let out = self.runner.run(m, argv, None)?;
            if out.status != Some(VZ_LOCKED) || Instant::now() >= deadline {
                return Ok(out);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// First boot (see [`kloud_provider_api::boot`]) through `vzctl exec2`, which runs a
    /// command in the container and returns its exit status: the script goes in on stdin, is
    /// written to `/run` inside and runs from there with its input closed. vzctl already set
    /// the hostname, so a container whose class asks for nothing (no login, commands, resolvers
    /// or puppet) gets no first boot.
    fn first_boot(
        &self,
        m: &MachineRef,
        ctid: &str,
        spec: &ContainerSpec,
    ) -> Result<Option<FirstBoot>, DriverError> {
        let b = &spec.boot;
        if b.login.is_none()
            && b.commands.is_empty()
            && b.dns.is_empty()
            && b.puppet_server.is_none()
        {
            return Ok(None);
        }
        let script = boot::script(spec);
        let argv = ["vzctl", "exec2", ctid, boot::RUN_FROM_STDIN];
        let deadline = Instant::now() + self.config.lock_wait;
        loop {
            let out = self.runner.run(m, &argv, Some(script.as_bytes()))?;
            if out.status != Some(VZ_LOCKED) || Instant::now() >= deadline {
                return Ok(Some(boot::parse(&out.stdout, &out.stderr, out.status)));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn find(&self, m: &MachineRef, name: &str) -> Result<Option<Observed>, DriverError> {
        Ok(self
            .list(m)?
            .containers
            .into_iter()
            .find(|o| o.name == name))
    }

    fn found(&self, m: &MachineRef, name: &str) -> Result<(Observed, String), DriverError> {
        let o = self.find(m, name)?.ok_or_else(|| DriverError::NotFound {
            machine: m.name.clone(),
            name: name.to_string(),
        })?;
        let ctid = o.driver_id.clone().unwrap_or_default();
        Ok((o, ctid))
    }

    /// Claims a CTID for a new container on `m`, given what the machine runs.
    fn claim(&self, m: &MachineRef, running: &BTreeSet<u32>, preferred: Option<u32>) -> Claim<'_> {
        let mut claims = self.lock_claims();
        let set = claims.entry(m.name.clone()).or_default();
        let taken: BTreeSet<u32> = running.union(set).copied().collect();
        let ctid = vzlist::allocate(&taken, preferred);
        set.insert(ctid);
        Claim {
            driver: self,
            machine: m.name.clone(),
            ctid,
        }
    }

    fn set_size(
        &self,
        m: &MachineRef,
        ctid: &str,
        cpu: Cpu,
        memory_mib: u64,
        disk_gib: u64,
    ) -> Result<(), DriverError> {
        let (ram, disk, cpus, cpulimit) = (
            format!("{memory_mib}M"),
            format!("{disk_gib}G"),
            cpu.ceil_cores().to_string(),
            cpu_limit_percent(cpu).to_string(),
        );
        self.vz(
            m,
            &[
                "vzctl",
                "set",
                ctid,
                "--ram",
                &ram,
                "--diskspace",
                &disk,
                "--cpus",
                &cpus,
                "--cpulimit",
                &cpulimit,
                "--save",
            ],
        )
        .map(drop)
    }

    /// Refuses a container that does not carry kloud's mark in its description.
    fn check_marked(&self, m: &MachineRef, ctid: &str, name: &str) -> Result<(), DriverError> {
        let argv = ["vzlist", "-H", "-o", "description", ctid];
        let out = self.runner.run(m, &argv, None)?;
        if !out.success() {
            return Err(failed(m, &argv, &out));
        }
        if is_marked(&out.stdout) {
            return Ok(());
        }
        Err(DriverError::NotOurs {
            machine: m.name.clone(),
            name: name.to_string(),
            mark: format!(
                "CT {ctid}'s description is `{}`, not `{MARK_PREFIX}…`",
                out.stdout.trim()
            ),
        })
    }

    fn remove(&self, m: &MachineRef, ctid: &str, running: bool) -> Result<(), DriverError> {
        if running {
            self.vz(m, &["vzctl", "stop", ctid])?;
        }
        self.vz(m, &["vzctl", "destroy", ctid]).map(drop)
    }
}

impl ComputeDriver for OpenVzDriver {
    fn kind(&self) -> &'static str {
        "openvz"
    }

    fn create(&self, m: &MachineRef, spec: &ContainerSpec) -> Result<CreateResponse, DriverError> {
        let template =
            self.config
                .images
                .get(&spec.image)
                .ok_or_else(|| DriverError::UnknownImage {
                    driver: "openvz".into(),
                    image: spec.image.clone(),
                    known: self.images(),
                })?;
        let invalid = |reason: &str| DriverError::Invalid {
            machine: m.name.clone(),
            name: spec.name.clone(),
            reason: reason.to_string(),
        };
        if spec.name.is_empty() || spec.name.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(invalid("not a usable OpenVZ container name"));
        }
        if spec.cpu.is_zero() || spec.memory_mib == 0 || spec.disk_gib == 0 {
            return Err(invalid("cpu, memory and disk must be above zero"));
        }

        let preferred = spec
            .driver_id
            .as_deref()
            .and_then(|d| d.parse::<u32>().ok());
        let mut seen_taken = BTreeSet::new();
        for _ in 0..CTID_ATTEMPTS {
            let listed = self.list(m)?.containers;
            if let Some(o) = listed.iter().find(|o| o.name == spec.name) {
                let ctid = o.driver_id.clone().unwrap_or_default();
                self.check_marked(m, &ctid, &spec.name)?;
                if o.state != ContainerState::Running {
                    self.vz(m, &["vzctl", "start", &ctid])?;
                }
                // An adopted container finishes the first boot it did not finish.
                let first_boot = self.first_boot(m, &ctid, spec)?;
                return Ok(CreateResponse {
                    driver_id: Some(ctid),
                    adopted: true,
                    diagnostics: Vec::new(),
                    first_boot,
                });
            }
            let mut running: BTreeSet<u32> = listed
                .iter()
                .filter_map(|o| o.driver_id.as_deref()?.parse().ok())
                .collect();
            running.extend(&seen_taken);
            let claim = self.claim(m, &running, preferred);
            let ctid = claim.ctid.to_string();
            let address = spec.network.address.to_string();
            let argv = [
                "vzctl",
                "create",
                &ctid,
                "--ostemplate",
                template,
                "--hostname",
                &spec.hostname,
                "--ipadd",
                &address,
                "--name",
                &spec.name,
            ];
            let out = self.run_vz(m, &argv)?;
            if out.status == Some(VZ_FS_PRVT_AREA_EXIST) {
                seen_taken.insert(claim.ctid);
                continue;
            }
            if !out.success() {
                return Err(failed(m, &argv, &out));
            }
            let description = mark(&spec.owner, &spec.name);
            let finish = self
                .vz(
                    m,
                    &[
                        "vzctl",
                        "set",
                        &ctid,
                        "--description",
                        &description,
                        "--save",
                    ],
                )
                .and_then(|_| self.set_size(m, &ctid, spec.cpu, spec.memory_mib, spec.disk_gib))
                .and_then(|()| self.vz(m, &["vzctl", "start", &ctid]).map(drop));
            if let Err(e) = finish {
                // Leave nothing half-made: the next create starts clean. The container was
                // made by this call, so removing it destroys nothing that was there before.
                let _ = self.remove(m, &ctid, false);
                return Err(e);
            }
            let first_boot = self.first_boot(m, &ctid, spec)?;
            return Ok(CreateResponse {
                driver_id: Some(ctid),
                adopted: false,
                diagnostics: Vec::new(),
                first_boot,
            });
        }
        Err(DriverError::Invalid {
            machine: m.name.clone(),
            name: spec.name.clone(),
            reason: format!(
                "gave up after {CTID_ATTEMPTS} CTIDs turned out to be taken: {seen_taken:?}"
            ),
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
        let (_, ctid) = self.found(m, name)?;
        self.set_size(m, &ctid, cpu, memory_mib, disk_gib)?;
        Ok(Response::default())
    }

    fn start(&self, m: &MachineRef, name: &str) -> Result<Response, DriverError> {
        let (o, ctid) = self.found(m, name)?;
        if o.state != ContainerState::Running {
            self.vz(m, &["vzctl", "start", &ctid])?;
        }
        Ok(Response::default())
    }

    fn stop(&self, m: &MachineRef, name: &str) -> Result<Response, DriverError> {
        let (o, ctid) = self.found(m, name)?;
        if o.state == ContainerState::Running {
            self.vz(m, &["vzctl", "stop", &ctid])?;
        }
        Ok(Response::default())
    }

    fn destroy(&self, m: &MachineRef, name: &str) -> Result<Response, DriverError> {
        match self.find(m, name)? {
            None => Ok(Response::default()),
            Some(o) => {
                let ctid = o.driver_id.clone().unwrap_or_default();
                self.check_marked(m, &ctid, name)?;
                self.remove(m, &ctid, o.state == ContainerState::Running)?;
                Ok(Response::default())
            }
        }
    }

    fn list(&self, m: &MachineRef) -> Result<ListResponse, DriverError> {
        let argv = ["vzlist", "-a", "-H", "-o", vzlist::FIELDS];
        let out = self.runner.run(m, &argv, None)?;
        if !out.success() {
            // vzlist fails when a machine has no containers at all.
            if out.stderr.contains("not found") && out.stdout.trim().is_empty() {
                return Ok(ListResponse::default());
            }
            return Err(failed(m, &argv, &out));
        }
        let (containers, bad) = vzlist::parse(&out.stdout);
        let diagnostics = bad
            .into_iter()
            .map(|line| {
                Diagnostic::warning(format!("unreadable vzlist line on `{}`", m.name))
                    .with_detail(line)
            })
            .collect();
        Ok(ListResponse {
            containers,
            diagnostics,
        })
    }

    fn images(&self) -> Vec<String> {
        self.config.images.keys().cloned().collect()
    }
}

/// `vzctl --cpulimit`: the cpu time a container may use, in percent of one core (`0.5` → 50,
/// `2` → 200); at least 1, as 0 means no limit to OpenVZ.
pub fn cpu_limit_percent(cpu: Cpu) -> u32 {
    cpu.millis().div_ceil(10).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpulimit_is_percent_of_a_core() {
        assert_eq!(cpu_limit_percent(Cpu::from_cores(2)), 200);
        assert_eq!(cpu_limit_percent(Cpu::from_millis(500)), 50);
        assert_eq!(cpu_limit_percent(Cpu::from_millis(1250)), 125);
        assert_eq!(cpu_limit_percent(Cpu::from_millis(5)), 1);
        assert_eq!(Cpu::from_millis(500).ceil_cores(), 1);
    }
}
