//! Candidate indexes and machine selection for one constructive pass, so that a host looks at a
//! few machines instead of all of them.
//!
//! - pack: machines in use sit in one ordered set per driver keyed by their free resources summed
//!   over the dimensions (each relative to the largest machine). A machine with less than the
//!   host's size in that sum cannot fit it, and the first machine from there up that passes the
//!   stages is the best fit (least slack left). Only when no machine in use fits does the host
//!   look at empty machines, per shape (driver and capacity), in name order.
//! - spread: one ordered set per driver keyed by load; the first machine that passes wins.
//!
//! Rejections are permanent within a pass (see [`super::stages`]), so each group of identical
//! hosts remembers the machines that rejected it in a bitset and never checks them again, and its
//! cursor over empty machines never moves back.

use super::fleet::{Fleet, Vec3};
use super::model::Strategy;
use super::score;
use super::stages::{feasible, Group};
use std::collections::{BTreeMap, BTreeSet};

/// Ordering key of a machine in a group's candidate set: (primary, secondary, machine id).
type Key = (u64, u64, u32);

pub(crate) struct Selector {
    reference: Vec3,
    is_open: Vec<bool>,
    shape_of: Vec<u32>,
    /// (driver, capacity) per shape id.
    shapes: Vec<(u32, Vec3)>,
    empties: Vec<BTreeSet<u32>>,
    /// Groups whose candidate set holds each machine (may hold stale entries, dropped lazily).
    members: Vec<Vec<u32>>,
    groups: Vec<GroupIndex>,
    /// Feasibility checks made, the unit the improvement budget is counted in.
    pub work: u64,
}

struct GroupIndex {
    spread: bool,
    driver: u32,
    /// Hosts of the group not yet placed in this pass; an exhausted group drops out of updates.
    remaining: u32,
    /// pack: machines in use by free resources; spread: all machines of the driver by load.
    set: BTreeSet<Key>,
    rejected: Vec<u64>,
    /// pack: shapes this group fits in, with the lowest id of an empty machine not yet rejected.
    cursors: Option<Vec<(u32, u32)>>,
}

impl GroupIndex {
    fn is_rejected(&self, m: u32) -> bool {
        self.rejected
            .get(m as usize / 64)
            .is_some_and(|w| w & (1 << (m % 64)) != 0)
    }

    fn reject(&mut self, m: u32) {
        let i = m as usize / 64;
        if self.rejected.len() <= i {
            self.rejected.resize(i + 1, 0);
        }
        self.rejected[i] |= 1 << (m % 64);
    }
}

impl Selector {
    /// Indexes for `groups`, of which `remaining[g]` hosts are to be placed.
    pub fn new(fleet: &Fleet, groups: &[Group], remaining: &[u32]) -> Selector {
        let machines = &fleet.statics.machines;
        let mut shape_ids: BTreeMap<(u32, Vec3), u32> = BTreeMap::new();
        for m in machines {
            let next = shape_ids.len() as u32;
            shape_ids.entry((m.driver, m.cap)).or_insert(next);
        }
        let mut shapes = vec![(0, [0; 3]); shape_ids.len()];
        for (&k, &id) in &shape_ids {
            shapes[id as usize] = k;
        }
        let mut sel = Selector {
            reference: fleet.statics.reference,
            is_open: vec![false; machines.len()],
            shape_of: machines
                .iter()
                .map(|m| shape_ids[&(m.driver, m.cap)])
                .collect(),
            empties: vec![BTreeSet::new(); shapes.len()],
            shapes,
            members: vec![Vec::new(); machines.len()],
            groups: groups
                .iter()
                .zip(remaining)
                .map(|(g, &remaining)| GroupIndex {
                    spread: fleet.classes[g.class as usize].strategy == Strategy::Spread,
                    driver: g.driver,
                    remaining,
                    set: BTreeSet::new(),
                    rejected: Vec::new(),
                    cursors: None,
                })
                .collect(),
            work: 0,
        };
        let mut by_driver: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for (g, index) in sel.groups.iter().enumerate() {
            if index.remaining > 0 {
                by_driver.entry(index.driver).or_default().push(g as u32);
            }
        }
        for (id, m) in machines.iter().enumerate() {
            let id = id as u32;
            let open = fleet.hosts_on[id as usize] > 0;
            sel.is_open[id as usize] = open;
            if !open {
                sel.empties[sel.shape_of[id as usize] as usize].insert(id);
            }
            for &g in by_driver
                .get(&m.driver)
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                if open || sel.groups[g as usize].spread {
                    let key = sel.key(fleet, g, id);
                    sel.groups[g as usize].set.insert(key);
                    sel.members[id as usize].push(g);
                }
            }
        }
        sel
    }

    fn key(&self, fleet: &Fleet, g: u32, m: u32) -> Key {
        if self.groups[g as usize].spread {
            let (a, b) = score::load(
                fleet.statics.machines[m as usize].cap,
                fleet.used[m as usize],
            );
            (a, b, m)
        } else {
            (score::weight(self.reference, fleet.free(m)) as u64, 0, m)
        }
    }

    /// The machine a host of group `g` should go on, or `None` when no machine passes the stages.
    pub fn choose(&mut self, fleet: &Fleet, g: usize, group: &Group) -> Option<u32> {
        let index = &mut self.groups[g];
        // pack: a machine with less free in total than the host needs cannot fit it, and the
        // first one from there up that passes is the best fit. spread: least loaded first.
        let start = if index.spread {
            (0, 0, 0)
        } else {
            (score::weight(self.reference, group.size) as u64, 0, 0)
        };
        let mut found = None;
        let mut dropped = Vec::new();
        for &key in index.set.range(start..) {
            self.work += 1;
            if feasible(fleet, group, key.2).is_ok() {
                found = Some(key.2);
                break;
            }
            dropped.push(key);
        }
        for key in dropped {
            index.set.remove(&key);
            index.reject(key.2);
        }
        if found.is_some() || index.spread {
            return found;
        }
        let shapes = &self.shapes;
        let cursors = index.cursors.get_or_insert_with(|| {
            shapes
                .iter()
                .enumerate()
                .filter(|(_, (driver, cap))| {
                    *driver == group.driver && (0..3).all(|d| cap[d] >= group.size[d])
                })
                .map(|(s, _)| (s as u32, 0))
                .collect()
        });
        // The empty machine leaving the least slack, first by name within a shape.
        let mut best: Option<(u128, u32)> = None;
        for (shape, cursor) in cursors.iter_mut() {
            let mut found = None;
            for &m in self.empties[*shape as usize].range(*cursor..) {
                self.work += 1;
                if feasible(fleet, group, m).is_ok() {
                    found = Some(m);
                    break;
                }
            }
            match found {
                Some(m) => {
                    *cursor = m;
                    let cap = self.shapes[*shape as usize].1;
                    let slack = score::weight(self.reference, cap)
                        - score::weight(self.reference, group.size);
                    if best.is_none() || Some((slack, m)) < best {
                        best = Some((slack, m));
                    }
                }
                None => *cursor = u32::MAX,
            }
        }
        best.map(|(_, m)| m)
    }

    /// Record that a host of group `g` went on machine `m`, in the fleet and in the indexes.
    pub fn put(&mut self, fleet: &mut Fleet, g: usize, group: &Group, m: u32) {
        let mi = m as usize;
        let old: Vec<(u32, Key)> = self.members[mi]
            .iter()
            .map(|&h| (h, self.key(fleet, h, m)))
            .collect();
        fleet.put(group.class, group.size, m);
        self.groups[g].remaining = self.groups[g].remaining.saturating_sub(1);
        let mut members = Vec::with_capacity(old.len());
        for (h, old_key) in old {
            let index = &mut self.groups[h as usize];
            index.set.remove(&old_key);
            if index.remaining > 0 && !index.is_rejected(m) {
                members.push(h);
            }
        }
        if !self.is_open[mi] {
            self.is_open[mi] = true;
            self.empties[self.shape_of[mi] as usize].remove(&m);
            // Newly in use: every live pack group of the driver may now consider it.
            let driver = fleet.statics.machines[mi].driver;
            for (h, index) in self.groups.iter().enumerate() {
                if !index.spread
                    && index.driver == driver
                    && index.remaining > 0
                    && !index.is_rejected(m)
                {
                    members.push(h as u32);
                }
            }
            members.sort_unstable();
            members.dedup();
        }
        for &h in &members {
            let key = self.key(fleet, h, m);
            self.groups[h as usize].set.insert(key);
        }
        self.members[mi] = members;
    }
}
