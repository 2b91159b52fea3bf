//! How much room the fleet has for a group of hosts under its rules, before any new host is
//! placed: the measure of how constrained a group is (placed first when it is tight) and the
//! bounds that prove a host cannot be placed at all.
//!
//! The room of one machine for a group is how many of its hosts fit in what the machine has free
//! (per dimension) and what `max_per machine` still allows. For every other rule, the room behind
//! one label value is capped at what the rule still allows there. The group's room (its *slots*)
//! is the smallest of these sums: no placement of the new hosts can put more of the group on the
//! fleet, since other new hosts only take room away. Three bounds follow:
//!
//! - per rule: ⌈hosts of the class / max_per⌉ against the distinct label values ([`Slots::rule`]);
//! - eligible capacity per group: fewer slots than hosts ([`Slots::total`]);
//! - per dimension: all new hosts of a driver need more than its machines have free
//!   ([`DriverDemand`]).

use super::fleet::{Fleet, Vec3};
use super::stages::Group;

/// The room of one group on the fleet, and what binds it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Slots {
    /// Hosts of the group the fleet can take at most (capped at the hosts asked for).
    pub total: u32,
    /// Σ over machines of their room: capacity and `max_per machine`.
    pub machines: u32,
    /// Per non-machine rule key id: the room once capped per label value, when that is lower
    /// than `machines` (the rule binds).
    pub rule: Option<(u32, u32)>,
    /// Machines of the group's driver with room for at least one host.
    pub with_room: u32,
    /// Of the machines of the right driver and rules, those short of room in each dimension.
    pub short: [u32; 3],
}

/// How many hosts of `group` fit on machine `m` in its current state (at most `cap`).
pub(crate) fn room(fleet: &Fleet, group: &Group, m: u32, cap: u32) -> u32 {
    let info = &fleet.statics.machines[m as usize];
    if info.driver != group.driver {
        return 0;
    }
    let mut n = cap;
    let free = fleet.free(m);
    for (f, s) in free.iter().zip(group.size) {
        if let Some(fits) = f.checked_div(s) {
            n = n.min(fits.min(u64::from(u32::MAX)) as u32);
        }
    }
    for rule in &fleet.classes[group.class as usize].rules {
        match fleet.statics.value(m, rule.key) {
            Some(v) => n = n.min(rule.limit.saturating_sub(rule.counts[v as usize])),
            None => return 0,
        }
    }
    n
}

/// The slots of `group` for `want` hosts on `fleet` as it is.
pub(crate) fn slots(fleet: &Fleet, group: &Group, want: u32) -> Slots {
    let statics = fleet.statics;
    let class = &fleet.classes[group.class as usize];
    let mut out = Slots::default();
    // Per rule (not machine): room summed per label value.
    let mut per_value: Vec<Vec<u64>> = class
        .rules
        .iter()
        .map(|r| vec![0; r.counts.len()])
        .collect();
    let mut machines = 0u64;
    for m in 0..statics.machines.len() as u32 {
        let r = room(fleet, group, m, want);
        if r == 0 {
            if statics.machines[m as usize].driver == group.driver && rules_allow(fleet, group, m) {
                let free = fleet.free(m);
                for ((short, s), f) in out.short.iter_mut().zip(group.size).zip(free) {
                    *short += u32::from(s > f);
                }
            }
            continue;
        }
        out.with_room += 1;
        machines += u64::from(r);
        for (k, rule) in class.rules.iter().enumerate() {
            if let Some(v) = statics.value(m, rule.key) {
                per_value[k][v as usize] += u64::from(r);
            }
        }
    }
    let cap = |n: u64| n.min(u64::from(want)) as u32;
    out.machines = cap(machines);
    out.total = out.machines;
    for (k, rule) in class.rules.iter().enumerate() {
        let capped: u64 = per_value[k]
            .iter()
            .zip(&rule.counts)
            .map(|(&n, &c)| n.min(u64::from(rule.limit.saturating_sub(c))))
            .sum();
        let capped = cap(capped);
        if capped < out.total {
            out.total = capped;
            out.rule = Some((rule.key, capped));
        }
    }
    out
}

/// Whether the rules of the group's class (not capacity) still allow one more host on `m`.
pub(crate) fn rules_allow(fleet: &Fleet, group: &Group, m: u32) -> bool {
    fleet.classes[group.class as usize]
        .rules
        .iter()
        .all(|rule| {
            fleet
                .statics
                .value(m, rule.key)
                .is_some_and(|v| rule.counts[v as usize] < rule.limit)
        })
}

/// What all the new hosts of one driver need, against what its machines have free.
#[derive(Clone, Debug, Default)]
pub(crate) struct DriverDemand {
    pub need: Vec3,
    pub free: Vec3,
    /// Largest capacity per dimension among the driver's machines.
    pub largest: Vec3,
}

impl DriverDemand {
    /// The first dimension in which demand exceeds what is free, if any.
    pub fn short(&self) -> Option<usize> {
        (0..3).find(|&d| self.need[d] > self.free[d])
    }
}

/// Demand per driver id of the new hosts given as (driver, size) against the free room of
/// `fleet`.
pub(crate) fn demand<'a>(
    fleet: &Fleet,
    hosts: impl Iterator<Item = &'a Group>,
) -> Vec<DriverDemand> {
    let statics = fleet.statics;
    let mut out = vec![DriverDemand::default(); statics.drivers.len()];
    for m in 0..statics.machines.len() as u32 {
        let info = &statics.machines[m as usize];
        let free = fleet.free(m);
        let e = &mut out[info.driver as usize];
        for (d, f) in free.into_iter().enumerate() {
            e.free[d] = e.free[d].saturating_add(f);
            e.largest[d] = e.largest[d].max(info.cap[d]);
        }
    }
    for g in hosts {
        let e = &mut out[g.driver as usize];
        for d in 0..3 {
            e.need[d] = e.need[d].saturating_add(g.size[d]);
        }
    }
    out
}
