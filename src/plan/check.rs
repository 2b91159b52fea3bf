//! The invariant checker for a whole plan (after omicron's `blippy`): the fleet a plan leaves
//! behind has no machine over capacity, no `max_per` rule broken, and no address given out
//! twice, outside its network or on its gateway. Hosts recorded in HostDB that the plan does
//! not mention (other owners', hosts outside `--target`) count like the plan's own (design §8).
//! Tests run it on every plan they make.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;

use super::{Action, Plan};
use crate::config::{Config, Strategy};
use crate::hostdb::{Host, HostQuery, Kind, Store, StoreError};
use crate::place::{self, check::Violation};

/// Every broken invariant of the fleet after `plan`; `outside` are the recorded containers the
/// plan does not mention.
pub fn check(plan: &Plan, config: &Config, outside: &[Host]) -> Vec<Violation> {
    let after: Vec<&super::HostState> = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Delete)
        .filter_map(|c| c.after.as_deref())
        .collect();
    let problem = place::Problem {
        machines: config
            .machines
            .iter()
            .map(|m| place::Machine {
                name: m.name.clone(),
                capacity: place::Resources::new(m.schedulable_cpu(), m.memory_mib, m.disk_gib),
                labels: m.labels.clone(),
                driver: m.driver.clone(),
            })
            .collect(),
        existing: outside
            .iter()
            .filter_map(|h| {
                Some(place::Existing {
                    name: h.name.clone(),
                    class: foreign_class(h, config),
                    machine: h.machine.clone()?,
                    size: place::Resources::new(
                        h.cpu.unwrap_or_default(),
                        h.memory_mib.unwrap_or(0),
                        h.disk_gib.unwrap_or(0),
                    ),
                })
            })
            .collect(),
        rules: config
            .host_classes
            .values()
            .map(|c| {
                let strategy = match c.placement.strategy {
                    Strategy::Pack => place::Strategy::Pack,
                    Strategy::Spread => place::Strategy::Spread,
                };
                let rules = place::Rules {
                    max_per: c.placement.max_per.clone(),
                    strategy,
                };
                (c.name.clone(), rules)
            })
            .collect(),
        requests: after
            .iter()
            .map(|a| place::Request {
                name: a.name.clone(),
                class: a.class.clone(),
                size: place::Resources::new(a.cpu, a.memory_mib, a.disk_gib),
                driver: config
                    .host_classes
                    .get(&a.class)
                    .map_or_else(|| "lxc".to_string(), |c| c.driver.clone()),
            })
            .collect(),
    };
    let assigned: BTreeMap<String, String> = after
        .iter()
        .filter_map(|a| Some((a.name.clone(), a.machine.clone()?)))
        .collect();
    let mut out = place::check::check(
        &problem,
        &place::Placement {
            assigned,
            unplaced: Vec::new(),
        },
    );
    out.extend(addresses(&after, config, outside));
    out
}

/// A host of another owner keeps its class apart from this config's classes of the same name:
/// it uses capacity but is not counted against this config's rules.
fn foreign_class(h: &Host, config: &Config) -> String {
    let class = h.class.clone().unwrap_or_default();
    if h.owner.as_deref() == Some(config.settings.owner.as_str()) {
        class
    } else {
        format!("{}/{class}", h.owner.as_deref().unwrap_or("?"))
    }
}

/// Addresses per network: none twice (with the hosts outside the plan too), none outside its
/// network, none on the gateway or the network's reserved addresses.
fn addresses(after: &[&super::HostState], config: &Config, outside: &[Host]) -> Vec<Violation> {
    let used: HashSet<IpAddr> = outside
        .iter()
        .filter_map(|h| h.ip.as_deref()?.parse().ok())
        .collect();
    let mut by_network: BTreeMap<&str, Vec<IpAddr>> = BTreeMap::new();
    let mut out = Vec::new();
    for a in after {
        match a.ip.as_deref().map(str::parse::<IpAddr>) {
            Some(Ok(ip)) => by_network.entry(a.network.as_str()).or_default().push(ip),
            _ => out.push(Violation::Missing {
                host: format!("{} (address)", a.name),
            }),
        }
    }
    for (name, ips) in by_network {
        match config.networks.get(name) {
            Some(net) => out.extend(place::check::check_addresses(
                &net.cidr,
                net.gateway,
                &used,
                &ips,
            )),
            None => out.extend(ips.into_iter().map(|address| Violation::AddressOutside {
                address,
                network: name.to_string(),
            })),
        }
    }
    out
}

/// The recorded containers `plan` does not mention, read from `store`.
pub fn outside(store: &dyn Store, plan: &Plan) -> Result<Vec<Host>, StoreError> {
    let mentioned: BTreeSet<&str> = plan.changes.iter().map(|c| c.address.as_str()).collect();
    Ok(store
        .all_hosts(&HostQuery {
            kind: Some(Kind::Container),
            ..HostQuery::default()
        })?
        .into_iter()
        .filter(|h| !mentioned.contains(h.name.as_str()))
        .collect())
}
