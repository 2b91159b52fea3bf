//! The improvement phase: better packings of the new hosts than one greedy pass gives, within a
//! budget of feasibility checks so that large plans stay fast and results stay deterministic.
//!
//! 1. Portfolio: the constructive pass again with the largest resource as the measure of
//!    "large", then bin-centric fills ([`super::bins`]) under three measures of fit; the best
//!    result (fewest unplaced, then fewest machines) is kept. A pass is only started while the
//!    budget still covers what the first pass cost.
//! 2. Emptying machines (after consistent neighbourhood search, Buljubašić & Vasquez 2016): take
//!    the least filled machine that holds only movable new hosts, pull its hosts out, and try to
//!    fit every pulled host elsewhere — directly, or by swapping it against one or two smaller
//!    hosts on a machine, which then become the ones to re-home. A short tabu list stops hosts
//!    going straight back. When nothing is left over, one machine fewer is in use; otherwise the
//!    attempt is undone. Every move passes the same stages as the first pass, so rules hold.
//!    Existing hosts and hosts of spread classes are never moved by this phase.
//! 3. Hosts still unplaced get one more look at every machine, since moves may have made room.

use super::bins;
use super::fleet::{FastMap, Fleet, Vec3};
use super::model::Strategy;
use super::repair;
use super::score::{self, Affinity, Fit};
use super::stages::feasible;
use super::{construct, Hosts, Order, Solution};

/// Orderings the portfolio tries after the first pass ([`Order::Tight`]); [`Order::Sum`] only
/// differs from it when some group is tight.
const ORDERS: [Order; 2] = [Order::Sum, Order::Max];

/// Moves an attempt to empty one machine may make before it is given up.
const MOVES_PER_ATTEMPT: u32 = 5000;

/// Attempts that may fail in a row before the search stops.
const FAILURES: u32 = 10;

pub(crate) fn improve<'p>(
    base: &Fleet<'p>,
    hosts: &Hosts,
    best: &mut Solution<'p>,
    budget: u64,
    repair_budget: u64,
) {
    let opened = (0..base.hosts_on.len())
        .filter(|&m| base.hosts_on[m] == 0 && best.fleet.hosts_on[m] > 0)
        .count();
    if budget == 0 || (opened <= 1 && best.cost().0 == 0) {
        repair::repair(base, hosts, best, repair_budget);
        // Everything fits on machines already in use, or on one more that the largest host
        // opened because none in use could take it: rarely anything to gain, and adding a host
        // to a large fleet must stay fast.
        return;
    }
    let mut left = budget;
    let pass_cost = best.work.max(1);
    let any_tight = hosts.tight.iter().any(|&t| t < u64::MAX);
    for order in ORDERS {
        if order == Order::Sum && !any_tight {
            continue;
        }
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
    // Hosts still unplaced: local search over the new hosts' assignment until they fit.
    repair::repair(base, hosts, best, repair_budget);
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
    size: Vec<Vec3>,
    left: u64,
    rng: u64,
}

impl<'a, 'p> Search<'a, 'p> {
    fn new(hosts: &'a Hosts<'a>, sol: Solution<'p>, left: u64) -> Self {
        let mut bins = vec![Vec::new(); sol.fleet.hosts_on.len()];
        let mut weight = vec![0; hosts.requests.len()];
        let mut size = vec![[0; 3]; hosts.requests.len()];
        for (i, a) in sol.assign.iter().enumerate() {
            let (Some(m), Some(g)) = (*a, hosts.group_of[i]) else {
                continue;
            };
            let group = &hosts.groups[g];
            if sol.fleet.classes[group.class as usize].strategy == Strategy::Pack {
                bins[m as usize].push(i);
            }
            size[i] = group.size;
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
            size,
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
        let bound = self.lower_bound();
        while failures < FAILURES && self.left > 0 {
            let in_use = self.sol.fleet.hosts_on.iter().filter(|&&n| n > 0).count();
            if Some(in_use) <= bound {
                break;
            }
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

    /// Fewest machines any packing needs, when that is easy to know: identical machines, no
    /// existing hosts, every new host movable. Per dimension, total demand over capacity.
    fn lower_bound(&self) -> Option<usize> {
        let fleet = &self.sol.fleet;
        let machines = &fleet.statics.machines;
        let first = machines.first()?;
        let movable: usize = self.bins.iter().map(Vec::len).sum();
        let placed = self.sol.assign.iter().flatten().count();
        if movable != placed
            || fleet.hosts_on.iter().map(|&n| n as usize).sum::<usize>() != placed
            || machines
                .iter()
                .any(|m| m.cap != first.cap || m.driver != first.driver)
        {
            return None;
        }
        let mut demand = [0u64; 3];
        for (i, a) in self.sol.assign.iter().enumerate() {
            if a.is_some() {
                for (total, n) in demand.iter_mut().zip(self.size[i]) {
                    *total += n;
                }
            }
        }
        (0..3)
            .filter(|&d| first.cap[d] > 0)
            .map(|d| demand[d].div_ceil(first.cap[d]) as usize)
            .max()
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
        let mut tabu: FastMap<(usize, u32), u32> = FastMap::default();
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
        tabu: &FastMap<(usize, u32), u32>,
        now: u32,
    ) -> Option<(usize, u32, Vec<usize>)> {
        let hosts = self.hosts;
        let group = |i: usize| &hosts.groups[hosts.group_of[i].unwrap_or_default()];
        let is_tabu = |i: usize, m: u32| tabu.get(&(i, m)).is_some_and(|&until| until > now);
        // Disjoint borrows: the bins are read while the fleet is probed.
        let Search {
            bins,
            sol,
            weight,
            size,
            left,
            ..
        } = self;
        let mut best: Option<(i128, usize, u32, [usize; 2])> = None;
        for (k, &p) in pending.iter().enumerate() {
            let pg = group(p);
            let wp = weight[p] as i128;
            let has_rules = !sol.fleet.classes[pg.class as usize].rules.is_empty();
            for &m in used {
                *left = left.saturating_sub(1);
                if sol.fleet.statics.machines[m as usize].driver != pg.driver || is_tabu(p, m) {
                    continue;
                }
                let free = sol.fleet.free(m);
                let items = &bins[m as usize];
                let n = items.len();
                // Pairs (a, b), and b == n standing for "a alone".
                for (a, &ra) in items.iter().enumerate() {
                    let sa = size[ra];
                    for b in a + 1..=n {
                        *left = left.saturating_sub(1);
                        let rb = items.get(b).copied();
                        let w = weight[ra] as i128 + rb.map_or(0, |r| weight[r] as i128);
                        let delta = w - wp;
                        if best.as_ref().is_some_and(|x| x.0 <= delta) {
                            continue;
                        }
                        let sb = rb.map_or([0; 3], |r| size[r]);
                        if (0..3).any(|d| free[d] + sa[d] + sb[d] < pg.size[d]) {
                            continue;
                        }
                        if is_tabu(ra, m) || rb.is_some_and(|r| is_tabu(r, m)) {
                            continue;
                        }
                        if has_rules {
                            // max_per counts depend on which hosts leave; check for real.
                            let fleet = &mut sol.fleet;
                            let out = [Some(ra), rb];
                            for r in out.iter().flatten() {
                                let g = group(*r);
                                fleet.take(g.class, g.size, m);
                            }
                            let ok = feasible(fleet, pg, m).is_ok();
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
