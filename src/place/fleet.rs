//! The fleet as the engine sees it while placing: machines by dense id (in name order, so that
//! "lowest id" is "first by name"), interned drivers, label keys, classes and rules, and the
//! running totals every stage reads — resources used per machine and hosts of a class per label
//! value. Existing hosts are loaded once and never leave.

use super::model::{Problem, Strategy};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A hash map with a fast non-keyed hash (the Fx hash of rustc). Keys are names from the
/// operator's own inventory, not from an adversary, and building the fleet of a large data centre
/// for a one-host plan must take milliseconds.
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

#[derive(Default, Clone, Copy)]
pub(crate) struct Fx(u64);

impl Fx {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        // Fx alone leaves the low bits (the bucket index) depending on few input bits; the
        // murmur3 finaliser spreads every bit over all of them.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// Resources in engine order: cpu, memory (MiB), disk (GiB).
pub(crate) type Vec3 = [u64; 3];

pub(crate) const DIM_NAMES: [&str; 3] = ["cpu", "memory", "disk"];

/// The pseudo label key under which every machine is its own value.
pub(crate) const MACHINE_KEY: &str = "machine";

pub(crate) struct MachineInfo<'a> {
    pub name: &'a str,
    pub cap: Vec3,
    pub driver: u32,
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
    pub statics: &'p Statics<'p>,
    pub used: Vec<Vec3>,
    /// Hosts (existing and new) on each machine.
    pub hosts_on: Vec<u32>,
    pub classes: Vec<Class>,
    /// Existing hosts per class id, wherever they are.
    pub existing_in_class: Vec<u32>,
}

pub(crate) struct Statics<'a> {
    /// Value id per machine and label key id (`keys.len()` per machine, in one block so that
    /// counting a host touches one cache line); `None` when the machine lacks the label.
    values: Vec<Option<u32>>,
    pub machines: Vec<MachineInfo<'a>>,
    pub machine_ids: FastMap<&'a str, u32>,
    pub drivers: Vec<String>,
    pub driver_ids: FastMap<String, u32>,
    pub keys: Vec<String>,
    /// Classes that have rules or requests; other classes of existing hosts need no id.
    pub class_ids: FastMap<&'a str, u32>,
    /// Largest capacity per dimension, used to compare host sizes across dimensions.
    pub reference: Vec3,
}

impl<'a> Statics<'a> {
    /// The value of label key `key` on machine `m`.
    pub fn value(&self, m: u32, key: u32) -> Option<u32> {
        self.values[m as usize * self.keys.len() + key as usize]
    }

    pub fn build(problem: &'a Problem) -> (Statics<'a>, Vec<Class>) {
        // Machines in name order; a duplicate name is ambiguous and the first definition wins.
        // Inventories usually arrive sorted, which is checked in one pass before sorting.
        let mut named: Vec<&super::model::Machine> = problem.machines.iter().collect();
        if !named.windows(2).all(|w| w[0].name < w[1].name) {
            named.sort_by(|a, b| a.name.cmp(&b.name));
            named.dedup_by(|b, a| a.name == b.name);
        }
        let mut keys: BTreeSet<&str> = BTreeSet::new();
        for r in problem.rules.values() {
            keys.extend(r.max_per.keys().map(String::as_str));
        }
        let keys: Vec<String> = keys.into_iter().map(str::to_string).collect();
        let (values, value_counts) = label_values(&named, &keys);
        // Machines of one inventory mostly share a driver: compare with the last one seen before
        // hashing.
        let mut seen: HashSet<&str, BuildHasherDefault<Fx>> = HashSet::default();
        let mut last = None;
        for d in named
            .iter()
            .map(|m| m.driver.as_str())
            .chain(problem.requests.iter().map(|r| r.driver.as_str()))
        {
            if last != Some(d) {
                seen.insert(d);
                last = Some(d);
            }
        }
        let mut drivers: Vec<&str> = seen.into_iter().collect();
        drivers.sort_unstable();
        let driver_ids: FastMap<String, u32> = drivers
            .iter()
            .enumerate()
            .map(|(i, d)| (d.to_string(), i as u32))
            .collect();
        let drivers: Vec<String> = drivers.into_iter().map(str::to_string).collect();
        let mut reference = [1u64; 3];
        let mut last: Option<(&str, u32)> = None;
        let machines: Vec<MachineInfo> = named
            .iter()
            .map(|m| {
                let cap = m.capacity.vector();
                for d in 0..3 {
                    reference[d] = reference[d].max(cap[d]);
                }
                let driver = match last {
                    Some((name, id)) if name == m.driver => id,
                    _ => {
                        let id = driver_ids[m.driver.as_str()];
                        last = Some((m.driver.as_str(), id));
                        id
                    }
                };
                MachineInfo {
                    name: m.name.as_str(),
                    cap,
                    driver,
                }
            })
            .collect();
        let (class_ids, classes) = classes(problem, &keys, &value_counts);
        let machine_ids: FastMap<&str, u32> = machines
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name, i as u32))
            .collect();
        let statics = Statics {
            values,
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

/// The value id of every (machine, label key) pair, machine-major (`None`: the machine has no
/// such label), and the number of distinct values per key. Ids are in value order.
fn label_values(
    named: &[&super::model::Machine],
    keys: &[String],
) -> (Vec<Option<u32>>, Vec<usize>) {
    // Label values get ids in first-seen order in one pass over the machines, then are
    // renumbered in value order: one label lookup and one hash per machine and key.
    let mut value_ids: Vec<FastMap<&str, u32>> = vec![FastMap::default(); keys.len()];
    let mut values: Vec<Option<u32>> = Vec::with_capacity(named.len() * keys.len());
    for (id, m) in named.iter().enumerate() {
        for (k, key) in keys.iter().enumerate() {
            values.push(if key == MACHINE_KEY {
                Some(id as u32)
            } else {
                m.labels.get(key).map(|v| {
                    let next = value_ids[k].len() as u32;
                    *value_ids[k].entry(v.as_str()).or_insert(next)
                })
            });
        }
    }
    let renumber: Vec<Vec<u32>> = value_ids
        .iter()
        .map(|ids| {
            let mut sorted: Vec<(&str, u32)> = ids.iter().map(|(v, &i)| (*v, i)).collect();
            sorted.sort_unstable();
            let mut to = vec![0; sorted.len()];
            for (rank, (_, first_seen)) in sorted.into_iter().enumerate() {
                to[first_seen as usize] = rank as u32;
            }
            to
        })
        .collect();
    for (i, v) in values.iter_mut().enumerate() {
        let k = i % keys.len().max(1);
        if keys[k] != MACHINE_KEY {
            *v = v.map(|id| renumber[k][id as usize]);
        }
    }
    let value_counts = keys
        .iter()
        .enumerate()
        .map(|(k, key)| {
            if key == MACHINE_KEY {
                named.len()
            } else {
                value_ids[k].len()
            }
        })
        .collect();
    (values, value_counts)
}

/// Every class named by a rule or a request, in name order, with its rules' counters.
fn classes<'a>(
    problem: &'a Problem,
    keys: &[String],
    value_counts: &[usize],
) -> (FastMap<&'a str, u32>, Vec<Class>) {
    let key_ids: FastMap<&str, u32> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i as u32))
        .collect();
    // Thousands of hosts share a few class names: dedupe by hash, then order.
    let mut class_names: Vec<&str> = problem
        .rules
        .keys()
        .map(String::as_str)
        .chain(problem.requests.iter().map(|r| r.class.as_str()))
        .collect::<HashSet<&str, BuildHasherDefault<Fx>>>()
        .into_iter()
        .collect();
    class_names.sort_unstable();
    let mut class_ids = FastMap::default();
    let mut classes = Vec::new();
    for (i, name) in class_names.into_iter().enumerate() {
        class_ids.insert(name, i as u32);
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
                        counts: vec![0; value_counts[key as usize]],
                    }
                })
                .collect(),
        });
    }
    (class_ids, classes)
}

impl<'p> Fleet<'p> {
    /// The fleet with every existing host on a known machine counted in.
    pub fn new(problem: &Problem, statics: &'p Statics<'p>, classes: Vec<Class>) -> Fleet<'p> {
        let n = statics.machines.len();
        let mut fleet = Fleet {
            statics,
            used: vec![[0; 3]; n],
            hosts_on: vec![0; n],
            existing_in_class: vec![0; classes.len()],
            classes,
        };
        // Hosts listed by name come grouped by class: reuse the last lookup while it matches.
        let mut last: Option<(&str, Option<u32>)> = None;
        for e in &problem.existing {
            let class = match last {
                Some((name, id)) if name == e.class => id,
                _ => {
                    let id = statics.class_ids.get(e.class.as_str()).copied();
                    last = Some((e.class.as_str(), id));
                    id
                }
            };
            if let Some(c) = class {
                fleet.existing_in_class[c as usize] += 1;
            }
            // A host on an unknown machine cannot consume anything we can see; it still exists.
            let Some(&m) = statics.machine_ids.get(e.machine.as_str()) else {
                continue;
            };
            match class {
                Some(c) => fleet.put(c, e.size.vector(), m),
                // A class without rules or requests only takes up room.
                None => fleet.occupy(e.size.vector(), m),
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

    fn occupy(&mut self, size: Vec3, m: u32) {
        // Saturating: absurd sizes from an inventory must not panic; a machine at u64::MAX is
        // simply full.
        let used = &mut self.used[m as usize];
        for d in 0..3 {
            used[d] = used[d].saturating_add(size[d]);
        }
        self.hosts_on[m as usize] += 1;
    }

    pub fn put(&mut self, class: u32, size: Vec3, m: u32) {
        self.occupy(size, m);
        let statics = self.statics;
        for rule in &mut self.classes[class as usize].rules {
            if let Some(v) = statics.value(m, rule.key) {
                rule.counts[v as usize] += 1;
            }
        }
    }

    pub fn take(&mut self, class: u32, size: Vec3, m: u32) {
        let used = &mut self.used[m as usize];
        for d in 0..3 {
            used[d] = used[d].saturating_sub(size[d]);
        }
        self.hosts_on[m as usize] -= 1;
        let statics = self.statics;
        for rule in &mut self.classes[class as usize].rules {
            if let Some(v) = statics.value(m, rule.key) {
                rule.counts[v as usize] -= 1;
            }
        }
    }
}
