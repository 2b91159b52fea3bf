//! Compute drivers: the contract between apply and whatever runs containers on a machine.
//!
//! A driver (LXC, OpenVZ, ...) creates, resizes, starts, stops and destroys containers on one
//! machine at a time, and lists what a machine really runs so apply can adopt, recreate or
//! report orphans. Every call names the machine it acts on through a [`MachineRef`]; drivers
//! hold no per-machine state, so one driver value serves a whole fleet from many threads.
//!
//! Contract every driver keeps:
//! - `create` is idempotent: a container of that name that already exists is adopted (started
//!   if it is stopped) and reported as `Ok`, so a re-run after a crash converges;
//! - `destroy` is idempotent: an absent container is `Ok`;
//! - `start`/`stop` of a container already in that state are `Ok`;
//! - `list` answers exactly for one machine, even when several machines share one computer;
//! - what a driver cannot do (enforce a disk size, say) comes back as a warning
//!   [`Diagnostic`], never as silent success.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Cpu, Diagnostic};

/// A machine a driver acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineRef {
    /// FQDN of the machine, as recorded in HostDB.
    pub name: String,
    /// How to reach it.
    pub connect: Connect,
}

impl MachineRef {
    pub fn new(name: impl Into<String>, connect: Connect) -> Self {
        Self {
            name: name.into(),
            connect,
        }
    }
}

/// How the driver reaches a machine: run commands on this computer, or through OpenSSH.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Connect {
    #[default]
    Local,
    Ssh {
        user: String,
        host: String,
        port: u16,
        identity: Option<PathBuf>,
    },
}

/// Why a connect string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid connect string `{input}`: {reason} (expected `local` or `ssh://user@host[:port][?identity=PATH]`)")]
pub struct ConnectParseError {
    pub input: String,
    pub reason: &'static str,
}

impl FromStr for Connect {
    type Err = ConnectParseError;

    /// Parses `local` or `ssh://user@host[:port][?identity=PATH]`; the user defaults to `root`
    /// and the port to 22. IPv6 hosts go in brackets: `ssh://root@[::1]:2222`.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| ConnectParseError {
            input: input.to_string(),
            reason,
        };
        let s = input.trim();
        if s == "local" {
            return Ok(Connect::Local);
        }
        let rest = s
            .strip_prefix("ssh://")
            .ok_or_else(|| err("unknown scheme"))?;
        let (authority, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        let authority = authority.trim_end_matches('/');
        if authority.contains('/') {
            return Err(err("a path is not allowed"));
        }
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (u, h),
            None => ("root", authority),
        };
        if user.is_empty() {
            return Err(err("empty user"));
        }
        let (host, port) = if let Some(after) = hostport.strip_prefix('[') {
            let (host, tail) = after
                .split_once(']')
                .ok_or_else(|| err("unclosed `[` in host"))?;
            match tail {
                "" => (host, None),
                t => (
                    host,
                    Some(t.strip_prefix(':').ok_or_else(|| err("junk after `]`"))?),
                ),
            }
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(err("empty host"));
        }
        let port = match port {
            None => 22,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(err("port is not a number in 1..65535")),
            },
        };
        let mut identity = None;
        if let Some(q) = query {
            for pair in q.split('&').filter(|p| !p.is_empty()) {
                match pair.split_once('=') {
                    Some(("identity", path)) if !path.is_empty() => {
                        identity = Some(PathBuf::from(path))
                    }
                    _ => return Err(err("the only query parameter is `identity=PATH`")),
                }
            }
        }
        Ok(Connect::Ssh {
            user: user.to_string(),
            host: host.to_string(),
            port,
            identity,
        })
    }
}

impl fmt::Display for Connect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Connect::Local => f.write_str("local"),
            Connect::Ssh {
                user,
                host,
                port,
                identity,
            } => {
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.clone()
                };
                write!(f, "ssh://{user}@{host}:{port}")?;
                if let Some(id) = identity {
                    write!(f, "?identity={}", id.display())?;
                }
                Ok(())
            }
        }
    }
}

/// The network a container's single interface joins, and its address on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// Name of the network in the config (`prod`); drivers derive bridge names from it.
    pub name: String,
    /// The network's pool, e.g. `10.40.0.0/16`.
    pub cidr: String,
    pub gateway: IpAddr,
    /// The container's address, reserved by apply in HostDB.
    pub address: IpAddr,
    /// Prefix length of `cidr`, e.g. 16.
    pub prefix_len: u8,
}

/// What a container should be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// The host's FQDN; the name `list` reports the container under.
    pub name: String,
    /// Hostname set inside the container (usually the same FQDN).
    pub hostname: String,
    /// Image name from the config (`busybox`, `debian-12`); see [`ComputeDriver::images`].
    pub image: String,
    /// Cores, in millicores (`0.5` is half a core's time).
    pub cpu: Cpu,
    pub memory_mib: u64,
    pub disk_gib: u64,
    pub network: NetworkSpec,
    /// A driver id recorded for this host earlier (an OpenVZ CTID), reused when it is free on
    /// the machine; `None` lets drivers that number containers pick the lowest free id.
    #[serde(default)]
    pub driver_id: Option<String>,
    /// What first boot does inside the container (design §9); drivers that cannot boot a
    /// real system (busybox) ignore it.
    #[serde(default)]
    pub boot: BootSpec,
    /// Who the container is made for: the HostDB record's owner (design §8). Drivers mark
    /// each container they create with it and the record's name, and destroy only containers
    /// that carry kloud's mark.
    #[serde(default)]
    pub owner: String,
}

/// Who logs in to a container: a user made at first boot with these keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginSpec {
    pub user: String,
    /// Lines of its `authorized_keys`.
    pub ssh_keys: Vec<String>,
    /// Passwordless sudo.
    pub sudo: bool,
}

/// First boot: hostname = FQDN and `/etc/hosts`, the resolvers, the login user, sshd, then
/// `commands` in order as root, then one puppet agent run when `puppet_server` is set. Each step
/// runs at most once per container: a later create of the same container (adopting it) finishes
/// the steps that did not finish and never runs again one that did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootSpec {
    /// The host's class and puppet roles, given to commands as `KLOUD_CLASS` and `KLOUD_ROLES`.
    #[serde(default)]
    pub class: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub login: Option<LoginSpec>,
    /// Shell commands, run once each, in order, as root (`sh -c`).
    #[serde(default)]
    pub commands: Vec<String>,
    /// Resolvers written to `/etc/resolv.conf`; empty keeps the image's.
    #[serde(default)]
    pub dns: Vec<IpAddr>,
    /// `HOST[:PORT]` of a puppet server: ends first boot with `puppet agent --onetime`.
    #[serde(default)]
    pub puppet_server: Option<String>,
}

/// What first boot did, as the driver saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstBoot {
    /// Steps run by this call, in order.
    pub ran: Vec<String>,
    /// Steps an earlier call had finished, so not run again.
    pub skipped: Vec<String>,
    /// The step that failed, if one did; later steps did not run.
    pub failure: Option<BootFailure>,
}

impl FirstBoot {
    pub fn succeeded(&self) -> bool {
        self.failure.is_none()
    }
}

/// A first-boot step that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootFailure {
    /// `hostname`, `login`, `sshd`, `command 2`, `puppet`...
    pub step: String,
    /// Exit status, `None` when the step was killed or timed out.
    pub exit: Option<i32>,
    /// The last lines of its output.
    pub output: String,
}

impl fmt::Display for BootFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "first boot step `{}` failed ({})",
            self.step,
            self.exit
                .map_or_else(|| "no exit status".to_string(), |c| format!("exit {c}"))
        )?;
        if !self.output.trim().is_empty() {
            write!(f, ": {}", self.output.trim())?;
        }
        Ok(())
    }
}

/// Answer to calls that only succeed or fail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub diagnostics: Vec<Diagnostic>,
}

/// Answer to [`ComputeDriver::create`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateResponse {
    /// The driver's own id for the container (an OpenVZ CTID), to record in HostDB.
    pub driver_id: Option<String>,
    /// True when the container already existed and was adopted rather than created.
    pub adopted: bool,
    pub diagnostics: Vec<Diagnostic>,
    /// What first boot did; `None` when the image has no first boot (busybox).
    #[serde(default)]
    pub first_boot: Option<FirstBoot>,
}

/// Run state of a container as the machine reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    Running,
    Stopped,
    /// Any other state the tool reported (`FROZEN`, `mounted`...), verbatim.
    Other(String),
}

impl fmt::Display for ContainerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContainerState::Running => f.write_str("running"),
            ContainerState::Stopped => f.write_str("stopped"),
            ContainerState::Other(s) => f.write_str(s),
        }
    }
}

/// One container a machine really runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// The container's name: the host FQDN it was created for.
    pub name: String,
    pub state: ContainerState,
    /// First IPv4 address the container has (or is configured with, when stopped).
    pub ip: Option<String>,
    pub driver_id: Option<String>,
}

/// Answer to [`ComputeDriver::list`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListResponse {
    /// Sorted by name.
    pub containers: Vec<Observed>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Why a driver call failed. Every variant names the machine so a summary of many failures
/// reads on its own.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("unknown image `{image}` for driver `{driver}`; images this driver can build: {}", known.join(", "))]
    UnknownImage {
        driver: String,
        image: String,
        known: Vec<String>,
    },
    /// A command ran on the machine and failed. `stderr` holds the last lines only.
    #[error("on `{machine}`: `{command}` failed ({}): {stderr}", status.map_or_else(|| "killed by a signal".to_string(), |c| format!("exit status {c}")))]
    CommandFailed {
        machine: String,
        command: String,
        status: Option<i32>,
        stderr: String,
    },
    /// The machine could not be reached (ssh refused, host unknown, authentication failed).
    #[error("cannot reach machine `{machine}` at `{connect}`: {reason}")]
    Connection {
        machine: String,
        connect: String,
        reason: String,
    },
    #[error("container `{name}` not found on machine `{machine}`")]
    NotFound { machine: String, name: String },
    /// The request cannot be carried out as asked (a name the driver cannot use, a size of 0...).
    #[error("invalid request for `{name}` on `{machine}`: {reason}")]
    Invalid {
        machine: String,
        name: String,
        reason: String,
    },
    /// The container exists but was not made by kloud (it carries no kloud ownership mark):
    /// kloud neither adopts nor destroys it. Nothing was changed on the machine.
    #[error("container `{name}` on `{machine}` was not made by kloud (it carries no kloud mark: {mark}); kloud leaves it alone")]
    NotOurs {
        machine: String,
        name: String,
        /// Where the mark was looked for.
        mark: String,
    },
    /// A local I/O failure: a command could not be spawned, a file could not be written.
    #[error("on `{machine}`: {context}: {source}")]
    Io {
        machine: String,
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// A compute driver. Implementations are cheap to share across threads (apply runs many
/// calls at once, on one machine and on many).
pub trait ComputeDriver: Send + Sync {
    /// Short name of the driver as written in configs (`lxc`, `openvz`).
    fn kind(&self) -> &'static str;

    /// Creates and starts the container. An existing container of that name is adopted:
    /// started when stopped, `Ok` with `adopted = true`; its size is not changed.
    fn create(&self, m: &MachineRef, spec: &ContainerSpec) -> Result<CreateResponse, DriverError>;

    /// Whether [`ComputeDriver::resize`] applies to a running container without recreating it.
    /// When false, apply refuses an in-place resize (the host fails, naming
    /// `kloud apply --replace`) and leaves the container as it is: only an explicit replace
    /// remakes a container, as it loses the container's data.
    fn can_resize_live(&self) -> bool;

    /// Sets the container's cpu, memory and disk; the new values survive restarts.
    fn resize(
        &self,
        m: &MachineRef,
        name: &str,
        cpu: Cpu,
        memory_mib: u64,
        disk_gib: u64,
    ) -> Result<Response, DriverError>;

    /// Starts a stopped container; `Ok` when it already runs, `NotFound` when absent.
    fn start(&self, m: &MachineRef, name: &str) -> Result<Response, DriverError>;

    /// Stops a running container; `Ok` when it is already stopped, `NotFound` when absent.
    fn stop(&self, m: &MachineRef, name: &str) -> Result<Response, DriverError>;

    /// Stops and removes the container and its files; `Ok` when it does not exist.
    fn destroy(&self, m: &MachineRef, name: &str) -> Result<Response, DriverError>;

    /// Every container this machine runs (for this driver), sorted by name.
    fn list(&self, m: &MachineRef) -> Result<ListResponse, DriverError>;

    /// Image names this driver can build, sorted.
    fn images(&self) -> Vec<String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_parses_local_and_ssh_forms() {
        assert_eq!("local".parse::<Connect>().unwrap(), Connect::Local);
        assert_eq!(
            "ssh://admin@hw-r1-1.dc1:2222".parse::<Connect>().unwrap(),
            Connect::Ssh {
                user: "admin".into(),
                host: "hw-r1-1.dc1".into(),
                port: 2222,
                identity: None
            }
        );
        assert_eq!(
            "ssh://hw-1".parse::<Connect>().unwrap(),
            Connect::Ssh {
                user: "root".into(),
                host: "hw-1".into(),
                port: 22,
                identity: None
            }
        );
        assert_eq!(
            "ssh://root@[::1]:22?identity=/k/id"
                .parse::<Connect>()
                .unwrap(),
            Connect::Ssh {
                user: "root".into(),
                host: "::1".into(),
                port: 22,
                identity: Some(PathBuf::from("/k/id"))
            }
        );
    }

    #[test]
    fn connect_rejects_malformed_strings() {
        for bad in [
            "",
            "ssh",
            "http://x",
            "ssh://",
            "ssh://@h",
            "ssh://u@h:0",
            "ssh://u@h:99999",
            "ssh://u@h:x",
            "ssh://u@h/path",
            "ssh://u@[::1",
            "ssh://u@h?port=2",
        ] {
            assert!(bad.parse::<Connect>().is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn connect_display_round_trips() {
        for s in [
            "local",
            "ssh://root@h:22",
            "ssh://u@[::1]:2200?identity=/a/b",
        ] {
            let c: Connect = s.parse().unwrap();
            assert_eq!(c.to_string(), s);
            assert_eq!(c.to_string().parse::<Connect>().unwrap(), c);
        }
    }

    #[test]
    fn unknown_image_error_lists_known_images() {
        let e = DriverError::UnknownImage {
            driver: "lxc".into(),
            image: "debian-12".into(),
            known: vec!["alpine".into(), "busybox".into()],
        };
        let msg = e.to_string();
        assert!(
            msg.contains("`debian-12`") && msg.contains("alpine, busybox"),
            "{msg}"
        );
    }

    #[test]
    fn container_state_serialises_lowercase() {
        assert_eq!(
            serde_json::to_string(&ContainerState::Running).unwrap(),
            "\"running\""
        );
        assert_eq!(ContainerState::Other("FROZEN".into()).to_string(), "FROZEN");
    }
}
