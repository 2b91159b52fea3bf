//! Diff: the config against a HostDB snapshot, then placement, giving a [`Plan`].
//!
//! Each desired or recorded host gets exactly one action. Hosts that stay where they are
//! consume capacity and count against rules; creates (and replaces whose machine is gone) go
//! through the placement engine; new addresses come from each network's pool, never one that
//! any host in HostDB holds. Nothing here writes anything.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use thiserror::Error;

use super::{
    Action, Change, ConfigRef, HostDbRef, HostState, MachineChange, MachineState, Plan, Unplaced,
    FORMAT_VERSION,
};
use crate::config::{Config, DesiredHost, Machine, Network};
use crate::hostdb::{Host, Snapshot, State};
use crate::place;
use crate::size::{format_gib, format_mib};

/// How the plan is asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Plan the deletion of every managed host (`kloud destroy`, `plan --destroy`).
    pub destroy: bool,
    /// Only these classes (`--target`); empty means all.
    pub targets: Vec<String>,
    /// Allow deleting more than 30% of the managed hosts.
    pub force: bool,
}

/// Why no plan could be made.
#[derive(Debug, Error, PartialEq)]
pub enum DiffError {
    #[error("machine `{machine}` is no longer in the config but still hosts {}: {}", hosts.len(), hosts.join(", "))]
    MachineInUse { machine: String, hosts: Vec<String> },
    #[error("the plan would delete {deletes} of the {managed} hosts this config manages ({}), more than 30%", describe_classes(classes))]
    MassDelete {
        deletes: usize,
        managed: usize,
        classes: BTreeMap<String, usize>,
    },
    #[error("`--target {target}` names no host class of the config (classes: {})", known.join(", "))]
    UnknownTarget { target: String, known: Vec<String> },
    #[error("network `{network}` ({cidr}) has no free address left: {requested} needed, {available} free")]
    AddressesExhausted {
        network: String,
        cidr: String,
        requested: usize,
        available: usize,
    },
}

fn describe_classes(classes: &BTreeMap<String, usize>) -> String {
    classes
        .iter()
        .map(|(c, n)| format!("{n} of class `{c}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The share of managed hosts a plan may delete without `--force`, and the fleet size from
/// which the guard applies.
const MASS_DELETE_SHARE: f64 = 0.30;
const MASS_DELETE_MIN_MANAGED: usize = 10;

/// Compute the plan for `config` against `snapshot`.
pub fn diff(
    config: &Config,
    snapshot: &Snapshot,
    used_ips: &[String],
    hostdb_url: &str,
    opts: &Options,
) -> Result<Plan, DiffError> {
    for t in &opts.targets {
        if !config.host_classes.contains_key(t) {
            return Err(DiffError::UnknownTarget {
                target: t.clone(),
                known: config.host_classes.keys().cloned().collect(),
            });
        }
    }
    let targeted = |class: &str| opts.targets.is_empty() || opts.targets.iter().any(|t| t == class);

    let desired_machines: BTreeMap<&str, &Machine> = config
        .machines
        .iter()
        .map(|m| (m.name.as_str(), m))
        .collect();
    let recorded_machines: HashMap<&str, &Host> = snapshot
        .machines
        .iter()
        .map(|m| (m.name.as_str(), m))
        .collect();
    let owner = config.settings.owner.as_str();
    // Each machine's labels once, shared by the states of every host on it.
    let mut labels: Labels = recorded_machines
        .iter()
        .map(|(&name, h)| (name, Arc::new(h.labels.clone())))
        .collect();
    for (&name, m) in &desired_machines {
        labels.insert(name, Arc::new(m.labels.clone()));
    }

    // Hosts.
    let recorded: BTreeMap<&str, &Host> = snapshot
        .hosts
        .iter()
        .map(|h| (h.name.as_str(), h))
        .collect();
    let desired: Vec<&DesiredHost> = if opts.destroy {
        Vec::new()
    } else {
        config.hosts.iter().filter(|h| targeted(&h.class)).collect()
    };
    let desired_names: HashSet<&str> = desired.iter().map(|h| h.name.as_str()).collect();
    let mut recorded_count: BTreeMap<&str, usize> = BTreeMap::new();
    for h in &snapshot.hosts {
        *recorded_count
            .entry(h.class.as_deref().unwrap_or(""))
            .or_default() += 1;
    }
    let desired_count = |class: &str| {
        config
            .host_classes
            .get(class)
            .map_or(0, |c| c.count as usize)
    };

    // Usage of each machine by the hosts that stay on it.
    let mut usage: HashMap<&str, place::Resources> = HashMap::new();
    let staying = |h: &Host| -> bool {
        let class = h.class.as_deref().unwrap_or("");
        let leaving = opts.destroy && targeted(class)
            || (targeted(class) && !desired_names.contains(h.name.as_str()));
        !leaving && h.state != Some(State::Failed)
    };
    for h in snapshot.hosts.iter().filter(|h| staying(h)) {
        if let Some(m) = h.machine.as_deref() {
            let u = usage.entry(m).or_default();
            u.cpu += h.cpu.unwrap_or(0);
            u.memory_mib += h.memory_mib.unwrap_or(0);
            u.disk_gib += h.disk_gib.unwrap_or(0);
        }
    }

    let mut changes: Vec<Change> = Vec::with_capacity(desired.len() + snapshot.hosts.len());
    // Hosts that need a machine (index into `changes`), and ones that need an address.
    let mut to_place: Vec<usize> = Vec::new();
    let mut to_address: Vec<usize> = Vec::new();
    let mut existing: Vec<place::Existing> = Vec::new();

    for d in &desired {
        let Some(r) = recorded.get(d.name.as_str()).copied() else {
            let rc = recorded_count.get(d.class.as_str()).copied().unwrap_or(0);
            let reason = if rc == 0 {
                format!("new host of class `{}`", d.class)
            } else {
                format!("count increased from {rc} to {}", desired_count(&d.class))
            };
            to_place.push(changes.len());
            to_address.push(changes.len());
            changes.push(Change {
                address: d.name.clone(),
                class: d.class.clone(),
                action: Action::Create,
                reason,
                before: None,
                after: Some(Arc::new(desired_state(d, None, None, &labels))),
            });
            continue;
        };
        let before = Arc::new(recorded_state(r, Some(d), &labels, config));
        let net = config.networks.get(&d.network);
        let ip_ok =
            r.ip.as_deref()
                .and_then(|ip| ip.parse::<IpAddr>().ok())
                .is_some_and(|ip| net.is_some_and(|n| n.cidr.contains(&ip)));
        let machine_ok = r
            .machine
            .as_deref()
            .and_then(|m| desired_machines.get(m))
            .filter(|m| m.driver == d.driver);
        let mut replace: Vec<String> = Vec::new();
        let mut update: Vec<String> = Vec::new();
        match r.state {
            Some(State::Running) | None => {}
            Some(s) => replace.push(format!("the last apply left it `{}`", s.as_str())),
        }
        if r.image.as_deref() != Some(d.image.as_str()) {
            replace.push(format!(
                "image changed from `{}` to `{}`",
                r.image.as_deref().unwrap_or("?"),
                d.image
            ));
        }
        if !ip_ok {
            replace.push(match r.ip.as_deref() {
                Some(ip) => format!("address {ip} is not in network `{}`", d.network),
                None => "it has no address".to_string(),
            });
        }
        if machine_ok.is_none() {
            replace.push(match r.machine.as_deref() {
                Some(m) if desired_machines.contains_key(m) => {
                    format!("its machine `{m}` does not run driver `{}`", d.driver)
                }
                Some(m) => format!("its machine `{m}` is no longer in the config"),
                None => "it has no machine".to_string(),
            });
        }
        let old = place::Resources::new(
            r.cpu.unwrap_or(0),
            r.memory_mib.unwrap_or(0),
            r.disk_gib.unwrap_or(0),
        );
        let new = place::Resources::new(d.cpu, d.memory_mib, d.disk_gib);
        let resized = old != new;
        let mut must_move = false;
        if resized {
            let mut what = Vec::new();
            if old.cpu != new.cpu {
                what.push(format!("cpu {} → {}", old.cpu, new.cpu));
            }
            if old.memory_mib != new.memory_mib {
                what.push(format!(
                    "memory {} → {}",
                    format_mib(old.memory_mib),
                    format_mib(new.memory_mib)
                ));
            }
            if old.disk_gib != new.disk_gib {
                what.push(format!(
                    "disk {} → {}",
                    format_gib(old.disk_gib),
                    format_gib(new.disk_gib)
                ));
            }
            let fits = machine_ok.is_some_and(|m| {
                let u = usage.get(m.name.as_str()).copied().unwrap_or_default();
                u.cpu - old.cpu.min(u.cpu) + new.cpu <= m.cpu
                    && u.memory_mib - old.memory_mib.min(u.memory_mib) + new.memory_mib
                        <= m.memory_mib
                    && u.disk_gib - old.disk_gib.min(u.disk_gib) + new.disk_gib <= m.disk_gib
            });
            if fits {
                update.push(format!("resized: {}", what.join(", ")));
            } else {
                must_move = true;
                replace.push(format!(
                    "resized ({}) beyond what its machine has free",
                    what.join(", ")
                ));
            }
        }
        if r.tags != d.tags {
            update.push("tags changed".into());
        }
        for key in changed_keys(&r.properties, &d.properties) {
            update.push(format!("property `{key}` changed"));
        }
        if r.roles != d.puppet_roles {
            update.push("puppet roles changed".into());
        }
        let (action, reason) = if !replace.is_empty() {
            (Action::Replace, replace.join("; "))
        } else if !update.is_empty() {
            (Action::Update, update.join("; "))
        } else {
            (Action::NoOp, String::new())
        };
        let keep_machine = machine_ok.filter(|_| !must_move).map(|m| m.name.clone());
        let keep_ip = if ip_ok { r.ip.clone() } else { None };
        // A no-op's after is its before: not built, so the plan holds one state for it.
        let after = (action != Action::NoOp)
            .then(|| desired_state(d, keep_machine.clone(), keep_ip.clone(), &labels));
        let idx = changes.len();
        match &keep_machine {
            Some(m) => {
                // Stays on its machine (resized in place when updated).
                if resized {
                    if let Some(u) = usage.get_mut(m.as_str()) {
                        u.cpu = u.cpu - old.cpu.min(u.cpu) + new.cpu;
                        u.memory_mib =
                            u.memory_mib - old.memory_mib.min(u.memory_mib) + new.memory_mib;
                        u.disk_gib = u.disk_gib - old.disk_gib.min(u.disk_gib) + new.disk_gib;
                    }
                }
                existing.push(place::Existing {
                    name: d.name.clone(),
                    class: d.class.clone(),
                    machine: m.clone(),
                    size: new,
                });
            }
            None => to_place.push(idx),
        }
        if keep_ip.is_none() {
            to_address.push(idx);
        }
        changes.push(Change {
            address: d.name.clone(),
            class: d.class.clone(),
            action,
            reason,
            after: Some(after.map_or_else(|| before.clone(), Arc::new)),
            before: Some(before),
        });
    }

    // Recorded hosts that are not desired: deleted, unless outside the targets.
    let mut deletes: BTreeMap<String, usize> = BTreeMap::new();
    for r in &snapshot.hosts {
        let class = r.class.clone().unwrap_or_default();
        if desired_names.contains(r.name.as_str()) {
            continue;
        }
        let before = recorded_state(r, None, &labels, config);
        if !targeted(&class) {
            // Outside `--target`: it stays and keeps its capacity, and is not shown.
            if let Some(m) = &r.machine {
                existing.push(place::Existing {
                    name: r.name.clone(),
                    class: class.clone(),
                    machine: m.clone(),
                    size: place::Resources::new(
                        r.cpu.unwrap_or(0),
                        r.memory_mib.unwrap_or(0),
                        r.disk_gib.unwrap_or(0),
                    ),
                });
            }
            continue;
        }
        let reason = if opts.destroy {
            "destroy requested".to_string()
        } else if config.host_classes.contains_key(&class) {
            format!(
                "count decreased from {} to {}",
                recorded_count.get(class.as_str()).copied().unwrap_or(0),
                desired_count(&class)
            )
        } else {
            format!("class `{class}` is no longer in the config")
        };
        *deletes.entry(class.clone()).or_default() += 1;
        changes.push(Change {
            address: r.name.clone(),
            class,
            action: Action::Delete,
            reason,
            before: Some(Arc::new(before)),
            after: None,
        });
    }
    let managed = snapshot.hosts.len();
    let ndeletes: usize = deletes.values().sum();
    if !opts.force
        && !opts.destroy
        && managed >= MASS_DELETE_MIN_MANAGED
        && ndeletes as f64 > managed as f64 * MASS_DELETE_SHARE
    {
        return Err(DiffError::MassDelete {
            deletes: ndeletes,
            managed,
            classes: deletes,
        });
    }

    // Machines: synced from the config; one that goes must not host anything that stays.
    let mut machine_changes = Vec::new();
    for m in &config.machines {
        let after = machine_state(m);
        match recorded_machines.get(m.name.as_str()) {
            None => machine_changes.push(MachineChange {
                address: m.name.clone(),
                action: Action::Create,
                reason: format!("new machine of group `{}`", m.group),
                before: None,
                after: Some(after),
            }),
            Some(r) => {
                let before = recorded_machine_state(r);
                let mut what = Vec::new();
                if (before.cpu, before.memory_mib, before.disk_gib)
                    != (after.cpu, after.memory_mib, after.disk_gib)
                {
                    what.push("capacity changed");
                }
                if before.labels != after.labels {
                    what.push("labels changed");
                }
                if before.driver != after.driver {
                    what.push("driver changed");
                }
                if before.connect != after.connect {
                    what.push("connect changed");
                }
                if r.owner.as_deref() != Some(owner) {
                    what.push("now managed by this config");
                }
                let action = if what.is_empty() {
                    Action::NoOp
                } else {
                    Action::Update
                };
                machine_changes.push(MachineChange {
                    address: m.name.clone(),
                    action,
                    reason: what.join("; "),
                    before: Some(before),
                    after: Some(after),
                });
            }
        }
    }
    for r in &snapshot.machines {
        if r.owner.as_deref() != Some(owner) || desired_machines.contains_key(r.name.as_str()) {
            continue;
        }
        // Hosts that are moving off it (replace) are fine; hosts that stay there are not.
        let blocking: Vec<String> = changes
            .iter()
            .filter(|c| c.action == Action::NoOp || c.action == Action::Update)
            .filter(|c| {
                c.before.as_ref().and_then(|b| b.machine.as_deref()) == Some(r.name.as_str())
            })
            .map(|c| c.address.clone())
            .collect();
        if !blocking.is_empty() {
            return Err(DiffError::MachineInUse {
                machine: r.name.clone(),
                hosts: blocking,
            });
        }
        machine_changes.push(MachineChange {
            address: r.name.clone(),
            action: Action::Delete,
            reason: "no longer in the config".into(),
            before: Some(recorded_machine_state(r)),
            after: None,
        });
    }
    machine_changes.sort_by(|a, b| natural_cmp(&a.address, &b.address));

    // Placement.
    let problem = place::Problem {
        machines: config
            .machines
            .iter()
            .map(|m| place::Machine {
                name: m.name.clone(),
                capacity: place::Resources::new(m.cpu, m.memory_mib, m.disk_gib),
                labels: m.labels.clone(),
                driver: m.driver.clone(),
            })
            .collect(),
        existing,
        rules: config
            .host_classes
            .values()
            .map(|c| {
                (
                    c.name.clone(),
                    place::Rules {
                        max_per: c.placement.max_per.clone(),
                        strategy: match c.placement.strategy {
                            crate::config::Strategy::Pack => place::Strategy::Pack,
                            crate::config::Strategy::Spread => place::Strategy::Spread,
                        },
                    },
                )
            })
            .collect(),
        requests: to_place
            .iter()
            .map(|&i| {
                let c = &changes[i];
                let a = c
                    .after
                    .as_ref()
                    .expect("creates and replaces have an after state");
                place::Request {
                    name: c.address.clone(),
                    class: c.class.clone(),
                    size: place::Resources::new(a.cpu, a.memory_mib, a.disk_gib),
                    driver: config
                        .host_classes
                        .get(&c.class)
                        .map_or_else(|| "lxc".to_string(), |k| k.driver.clone()),
                }
            })
            .collect(),
    };
    let placement = if problem.requests.is_empty() {
        place::Placement::default()
    } else {
        place::place(&problem)
    };
    let mut unplaced_names: HashSet<String> = HashSet::new();
    let mut unplaced = Vec::new();
    for u in &placement.unplaced {
        unplaced_names.insert(u.name.clone());
        unplaced.push(Unplaced {
            address: u.name.clone(),
            class: u.class.clone(),
            reasons: u.reasons.clone(),
            explanation: u.explanation.clone(),
        });
    }
    for &i in &to_place {
        let c = &mut changes[i];
        if let (Some(m), Some(after)) = (
            placement.assigned.get(&c.address),
            c.after.as_mut().map(Arc::make_mut),
        ) {
            after.machine = Some(m.clone());
            after.labels = labels.get(m.as_str()).cloned().unwrap_or_default();
        }
    }

    // Addresses, per network, lowest free first, in host order.
    let used: HashSet<IpAddr> = used_ips.iter().filter_map(|s| s.parse().ok()).collect();
    let mut by_network: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for &i in &to_address {
        if unplaced_names.contains(&changes[i].address) {
            continue;
        }
        if let Some(a) = &changes[i].after {
            by_network.entry(a.network.clone()).or_default().push(i);
        }
    }
    for (net_name, mut idxs) in by_network {
        let Some(net) = config.networks.get(&net_name) else {
            continue;
        };
        idxs.sort_by(|a, b| natural_cmp(&changes[*a].address, &changes[*b].address));
        let ips = allocate(net, &used, idxs.len())?;
        for (i, ip) in idxs.into_iter().zip(ips) {
            if let Some(a) = changes[i].after.as_mut().map(Arc::make_mut) {
                a.ip = Some(ip.to_string());
            }
        }
    }

    // Unplaced hosts cannot be applied: they are listed apart, not as changes.
    changes.retain(|c| !unplaced_names.contains(&c.address));
    changes.sort_by(|a, b| {
        a.class
            .cmp(&b.class)
            .then_with(|| natural_cmp(&a.address, &b.address))
    });
    unplaced.sort_by(|a, b| natural_cmp(&a.address, &b.address));

    let mut plan = Plan {
        format_version: FORMAT_VERSION.to_string(),
        kloud_version: env!("CARGO_PKG_VERSION").to_string(),
        hostdb: HostDbRef {
            url: hostdb_url.to_string(),
            index: snapshot.index,
        },
        summary: Default::default(),
        changes,
        unplaced,
        machines: if opts.destroy {
            Vec::new()
        } else {
            machine_changes
        },
        config: Some(ConfigRef {
            dir: config.dir.display().to_string(),
            digest: config.digest.clone(),
            owner: owner.to_string(),
            domain: config.settings.domain.clone(),
        }),
        destroy: opts.destroy,
        targets: opts.targets.clone(),
    };
    plan.summarize();
    Ok(plan)
}

fn allocate(net: &Network, used: &HashSet<IpAddr>, count: usize) -> Result<Vec<IpAddr>, DiffError> {
    place::ip::allocate(&net.cidr, net.gateway, used, count).map_err(|e| match e {
        place::ip::IpError::Exhausted {
            requested,
            available,
            ..
        } => DiffError::AddressesExhausted {
            network: net.name.clone(),
            cidr: net.cidr.to_string(),
            requested,
            available,
        },
    })
}

/// Each machine's labels (the config's, else HostDB's), shared by the host states on it.
type Labels<'a> = HashMap<&'a str, Arc<BTreeMap<String, String>>>;

fn desired_state(
    d: &DesiredHost,
    machine: Option<String>,
    ip: Option<String>,
    machines: &Labels,
) -> HostState {
    let labels = machine
        .as_deref()
        .and_then(|m| machines.get(m))
        .cloned()
        .unwrap_or_default();
    HostState {
        name: d.name.clone(),
        class: d.class.clone(),
        cpu: d.cpu,
        memory_mib: d.memory_mib,
        disk_gib: d.disk_gib,
        image: d.image.clone(),
        tags: d.tags.clone(),
        properties: d.properties.clone(),
        puppet_roles: d.puppet_roles.clone(),
        machine,
        labels,
        ip,
        network: d.network.clone(),
    }
}

/// The state HostDB records for `r`; its properties are `desired`'s map when they are equal.
fn recorded_state(
    r: &Host,
    desired: Option<&DesiredHost>,
    machines: &Labels,
    config: &Config,
) -> HostState {
    let labels = r
        .machine
        .as_deref()
        .and_then(|m| machines.get(m))
        .cloned()
        .unwrap_or_default();
    let network =
        r.ip.as_deref()
            .and_then(|ip| ip.parse::<IpAddr>().ok())
            .and_then(|ip| config.networks.values().find(|n| n.cidr.contains(&ip)))
            .map(|n| n.name.clone())
            .unwrap_or_default();
    HostState {
        name: r.name.clone(),
        class: r.class.clone().unwrap_or_default(),
        cpu: r.cpu.unwrap_or(0),
        memory_mib: r.memory_mib.unwrap_or(0),
        disk_gib: r.disk_gib.unwrap_or(0),
        image: r.image.clone().unwrap_or_default(),
        tags: r.tags.clone(),
        properties: match desired {
            Some(d) if *d.properties == r.properties => Arc::clone(&d.properties),
            _ => Arc::new(r.properties.clone()),
        },
        puppet_roles: r.roles.clone(),
        machine: r.machine.clone(),
        labels,
        ip: r.ip.clone(),
        network,
    }
}

fn machine_state(m: &Machine) -> MachineState {
    MachineState {
        name: m.name.clone(),
        cpu: m.cpu,
        memory_mib: m.memory_mib,
        disk_gib: m.disk_gib,
        labels: m.labels.clone(),
        driver: m.driver.clone(),
        connect: m.connect.clone(),
    }
}

fn recorded_machine_state(r: &Host) -> MachineState {
    MachineState {
        name: r.name.clone(),
        cpu: r.cpu.unwrap_or(0),
        memory_mib: r.memory_mib.unwrap_or(0),
        disk_gib: r.disk_gib.unwrap_or(0),
        labels: r.labels.clone(),
        driver: r.driver.clone().unwrap_or_default(),
        connect: r.connect.clone().unwrap_or_default(),
    }
}

/// Keys whose values differ between two property maps, sorted.
fn changed_keys(
    a: &serde_json::Map<String, serde_json::Value>,
    b: &serde_json::Map<String, serde_json::Value>,
) -> Vec<String> {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// Order names so that `web-2` comes before `web-10`.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let mut ai = a.chars().peekable();
    let mut bi = b.chars().peekable();
    loop {
        match (ai.peek().copied(), bi.peek().copied()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let mut na = String::new();
                while let Some(c) = ai.peek().copied().filter(char::is_ascii_digit) {
                    na.push(c);
                    ai.next();
                }
                let mut nb = String::new();
                while let Some(c) = bi.peek().copied().filter(char::is_ascii_digit) {
                    nb.push(c);
                    bi.next();
                }
                let ord = na
                    .trim_start_matches('0')
                    .len()
                    .cmp(&nb.trim_start_matches('0').len())
                    .then_with(|| na.trim_start_matches('0').cmp(nb.trim_start_matches('0')));
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(&y);
                }
                ai.next();
                bi.next();
            }
        }
    }
}
