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
//! The search stops when nothing is pending, a budget of machine evaluations is spent, or
//! [`STALL_STEPS`] steps pass without fewer hosts unplaced; the assignment with the fewest
//! unplaced hosts seen is kept. Pricing a step looks at the machines in the order of a lower
//! bound of their cost and stops where the bound cannot beat the best found, so on a large
//! fleet a step prices a fraction of the machines, with the same answer. The random tenure
//! comes from a fixed seed: the result is deterministic.

use super::fleet::{FastMap, Fleet};
use super::score::{self, Fit};
use super::stages::{capacity, feasible, Group};
use super::{Hosts, Solution};

/// Steps without fewer unplaced hosts after which repair stops (at least; more when many hosts
/// are pending at the start or the fleet is small).
const STALL_STEPS: u64 = 2_000;

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
        // Steps without a new best after which the search gives up: chains that keep cycling
        // on a fleet with no room left would otherwise spend the whole budget. Steps are cheap
        // on a small fleet, which gets as many as 5,000,000 machine evaluations allow.
        let machines = self.sol.fleet.hosts_on.len().max(1) as u64;
        let stall = (4 * self.pending.len() as u64)
            .max(STALL_STEPS)
            .max(5_000_000 / machines);
        let mut last_gain = 0;
        while !self.pending.is_empty() && self.left > 0 && self.step - last_gain < stall {
            self.step();
            if self.unplaced() < self.best_unplaced {
                last_gain = self.step;
                self.best_unplaced = self.unplaced();
                self.best.clone_from(&self.sol.assign);
            }
        }
    }

    /// One step: the heaviest pending host goes where it fits, or where it ejects the least.
    fn step(&mut self) {
        self.step += 1;
        let k = self.heaviest();
        let p = self.pending.swap_remove(k);
        if let Some(m) = self.direct(p) {
            self.put(p, m);
            return;
        }
        let Some((m, out)) = self.cheapest_ejection(p) else {
            self.stuck.push(p);
            return;
        };
        let from: Vec<Option<u32>> = out.iter().map(|&e| self.take(e)).collect();
        if feasible(&self.sol.fleet, self.group(p), m).is_err() {
            // The pricing and the stages disagree: undo rather than break a rule.
            for (&e, f) in out.iter().zip(from) {
                if let Some(f) = f {
                    self.put(e, f);
                }
            }
            self.stuck.push(p);
            return;
        }
        for &e in &out {
            self.weight[e] += self.base_weight[e];
            self.pending.push(e);
        }
        self.put(p, m);
        let tenure = 3 + self.next_random() % 8;
        self.tabu.insert(p, self.step + tenure);
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

    /// The machine where host `p` costs the least weight of ejected hosts, and those hosts (ties
    /// to the lowest machine id).
    ///
    /// Machines are priced in the order of a lower bound of their cost ([`Repair::least_cost`]),
    /// and pricing stops at the first whose bound cannot beat the best found: the answer is the
    /// one pricing every machine gives, at a fraction of the work on a large fleet.
    fn cheapest_ejection(&mut self, p: usize) -> Option<(u32, Vec<usize>)> {
        let candidates = self.rule_candidates(p);
        let group = self.group(p);
        let class_least = self.of_class[group.class as usize]
            .iter()
            .map(|&e| self.weight[e])
            .min();
        let fleet = &self.sol.fleet;
        let mut order: Vec<(u64, u32)> = (0..fleet.hosts_on.len() as u32)
            .filter(|&m| fleet.statics.machines[m as usize].driver == group.driver)
            .filter_map(|m| Some((self.least_cost(p, m, class_least, false)?, m)))
            .collect();
        order.sort_unstable();
        let mut best: Option<(u64, u32, Vec<usize>)> = None;
        for (bound, m) in order {
            if best.as_ref().is_some_and(|b| (bound, m) >= (b.0, b.1)) {
                break;
            }
            // A finer bound, too dear to compute for every machine up front.
            let finer = self.least_cost(p, m, class_least, true);
            if finer.is_none_or(|f| best.as_ref().is_some_and(|b| (f, m) >= (b.0, b.1))) {
                continue;
            }
            self.left = self.left.saturating_sub(1);
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

    /// A lower bound of the weight host `p` ejects to go on machine `m`, or `None` when no
    /// ejection can make room there. A rule at its limit behind the machine's label value takes
    /// at least one placed host of the class (`class_least` is the lightest); a machine short of
    /// room takes at least one of its own new hosts. One host may do both, so the bound is the
    /// larger of the two, not their sum. `fine` counts how many of the machine's hosts the
    /// shortfall takes ([`Repair::least_to_free`]); otherwise one, the lightest.
    fn least_cost(&self, p: usize, m: u32, class_least: Option<u64>, fine: bool) -> Option<u64> {
        let fleet = &self.sol.fleet;
        let group = self.group(p);
        let mut bound = 0;
        for rule in &fleet.classes[group.class as usize].rules {
            let v = fleet.statics.value(m, rule.key)?;
            if rule.counts[v as usize] >= rule.limit {
                bound = class_least?;
            }
        }
        if capacity(fleet, group, m).is_err() {
            let own = if fine {
                self.least_to_free(m, fleet.free(m), group.size)?
            } else {
                self.on[m as usize].iter().map(|&e| self.weight[e]).min()?
            };
            bound = bound.max(own);
        }
        Some(bound)
    }

    /// A lower bound of the weight of new hosts that must leave machine `m` for `size` to fit in
    /// `free` (`None`: all of them would not do). Freeing a shortfall takes at least as many
    /// hosts as the largest hosts in that dimension cover it with, and those weigh at least the
    /// same number of the machine's lightest hosts.
    fn least_to_free(&self, m: u32, free: [u64; 3], size: [u64; 3]) -> Option<u64> {
        let on = &self.on[m as usize];
        let mut needed = 0;
        for d in 0..3 {
            let Some(mut short) = size[d].checked_sub(free[d]).filter(|&s| s > 0) else {
                continue;
            };
            let mut sizes: Vec<u64> = on.iter().map(|&e| self.group(e).size[d]).collect();
            sizes.sort_unstable_by(|a, b| b.cmp(a));
            let mut k = 0;
            for s in sizes {
                if short == 0 {
                    break;
                }
                short = short.saturating_sub(s);
                k += 1;
            }
            if short > 0 {
                return None;
            }
            needed = needed.max(k);
        }
        let mut weights: Vec<u64> = on.iter().map(|&e| self.weight[e]).collect();
        weights.sort_unstable();
        Some(weights.iter().take(needed).sum())
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

#[cfg(test)]
mod tests {
    use super::super::fleet::{Fleet, Statics};
    use super::super::model::{Machine, Problem, Request, Resources, Rules, Strategy};
    use super::super::{construct, Hosts, Order};
    use super::Repair;
    use crate::Cpu;
    use std::collections::BTreeMap;

    /// 60 machines in 6 racks behind 3 switches, asked for more than they hold, with rules on
    /// machine, rack and switch: the first pass leaves hosts unplaced.
    fn crowded() -> Problem {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut below = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let machines = (0..60)
            .map(|i| Machine {
                name: format!("m{i:02}"),
                capacity: Resources::new(Cpu::from_cores(8 + 8 * (i % 3)), 32 * 1024, 500),
                labels: BTreeMap::from([
                    ("rack".to_string(), format!("r{}", i / 10)),
                    ("switch".to_string(), format!("s{}", i / 20)),
                ]),
                driver: "lxc".into(),
            })
            .collect();
        let mut rules = BTreeMap::new();
        let mut requests = Vec::new();
        for c in 0..6u32 {
            let class = format!("c{c}");
            let max_per = BTreeMap::from([
                ("machine".to_string(), 1 + below(3) as u32),
                ("rack".to_string(), 6 + below(6) as u32),
                ("switch".to_string(), 14 + below(8) as u32),
            ]);
            rules.insert(
                class.clone(),
                Rules {
                    max_per,
                    strategy: Strategy::Pack,
                },
            );
            let cpu = [1, 2, 4, 8][below(4) as usize];
            for i in 0..40 {
                requests.push(Request {
                    name: format!("{class}-{i:02}"),
                    class: class.clone(),
                    size: Resources::new(Cpu::from_cores(cpu), 1024 * u64::from(cpu), 20),
                    driver: "lxc".into(),
                });
            }
        }
        Problem {
            machines,
            existing: vec![],
            rules,
            requests,
        }
    }

    /// Pricing every machine, the way the bounded pricing must agree with.
    fn cheapest_everywhere(r: &Repair, p: usize) -> Option<(u32, Vec<usize>)> {
        let candidates = r.rule_candidates(p);
        let mut best: Option<(u64, u32, Vec<usize>)> = None;
        for m in 0..r.sol.fleet.hosts_on.len() as u32 {
            let Some(out) = r.ejection(p, m, &candidates) else {
                continue;
            };
            let cost: u64 = out.iter().map(|&e| r.weight[e]).sum();
            if best.as_ref().is_none_or(|b| (cost, m) < (b.0, b.1)) {
                best = Some((cost, m, out));
            }
        }
        best.map(|(_, m, out)| (m, out))
    }

    #[test]
    fn bounded_pricing_chooses_what_pricing_every_machine_chooses() {
        let problem = crowded();
        let (statics, classes) = Statics::build(&problem);
        let base = Fleet::new(&problem, &statics, classes);
        let hosts = Hosts::new(&problem, &base);
        let first = construct(&base, &hosts, Order::Tight);
        assert!(first.cost().0 > 0, "the fleet must leave hosts unplaced");
        let mut r = Repair::new(&hosts, first, u64::MAX);
        let mut compared = 0;
        for _ in 0..400 {
            let Some(&p) = r.pending.get(r.heaviest()) else {
                break;
            };
            if r.direct(p).is_none() {
                assert_eq!(r.cheapest_ejection(p), cheapest_everywhere(&r, p));
                compared += 1;
            }
            r.step();
        }
        assert!(compared > 50, "only {compared} ejections compared");
    }
}
