//! The typed, validated configuration: what the rest of kloud sees instead of raw HCL.
//!
//! Declarations (`machine_class`, `machines`, `host_class`, …) are kept as written, and the
//! loader also expands them into the concrete [`Machine`]s and [`DesiredHost`]s they stand for,
//! with names rendered and sizes resolved, so the planner never renders a template itself.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::{Cpu, Overcommit};

/// A loaded config directory.
#[derive(Debug, Clone)]
pub struct Config {
    /// The config directory; relative paths in the config are relative to it.
    pub dir: PathBuf,
    pub settings: Settings,
    pub machine_classes: BTreeMap<String, MachineClass>,
    pub machine_groups: BTreeMap<String, MachineGroup>,
    pub networks: BTreeMap<String, Network>,
    pub tags: BTreeMap<String, Tag>,
    pub host_classes: BTreeMap<String, HostClass>,
    pub providers: BTreeMap<String, Provider>,
    /// `template` blocks: files rendered from HostDB (design §12).
    pub templates: BTreeMap<String, super::template::Template>,
    /// Every machine the config declares, sorted by name.
    pub machines: Vec<Machine>,
    /// Every host the config wants, sorted by class then index.
    pub hosts: Vec<DesiredHost>,
    /// The `auth {}` block, if any (people from LDAP, design §10).
    pub auth: Option<super::auth::AuthConfig>,
    /// `offer` blocks: what people may ask `kloud serve` for (design §10).
    pub offers: BTreeMap<String, super::offer::Offer>,
    /// A digest of the sources and variable values, recorded in plans to detect a changed config.
    pub digest: String,
    /// Logins, first-boot commands and resolvers (design §9; `config/login.rs`).
    pub login: super::login::Logins,
}

/// The `kloud {}` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// FQDN suffix of every host and machine.
    pub domain: String,
    /// HostDB URL as written (`sqlite:PATH`, `postgres://…`, `http(s)://…`).
    pub hostdb: String,
    /// Who owns the hosts this config manages in HostDB; defaults to the domain.
    pub owner: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineClass {
    pub name: String,
    pub cpu: Cpu,
    pub memory_mib: u64,
    pub disk_gib: u64,
    /// `overcommit = { cpu = N }`: the cpu placement may hand out is `cpu` × N.
    pub overcommit_cpu: Overcommit,
}

/// A `machines "NAME"` block: `count` machines of one class, in one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineGroup {
    pub name: String,
    pub class: String,
    pub count: u32,
    pub name_template: String,
    pub labels: BTreeMap<String, String>,
    pub driver: String,
    pub connect_template: String,
}

fn no_overcommit(o: &Overcommit) -> bool {
    o.is_none()
}

impl Machine {
    /// The cpu placement may hand out on this machine: its cpu times its overcommit factor.
    pub fn schedulable_cpu(&self) -> Cpu {
        self.overcommit_cpu.apply(self.cpu)
    }
}

/// One physical machine, expanded from a [`MachineGroup`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// FQDN.
    pub name: String,
    pub group: String,
    pub class: String,
    pub cpu: Cpu,
    pub memory_mib: u64,
    pub disk_gib: u64,
    /// Its class's cpu overcommit factor (1 unless the class sets one).
    #[serde(default, skip_serializing_if = "no_overcommit")]
    pub overcommit_cpu: Overcommit,
    pub labels: BTreeMap<String, String>,
    pub driver: String,
    /// `local` or `ssh://user@host[:port]`.
    pub connect: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub name: String,
    pub cidr: IpNet,
    pub gateway: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tag {
    pub name: String,
    pub properties: serde_json::Map<String, serde_json::Value>,
}

/// Placement strategy of a host class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    #[default]
    Pack,
    Spread,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// `machine` or a machine label → at most this many hosts of the class per distinct value.
    pub max_per: BTreeMap<String, u32>,
    pub strategy: Strategy,
    pub solver: Solver,
}

/// How a plan places new hosts: `placement { solver = "exact" }` in any class makes the whole
/// placement exact (one problem: every class shares the machines).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Solver {
    #[default]
    Heuristic,
    Exact,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HostClass {
    pub name: String,
    pub count: u32,
    pub cpu: Cpu,
    pub memory_mib: u64,
    pub disk_gib: u64,
    pub image: String,
    pub network: String,
    pub name_template: String,
    pub tags: Vec<String>,
    pub properties: serde_json::Map<String, serde_json::Value>,
    pub puppet_roles: Vec<String>,
    /// The compute driver its machines must run.
    pub driver: String,
    pub placement: Placement,
}

/// A host the config wants to exist.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredHost {
    /// FQDN: the host's identity.
    pub name: String,
    pub class: String,
    /// 1-based position within its class.
    pub index: u32,
    pub cpu: Cpu,
    pub memory_mib: u64,
    pub disk_gib: u64,
    pub image: String,
    pub network: String,
    /// Sorted, unique.
    pub tags: Vec<String>,
    /// The class's own properties, one map shared by every host of the class.
    pub properties: Arc<serde_json::Map<String, serde_json::Value>>,
    pub puppet_roles: Vec<String>,
    pub driver: String,
}

/// A `provider "KIND"` block, checked against the provider's own attribute list.
#[derive(Debug, Clone, PartialEq)]
pub struct Provider {
    pub kind: String,
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// Attributes whose value came from `env()`: never printed, never saved in a plan.
    pub sensitive: Vec<String>,
    /// Attributes written `env("VAR")` whose variable is not set: (attribute, variable).
    /// `validate` and `plan` do not need them; `apply` and `sync` refuse to run the provider.
    pub unset: Vec<(String, String)>,
}

impl Provider {
    /// The attributes with every sensitive value replaced by `"(sensitive)"`.
    pub fn redacted(&self) -> BTreeMap<String, serde_json::Value> {
        self.attributes
            .iter()
            .map(|(k, v)| {
                if self.sensitive.contains(k) {
                    (k.clone(), serde_json::Value::String("(sensitive)".into()))
                } else {
                    (k.clone(), v.clone())
                }
            })
            .collect()
    }
}
