//! Repair: when a pass leaves hosts unplaced, a local search over the new hosts' assignment
//! tries to make room for them (after the consistent neighbourhood search of Buljubašić &
//! Vasquez, 2016, with `max_per` rules as extra conflicts).
//!
//! One step takes the heaviest pending host. If a machine takes it as it is, it goes there (best
//! fit). Otherwise every machine of its driver is priced: the new hosts that would have to leave
//! it — hosts of the same class over a `max_per` limit (on the machine, or anywhere behind the
//! same rack or switch), then hosts on the machine until the host fits — and the cheapest
//! machine wins. The host goes there and the hosts it ejected become pending: a chain of moves
//! and swaps. Ejected hosts weigh more each time, so that the chain ends on hosts that are easy to
//! place, and a host just placed cannot be ejected for a few steps (a tabu tenure), so that the
//! chain does not cycle. Existing hosts are never ejected. Every placement passes the same
//! stages as the first pass.
//!
//! The search stops when nothing is pending or a budget of machine evaluations is spent; the
//! assignment with the fewest unplaced hosts seen is kept. The random tenure comes from a fixed
//! seed: the result is deterministic.

use super::fleet::{FastMap, Fleet};
use super::score::{self, Fit};
use super::stages::{feasible, Group};
use super::{Hosts, Solution};

/// Ejection candidates behind one label value of one rule, lightest first.
type ByValue = Vec<Vec<usize>>;

pub(crate) fn repair<'p>(base: &Fleet<'p>, hosts: &Hosts, sol: &mut Solution<'p>, budget: u64) {
    if budget == 0 || sol.cost().0 == 0 {
        return;
    }
    let mut r = Repair::new(hosts, sol.clone(), budget);
    r.run();
    if r.best_unplaced < r.unplaced() {
        *sol = rebuild(base, hosts, &r.best);
    } else {
        *sol = r.sol;
    }
}

/// The fleet of `base` with the new hosts put where `assign` says.
fn rebuild<'p>(base: &Fleet<'p>, hosts: &Hosts, assign: &[Option<u32>]) -> Solution<'p> {
    let mut fleet = base.clone();
    for (i, a) in assign.iter().enumerate() {
        if let (Some(m), Some(g)) = (*a, hosts.group_of[i]) {
            let group = &hosts.groups[g];
            fleet.put(group.class, group.size, m);
        }
    }
    Solution {
        fleet,
        assign: assign.to_vec(),
        work: 0,
    }
}

struct Repair<'a, 'p> {
    hosts: &'a Hosts<'a>,
    sol: Solution<'p>,
    /// New hosts per machine.
    on: Vec<Vec<usize>>,
    /// Placed new hosts per class.
    of_class: Vec<Vec<usize>>,
    weight: Vec<u64>,
    base_weight: Vec<u64>,
    /// Step until which a host may not be ejected.
    tabu: FastMap<usize, u64>,
    pending: Vec<usize>,
    /// Hosts no machine can take even by ejecting others.
    stuck: Vec<usize>,
    best: Vec<Option<u32>>,
    best_unplaced: usize,
    left: u64,
    step: u64,
    rng: u64,
}

impl<'a, 'p> Repair<'a, 'p> {
    fn new(hosts: &'a Hosts<'a>, sol: Solution<'p>, left: u64) -> Self {
        let n = hosts.requests.len();
        let mut on = vec![Vec::new(); sol.fleet.hosts_on.len()];
        let mut of_class = vec![Vec::new(); sol.fleet.classes.len()];
        let mut base_weight = vec![0; n];
        let mut pending = Vec::new();
        for (i, weight) in base_weight.iter_mut().enumerate() {
            let Some(g) = hosts.group_of[i] else { continue };
            let group = &hosts.groups[g];
            // Relative size (each dimension up to 1,024), twice as heavy for tight groups: they
            // are the hard ones to place again.
            let w = (score::weight(hosts.reference, group.size) >> 10) as u64 + 1;
            *weight = if hosts.tight[g] < u64::MAX { w * 2 } else { w };
            match sol.assign[i] {
                Some(m) => {
                    on[m as usize].push(i);
                    of_class[group.class as usize].push(i);
                }
                None => pending.push(i),
            }
        }
        let best = sol.assign.clone();
        let best_unplaced = pending.len();
        Repair {
            hosts,
            sol,
            on,
            of_class,
            weight: base_weight.clone(),
            base_weight,
            tabu: FastMap::default(),
            pending,
            stuck: Vec::new(),
            best,
            best_unplaced,
            left,
            step: 0,
            rng: 0x2545_f491_4f6c_dd1d,
        }
    }

    fn unplaced(&self) -> usize {
        self.pending.len() + self.stuck.len()
    }

    fn group(&self, i: usize) -> &'a Group {
        let hosts = self.hosts;
        // Only requests with a group are ever pending or placed here.
        &hosts.groups[hosts.group_of[i].unwrap_or_default()]
    }

    fn next_random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn run(&mut self) {
        while !self.pending.is_empty() && self.left > 0 {
            self.step += 1;
            let k = self.heaviest();
            let p = self.pending.swap_remove(k);
            if let Some(m) = self.direct(p) {
                self.put(p, m);
            } else if let Some((m, out)) = self.cheapest_ejection(p) {
                let from: Vec<Option<u32>> = out.iter().map(|&e| self.take(e)).collect();
                if feasible(&self.sol.fleet, self.group(p), m).is_err() {
                    // The pricing and the stages disagree: undo rather than break a rule.
                    for (&e, f) in out.iter().zip(from) {
                        if let Some(f) = f {
                            self.put(e, f);
                        }
                    }
                    self.stuck.push(p);
                    continue;
                }
                for &e in &out {
                    self.weight[e] += self.base_weight[e];
                    self.pending.push(e);
                }
                self.put(p, m);
                let tenure = 3 + self.next_random() % 8;
                self.tabu.insert(p, self.step + tenure);
            } else {
                self.stuck.push(p);
            }
            if self.unplaced() < self.best_unplaced {
                self.best_unplaced = self.unplaced();
                self.best.clone_from(&self.sol.assign);
            }
        }
    }

    /// The pending host with the highest weight; ties to the first name.
    fn heaviest(&self) -> usize {
        let mut best = 0;
        for (k, &i) in self.pending.iter().enumerate() {
            let b = self.pending[best];
            if (self.weight[i], std::cmp::Reverse(i)) > (self.weight[b], std::cmp::Reverse(b)) {
                best = k;
            }
        }
        best
    }

    fn put(&mut self, i: usize, m: u32) {
        let g = self.group(i);
        self.sol.fleet.put(g.class, g.size, m);
        self.sol.assign[i] = Some(m);
        self.on[m as usize].push(i);
        self.of_class[g.class as usize].push(i);
    }

    /// Takes host `i` off its machine, which is returned.
    fn take(&mut self, i: usize) -> Option<u32> {
        let m = self.sol.assign[i]?;
        let g = self.group(i);
        self.sol.fleet.take(g.class, g.size, m);
        self.sol.assign[i] = None;
        self.on[m as usize].retain(|&j| j != i);
        self.of_class[g.class as usize].retain(|&j| j != i);
        Some(m)
    }

    /// The machine that takes host `i` as it is: machines in use first, then the best fit.
    fn direct(&mut self, i: usize) -> Option<u32> {
        let fleet = &self.sol.fleet;
        let group = self.group(i);
        let mut best: Option<((bool, u128), u32)> = None;
        for m in 0..fleet.hosts_on.len() as u32 {
            self.left = self.left.saturating_sub(1);
            if feasible(fleet, group, m).is_err() {
                continue;
            }
            let cap = fleet.statics.machines[m as usize].cap;
            let key = (
                fleet.hosts_on[m as usize] == 0,
                score::pack(Fit::Sum, cap, fleet.free(m), group.size),
            );
            if best.is_none_or(|b| (key, m) < b) {
                best = Some((key, m));
            }
        }
        best.map(|(_, m)| m)
    }

    fn ejectable(&self, e: usize) -> bool {
        self.tabu.get(&e).is_none_or(|&until| until <= self.step)
    }

    /// Per rule of host `p`'s class that is not per machine: the class's ejectable new hosts
    /// behind each label value, lightest first.
    fn rule_candidates(&self, p: usize) -> Vec<Option<ByValue>> {
        let group = self.group(p);
        let fleet = &self.sol.fleet;
        let class = &fleet.classes[group.class as usize];
        class
            .rules
            .iter()
            .map(|rule| {
                if fleet.statics.keys[rule.key as usize] == super::fleet::MACHINE_KEY {
                    return None;
                }
                let mut by: ByValue = vec![Vec::new(); rule.counts.len()];
                for &e in &self.of_class[group.class as usize] {
                    let Some(m) = self.sol.assign[e] else {
                        continue;
                    };
                    if !self.ejectable(e) {
                        continue;
                    }
                    if let Some(v) = fleet.statics.value(m, rule.key) {
                        by[v as usize].push(e);
                    }
                }
                for list in &mut by {
                    list.sort_by_key(|&e| (self.weight[e], e));
                }
                Some(by)
            })
            .collect()
    }

    /// The machine where host `p` costs the least weight of ejected hosts, and those hosts.
    fn cheapest_ejection(&mut self, p: usize) -> Option<(u32, Vec<usize>)> {
        let candidates = self.rule_candidates(p);
        let group = self.group(p);
        let mut best: Option<(u64, u32, Vec<usize>)> = None;
        for m in 0..self.sol.fleet.hosts_on.len() as u32 {
            self.left = self.left.saturating_sub(1);
            if self.sol.fleet.statics.machines[m as usize].driver != group.driver {
                continue;
            }
            let Some(out) = self.ejection(p, m, &candidates) else {
                continue;
            };
            let cost: u64 = out.iter().map(|&e| self.weight[e]).sum();
            if best.as_ref().is_none_or(|b| (cost, m) < (b.0, b.1)) {
                best = Some((cost, m, out));
            }
        }
        best.map(|(_, m, out)| (m, out))
    }

    /// The new hosts that must leave for host `p` to go on machine `m`, or `None` when no such
    /// set exists (existing hosts or tabu hosts in the way, a missing label).
    fn ejection(&self, p: usize, m: u32, candidates: &[Option<ByValue>]) -> Option<Vec<usize>> {
        let fleet = &self.sol.fleet;
        let statics = fleet.statics;
        let group = self.group(p);
        let class = &fleet.classes[group.class as usize];
        let mut out: Vec<usize> = Vec::new();
        for (rule, cands) in class.rules.iter().zip(candidates) {
            let v = statics.value(m, rule.key)?;
            let count = rule.counts[v as usize];
            if count < rule.limit {
                continue;
            }
            // Hosts already chosen that this rule counts here.
            let counted = |e: usize| {
                self.group(e).class == group.class
                    && self.sol.assign[e].and_then(|x| statics.value(x, rule.key)) == Some(v)
            };
            let mut excess = (count + 1 - rule.limit) as usize;
            excess = excess.saturating_sub(out.iter().filter(|&&e| counted(e)).count());
            // Same-class hosts on the machine first: they also free its capacity.
            let on_m = self.on[m as usize]
                .iter()
                .copied()
                .filter(|&e| self.group(e).class == group.class && self.ejectable(e));
            let behind = cands
                .as_ref()
                .map(|by| by[v as usize].iter().copied())
                .into_iter()
                .flatten();
            for e in on_m.chain(behind) {
                if excess == 0 {
                    break;
                }
                if !out.contains(&e) {
                    out.push(e);
                    excess -= 1;
                }
            }
            if excess > 0 {
                return None;
            }
        }
        self.eject_for_capacity(p, m, &mut out).then_some(out)
    }

    /// Adds hosts of machine `m` to `out` until host `p` fits in what is free; false when the
    /// machine's ejectable new hosts are not enough.
    fn eject_for_capacity(&self, p: usize, m: u32, out: &mut Vec<usize>) -> bool {
        let fleet = &self.sol.fleet;
        let size = self.group(p).size;
        let mut free = fleet.free(m);
        for &e in out.iter() {
            if self.sol.assign[e] == Some(m) {
                let s = self.group(e).size;
                (0..3).for_each(|d| free[d] += s[d]);
            }
        }
        let short = |free: &[u64; 3]| (0..3).any(|d| free[d] < size[d]);
        if !short(&free) {
            return true;
        }
        let mut others: Vec<usize> = self.on[m as usize]
            .iter()
            .copied()
            .filter(|&e| self.ejectable(e) && !out.contains(&e))
            .collect();
        others.sort_by_key(|&e| (self.weight[e], e));
        let first = out.len();
        for e in others {
            let s = self.group(e).size;
            // Only hosts that give back something the host is short of.
            if !(0..3).any(|d| free[d] < size[d] && s[d] > 0) {
                continue;
            }
            out.push(e);
            (0..3).for_each(|d| free[d] += s[d]);
            if !short(&free) {
                break;
            }
        }
        if short(&free) {
            return false;
        }
        // Drop the heaviest capacity ejections that turn out not to be needed.
        let mut k = out.len();
        while k > first {
            k -= 1;
            let s = self.group(out[k]).size;
            if (0..3).all(|d| free[d] - s[d] >= size[d]) {
                (0..3).for_each(|d| free[d] -= s[d]);
                out.remove(k);
            }
        }
        true
    }
}
