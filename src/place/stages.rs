//! The feasibility stages, one per rule, each a small function that accepts a machine for a host
//! or names why not. [`feasible`] runs them in order; the first stage that rejects a machine is
//! the one whose reason is counted, as in Nomad's feasibility checkers.
//!
//! Every rejection is permanent for the rest of a constructive pass: capacity only shrinks and
//! `max_per` counts only grow while hosts are being added. The candidate indexes rely on that to
//! drop a machine for a group of identical hosts after its first rejection.

use super::fleet::{Fleet, Vec3, DIM_NAMES};

/// Identical new hosts: same class, driver and size. They are interchangeable to every stage.
#[derive(Clone, Debug)]
pub(crate) struct Group {
    pub class: u32,
    pub driver: u32,
    pub size: Vec3,
}

/// Why a stage rejected a machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Reason {
    Driver,
    /// Not enough free in dimension `0` (cpu), `1` (memory) or `2` (disk).
    Capacity(usize),
    /// The class already has `limit` hosts on this value of label key id `0`.
    MaxPer(u32),
    /// The machine lacks the label a `max_per` rule counts by.
    MissingLabel(u32),
}

impl Reason {
    /// The key reported to operators and in the plan JSON.
    pub fn key(&self, fleet: &Fleet) -> String {
        match self {
            Reason::Driver => "driver".to_string(),
            Reason::Capacity(d) => format!("capacity:{}", DIM_NAMES[*d]),
            Reason::MaxPer(k) => format!("max_per:{}", fleet.statics.keys[*k as usize]),
            Reason::MissingLabel(k) => format!("missing_label:{}", fleet.statics.keys[*k as usize]),
        }
    }
}

/// The machine must run the container provider the host is built for.
pub(crate) fn driver(fleet: &Fleet, group: &Group, m: u32) -> Result<(), Reason> {
    if fleet.statics.machines[m as usize].driver == group.driver {
        Ok(())
    } else {
        Err(Reason::Driver)
    }
}

/// cpu, memory and disk are never over-committed.
pub(crate) fn capacity(fleet: &Fleet, group: &Group, m: u32) -> Result<(), Reason> {
    let free = fleet.free(m);
    match (0..3).find(|&d| group.size[d] > free[d]) {
        Some(d) => Err(Reason::Capacity(d)),
        None => Ok(()),
    }
}

/// At most `k` hosts of the class per machine or per distinct value of a label key.
pub(crate) fn max_per(fleet: &Fleet, group: &Group, m: u32) -> Result<(), Reason> {
    let info = &fleet.statics.machines[m as usize];
    for rule in &fleet.classes[group.class as usize].rules {
        match info.values[rule.key as usize] {
            Some(v) if rule.counts[v as usize] < rule.limit => {}
            Some(_) => return Err(Reason::MaxPer(rule.key)),
            None => return Err(Reason::MissingLabel(rule.key)),
        }
    }
    Ok(())
}

/// The feasibility pipeline. The order is the order reasons are attributed in: a machine with
/// the wrong driver is counted under `driver` even if it is also full.
pub(crate) fn feasible(fleet: &Fleet, group: &Group, m: u32) -> Result<(), Reason> {
    driver(fleet, group, m)?;
    capacity(fleet, group, m)?;
    max_per(fleet, group, m)?;
    Ok(())
}
