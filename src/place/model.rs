//! The placement problem and its answer as plain data: what the plan hands to [`super::place`]
//! and what it gets back. No behaviour lives here.

use crate::Cpu;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A resource vector: what a machine offers or what a host needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Resources {
    pub cpu: Cpu,
    pub memory_mib: u64,
    pub disk_gib: u64,
}

impl Resources {
    pub fn new(cpu: Cpu, memory_mib: u64, disk_gib: u64) -> Self {
        Resources {
            cpu,
            memory_mib,
            disk_gib,
        }
    }

    /// The vector in the dimension order used everywhere inside the engine (cpu in millicores,
    /// memory, disk).
    pub fn vector(&self) -> [u64; 3] {
        [u64::from(self.cpu.millis()), self.memory_mib, self.disk_gib]
    }
}

/// A physical machine that can run containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    pub name: String,
    pub capacity: Resources,
    /// Topology keys such as `rack` and `switch`; `max_per` rules count per distinct value.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The container provider running on the machine (`lxc`, `openvz`).
    pub driver: String,
}

/// How a class chooses among feasible machines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Fewest machines: best fit over the resource vector.
    #[default]
    Pack,
    /// Least loaded machine first.
    Spread,
}

/// The placement rules of one host class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    /// At most `k` hosts of the class per machine (`machine`) or per distinct label value.
    #[serde(default)]
    pub max_per: BTreeMap<String, u32>,
    #[serde(default)]
    pub strategy: Strategy,
}

/// A host that is already placed. It consumes capacity, counts against rules and is never moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Existing {
    pub name: String,
    pub class: String,
    pub machine: String,
    pub size: Resources,
}

/// A host to be created: it needs a machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub name: String,
    pub class: String,
    pub size: Resources,
    pub driver: String,
}

/// Everything placement needs to know.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub machines: Vec<Machine>,
    #[serde(default)]
    pub existing: Vec<Existing>,
    /// Rules per class name; a class without an entry packs with no `max_per` limits.
    #[serde(default)]
    pub rules: BTreeMap<String, Rules>,
    pub requests: Vec<Request>,
}

/// A new host that could not be placed, with the reasons machines were rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unplaced {
    pub name: String,
    pub class: String,
    /// Machines rejected per reason (`capacity:memory`, `driver`, `max_per:switch`, ...); each
    /// machine is counted once, under the first stage that rejected it.
    pub reasons: BTreeMap<String, u32>,
    /// A sentence an operator can act on.
    pub explanation: String,
}

/// The answer: a machine for every new host that could be placed, an explanation for the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// Host name → machine name.
    pub assigned: BTreeMap<String, String>,
    /// Sorted by host name.
    pub unplaced: Vec<Unplaced>,
}
