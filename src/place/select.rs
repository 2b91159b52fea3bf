//! Candidate indexes and machine selection for one constructive pass, so that a host looks at a
//! few machines instead of all of them.
//!
//! - pack: a group of identical hosts keeps its own list of opened machines (machines holding at
//!   least one host) and scans it for the best fit, dropping a machine for good after its first
//!   rejection (see [`super::stages`]: rejections are permanent within a pass). Only when no opened
//!   machine fits does it look at empty machines, per machine shape (driver and capacity), in name
//!   order from a cursor that likewise never moves back.
//! - spread: one ordered set per driver keyed by load; the first machine that passes the stages
//!   wins, machines a group has been rejected by are skipped without re-checking.

use super::fleet::{Fleet, Vec3};
use super::model::Strategy;
use super::score::{self, Fit};
use super::stages::{feasible, Group};
use std::collections::{BTreeMap, BTreeSet, HashSet};

type LoadKey = ((u64, u64), u32);

pub(crate) struct Selector {
    fit: Fit,
    opened: Vec<u32>,
    is_open: Vec<bool>,
    shape_of: Vec<u32>,
    /// (driver, capacity) per shape id.
    shapes: Vec<(u32, Vec3)>,
    empties: Vec<BTreeSet<u32>>,
    load_key: Vec<(u64, u64)>,
    by_load: BTreeMap<u32, BTreeSet<LoadKey>>,
    groups: Vec<GroupIndex>,
    /// Feasibility checks made, the unit the improvement budget is counted in.
    pub work: u64,
}

#[derive(Default)]
struct GroupIndex {
    open: Vec<u32>,
    seen: usize,
    /// Shapes this group fits in, with the lowest id of an empty machine not yet rejected.
    cursors: Option<Vec<(u32, u32)>>,
    rejected: HashSet<u32>,
}

impl Selector {
    pub fn new(fleet: &Fleet, groups: usize, fit: Fit) -> Selector {
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
            fit,
            opened: Vec::new(),
            is_open: vec![false; machines.len()],
            shape_of: machines
                .iter()
                .map(|m| shape_ids[&(m.driver, m.cap)])
                .collect(),
            empties: vec![BTreeSet::new(); shapes.len()],
            shapes,
            load_key: Vec::with_capacity(machines.len()),
            by_load: BTreeMap::new(),
            groups: (0..groups).map(|_| GroupIndex::default()).collect(),
            work: 0,
        };
        for (id, m) in machines.iter().enumerate() {
            let id = id as u32;
            if fleet.hosts_on[id as usize] > 0 {
                sel.is_open[id as usize] = true;
                sel.opened.push(id);
            } else {
                sel.empties[sel.shape_of[id as usize] as usize].insert(id);
            }
            let key = score::load(m.cap, fleet.used[id as usize]);
            sel.load_key.push(key);
            sel.by_load.entry(m.driver).or_default().insert((key, id));
        }
        sel
    }

    /// The machine a host of group `g` should go on, or `None` when no machine passes the stages.
    pub fn choose(&mut self, fleet: &Fleet, g: usize, group: &Group) -> Option<u32> {
        match fleet.classes[group.class as usize].strategy {
            Strategy::Pack => self.choose_pack(fleet, g, group),
            Strategy::Spread => self.choose_spread(fleet, g, group),
        }
    }

    fn choose_pack(&mut self, fleet: &Fleet, g: usize, group: &Group) -> Option<u32> {
        let machines = &fleet.statics.machines;
        let index = &mut self.groups[g];
        for &m in &self.opened[index.seen..] {
            if machines[m as usize].driver == group.driver {
                index.open.push(m);
            }
        }
        index.seen = self.opened.len();
        let mut best: Option<(u128, u32)> = None;
        let mut i = 0;
        while i < index.open.len() {
            let m = index.open[i];
            self.work += 1;
            if feasible(fleet, group, m).is_err() {
                index.open.swap_remove(i);
                continue;
            }
            let s = score::pack(
                self.fit,
                machines[m as usize].cap,
                fleet.free(m),
                group.size,
            );
            if best.is_none() || Some((s, m)) < best {
                best = Some((s, m));
            }
            i += 1;
        }
        if let Some((_, m)) = best {
            return Some(m);
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
                    let s = score::pack(self.fit, cap, cap, group.size);
                    if best.is_none() || Some((s, m)) < best {
                        best = Some((s, m));
                    }
                }
                None => *cursor = u32::MAX,
            }
        }
        best.map(|(_, m)| m)
    }

    fn choose_spread(&mut self, fleet: &Fleet, g: usize, group: &Group) -> Option<u32> {
        let index = &mut self.groups[g];
        let set = self.by_load.get(&group.driver)?;
        for &(_, m) in set {
            if index.rejected.contains(&m) {
                continue;
            }
            self.work += 1;
            if feasible(fleet, group, m).is_ok() {
                return Some(m);
            }
            index.rejected.insert(m);
        }
        None
    }

    /// Record that a host of `group` went on machine `m`, in the fleet and in the indexes.
    pub fn put(&mut self, fleet: &mut Fleet, group: &Group, m: u32) {
        fleet.put(group.class, group.size, m);
        let mi = m as usize;
        if !self.is_open[mi] {
            self.is_open[mi] = true;
            self.opened.push(m);
            self.empties[self.shape_of[mi] as usize].remove(&m);
        }
        let info = &fleet.statics.machines[mi];
        let key = score::load(info.cap, fleet.used[mi]);
        if let Some(set) = self.by_load.get_mut(&info.driver) {
            set.remove(&(self.load_key[mi], m));
            set.insert((key, m));
        }
        self.load_key[mi] = key;
    }
}
