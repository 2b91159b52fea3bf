//! Invariant checker for any placement, independent of how it was made (after omicron's
//! `blippy`): tests run it on every placement they produce.
//!
//! A violation is reported only where a new host is involved (adds to an over-committed resource,
//! or is counted in a `max_per` group over its limit): an existing fleet that already breaks a
//! rule is not the placement's doing, and placement never moves existing hosts.

use super::model::{Placement, Problem};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Violation {
    #[error("host `{host}` is not a request of this problem")]
    UnknownHost { host: String },
    #[error("host `{host}` is both assigned and unplaced, or listed twice")]
    Duplicate { host: String },
    #[error("host `{host}` is neither assigned nor reported as unplaced")]
    Missing { host: String },
    #[error("host `{host}` is placed on unknown machine `{machine}`")]
    UnknownMachine { host: String, machine: String },
    #[error("host `{host}` needs driver `{driver}` but machine `{machine}` runs `{actual}`")]
    Driver {
        host: String,
        machine: String,
        driver: String,
        actual: String,
    },
    /// `used` and `capacity` as the configuration writes them (`2.5 cpus`, `4 GiB of memory`).
    #[error("machine `{machine}` is over capacity in {resource}: {used} used of {capacity}")]
    Capacity {
        machine: String,
        resource: String,
        used: String,
        capacity: String,
    },
    #[error("class `{class}` has {count} hosts on {key} `{value}`, max_per {key} = {limit}")]
    MaxPer {
        class: String,
        key: String,
        value: String,
        count: u32,
        limit: u32,
    },
    #[error(
        "host `{host}` of class `{class}` is on machine `{machine}`, which has no `{key}` label"
    )]
    MissingLabel {
        host: String,
        class: String,
        machine: String,
        key: String,
    },
    #[error("address {address} is given out twice or is already in use")]
    AddressReused { address: IpAddr },
    #[error("address {address} is outside network {network} or reserved in it")]
    AddressOutside { address: IpAddr, network: String },
}

/// Every broken invariant of `placement` for `problem`; empty when it is sound.
pub fn check(problem: &Problem, placement: &Placement) -> Vec<Violation> {
    let mut out = Vec::new();
    let machines: BTreeMap<&str, &super::Machine> = problem
        .machines
        .iter()
        .rev()
        .map(|m| (m.name.as_str(), m))
        .collect();
    let requests: BTreeMap<&str, &super::Request> = problem
        .requests
        .iter()
        .rev()
        .map(|r| (r.name.as_str(), r))
        .collect();
    let mut seen = BTreeSet::new();
    for name in placement
        .assigned
        .keys()
        .map(String::as_str)
        .chain(placement.unplaced.iter().map(|u| u.name.as_str()))
    {
        if !requests.contains_key(name) {
            out.push(Violation::UnknownHost {
                host: name.to_string(),
            });
        }
        if !seen.insert(name) {
            out.push(Violation::Duplicate {
                host: name.to_string(),
            });
        }
    }
    for name in requests.keys() {
        if !seen.contains(name) {
            out.push(Violation::Missing {
                host: name.to_string(),
            });
        }
    }

    // (class, machine) of every host that exists afterwards, and whether it is new.
    let mut hosts: Vec<(&str, &str, &str, [u64; 3], bool)> = Vec::new();
    for e in &problem.existing {
        if machines.contains_key(e.machine.as_str()) {
            hosts.push((&e.name, &e.class, &e.machine, e.size.vector(), false));
        }
    }
    for (host, machine) in &placement.assigned {
        let Some(r) = requests.get(host.as_str()) else {
            continue;
        };
        let Some(m) = machines.get(machine.as_str()) else {
            out.push(Violation::UnknownMachine {
                host: host.clone(),
                machine: machine.clone(),
            });
            continue;
        };
        if m.driver != r.driver {
            out.push(Violation::Driver {
                host: host.clone(),
                machine: machine.clone(),
                driver: r.driver.clone(),
                actual: m.driver.clone(),
            });
        }
        hosts.push((&r.name, &r.class, machine, r.size.vector(), true));
    }

    // Per machine and dimension: total used, and what new hosts add to it. An existing
    // over-commit that new hosts do not add to is not the placement's doing.
    let mut used: BTreeMap<&str, ([u64; 3], [u64; 3])> = BTreeMap::new();
    for &(_, _, machine, size, new) in &hosts {
        let (total, added) = used.entry(machine).or_default();
        for (d, n) in size.into_iter().enumerate() {
            total[d] = total[d].saturating_add(n);
            if new {
                added[d] = added[d].saturating_add(n);
            }
        }
    }
    for (machine, (used, added)) in used {
        let cap = machines[machine].capacity.vector();
        for d in 0..3 {
            if added[d] > 0 && used[d] > cap[d] {
                out.push(Violation::Capacity {
                    machine: machine.to_string(),
                    resource: super::fleet::DIM_NAMES[d].to_string(),
                    used: super::explain::amount(d, used[d]),
                    capacity: super::explain::amount(d, cap[d]),
                });
            }
        }
    }

    for (class, rules) in &problem.rules {
        for (key, &limit) in &rules.max_per {
            let mut per_value: BTreeMap<&str, (u32, bool)> = BTreeMap::new();
            for &(host, c, machine, _, new) in &hosts {
                if c != class {
                    continue;
                }
                let value = if key == super::fleet::MACHINE_KEY {
                    Some(machine)
                } else {
                    machines[machine].labels.get(key).map(String::as_str)
                };
                match value {
                    Some(v) => {
                        let e = per_value.entry(v).or_default();
                        e.0 += 1;
                        e.1 |= new;
                    }
                    None if new => out.push(Violation::MissingLabel {
                        host: host.to_string(),
                        class: class.clone(),
                        machine: machine.to_string(),
                        key: key.clone(),
                    }),
                    None => {}
                }
            }
            for (value, (count, new)) in per_value {
                if new && count > limit {
                    out.push(Violation::MaxPer {
                        class: class.clone(),
                        key: key.clone(),
                        value: value.to_string(),
                        count,
                        limit,
                    });
                }
            }
        }
    }
    out
}

/// Every broken invariant of addresses handed out from `net`: none twice, none already `used`,
/// none outside the network or on its network, broadcast or gateway address.
pub fn check_addresses(
    net: &ipnet::IpNet,
    gateway: Option<IpAddr>,
    used: &HashSet<IpAddr>,
    allocated: &[IpAddr],
) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for &a in allocated {
        if used.contains(&a) || !seen.insert(a) {
            out.push(Violation::AddressReused { address: a });
        }
        if !net.contains(&a) || Some(a) == gateway || super::ip::reserved(net, a) {
            out.push(Violation::AddressOutside {
                address: a,
                network: net.to_string(),
            });
        }
    }
    out
}
