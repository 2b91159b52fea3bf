//! The fleet as the engine sees it while placing: machines by dense id (in name order, so that
//! "lowest id" is "first by name"), interned drivers, label keys, classes and rules, and the
//! running totals every stage reads — resources used per machine and hosts of a class per label
//! value. Existing hosts are loaded once and never leave.

use super::model::{Problem, Strategy};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Resources in engine order: cpu, memory (MiB), disk (GiB).
pub(crate) type Vec3 = [u64; 3];

pub(crate) const DIM_NAMES: [&str; 3] = ["cpu", "memory", "disk"];

/// The pseudo label key under which every machine is its own value.
pub(crate) const MACHINE_KEY: &str = "machine";

pub(crate) struct MachineInfo {
    pub name: String,
    pub cap: Vec3,
    pub driver: u32,
    /// Value id per label key id; `None` when the machine lacks the label.
    pub values: Vec<Option<u32>>,
}

/// One `max_per` rule of a class, with its running count per value of the key.
#[derive(Clone)]
pub(crate) struct Rule {
    pub key: u32,
    pub limit: u32,
    pub counts: Vec<u32>,
}

#[derive(Clone)]
pub(crate) struct Class {
    pub name: String,
    pub strategy: Strategy,
    pub rules: Vec<Rule>,
}

/// The static part of the fleet (shared by every pass) and the state that placing changes.
#[derive(Clone)]
pub(crate) struct Fleet<'p> {
    pub statics: &'p Statics,
    pub used: Vec<Vec3>,
    /// Hosts (existing and new) on each machine.
    pub hosts_on: Vec<u32>,
    pub classes: Vec<Class>,
}

pub(crate) struct Statics {
    pub machines: Vec<MachineInfo>,
    pub machine_ids: HashMap<String, u32>,
    pub drivers: Vec<String>,
    pub driver_ids: HashMap<String, u32>,
    pub keys: Vec<String>,
    pub class_ids: HashMap<String, u32>,
    /// Largest capacity per dimension, used to compare host sizes across dimensions.
    pub reference: Vec3,
}

impl Statics {
    pub fn build(problem: &Problem) -> (Statics, Vec<Class>) {
        let mut named: BTreeMap<&str, &super::model::Machine> = BTreeMap::new();
        for m in &problem.machines {
            // A duplicate machine name is ambiguous; the first definition wins.
            named.entry(m.name.as_str()).or_insert(m);
        }
        let mut keys: BTreeSet<&str> = BTreeSet::new();
        for r in problem.rules.values() {
            keys.extend(r.max_per.keys().map(String::as_str));
        }
        let keys: Vec<String> = keys.into_iter().map(str::to_string).collect();
        let mut value_ids: Vec<BTreeMap<&str, u32>> = vec![BTreeMap::new(); keys.len()];
        for m in named.values() {
            for (k, key) in keys.iter().enumerate() {
                if key != MACHINE_KEY {
                    if let Some(v) = m.labels.get(key) {
                        value_ids[k].insert(v.as_str(), 0);
                    }
                }
            }
        }
        for ids in value_ids.iter_mut() {
            for (i, id) in ids.values_mut().enumerate() {
                *id = i as u32;
            }
        }
        let mut drivers: BTreeSet<&str> = named.values().map(|m| m.driver.as_str()).collect();
        drivers.extend(problem.requests.iter().map(|r| r.driver.as_str()));
        let drivers: Vec<String> = drivers.into_iter().map(str::to_string).collect();
        let driver_ids: HashMap<String, u32> = drivers
            .iter()
            .enumerate()
            .map(|(i, d)| (d.clone(), i as u32))
            .collect();
        let mut reference = [1u64; 3];
        let machines: Vec<MachineInfo> = named
            .values()
            .enumerate()
            .map(|(id, m)| {
                let cap = m.capacity.vector();
                for d in 0..3 {
                    reference[d] = reference[d].max(cap[d]);
                }
                let values = keys
                    .iter()
                    .enumerate()
                    .map(|(k, key)| {
                        if key == MACHINE_KEY {
                            Some(id as u32)
                        } else {
                            m.labels
                                .get(key)
                                .and_then(|v| value_ids[k].get(v.as_str()).copied())
                        }
                    })
                    .collect();
                MachineInfo {
                    name: m.name.clone(),
                    cap,
                    driver: driver_ids[&m.driver],
                    values,
                }
            })
            .collect();
        let values: Vec<Vec<String>> = keys
            .iter()
            .enumerate()
            .map(|(k, key)| {
                if key == MACHINE_KEY {
                    machines.iter().map(|m| m.name.clone()).collect()
                } else {
                    value_ids[k].keys().map(|v| v.to_string()).collect()
                }
            })
            .collect();
        let key_ids: HashMap<&str, u32> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i as u32))
            .collect();
        let mut class_names: BTreeSet<&str> = problem.rules.keys().map(String::as_str).collect();
        class_names.extend(problem.requests.iter().map(|r| r.class.as_str()));
        class_names.extend(problem.existing.iter().map(|e| e.class.as_str()));
        let mut class_ids = HashMap::new();
        let mut classes = Vec::new();
        for (i, name) in class_names.into_iter().enumerate() {
            class_ids.insert(name.to_string(), i as u32);
            let rules = problem.rules.get(name).cloned().unwrap_or_default();
            classes.push(Class {
                name: name.to_string(),
                strategy: rules.strategy,
                rules: rules
                    .max_per
                    .iter()
                    .map(|(key, &limit)| {
                        let key = key_ids[key.as_str()];
                        Rule {
                            key,
                            limit,
                            counts: vec![0; values[key as usize].len()],
                        }
                    })
                    .collect(),
            });
        }
        let machine_ids = machines
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.clone(), i as u32))
            .collect();
        let statics = Statics {
            machines,
            machine_ids,
            drivers,
            driver_ids,
            keys,
            class_ids,
            reference,
        };
        (statics, classes)
    }
}

impl<'p> Fleet<'p> {
    /// The fleet with every existing host on a known machine counted in.
    pub fn new(problem: &Problem, statics: &'p Statics, classes: Vec<Class>) -> Fleet<'p> {
        let n = statics.machines.len();
        let mut fleet = Fleet {
            statics,
            used: vec![[0; 3]; n],
            hosts_on: vec![0; n],
            classes,
        };
        for e in &problem.existing {
            // A host on an unknown machine cannot consume anything we can see; it still exists.
            if let Some(&m) = statics.machine_ids.get(&e.machine) {
                let class = statics.class_ids[&e.class];
                fleet.put(class, e.size.vector(), m);
            }
        }
        fleet
    }

    pub fn free(&self, m: u32) -> Vec3 {
        let cap = self.statics.machines[m as usize].cap;
        let used = self.used[m as usize];
        [
            cap[0].saturating_sub(used[0]),
            cap[1].saturating_sub(used[1]),
            cap[2].saturating_sub(used[2]),
        ]
    }

    pub fn put(&mut self, class: u32, size: Vec3, m: u32) {
        let used = &mut self.used[m as usize];
        for d in 0..3 {
            used[d] += size[d];
        }
        self.hosts_on[m as usize] += 1;
        let info = &self.statics.machines[m as usize];
        for rule in &mut self.classes[class as usize].rules {
            if let Some(v) = info.values[rule.key as usize] {
                rule.counts[v as usize] += 1;
            }
        }
    }

    pub fn take(&mut self, class: u32, size: Vec3, m: u32) {
        let used = &mut self.used[m as usize];
        for d in 0..3 {
            used[d] -= size[d];
        }
        self.hosts_on[m as usize] -= 1;
        let info = &self.statics.machines[m as usize];
        for rule in &mut self.classes[class as usize].rules {
            if let Some(v) = info.values[rule.key as usize] {
                rule.counts[v as usize] -= 1;
            }
        }
    }
}
