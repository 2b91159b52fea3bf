//! The improvement phase: better packings of the new hosts than one greedy pass gives, within a
//! budget of feasibility checks so that large plans stay fast and results stay deterministic.
//!
//! 1. Portfolio: the constructive pass again under other measures of "large" and of "fit"; the
//!    best result (fewest unplaced, then fewest machines) is kept.
//! 2. Emptying machines (after consistent neighbourhood search, Buljubašić & Vasquez 2016): take
//!    the least filled machine that holds only movable new hosts, pull its hosts out, and try to
//!    fit every pulled host elsewhere — directly, or by swapping it against one or two smaller
//!    hosts on a machine, which then become the ones to re-home. A short tabu list stops hosts
//!    going straight back. When nothing is left over, one machine fewer is in use; otherwise the
//!    attempt is undone. Every move passes the same stages as the first pass, so rules hold.
//!    Existing hosts and hosts of spread classes are never moved by this phase.

use super::fleet::Fleet;
use super::model::Strategy;
use super::score::{self, Fit};
use super::stages::feasible;
use super::{construct, Hosts, Order, Solution};
use std::collections::HashMap;

const PASSES: [(Order, Fit); 3] = [
    (Order::Max, Fit::Sum),
    (Order::Sum, Fit::Squares),
    (Order::Max, Fit::Squares),
];

/// Moves an attempt to empty one machine may make before it is given up.
const MOVES_PER_ATTEMPT: u32 = 400;

/// Attempts that may fail in a row before the search stops.
const FAILURES: u32 = 3;

pub(crate) fn improve<'p>(base: &Fleet<'p>, hosts: &Hosts, best: &mut Solution<'p>, budget: u64) {
    let mut left = budget;
    let pass_cost = best.work.max(1);
    for (order, fit) in PASSES {
        if left < pass_cost {
            break;
        }
        let s = construct(base, hosts, order, fit);
        left = left.saturating_sub(s.work);
        if s.cost() < best.cost() {
            *best = s;
        }
    }
    let mut search = Search::new(hosts, best.clone(), left);
    search.run();
    *best = search.sol;
}

struct Search<'a, 'p> {
    hosts: &'a Hosts<'a>,
    sol: Solution<'p>,
    /// Movable new hosts per machine.
    bins: Vec<Vec<usize>>,
    weight: Vec<u128>,
    left: u64,
    rng: u64,
}

impl<'a, 'p> Search<'a, 'p> {
    fn new(hosts: &'a Hosts<'a>, sol: Solution<'p>, left: u64) -> Self {
        let mut bins = vec![Vec::new(); sol.fleet.hosts_on.len()];
        let mut weight = vec![0; hosts.requests.len()];
        for (i, a) in sol.assign.iter().enumerate() {
            let (Some(m), Some(g)) = (*a, hosts.group_of[i]) else {
                continue;
            };
            let group = &hosts.groups[g];
            if sol.fleet.classes[group.class as usize].strategy == Strategy::Pack {
                bins[m as usize].push(i);
            }
            let w = score::weight(hosts.reference, group.size);
            // Squared so that one big pending host weighs more than two half its size: small
            // leftovers are easier to fit.
            weight[i] = w * w;
        }
        Search {
            hosts,
            sol,
            bins,
            weight,
            left,
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }

    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn run(&mut self) {
        let mut failed = vec![false; self.bins.len()];
        let mut failures = 0;
        while failures < FAILURES && self.left > 0 {
            let Some(target) = self.target(&failed) else {
                break;
            };
            if self.attempt(target) {
                failures = 0;
            } else {
                failed[target as usize] = true;
                failures += 1;
            }
        }
    }

    /// The least filled machine in use whose hosts are all movable.
    fn target(&self, failed: &[bool]) -> Option<u32> {
        let fleet = &self.sol.fleet;
        (0..self.bins.len())
            .filter(|&m| {
                !failed[m]
                    && fleet.hosts_on[m] > 0
                    && fleet.hosts_on[m] as usize == self.bins[m].len()
            })
            .map(|m| {
                (
                    self.bins[m].iter().map(|&i| self.weight[i]).sum::<u128>(),
                    m as u32,
                )
            })
            .min()
            .map(|(_, m)| m)
    }

    fn group(&self, i: usize) -> &super::stages::Group {
        // Only placed requests reach the search, and those always have a group.
        &self.hosts.groups[self.hosts.group_of[i].unwrap_or_default()]
    }

    fn take(&mut self, i: usize, m: u32) {
        let g = self.group(i).clone();
        self.sol.fleet.take(g.class, g.size, m);
        self.bins[m as usize].retain(|&j| j != i);
        self.sol.assign[i] = None;
    }

    fn put(&mut self, i: usize, m: u32) {
        let g = self.group(i).clone();
        self.sol.fleet.put(g.class, g.size, m);
        self.bins[m as usize].push(i);
        self.sol.assign[i] = Some(m);
    }

    /// Try to move every host off `target`; on failure, leave everything as it was.
    fn attempt(&mut self, target: u32) -> bool {
        let saved = (self.sol.clone(), self.bins.clone());
        let used: Vec<u32> = (0..self.bins.len() as u32)
            .filter(|&m| m != target && self.sol.fleet.hosts_on[m as usize] > 0)
            .collect();
        let mut pending = self.bins[target as usize].clone();
        for &i in &pending {
            self.take(i, target);
        }
        let mut tabu: HashMap<(usize, u32), u32> = HashMap::new();
        let mut moves = 0;
        while !pending.is_empty() {
            if moves >= MOVES_PER_ATTEMPT || self.left == 0 {
                (self.sol, self.bins) = saved;
                return false;
            }
            moves += 1;
            pending.sort_by(|a, b| self.weight[*b].cmp(&self.weight[*a]).then(a.cmp(b)));
            if let Some((k, m)) = self.direct(&pending, &used) {
                let i = pending.remove(k);
                self.put(i, m);
                continue;
            }
            let Some((k, m, out)) = self.swap(&pending, &used, &tabu, moves) else {
                (self.sol, self.bins) = saved;
                return false;
            };
            let i = pending.swap_remove(k);
            let tenure = 3 + (self.next_random() % 7) as u32;
            for &r in &out {
                self.take(r, m);
                tabu.insert((r, m), moves + tenure);
                pending.push(r);
            }
            self.put(i, m);
            tabu.insert((i, m), moves + tenure);
        }
        true
    }

    /// A pending host that fits on a machine in use as it is: the heaviest, on its best fit.
    fn direct(&mut self, pending: &[usize], used: &[u32]) -> Option<(usize, u32)> {
        let fleet = &self.sol.fleet;
        let hosts = self.hosts;
        for (k, &i) in pending.iter().enumerate() {
            let group = &hosts.groups[hosts.group_of[i].unwrap_or_default()];
            let mut best: Option<(u128, u32)> = None;
            for &m in used {
                self.left = self.left.saturating_sub(1);
                if feasible(fleet, group, m).is_ok() {
                    let cap = fleet.statics.machines[m as usize].cap;
                    let s = score::pack(Fit::Sum, cap, fleet.free(m), group.size);
                    if best.is_none() || Some((s, m)) < best {
                        best = Some((s, m));
                    }
                }
            }
            if let Some((_, m)) = best {
                return Some((k, m));
            }
        }
        None
    }

    /// The swap of a pending host against one or two hosts of a machine that leaves the lightest
    /// pending set, skipping tabu moves.
    fn swap(
        &mut self,
        pending: &[usize],
        used: &[u32],
        tabu: &HashMap<(usize, u32), u32>,
        now: u32,
    ) -> Option<(usize, u32, Vec<usize>)> {
        let is_tabu = |i: usize, m: u32| tabu.get(&(i, m)).is_some_and(|&until| until > now);
        let mut best: Option<(i128, usize, u32, Vec<usize>)> = None;
        for (k, &p) in pending.iter().enumerate() {
            let pg = self.group(p).clone();
            for &m in used {
                if is_tabu(p, m) || self.sol.fleet.statics.machines[m as usize].driver != pg.driver
                {
                    continue;
                }
                let free = self.sol.fleet.free(m);
                let items = self.bins[m as usize].clone();
                let mut subsets: Vec<Vec<usize>> = items.iter().map(|&r| vec![r]).collect();
                for a in 0..items.len() {
                    for b in a + 1..items.len() {
                        subsets.push(vec![items[a], items[b]]);
                    }
                }
                for out in subsets {
                    if out.iter().any(|&r| is_tabu(r, m)) {
                        continue;
                    }
                    let delta = out.iter().map(|&r| self.weight[r] as i128).sum::<i128>()
                        - self.weight[p] as i128;
                    if best.as_ref().is_some_and(|b| b.0 <= delta) {
                        continue;
                    }
                    let mut room = free;
                    for &r in &out {
                        let s = self.group(r).size;
                        for d in 0..3 {
                            room[d] += s[d];
                        }
                    }
                    if (0..3).any(|d| room[d] < pg.size[d]) {
                        continue;
                    }
                    self.left = self.left.saturating_sub(1);
                    for &r in &out {
                        let g = self.group(r).clone();
                        self.sol.fleet.take(g.class, g.size, m);
                    }
                    let ok = feasible(&self.sol.fleet, &pg, m).is_ok();
                    for &r in &out {
                        let g = self.group(r).clone();
                        self.sol.fleet.put(g.class, g.size, m);
                    }
                    if ok {
                        best = Some((delta, k, m, out));
                    }
                }
            }
        }
        best.map(|(_, k, m, out)| (k, m, out))
    }
}
