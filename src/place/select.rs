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
//! A machine's key depends on the machine alone, not on the host being placed, so the groups of a
//! driver and strategy share one set and placing a host re-keys one machine in at most two sets
//! (re-keying it in a set per group made a pass quadratic with thousands of classes).
//! Rejections are permanent within a pass (see [`super::stages`]), so each group of identical
//! hosts remembers the machines that rejected it in a bitset and never checks them again, and its
//! cursor over empty machines never moves back. A group that has piled up many rejections (a
//! class held back by a rack or switch rule) would skip them on every host, so it switches to a
//! private set without them, which every placement then keeps up to date: few groups need one.

use super::fleet::{Fleet, Vec3};
use super::model::Strategy;
use super::score;
use super::stages::{feasible, Group};
use std::collections::{BTreeMap, BTreeSet};

/// Ordering key of a machine in a candidate set: (primary, secondary, machine id).
type Key = (u64, u64, u32);

pub(crate) struct Selector {
    reference: Vec3,
    is_open: Vec<bool>,
    shape_of: Vec<u32>,
    /// (driver, capacity) per shape id.
    shapes: Vec<(u32, Vec3)>,
    empties: Vec<BTreeSet<u32>>,
    /// Per driver with a pack group to place: the machines in use, by free resources.
    pack: BTreeMap<u32, BTreeSet<Key>>,
    /// Per driver with a spread group to place: all its machines, by load.
    spread: BTreeMap<u32, BTreeSet<Key>>,
    groups: Vec<GroupIndex>,
    /// Groups with a private candidate set and hosts left to place.
    private: Vec<u32>,
    /// Feasibility checks made, the unit the improvement budget is counted in.
    pub work: u64,
}

/// Rejections after which a group keeps a private candidate set.
const PRIVATE_AFTER: u32 = 32;

struct GroupIndex {
    spread: bool,
    driver: u32,
    /// Hosts of the group not yet placed in this pass.
    remaining: u32,
    rejected: Vec<u64>,
    rejections: u32,
    /// The shared set without the machines that rejected this group, once they are many.
    own: Option<BTreeSet<Key>>,
    /// pack: shapes this group fits in, with the lowest id of an empty machine not yet rejected.
    cursors: Option<Vec<(u32, u32)>>,
}

fn is_set(bits: &[u64], m: u32) -> bool {
    bits.get(m as usize / 64)
        .is_some_and(|w| w & (1 << (m % 64)) != 0)
}

fn set(bits: &mut Vec<u64>, m: u32) {
    let i = m as usize / 64;
    if bits.len() <= i {
        bits.resize(i + 1, 0);
    }
    bits[i] |= 1 << (m % 64);
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
        let groups: Vec<GroupIndex> = groups
            .iter()
            .zip(remaining)
            .map(|(g, &remaining)| GroupIndex {
                spread: fleet.classes[g.class as usize].strategy == Strategy::Spread,
                driver: g.driver,
                remaining,
                rejected: Vec::new(),
                rejections: 0,
                own: None,
                cursors: None,
            })
            .collect();
        let mut pack: BTreeMap<u32, BTreeSet<Key>> = BTreeMap::new();
        let mut spread: BTreeMap<u32, BTreeSet<Key>> = BTreeMap::new();
        for index in groups.iter().filter(|i| i.remaining > 0) {
            let sets = if index.spread { &mut spread } else { &mut pack };
            sets.entry(index.driver).or_default();
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
            pack,
            spread,
            groups,
            private: Vec::new(),
            work: 0,
        };
        for (id, m) in machines.iter().enumerate() {
            let id = id as u32;
            let open = fleet.hosts_on[id as usize] > 0;
            sel.is_open[id as usize] = open;
            if !open {
                sel.empties[sel.shape_of[id as usize] as usize].insert(id);
            }
            let pack_key = sel.pack_key(fleet, id);
            if let (true, Some(set)) = (open, sel.pack.get_mut(&m.driver)) {
                set.insert(pack_key);
            }
            if let Some(set) = sel.spread.get_mut(&m.driver) {
                set.insert(spread_key(fleet, id));
            }
        }
        sel
    }

    fn pack_key(&self, fleet: &Fleet, m: u32) -> Key {
        (score::weight(self.reference, fleet.free(m)) as u64, 0, m)
    }

    /// The machine a host of group `g` should go on, or `None` when no machine passes the stages.
    pub fn choose(&mut self, fleet: &Fleet, g: usize, group: &Group) -> Option<u32> {
        let Selector {
            groups,
            pack,
            spread,
            private,
            work,
            reference,
            ..
        } = self;
        let index = &mut groups[g];
        // pack: a machine with less free in total than the host needs cannot fit it, and the
        // first one from there up that passes is the best fit. spread: least loaded first.
        let (sets, start) = if index.spread {
            (spread, (0, 0, 0))
        } else {
            (pack, (score::weight(*reference, group.size) as u64, 0, 0))
        };
        let shared = sets.get(&index.driver);
        let GroupIndex {
            rejected,
            rejections,
            own,
            remaining,
            ..
        } = index;
        let mut found = None;
        match own {
            Some(own) => {
                let mut dropped = Vec::new();
                for &key in own.range(start..) {
                    *work += 1;
                    if feasible(fleet, group, key.2).is_ok() {
                        found = Some(key.2);
                        break;
                    }
                    dropped.push(key);
                }
                for key in dropped {
                    own.remove(&key);
                    set(rejected, key.2);
                }
            }
            None => {
                for &(_, _, m) in shared.into_iter().flat_map(|s| s.range(start..)) {
                    if is_set(rejected, m) {
                        continue;
                    }
                    *work += 1;
                    if feasible(fleet, group, m).is_ok() {
                        found = Some(m);
                        break;
                    }
                    set(rejected, m);
                    *rejections += 1;
                }
                // Worth it only when more hosts of the group are to come.
                if *rejections > PRIVATE_AFTER && *remaining > 1 {
                    *own = Some(
                        shared
                            .into_iter()
                            .flatten()
                            .filter(|k| !is_set(rejected, k.2))
                            .copied()
                            .collect(),
                    );
                    private.push(g as u32);
                }
            }
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
        let driver = fleet.statics.machines[mi].driver;
        let old_pack = self.pack_key(fleet, m);
        let old_spread = spread_key(fleet, m);
        fleet.put(group.class, group.size, m);
        let was_open = std::mem::replace(&mut self.is_open[mi], true);
        if !was_open {
            self.empties[self.shape_of[mi] as usize].remove(&m);
        }
        let new_pack = self.pack_key(fleet, m);
        if let Some(set) = self.pack.get_mut(&driver) {
            if was_open {
                set.remove(&old_pack);
            }
            set.insert(new_pack);
        }
        let new_spread = spread_key(fleet, m);
        if let Some(set) = self.spread.get_mut(&driver) {
            set.remove(&old_spread);
            set.insert(new_spread);
        }
        let index = &mut self.groups[g];
        index.remaining = index.remaining.saturating_sub(1);
        if index.remaining == 0 && index.own.is_some() {
            self.private.retain(|&h| h as usize != g);
        }
        for &h in &self.private {
            let index = &mut self.groups[h as usize];
            if index.driver != driver || is_set(&index.rejected, m) {
                continue;
            }
            let Some(own) = index.own.as_mut() else {
                continue;
            };
            let (old, new) = if index.spread {
                (old_spread, new_spread)
            } else {
                (old_pack, new_pack)
            };
            own.remove(&old);
            own.insert(new);
        }
    }
}

fn spread_key(fleet: &Fleet, m: u32) -> Key {
    let (a, b) = score::load(
        fleet.statics.machines[m as usize].cap,
        fleet.used[m as usize],
    );
    (a, b, m)
}
