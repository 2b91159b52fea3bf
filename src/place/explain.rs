//! Why a host could not be placed: every machine is run through the feasibility stages in the
//! final state, the first rejecting stage is counted per machine (the plan's `reasons`), and a
//! sentence names the constraint that binds, from the strongest proof there is:
//!
//! 1. no machine of the driver, or none big enough;
//! 2. a rule bound: ⌈hosts of the class / max_per⌉ is more than the distinct label values;
//! 3. eligible capacity: the fleet has fewer slots for the group than it has hosts
//!    ([`super::bounds::slots`]), bound by a rack or switch rule or by the machines' room;
//! 4. capacity per dimension: all new hosts of the driver need more than its machines have free;
//! 5. none of these: a placement may exist, the search did not find one within its budget.

use super::bounds::{rules_allow, DriverDemand, Slots};
use super::fleet::{Fleet, DIM_NAMES, MACHINE_KEY};
use super::stages::{feasible, Group, Reason};
use crate::Cpu;
use std::collections::{BTreeMap, BTreeSet};

/// What the bounds say about a group, measured before any new host was placed.
pub(crate) struct Proof<'a> {
    pub slots: &'a Slots,
    /// New hosts of the group.
    pub wanted: u32,
    pub demand: &'a DriverDemand,
}

/// Rejection counts per reason key, and the sentence.
pub(crate) fn explain(
    fleet: &Fleet,
    group: &Group,
    class_hosts: u32,
    proof: &Proof,
) -> (BTreeMap<String, u32>, String) {
    let mut counts: BTreeMap<Reason, u32> = BTreeMap::new();
    for m in 0..fleet.statics.machines.len() as u32 {
        if let Err(r) = feasible(fleet, group, m) {
            *counts.entry(r).or_default() += 1;
        }
    }
    let reasons = counts.iter().map(|(r, &n)| (r.key(fleet), n)).collect();
    (reasons, sentence(fleet, group, class_hosts, &counts, proof))
}

fn sentence(
    fleet: &Fleet,
    group: &Group,
    class_hosts: u32,
    counts: &BTreeMap<Reason, u32>,
    proof: &Proof,
) -> String {
    let statics = fleet.statics;
    let driver = &statics.drivers[group.driver as usize];
    if statics.machines.is_empty() {
        return "there are no machines to place on; add machines".to_string();
    }
    let with_driver: Vec<u32> = (0..statics.machines.len() as u32)
        .filter(|&m| statics.machines[m as usize].driver == group.driver)
        .collect();
    if with_driver.is_empty() {
        return format!(
            "no machine runs driver `{driver}`; add machines with driver `{driver}` or change the class's driver"
        );
    }
    let class = &fleet.classes[group.class as usize];
    for d in 0..3 {
        let largest = with_driver
            .iter()
            .map(|&m| statics.machines[m as usize].cap[d])
            .max()
            .unwrap_or(0);
        if largest < group.size[d] {
            return format!(
                "no machine is big enough: a {} host needs {} and the largest machine has {}; add bigger machines or shrink the class",
                class.name,
                amount(d, group.size[d]),
                amount(d, largest)
            );
        }
    }
    if let Some(s) = rule_bound(fleet, group, class_hosts, &with_driver) {
        return s;
    }
    // Machines of another driver say nothing about what to change for this host.
    let dominant = counts
        .iter()
        .filter(|(r, _)| **r != Reason::Driver)
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(r, _)| *r);
    if let Some(Reason::MissingLabel(k)) = dominant {
        let key = &statics.keys[k as usize];
        return format!(
            "{} machines have no `{key}` label, which max_per {key} counts by; label them",
            counts.get(&Reason::MissingLabel(k)).copied().unwrap_or(0)
        );
    }
    if proof.slots.total < proof.wanted {
        return match proof.slots.rule {
            Some((k, _)) => label_room(fleet, group, k, counts, &with_driver),
            None => machine_room(fleet, group, proof, &with_driver),
        };
    }
    if let Some(d) = proof.demand.short() {
        let (need, free, largest) = (
            proof.demand.need[d],
            proof.demand.free[d],
            proof.demand.largest[d],
        );
        let more = (need - free).div_ceil(largest.max(1));
        return format!(
            "needs {more} more {}: the new `{driver}` hosts need {} in total and the `{driver}` machines have {} free; add machines",
            if more == 1 { "machine" } else { "machines" },
            amount(d, need),
            amount(d, free)
        );
    }
    let found: Vec<String> = counts
        .iter()
        .filter(|(r, _)| **r != Reason::Driver)
        .map(|(r, n)| format!("{n} {}", r.key(fleet)))
        .collect();
    format!(
        "no complete placement found within the search budget; the bound does not rule one out (machines now rejected for {}); add machines or relax the rules",
        if found.is_empty() { "other reasons".to_string() } else { found.join(", ") }
    )
}

/// "needs a 5th switch": a rule whose ⌈hosts / max_per⌉ exceeds the label values there are.
fn rule_bound(
    fleet: &Fleet,
    group: &Group,
    class_hosts: u32,
    with_driver: &[u32],
) -> Option<String> {
    let statics = fleet.statics;
    let class = &fleet.classes[group.class as usize];
    for rule in &class.rules {
        let key = &statics.keys[rule.key as usize];
        let limit = rule.limit;
        if limit == 0 {
            return Some(format!(
                "max_per {key} = 0 allows no {} host anywhere; raise it",
                class.name
            ));
        }
        let values: BTreeSet<u32> = with_driver
            .iter()
            .filter_map(|&m| statics.value(m, rule.key))
            .collect();
        let have = values.len() as u32;
        let needed = class_hosts.div_ceil(limit);
        if needed <= have {
            continue;
        }
        let plural_key = plural(key);
        let head = if needed == have + 1 {
            format!("needs a {} {key}", ordinal(needed))
        } else {
            format!("needs {needed} {plural_key}")
        };
        let what = if key == MACHINE_KEY {
            "add machines".to_string()
        } else {
            format!("add machines behind another {key}")
        };
        return Some(format!(
            "{head}: {have} {} and max_per {key} = {limit} for {class_hosts} {} hosts; {what} or raise max_per {key}",
            if have == 1 { key.clone() } else { plural_key },
            class.name
        ));
    }
    None
}

/// The room behind the values of rule key `k` is what binds: say which values are full and why
/// the others cannot take the host.
fn label_room(
    fleet: &Fleet,
    group: &Group,
    k: u32,
    counts: &BTreeMap<Reason, u32>,
    with_driver: &[u32],
) -> String {
    let statics = fleet.statics;
    let class = &fleet.classes[group.class as usize];
    let key = &statics.keys[k as usize];
    let Some(rule) = class.rules.iter().find(|r| r.key == k) else {
        return format!("max_per {key} rejected every machine");
    };
    let limit = rule.limit;
    let values: BTreeSet<u32> = with_driver
        .iter()
        .filter_map(|&m| statics.value(m, k))
        .collect();
    let have = values.len();
    let with_room = values
        .iter()
        .filter(|&&v| rule.counts[v as usize] < limit)
        .count();
    let others: Vec<String> = counts
        .iter()
        .filter(|(r, _)| !matches!(r, Reason::Driver | Reason::MaxPer(_)))
        .chain(
            counts
                .iter()
                .filter(|(r, _)| matches!(r, Reason::MaxPer(x) if *x != k)),
        )
        .map(|(r, n)| format!("{n} {}", r.key(fleet)))
        .collect();
    let plural_key = plural(key);
    format!(
        "{} of {have} {} already {} max_per {key} = {limit} {} hosts; the machines of the other {with_room} are rejected for {}; add machines there or raise max_per {key}",
        have - with_room,
        if have == 1 { key.clone() } else { plural_key },
        if have - with_room == 1 { "holds" } else { "hold" },
        class.name,
        if others.is_empty() { "other rules".to_string() } else { others.join(", ") }
    )
}

/// The machines' own room binds (capacity, `max_per machine`): how many more machines it takes.
fn machine_room(fleet: &Fleet, group: &Group, proof: &Proof, with_driver: &[u32]) -> String {
    let statics = fleet.statics;
    let class = &fleet.classes[group.class as usize];
    let slots = proof.slots;
    let missing = proof.wanted - slots.total;
    // What one more machine like the largest one could take.
    let per_machine_limit = class
        .rules
        .iter()
        .find(|r| statics.keys[r.key as usize] == MACHINE_KEY)
        .map(|r| r.limit);
    let largest = with_driver
        .iter()
        .map(|&m| statics.machines[m as usize].cap)
        .max_by_key(|c| super::score::weight(statics.reference, *c))
        .unwrap_or([0; 3]);
    let fits = (0..3)
        .filter(|&d| group.size[d] > 0)
        .map(|d| (largest[d] / group.size[d]).min(u64::from(u32::MAX)) as u32)
        .min()
        .unwrap_or(u32::MAX);
    let per_new = per_machine_limit.unwrap_or(u32::MAX).min(fits).max(1);
    let more = missing.div_ceil(per_new);
    let machines = if more == 1 { "machine" } else { "machines" };
    // The dimension most machines the rules allow are short of.
    let short = (0..3)
        .filter(|&d| group.size[d] > 0)
        .max_by_key(|&d| (slots.short[d], std::cmp::Reverse(d)));
    let rule_limited = per_machine_limit
        .is_some_and(|l| u64::from(slots.machines) >= u64::from(l) * u64::from(slots.with_room));
    if slots.total == 0 && !rule_limited {
        if let Some(d) = short {
            // Largest free among the machines whose rules would allow the host, so that the
            // sentence never names a machine the rules rule out.
            let largest_free = with_driver
                .iter()
                .filter(|&&m| rules_allow(fleet, group, m))
                .map(|&m| fleet.free(m)[d])
                .max()
                .unwrap_or(0);
            return format!(
                "no machine has {} free: largest free is {}; add machines or shrink the class",
                amount(d, group.size[d]),
                amount(d, largest_free)
            );
        }
    }
    match (rule_limited, short) {
        (true, _) | (false, None) => format!(
            "needs {more} more {machines}: max_per machine = {} lets the {} machines with room take {} of the {} new {} hosts; add machines or raise max_per machine",
            per_machine_limit.unwrap_or(0),
            slots.with_room,
            slots.total,
            proof.wanted,
            class.name
        ),
        (false, Some(d)) => format!(
            "needs {more} more {machines} with ≥ {} free: the machines can take {} of the {} new {} hosts; add machines or shrink the class",
            amount(d, group.size[d]),
            slots.total,
            proof.wanted,
            class.name
        ),
    }
}

/// A quantity in the dimension's unit, the way the configuration writes it (cpu comes in
/// millicores and is written in cores: `0.5 cpus`).
pub(crate) fn amount(d: usize, n: u64) -> String {
    match DIM_NAMES[d] {
        "cpu" if n == 1000 => "1 cpu".to_string(),
        "cpu" => match u32::try_from(n) {
            Ok(m) => format!("{} cpus", Cpu::from_millis(m)),
            Err(_) => format!("{n} millicores"),
        },
        "memory" if n.is_multiple_of(1024) => format!("{} GiB of memory", n / 1024),
        "memory" => format!("{n} MiB of memory"),
        _ => format!("{n} GiB of disk"),
    }
}

fn plural(word: &str) -> String {
    if ["s", "sh", "ch", "x", "z"]
        .iter()
        .any(|e| word.ends_with(e))
    {
        format!("{word}es")
    } else {
        format!("{word}s")
    }
}

fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        assert_eq!(ordinal(4), "4th");
        assert_eq!(ordinal(22), "22nd");
        assert_eq!(ordinal(13), "13th");
        assert_eq!(plural("switch"), "switches");
        assert_eq!(plural("rack"), "racks");
        assert_eq!(amount(1, 65536), "64 GiB of memory");
        assert_eq!(amount(1, 1500), "1500 MiB of memory");
        assert_eq!(amount(0, 1000), "1 cpu");
        assert_eq!(amount(0, 500), "0.5 cpus");
        assert_eq!(amount(0, 16000), "16 cpus");
    }
}
