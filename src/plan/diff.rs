//! Diff: the config against a HostDB snapshot, then placement, giving a [`Plan`].
//!
//! [`diff`] reads as its steps (after omicron's planner): classify each desired host against
//! what HostDB records; plan the deletes and apply the mass-delete guard; sync the machines;
//! place the new hosts; hand out addresses; assemble. Each desired or recorded host gets
//! exactly one action. Hosts that stay where they are consume capacity and count against
//! rules — and so does every container of another owner on the same machines (design §8);
//! creates (and replaces whose machine is gone) go through the placement engine; new
//! addresses come from each network's pool, never one that any host in HostDB holds. Nothing
//! here writes anything.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use thiserror::Error;

use super::reason::{Reason, ReplaceCause, Resize, UpdateCause};
use super::{
    Action, Change, ConfigRef, HostDbRef, HostState, MachineChange, MachineState, Plan, Unplaced,
    FORMAT_VERSION,
};
use crate::config::{Config, DesiredHost, Machine, Network};
use crate::hostdb::{Host, Snapshot, State};
use crate::place;

/// How the plan is asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Plan the deletion of every managed host (`kloud destroy`, `plan --destroy`).
    pub destroy: bool,
    /// Only these classes (`--target`); empty means all.
    pub targets: Vec<String>,
    /// Allow deleting more than 30% of the managed hosts.
    pub force: bool,
    /// Replace these hosts (FQDNs) even though nothing requires it (`--replace NAME`): the only
    /// way a container that exists is destroyed and made again without a config change.
    pub replace: Vec<String>,
    /// Exact placement (`--exact`, or `placement { solver = "exact" }` in any class): an exact
    /// search within a budget, falling back to the heuristic with a note.
    pub exact: bool,
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
    #[error("machine `{machine}` is declared by config `{other}` too, which disagrees on its {}", what.join(", "))]
    MachineDisagrees {
        machine: String,
        other: String,
        what: Vec<&'static str>,
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
    check_targets(config, opts)?;
    let mut planner = Planner::new(config, snapshot, opts);
    planner.plan_desired_hosts();
    planner.plan_deletes()?;
    let machines = planner.plan_machines()?;
    let unplaced = planner.place_new_hosts();
    planner.assign_addresses(used_ips, &unplaced)?;
    Ok(planner.assemble(machines, unplaced, hostdb_url))
}

fn check_targets(config: &Config, opts: &Options) -> Result<(), DiffError> {
    match opts
        .targets
        .iter()
        .find(|t| !config.host_classes.contains_key(*t))
    {
        Some(t) => Err(DiffError::UnknownTarget {
            target: t.clone(),
            known: config.host_classes.keys().cloned().collect(),
        }),
        None => Ok(()),
    }
}

/// The planner's working state: what is desired, what is recorded, and the plan so far.
struct Planner<'a> {
    config: &'a Config,
    snapshot: &'a Snapshot,
    opts: &'a Options,
    owner: &'a str,
    desired_machines: BTreeMap<&'a str, &'a Machine>,
    recorded_machines: HashMap<&'a str, &'a Host>,
    labels: Labels<'a>,
    recorded: BTreeMap<&'a str, &'a Host>,
    desired: Vec<&'a DesiredHost>,
    desired_names: HashSet<&'a str>,
    recorded_count: BTreeMap<&'a str, usize>,
    /// Usage of each machine by the hosts that stay on it, whoever owns them.
    usage: HashMap<&'a str, place::Resources>,
    changes: Vec<Change>,
    /// Changes (indices) that need a machine, and ones that need an address.
    to_place: Vec<usize>,
    to_address: Vec<usize>,
    /// Hosts that stay where they are, for placement.
    existing: Vec<place::Existing>,
    /// Deletes per class, for the mass-delete guard.
    deletes: BTreeMap<String, usize>,
    /// How placement went, when there is something to say (exact mode).
    notes: Vec<String>,
}

impl<'a> Planner<'a> {
    fn new(config: &'a Config, snapshot: &'a Snapshot, opts: &'a Options) -> Planner<'a> {
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
        // Each machine's labels once, shared by the states of every host on it.
        let mut labels: Labels = recorded_machines
            .iter()
            .map(|(&name, h)| (name, Arc::new(h.labels.clone())))
            .collect();
        for (&name, m) in &desired_machines {
            labels.insert(name, Arc::new(m.labels.clone()));
        }
        let desired: Vec<&DesiredHost> = if opts.destroy {
            Vec::new()
        } else {
            config
                .hosts
                .iter()
                .filter(|h| targeted(opts, &h.class))
                .collect()
        };
        let mut recorded_count: BTreeMap<&str, usize> = BTreeMap::new();
        for h in &snapshot.hosts {
            *recorded_count
                .entry(h.class.as_deref().unwrap_or(""))
                .or_default() += 1;
        }
        let mut planner = Planner {
            config,
            snapshot,
            opts,
            owner: config.settings.owner.as_str(),
            desired_machines,
            recorded_machines,
            labels,
            recorded: snapshot
                .hosts
                .iter()
                .map(|h| (h.name.as_str(), h))
                .collect(),
            desired_names: desired.iter().map(|h| h.name.as_str()).collect(),
            desired,
            recorded_count,
            usage: HashMap::new(),
            changes: Vec::with_capacity(config.hosts.len() + snapshot.hosts.len()),
            to_place: Vec::new(),
            to_address: Vec::new(),
            existing: Vec::new(),
            deletes: BTreeMap::new(),
            notes: Vec::new(),
        };
        planner.count_usage();
        planner
    }

    /// What every machine already carries: this config's hosts that stay, and every container
    /// of another owner (they stay too, and placement counts them like its own).
    fn count_usage(&mut self) {
        let snapshot = self.snapshot;
        let staying: Vec<&Host> = snapshot.hosts.iter().filter(|h| self.staying(h)).collect();
        for h in staying {
            if let Some(m) = h.machine.as_deref() {
                add_usage(self.usage.entry(m).or_default(), recorded_size(h));
            }
        }
        for h in &snapshot.others {
            let Some(m) = h.machine.as_deref() else {
                continue;
            };
            add_usage(self.usage.entry(m).or_default(), recorded_size(h));
            self.existing.push(place::Existing {
                name: h.name.clone(),
                // Another owner's classes are not this config's: capacity only, no rules.
                class: format!(
                    "{}/{}",
                    h.owner.as_deref().unwrap_or("?"),
                    h.class.as_deref().unwrap_or("")
                ),
                machine: m.to_string(),
                size: recorded_size(h),
            });
        }
    }

    fn staying(&self, h: &Host) -> bool {
        let class = h.class.as_deref().unwrap_or("");
        let leaving = self.opts.destroy && targeted(self.opts, class)
            || (targeted(self.opts, class) && !self.desired_names.contains(h.name.as_str()));
        // A failed host stays where it is too: it is repaired in place, not moved.
        !leaving
    }

    fn desired_count(&self, class: &str) -> usize {
        self.config
            .host_classes
            .get(class)
            .map_or(0, |c| c.count as usize)
    }

    /// Step 1: each desired host against its record: create, update, replace or no-op.
    fn plan_desired_hosts(&mut self) {
        let desired = std::mem::take(&mut self.desired);
        for d in &desired {
            match self.recorded.get(d.name.as_str()).copied() {
                None => self.plan_create(d),
                Some(r) => self.plan_recorded(d, r),
            }
        }
        self.desired = desired;
    }

    fn plan_create(&mut self, d: &DesiredHost) {
        let rc = self
            .recorded_count
            .get(d.class.as_str())
            .copied()
            .unwrap_or(0);
        let reason = if rc == 0 {
            Reason::NewHost {
                class: d.class.clone(),
            }
        } else {
            Reason::CountIncreased {
                from: rc,
                to: self.desired_count(&d.class),
            }
        };
        self.to_place.push(self.changes.len());
        self.to_address.push(self.changes.len());
        self.changes.push(Change {
            address: d.name.clone(),
            class: d.class.clone(),
            action: Action::Create,
            reason: reason.to_string(),
            before: None,
            after: Some(Arc::new(desired_state(d, None, None, &self.labels))),
        });
    }

    fn plan_recorded(&mut self, d: &DesiredHost, r: &Host) {
        let before = Arc::new(recorded_state(r, Some(d), &self.labels, self.config));
        let ip_ok = self.address_fits(d, r);
        let machine_ok = r
            .machine
            .as_deref()
            .and_then(|m| self.desired_machines.get(m).copied())
            .filter(|m| m.driver == d.driver);
        let mut replace = self.replace_causes(d, r, ip_ok, machine_ok.is_some());
        let old = recorded_size(r);
        let new = place::Resources::new(d.cpu, d.memory_mib, d.disk_gib);
        let mut update = Vec::new();
        let mut must_move = false;
        if old != new {
            let what = resizes(old, new);
            if machine_ok.is_some_and(|m| self.fits_after_resize(m, old, new)) {
                update.push(UpdateCause::Resized(what));
            } else {
                must_move = true;
                replace.push(ReplaceCause::ResizedBeyondFree(what));
            }
        }
        let mut update: Vec<UpdateCause> = repair_cause(r).into_iter().chain(update).collect();
        update.extend(update_causes(d, r));
        let (action, reason) = if !replace.is_empty() {
            (Action::Replace, Reason::Replace(replace))
        } else if !update.is_empty() {
            (Action::Update, Reason::Update(update))
        } else {
            (Action::NoOp, Reason::None)
        };
        let keep_machine = machine_ok.filter(|_| !must_move).map(|m| m.name.clone());
        let keep_ip = if ip_ok { r.ip.clone() } else { None };
        // A no-op's after is its before: not built, so the plan holds one state for it.
        let after = (action != Action::NoOp)
            .then(|| desired_state(d, keep_machine.clone(), keep_ip.clone(), &self.labels));
        let idx = self.changes.len();
        match &keep_machine {
            Some(m) => self.stay(d, m, old, new),
            None => self.to_place.push(idx),
        }
        if keep_ip.is_none() {
            self.to_address.push(idx);
        }
        self.changes.push(Change {
            address: d.name.clone(),
            class: d.class.clone(),
            action,
            reason: reason.to_string(),
            after: Some(after.map_or_else(|| before.clone(), Arc::new)),
            before: Some(before),
        });
    }

    fn address_fits(&self, d: &DesiredHost, r: &Host) -> bool {
        let net = self.config.networks.get(&d.network);
        r.ip.as_deref()
            .and_then(|ip| ip.parse::<IpAddr>().ok())
            .is_some_and(|ip| net.is_some_and(|n| n.cidr.contains(&ip)))
    }

    fn replace_causes(
        &self,
        d: &DesiredHost,
        r: &Host,
        ip_ok: bool,
        machine_ok: bool,
    ) -> Vec<ReplaceCause> {
        let mut out = Vec::new();
        if self.opts.replace.contains(&d.name) {
            out.push(ReplaceCause::Requested);
        }
        if r.image.as_deref() != Some(d.image.as_str()) {
            out.push(ReplaceCause::ImageChanged {
                from: r.image.clone().unwrap_or_else(|| "?".into()),
                to: d.image.clone(),
            });
        }
        if !ip_ok {
            out.push(match &r.ip {
                Some(ip) => ReplaceCause::AddressOutside {
                    ip: ip.clone(),
                    network: d.network.clone(),
                },
                None => ReplaceCause::NoAddress,
            });
        }
        if !machine_ok {
            out.push(match r.machine.as_deref() {
                Some(m) if self.desired_machines.contains_key(m) => ReplaceCause::WrongDriver {
                    machine: m.to_string(),
                    driver: d.driver.clone(),
                },
                Some(m) => ReplaceCause::MachineGone {
                    machine: m.to_string(),
                },
                None => ReplaceCause::NoMachine,
            });
        }
        out
    }

    /// Whether `m` still has room when a host on it grows from `old` to `new`.
    fn fits_after_resize(&self, m: &Machine, old: place::Resources, new: place::Resources) -> bool {
        let u = resized_usage(
            self.usage.get(m.name.as_str()).copied().unwrap_or_default(),
            old,
            new,
        );
        u.cpu <= m.schedulable_cpu() && u.memory_mib <= m.memory_mib && u.disk_gib <= m.disk_gib
    }

    /// A host stays on machine `m` (resized in place from `old` to `new` when they differ).
    fn stay(&mut self, d: &DesiredHost, m: &str, old: place::Resources, new: place::Resources) {
        if old != new {
            if let Some(u) = self.usage.get_mut(m) {
                *u = resized_usage(*u, old, new);
            }
        }
        self.existing.push(place::Existing {
            name: d.name.clone(),
            class: d.class.clone(),
            machine: m.to_string(),
            size: new,
        });
    }

    /// Step 2: recorded hosts that are not desired are deleted (unless outside `--target`),
    /// then the mass-delete guard.
    fn plan_deletes(&mut self) -> Result<(), DiffError> {
        for r in &self.snapshot.hosts {
            if self.desired_names.contains(r.name.as_str()) {
                continue;
            }
            let class = r.class.clone().unwrap_or_default();
            if !targeted(self.opts, &class) {
                // Outside `--target`: it stays and keeps its capacity, and is not shown.
                if let Some(m) = &r.machine {
                    self.existing.push(place::Existing {
                        name: r.name.clone(),
                        class: class.clone(),
                        machine: m.clone(),
                        size: recorded_size(r),
                    });
                }
                continue;
            }
            let reason = self.delete_reason(&class);
            *self.deletes.entry(class.clone()).or_default() += 1;
            let before = recorded_state(r, None, &self.labels, self.config);
            self.changes.push(Change {
                address: r.name.clone(),
                class,
                action: Action::Delete,
                reason: reason.to_string(),
                before: Some(Arc::new(before)),
                after: None,
            });
        }
        self.mass_delete_guard()
    }

    fn delete_reason(&self, class: &str) -> Reason {
        if self.opts.destroy {
            Reason::DestroyRequested
        } else if self.config.host_classes.contains_key(class) {
            Reason::CountDecreased {
                from: self.recorded_count.get(class).copied().unwrap_or(0),
                to: self.desired_count(class),
            }
        } else {
            Reason::ClassRemoved {
                class: class.to_string(),
            }
        }
    }

    /// Refuse a plan that deletes more than 30% of at least 10 managed hosts, unless forced.
    fn mass_delete_guard(&self) -> Result<(), DiffError> {
        let managed = self.snapshot.hosts.len();
        let deletes: usize = self.deletes.values().sum();
        if !self.opts.force
            && !self.opts.destroy
            && managed >= MASS_DELETE_MIN_MANAGED
            && deletes as f64 > managed as f64 * MASS_DELETE_SHARE
        {
            return Err(DiffError::MassDelete {
                deletes,
                managed,
                classes: self.deletes.clone(),
            });
        }
        Ok(())
    }

    /// Step 3: machine records synced from the config; one that goes must not host anything
    /// that stays.
    fn plan_machines(&self) -> Result<Vec<MachineChange>, DiffError> {
        let mut out: Vec<MachineChange> = self
            .config
            .machines
            .iter()
            .map(|m| self.machine_change(m))
            .collect::<Result<_, _>>()?;
        for r in &self.snapshot.machines {
            if r.owner.as_deref() != Some(self.owner)
                || self.desired_machines.contains_key(r.name.as_str())
            {
                continue;
            }
            self.check_machine_empty(r)?;
            out.push(MachineChange {
                address: r.name.clone(),
                action: Action::Delete,
                reason: "no longer in the config".into(),
                before: Some(recorded_machine_state(r)),
                after: None,
            });
        }
        out.sort_by(|a, b| natural_cmp(&a.address, &b.address));
        Ok(out)
    }

    fn machine_change(&self, m: &Machine) -> Result<MachineChange, DiffError> {
        let after = machine_state(m);
        let Some(r) = self.recorded_machines.get(m.name.as_str()) else {
            return Ok(MachineChange {
                address: m.name.clone(),
                action: Action::Create,
                reason: format!("new machine of group `{}`", m.group),
                before: None,
                after: Some(after),
            });
        };
        let before = recorded_machine_state(r);
        let mut what = Vec::new();
        if (before.cpu, before.memory_mib, before.disk_gib)
            != (after.cpu, after.memory_mib, after.disk_gib)
        {
            what.push("capacity changed");
        }
        if before.cpu_overcommit != after.cpu_overcommit {
            what.push("cpu overcommit changed");
        }
        if before.labels != after.labels {
            what.push("labels changed");
        }
        if before.driver != after.driver {
            what.push("driver changed");
        }
        if let Some(other) = r.owner.as_deref().filter(|o| *o != self.owner) {
            return self.shared_machine(m, other, what, before, after);
        }
        if before.connect != after.connect {
            what.push("connect changed");
        }
        if r.owner.is_none() {
            what.push("now managed by this config");
        }
        Ok(MachineChange {
            address: m.name.clone(),
            action: if what.is_empty() {
                Action::NoOp
            } else {
                Action::Update
            },
            reason: what.join("; "),
            before: Some(before),
            after: Some(after),
        })
    }

    /// A machine another config declares too (design §8): both must agree on what it is; its
    /// record stays the first config's.
    fn shared_machine(
        &self,
        m: &Machine,
        other: &str,
        what: Vec<&'static str>,
        before: MachineState,
        after: MachineState,
    ) -> Result<MachineChange, DiffError> {
        if !what.is_empty() {
            return Err(DiffError::MachineDisagrees {
                machine: m.name.clone(),
                other: other.to_string(),
                what: what
                    .iter()
                    .map(|w| w.trim_end_matches(" changed"))
                    .collect(),
            });
        }
        Ok(MachineChange {
            address: m.name.clone(),
            action: Action::NoOp,
            reason: format!("shared with config `{other}`, which records it"),
            before: Some(before),
            after: Some(after),
        })
    }

    /// Hosts moving off a machine that goes (replace) are fine; hosts that stay are not, and
    /// neither are other owners' containers on it.
    fn check_machine_empty(&self, r: &Host) -> Result<(), DiffError> {
        let blocking: Vec<String> = self
            .changes
            .iter()
            .filter(|c| c.action == Action::NoOp || c.action == Action::Update)
            .filter(|c| {
                c.before.as_ref().and_then(|b| b.machine.as_deref()) == Some(r.name.as_str())
            })
            .map(|c| c.address.clone())
            .chain(
                self.snapshot
                    .others
                    .iter()
                    .filter(|h| h.machine.as_deref() == Some(r.name.as_str()))
                    .map(|h| h.name.clone()),
            )
            .collect();
        if blocking.is_empty() {
            Ok(())
        } else {
            Err(DiffError::MachineInUse {
                machine: r.name.clone(),
                hosts: blocking,
            })
        }
    }

    /// Step 4: a machine for every host that needs one; those that get none are unplaced.
    fn place_new_hosts(&mut self) -> Vec<Unplaced> {
        let problem = self.placement_problem();
        let exact = self.opts.exact
            || self
                .config
                .host_classes
                .values()
                .any(|c| c.placement.solver == crate::config::Solver::Exact);
        let placement = if problem.requests.is_empty() {
            place::Placement::default()
        } else if exact {
            let options = place::Options {
                exact_nodes: Some(place::EXACT_NODES),
                ..place::Options::default()
            };
            let (placement, notes) = place::place_noted(&problem, &options);
            self.notes.extend(notes);
            placement
        } else {
            place::place(&problem)
        };
        for &i in &self.to_place {
            let c = &mut self.changes[i];
            if let (Some(m), Some(after)) = (
                placement.assigned.get(&c.address),
                c.after.as_mut().map(Arc::make_mut),
            ) {
                after.machine = Some(m.clone());
                after.labels = self.labels.get(m.as_str()).cloned().unwrap_or_default();
            }
        }
        placement
            .unplaced
            .into_iter()
            .map(|u| Unplaced {
                address: u.name,
                class: u.class,
                reasons: u.reasons,
                explanation: u.explanation,
            })
            .collect()
    }

    fn placement_problem(&mut self) -> place::Problem {
        let requests = self
            .to_place
            .iter()
            .filter_map(|&i| {
                let c = &self.changes[i];
                let a = c.after.as_ref()?;
                Some(place::Request {
                    name: c.address.clone(),
                    class: c.class.clone(),
                    size: place::Resources::new(a.cpu, a.memory_mib, a.disk_gib),
                    driver: self
                        .config
                        .host_classes
                        .get(&c.class)
                        .map_or_else(|| "lxc".to_string(), |k| k.driver.clone()),
                })
            })
            .collect();
        place::Problem {
            machines: self
                .config
                .machines
                .iter()
                .map(|m| place::Machine {
                    name: m.name.clone(),
                    capacity: place::Resources::new(m.schedulable_cpu(), m.memory_mib, m.disk_gib),
                    labels: m.labels.clone(),
                    driver: m.driver.clone(),
                })
                .collect(),
            existing: std::mem::take(&mut self.existing),
            rules: self
                .config
                .host_classes
                .values()
                .map(|c| (c.name.clone(), rules_of(c)))
                .collect(),
            requests,
        }
    }

    /// Step 5: addresses, per network, lowest free first, in host order.
    fn assign_addresses(
        &mut self,
        used_ips: &[String],
        unplaced: &[Unplaced],
    ) -> Result<(), DiffError> {
        let unplaced: HashSet<&str> = unplaced.iter().map(|u| u.address.as_str()).collect();
        let used: HashSet<IpAddr> = used_ips.iter().filter_map(|s| s.parse().ok()).collect();
        let mut by_network: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for &i in &self.to_address {
            if unplaced.contains(self.changes[i].address.as_str()) {
                continue;
            }
            if let Some(a) = &self.changes[i].after {
                by_network.entry(a.network.clone()).or_default().push(i);
            }
        }
        for (net_name, mut idxs) in by_network {
            let Some(net) = self.config.networks.get(&net_name) else {
                continue;
            };
            idxs.sort_by(|a, b| natural_cmp(&self.changes[*a].address, &self.changes[*b].address));
            let ips = allocate(net, &used, idxs.len())?;
            for (i, ip) in idxs.into_iter().zip(ips) {
                if let Some(a) = self.changes[i].after.as_mut().map(Arc::make_mut) {
                    a.ip = Some(ip.to_string());
                }
            }
        }
        Ok(())
    }

    /// Step 6: the plan. Unplaced hosts cannot be applied: they are listed apart, not as
    /// changes.
    fn assemble(
        self,
        machines: Vec<MachineChange>,
        mut unplaced: Vec<Unplaced>,
        hostdb_url: &str,
    ) -> Plan {
        let gone: HashSet<String> = unplaced.iter().map(|u| u.address.clone()).collect();
        let mut changes = self.changes;
        changes.retain(|c| !gone.contains(&c.address));
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
                url: crate::hostdb::location::redact(hostdb_url),
                index: self.snapshot.index,
            },
            summary: Default::default(),
            changes,
            unplaced,
            machines: if self.opts.destroy {
                Vec::new()
            } else {
                machines
            },
            config: Some(ConfigRef {
                dir: self.config.dir.display().to_string(),
                digest: self.config.digest.clone(),
                owner: self.owner.to_string(),
                domain: self.config.settings.domain.clone(),
            }),
            destroy: self.opts.destroy,
            targets: self.opts.targets.clone(),
            notes: self.notes,
        };
        plan.summarize();
        plan
    }
}

fn targeted(opts: &Options, class: &str) -> bool {
    opts.targets.is_empty() || opts.targets.iter().any(|t| t == class)
}

fn rules_of(c: &crate::config::HostClass) -> place::Rules {
    place::Rules {
        max_per: c.placement.max_per.clone(),
        strategy: match c.placement.strategy {
            crate::config::Strategy::Pack => place::Strategy::Pack,
            crate::config::Strategy::Spread => place::Strategy::Spread,
        },
    }
}

/// A recorded host's size; missing values count as 0.
fn recorded_size(h: &Host) -> place::Resources {
    place::Resources::new(
        h.cpu.unwrap_or_default(),
        h.memory_mib.unwrap_or(0),
        h.disk_gib.unwrap_or(0),
    )
}

/// Sizes come from HostDB, which anyone with a token can write: sums saturate (a machine
/// that looks full) rather than wrap (one that looks empty).
fn add_usage(u: &mut place::Resources, size: place::Resources) {
    u.cpu = u.cpu.saturating_add(size.cpu);
    u.memory_mib = u.memory_mib.saturating_add(size.memory_mib);
    u.disk_gib = u.disk_gib.saturating_add(size.disk_gib);
}

/// Usage after one host on the machine changes from `old` to `new`.
fn resized_usage(
    u: place::Resources,
    old: place::Resources,
    new: place::Resources,
) -> place::Resources {
    place::Resources::new(
        u.cpu.saturating_sub(old.cpu).saturating_add(new.cpu),
        u.memory_mib
            .saturating_sub(old.memory_mib)
            .saturating_add(new.memory_mib),
        u.disk_gib
            .saturating_sub(old.disk_gib)
            .saturating_add(new.disk_gib),
    )
}

fn resizes(old: place::Resources, new: place::Resources) -> Vec<Resize> {
    let mut what = Vec::new();
    if old.cpu != new.cpu {
        what.push(Resize::Cpu {
            from: old.cpu,
            to: new.cpu,
        });
    }
    if old.memory_mib != new.memory_mib {
        what.push(Resize::Memory {
            from: old.memory_mib,
            to: new.memory_mib,
        });
    }
    if old.disk_gib != new.disk_gib {
        what.push(Resize::Disk {
            from: old.disk_gib,
            to: new.disk_gib,
        });
    }
    what
}

/// A host the last apply did not finish is finished in place (design §6: a re-run converges).
fn repair_cause(r: &Host) -> Option<UpdateCause> {
    match r.state {
        Some(State::Running) | None => None,
        Some(s) => Some(UpdateCause::Repair(s)),
    }
}

fn update_causes(d: &DesiredHost, r: &Host) -> Vec<UpdateCause> {
    let mut out = Vec::new();
    if r.tags != d.tags {
        out.push(UpdateCause::TagsChanged);
    }
    for key in changed_keys(&r.properties, &d.properties) {
        out.push(UpdateCause::PropertyChanged(key));
    }
    if r.roles != d.puppet_roles {
        out.push(UpdateCause::RolesChanged);
    }
    out
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
        cpu: r.cpu.unwrap_or_default(),
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
        cpu_overcommit: (!m.overcommit_cpu.is_none()).then_some(m.overcommit_cpu),
        labels: m.labels.clone(),
        driver: m.driver.clone(),
        connect: m.connect.clone(),
    }
}

fn recorded_machine_state(r: &Host) -> MachineState {
    MachineState {
        name: r.name.clone(),
        cpu: r.cpu.unwrap_or_default(),
        memory_mib: r.memory_mib.unwrap_or(0),
        disk_gib: r.disk_gib.unwrap_or(0),
        cpu_overcommit: r.cpu_overcommit.filter(|o| !o.is_none()),
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
