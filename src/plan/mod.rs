//! The plan: what apply will do, as plain data (design §3, the JSON contract).
//!
//! [`diff`] computes a [`Plan`] from a config and a HostDB snapshot; [`render`] shows it to
//! people (terminal, markdown); its JSON form is the contract other programs read. The
//! `reason` of a change explains the plan to people; apply never branches on it.

pub mod check;
pub mod diff;
pub mod reason;
pub mod render;

use crate::{Cpu, Overcommit};
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use diff::{diff, DiffError, Options};

/// The JSON format version of plans this kloud writes and reads.
pub const FORMAT_VERSION: &str = "1.0";

/// What happens to one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Create,
    Update,
    Replace,
    Delete,
    NoOp,
}

impl Action {
    /// Terraform's symbol for the action.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
            Action::NoOp => " ",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
            Action::NoOp => "no-op",
        }
    }
}

/// A host as the plan shows it before or after a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostState {
    pub name: String,
    pub class: String,
    pub cpu: Cpu,
    pub memory_mib: u64,
    pub disk_gib: u64,
    pub image: String,
    pub tags: Vec<String>,
    /// Shared with the config's class, and between a recorded state and the desired one when
    /// they are equal (at 100,000 hosts, copies of these maps were a quarter of a plan's memory).
    pub properties: Arc<serde_json::Map<String, serde_json::Value>>,
    pub puppet_roles: Vec<String>,
    pub machine: Option<String>,
    pub labels: Arc<BTreeMap<String, String>>,
    pub ip: Option<String>,
    /// The network the address comes from (an extension of the contract).
    #[serde(default)]
    pub network: String,
}

/// One host's change. `before` and `after` are shared: a no-op's are one value (a plan of a
/// large fleet is mostly no-ops, and each state holds the host's property map).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub address: String,
    pub class: String,
    pub action: Action,
    pub reason: String,
    pub before: Option<Arc<HostState>>,
    pub after: Option<Arc<HostState>>,
}

/// A physical machine as recorded in HostDB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineState {
    pub name: String,
    pub cpu: Cpu,
    pub memory_mib: u64,
    pub disk_gib: u64,
    /// The cpu overcommit factor (`overcommit = { cpu = N }`); absent when 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_overcommit: Option<Overcommit>,
    pub labels: BTreeMap<String, String>,
    pub driver: String,
    pub connect: String,
}

/// One machine record's change (machines are synced from the config into HostDB).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineChange {
    pub address: String,
    pub action: Action,
    pub reason: String,
    pub before: Option<MachineState>,
    pub after: Option<MachineState>,
}

/// A host that could not be placed, with the machines rejected per reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unplaced {
    pub address: String,
    pub class: String,
    pub reasons: BTreeMap<String, u32>,
    #[serde(default)]
    pub explanation: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
    pub no_op: usize,
    pub unplaced: usize,
}

impl Summary {
    /// Whether applying would change anything (machines included).
    pub fn has_changes(&self) -> bool {
        self.create + self.update + self.replace + self.delete > 0
    }
}

/// Which HostDB the plan was made against, and at which index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostDbRef {
    pub url: String,
    pub index: u64,
}

/// The config the plan was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRef {
    pub dir: String,
    pub digest: String,
    pub owner: String,
    pub domain: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: String,
    pub kloud_version: String,
    pub hostdb: HostDbRef,
    pub summary: Summary,
    pub changes: Vec<Change>,
    pub unplaced: Vec<Unplaced>,
    /// Machine record changes (an extension of the contract; absent means none).
    #[serde(default)]
    pub machines: Vec<MachineChange>,
    #[serde(default)]
    pub config: Option<ConfigRef>,
    /// Made with `--destroy`.
    #[serde(default)]
    pub destroy: bool,
    /// Made with `--target CLASS`: only these classes were considered.
    #[serde(default)]
    pub targets: Vec<String>,
    /// How the plan was made, when there is something to say (exact placement and whether it
    /// fell back to the heuristic). An extension of the contract; absent means nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Plan {
    /// Whether applying would change anything, machine records included.
    pub fn has_changes(&self) -> bool {
        self.summary.has_changes() || self.machines.iter().any(|m| m.action != Action::NoOp)
    }

    /// Recount the summary from the changes.
    pub fn summarize(&mut self) {
        let mut s = Summary {
            unplaced: self.unplaced.len(),
            ..Summary::default()
        };
        for c in &self.changes {
            match c.action {
                Action::Create => s.create += 1,
                Action::Update => s.update += 1,
                Action::Replace => s.replace += 1,
                Action::Delete => s.delete += 1,
                Action::NoOp => s.no_op += 1,
            }
        }
        self.summary = s;
    }
}
