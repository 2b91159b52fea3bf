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

use super::bins;
use super::fleet::Fleet;
use super::model::Strategy;
use super::score::{self, Affinity, Fit};
use super::stages::feasible;
use super::{construct, Hosts, Order, Solution};
use std::collections::HashMap;

const ORDERS: [Order; 1] = [Order::Max];

/// Moves an attempt to empty one machine may make before it is given up.
const MOVES_PER_ATTEMPT: u32 = 400;

/// Attempts that may fail in a row before the search stops.
const FAILURES: u32 = 3;

pub(crate) fn improve<'p>(base: &Fleet<'p>, hosts: &Hosts, best: &mut Solution<'p>, budget: u64) {
    let opened = (0..base.hosts_on.len())
        .filter(|&m| base.hosts_on[m] == 0 && best.fleet.hosts_on[m] > 0)
        .count();
    if budget == 0 || (opened <= 1 && best.cost().0 == 0) {
        // Everything fits on machines already in use, or on one more that the largest host
        // opened because none in use could take it: rarely anything to gain, and adding a host
        // to a large fleet must stay fast.
        return;
    }
    let mut left = budget;
    let pass_cost = best.work.max(1);
    for order in ORDERS {
        if left < pass_cost {
            break;
        }
        let s = construct(base, hosts, order);
        left = left.saturating_sub(s.work);
        if s.cost() < best.cost() {
            *best = s;
        }
    }
    for kind in [Affinity::Dot, Affinity::Snug, Affinity::Largest] {
        if left < pass_cost.saturating_mul(2) {
            break;
        }
        let s = bins::fill(base, hosts, kind);
        left = left.saturating_sub(s.work);
        if s.cost() < best.cost() {
            *best = s;
        }
    }
    let mut search = Search::new(hosts, best.clone(), left);
    search.run();
    *best = search.sol;
    retry_unplaced(hosts, best);
}

/// Moving hosts can free room a host left unplaced by the chosen pass could use: give every such
/// host one more look at every machine, large first.
fn retry_unplaced(hosts: &Hosts, best: &mut Solution) {
    if best.cost().0 == 0 {
        return;
    }
    let fleet = &mut best.fleet;
    for i in hosts.ordered(Order::Sum) {
        let Some(g) = hosts.group_of[i] else { continue };
        if best.assign[i].is_some() {
            continue;
        }
        let group = &hosts.groups[g];
        let spread = fleet.classes[group.class as usize].strategy == Strategy::Spread;
        let mut choice: Option<((bool, u64, u64, u128), u32)> = None;
        for m in 0..fleet.hosts_on.len() as u32 {
            if feasible(fleet, group, m).is_err() {
                continue;
            }
            let cap = fleet.statics.machines[m as usize].cap;
            // spread: least loaded; pack: machines in use first, then the best fit.
            let key = if spread {
                let (a, b) = score::load(cap, fleet.used[m as usize]);
                (false, a, b, 0)
            } else {
                let slack = score::pack(Fit::Sum, cap, fleet.free(m), group.size);
                (fleet.hosts_on[m as usize] == 0, 0, 0, slack)
            };
            if choice.is_none() || Some((key, m)) < choice {
                choice = Some((key, m));
            }
        }
        if let Some((_, m)) = choice {
            fleet.put(group.class, group.size, m);
            best.assign[i] = Some(m);
        }
    }
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
        let hosts = self.hosts;
        let group = |i: usize| &hosts.groups[hosts.group_of[i].unwrap_or_default()];
        let size = |i: usize| group(i).size;
        let is_tabu = |i: usize, m: u32| tabu.get(&(i, m)).is_some_and(|&until| until > now);
        let mut best: Option<(i128, usize, u32, [usize; 2])> = None;
        for (k, &p) in pending.iter().enumerate() {
            let pg = group(p).clone();
            let wp = self.weight[p] as i128;
            let has_rules = !self.sol.fleet.classes[pg.class as usize].rules.is_empty();
            for &m in used {
                if is_tabu(p, m) || self.sol.fleet.statics.machines[m as usize].driver != pg.driver
                {
                    continue;
                }
                let free = self.sol.fleet.free(m);
                let items = self.bins[m as usize].clone();
                let n = items.len();
                // Pairs (a, b) with b == usize::MAX standing for "a alone".
                for a in 0..n {
                    for b in (a + 1..n).chain(std::iter::once(usize::MAX)) {
                        self.left = self.left.saturating_sub(1);
                        let ra = items[a];
                        let rb = (b != usize::MAX).then(|| items[b]);
                        let w = self.weight[ra] as i128 + rb.map_or(0, |r| self.weight[r] as i128);
                        let delta = w - wp;
                        if best.as_ref().is_some_and(|x| x.0 <= delta) {
                            continue;
                        }
                        let sa = size(ra);
                        let sb = rb.map_or([0; 3], size);
                        if (0..3).any(|d| free[d] + sa[d] + sb[d] < pg.size[d]) {
                            continue;
                        }
                        if is_tabu(ra, m) || rb.is_some_and(|r| is_tabu(r, m)) {
                            continue;
                        }
                        if has_rules {
                            // max_per counts depend on which hosts leave; check for real.
                            let fleet = &mut self.sol.fleet;
                            let out = [Some(ra), rb];
                            for r in out.iter().flatten() {
                                let g = group(*r);
                                fleet.take(g.class, g.size, m);
                            }
                            let ok = feasible(fleet, &pg, m).is_ok();
                            for r in out.iter().flatten() {
                                let g = group(*r);
                                fleet.put(g.class, g.size, m);
                            }
                            if !ok {
                                continue;
                            }
                        }
                        best = Some((delta, k, m, [ra, rb.unwrap_or(usize::MAX)]));
                    }
                }
            }
        }
        best.map(|(_, k, m, out)| (k, m, out.into_iter().filter(|&r| r != usize::MAX).collect()))
    }
}
