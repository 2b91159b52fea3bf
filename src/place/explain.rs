//! Why a host could not be placed: every machine is run through the feasibility stages, the first
//! rejecting stage is counted per machine, and the dominant reason becomes a sentence that tells
//! the operator what to buy or relax.

use super::fleet::{Fleet, DIM_NAMES, MACHINE_KEY};
use super::stages::{feasible, Group, Reason};
use std::collections::{BTreeMap, BTreeSet};

/// Rejection counts per reason key, and the sentence.
pub(crate) fn explain(
    fleet: &Fleet,
    group: &Group,
    class_hosts: u32,
) -> (BTreeMap<String, u32>, String) {
    let mut counts: BTreeMap<Reason, u32> = BTreeMap::new();
    for m in 0..fleet.statics.machines.len() as u32 {
        if let Err(r) = feasible(fleet, group, m) {
            *counts.entry(r).or_default() += 1;
        }
    }
    let reasons = counts.iter().map(|(r, &n)| (r.key(fleet), n)).collect();
    (reasons, sentence(fleet, group, class_hosts, &counts))
}

fn sentence(
    fleet: &Fleet,
    group: &Group,
    class_hosts: u32,
    counts: &BTreeMap<Reason, u32>,
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
    // Machines of another driver say nothing about what to change for this host.
    let dominant = counts
        .iter()
        .filter(|(r, _)| **r != Reason::Driver)
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(r, _)| *r);
    let class = &fleet.classes[group.class as usize];
    match dominant {
        None => "every machine was rejected".to_string(),
        Some(Reason::Capacity(d)) => {
            let need = group.size[d];
            let largest_free = with_driver
                .iter()
                .map(|&m| fleet.free(m)[d])
                .max()
                .unwrap_or(0);
            let largest = with_driver
                .iter()
                .map(|&m| statics.machines[m as usize].cap[d])
                .max()
                .unwrap_or(0);
            if largest < need {
                format!(
                    "no machine is big enough: a {} host needs {} and the largest machine has {}; add bigger machines or shrink the class",
                    class.name,
                    amount(d, need),
                    amount(d, largest)
                )
            } else {
                format!(
                    "no machine has {} free: largest free is {}; add machines or shrink the class",
                    amount(d, need),
                    amount(d, largest_free)
                )
            }
        }
        Some(Reason::MaxPer(k)) => {
            let key = &statics.keys[k as usize];
            let Some(rule) = class.rules.iter().find(|r| r.key == k) else {
                return format!("max_per {key} rejected every machine");
            };
            let limit = rule.limit;
            if limit == 0 {
                return format!(
                    "max_per {key} = 0 allows no {} host anywhere; raise it",
                    class.name
                );
            }
            let values: BTreeSet<u32> = with_driver
                .iter()
                .filter_map(|&m| statics.machines[m as usize].values[k as usize])
                .collect();
            let have = values.len() as u32;
            let needed = class_hosts.div_ceil(limit);
            let plural_key = plural(key);
            if needed > have {
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
                format!(
                    "{head}: {have} {} and max_per {key} = {limit} for {class_hosts} {} hosts; {what} or raise max_per {key}",
                    if have == 1 { key.clone() } else { plural_key },
                    class.name
                )
            } else {
                let with_room = values
                    .iter()
                    .filter(|&&v| rule.counts[v as usize] < limit)
                    .count();
                let others: Vec<String> = counts
                    .iter()
                    .filter(|(r, _)| !matches!(r, Reason::Driver | Reason::MaxPer(_)))
                    .map(|(r, n)| format!("{n} {}", r.key(fleet)))
                    .collect();
                format!(
                    "{} of {have} {} already {} max_per {key} = {limit} {} hosts; the machines of the other {with_room} are rejected for {}; add machines there or raise max_per {key}",
                    have as usize - with_room,
                    if have == 1 { key.clone() } else { plural_key },
                    if have as usize - with_room == 1 { "holds" } else { "hold" },
                    class.name,
                    if others.is_empty() { "other rules".to_string() } else { others.join(", ") }
                )
            }
        }
        Some(Reason::MissingLabel(k)) => {
            let key = &statics.keys[k as usize];
            format!(
                "{} machines have no `{key}` label, which max_per {key} counts by; label them",
                counts.get(&Reason::MissingLabel(k)).copied().unwrap_or(0)
            )
        }
        Some(Reason::Driver) => unreachable_driver(driver),
    }
}

// Driver rejections are filtered out above; kept total so a future stage order cannot panic.
fn unreachable_driver(driver: &str) -> String {
    format!("no machine with driver `{driver}` can take it")
}

/// A quantity in the dimension's unit, the way the configuration writes it.
pub(crate) fn amount(d: usize, n: u64) -> String {
    match DIM_NAMES[d] {
        "cpu" if n == 1 => "1 cpu".to_string(),
        "cpu" => format!("{n} cpus"),
        "memory" if n % 1024 == 0 => format!("{} GiB of memory", n / 1024),
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
        assert_eq!(amount(0, 1), "1 cpu");
    }
}
