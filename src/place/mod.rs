//! Placement: choose a machine for every new host, or explain why there is none.
//!
//! The shape follows Nomad's scheduler. Feasibility stages ([`stages`]: driver, capacity,
//! `max_per`) accept or reject a machine and say why; scoring ([`score`]) ranks the feasible
//! ones (pack: best fit, spread: least loaded); candidate indexes ([`select`]) keep each host from
//! looking at every machine. [`place`] assembles the pipeline in one function. Existing hosts
//! consume capacity and count against rules but are never moved. A bounded improvement phase
//! ([`improve`]) tries other orderings and empties lightly used machines by moving new hosts only.
//! [`check`] verifies the invariants of any placement; [`ip`] hands out addresses.

mod bins;
mod bounds;
pub mod check;
mod exact;
mod explain;
mod fleet;
mod improve;
pub mod ip;
mod model;
mod repair;
mod score;
mod select;
mod stages;

pub use model::{
    Existing, Machine, Placement, Problem, Request, Resources, Rules, Strategy, Unplaced,
};

use fleet::{Fleet, Statics};
use select::Selector;
use stages::Group;
use std::collections::{BTreeMap, HashSet};

/// Tuning of [`place_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Feasibility checks the improvement phase may spend on a plan of up to 2,000 new hosts;
    /// larger plans get proportionally less (a tenth of it for 20,000), so the phase stays
    /// bounded in time. Repair of hosts left unplaced ([`repair`]) gets this much per 2,000 new
    /// hosts, and stops early when it stops gaining. Counting work rather than time keeps the
    /// result the same on a slow computer as on a fast one. Zero turns the phase off.
    pub work_budget: u64,
    /// Exact mode (`solver = "exact"`): search nodes the exact branch and bound may spend
    /// ([`exact`]) before falling back to the heuristic with a note; `None` is the heuristic.
    pub exact_nodes: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            work_budget: 20_000_000,
            exact_nodes: None,
        }
    }
}

/// Search nodes of exact mode by default: a few seconds at most.
pub const EXACT_NODES: u64 = 2_000_000;

/// Place every request of `problem` (see [`Placement`]). Same input, same output.
pub fn place(problem: &Problem) -> Placement {
    place_with(problem, &Options::default())
}

/// [`place`] with explicit tuning.
pub fn place_with(problem: &Problem, options: &Options) -> Placement {
    place_noted(problem, options).0
}

/// [`place_with`], and notes on how the placement was made (exact mode and its fallback).
pub fn place_noted(problem: &Problem, options: &Options) -> (Placement, Vec<String>) {
    // Index the machines and count the existing hosts in: they stay where they are.
    let (statics, classes) = Statics::build(problem);
    let base = Fleet::new(problem, &statics, classes);
    // Identical requests (class, driver, size) form a group the stages see as one.
    let hosts = Hosts::new(problem, &base);
    let Some(nodes) = options.exact_nodes else {
        return (heuristic(&base, &hosts, problem, options), Vec::new());
    };
    let note = match exact::solve(&base, &hosts, nodes) {
        exact::Outcome::Complete { solution, optimal } => {
            let note = if optimal {
                "exact: a complete placement on the fewest machines"
            } else {
                "exact: a complete placement; the search budget ran out before it proved the fewest machines"
            };
            return (finish(&base, &hosts, &solution), vec![note.to_string()]);
        }
        exact::Outcome::Infeasible => "exact: no complete placement exists; this is the heuristic's",
        exact::Outcome::Unknown => {
            "exact: the search budget ran out before a complete placement was found; this is the heuristic's"
        }
    };
    (
        heuristic(&base, &hosts, problem, options),
        vec![note.to_string()],
    )
}

fn heuristic(base: &Fleet, hosts: &Hosts, problem: &Problem, options: &Options) -> Placement {
    // First pass: the groups their rules hold tightest first, then large hosts first, each
    // onto the best machine that passes every stage.
    let mut best = construct(base, hosts, Order::Tight);
    // Improve the new hosts' assignment within a work budget: other orderings and fits, then
    // emptying the least used machines.
    let n = problem.requests.len().max(1) as u128;
    let budget = (u128::from(options.work_budget) * 2_000 / n).min(u128::from(options.work_budget));
    // Repair gets the whole budget up to 2,000 new hosts and proportionally more beyond: a
    // large fleet left incomplete needs as many chains as it has hosts unplaced, and each
    // chain prices more machines.
    let repair = options
        .work_budget
        .saturating_mul((problem.requests.len() / 2_000).max(1) as u64);
    improve::improve(base, hosts, &mut best, budget as u64, repair);
    // Whatever is left unplaced is explained against the final state of the fleet.
    // Fewer machines is the aim only when every class packs; spread classes want more.
    let all_pack = hosts
        .groups
        .iter()
        .all(|g| base.classes[g.class as usize].strategy == Strategy::Pack);
    // Existing hosts never move, so the machines in use before are a floor no search goes under.
    let (unplaced, used) = best.cost();
    let floor = base.hosts_on.iter().filter(|&&n| n > 0).count();
    let settled = unplaced == 0 && (!all_pack || used == floor);
    if problem.requests.len() > EXACT_FALLBACK_REQUESTS || settled {
        return finish(base, hosts, &best);
    }
    // A small problem: an exact search, within a budget, finds a complete placement whenever
    // one exists (or proves there is none), and packs tighter than the heuristic where it can.
    // Its answer is taken only when strictly better, so the heuristic's stays otherwise.
    match exact::solve(base, hosts, EXACT_FALLBACK_NODES) {
        exact::Outcome::Complete { solution, .. } if better(&solution, &best, all_pack) => {
            finish(base, hosts, &solution)
        }
        _ => finish(base, hosts, &best),
    }
}

/// Whether `candidate` places more hosts than `best`, or as many on fewer machines when
/// machines are what is minimised.
fn better(candidate: &Solution, best: &Solution, fewer_machines: bool) -> bool {
    let ((cu, cm), (bu, bm)) = (candidate.cost(), best.cost());
    cu < bu || (fewer_machines && cu == bu && cm < bm)
}

/// Up to this many new hosts, the heuristic's placement is checked against an exact search.
const EXACT_FALLBACK_REQUESTS: usize = 64;
/// The search budget of that search, in nodes (well under a second).
const EXACT_FALLBACK_NODES: u64 = 200_000;

/// The requests, grouped, with the order they are considered in.
pub(crate) struct Hosts<'p> {
    /// In name order (stable, so of two requests with one name the first listed is placed):
    /// every index below refers to this order, which makes the result independent of the order
    /// requests arrive in.
    pub requests: Vec<&'p Request>,
    pub groups: Vec<Group>,
    /// Group per request; `None` for a repeated host name, which is not placed twice.
    pub group_of: Vec<Option<usize>>,
    /// Hosts per class, existing and new, for sentences like "for 4 lb hosts".
    pub class_hosts: Vec<u32>,
    pub reference: [u64; 3],
    /// Per group: its room on the fleet before any new host is placed ([`bounds::slots`]), for
    /// the groups [`Hosts::measure_room`] measures.
    pub slots: Vec<Option<bounds::Slots>>,
    /// Per group: how tight it is, slots per host in thousandths (lower is tighter), for groups
    /// with rules whose slots are fewer than twice their hosts; `u64::MAX` for the others.
    pub tight: Vec<u64>,
}

impl<'p> Hosts<'p> {
    fn new(problem: &'p Problem, fleet: &Fleet) -> Hosts<'p> {
        let statics = fleet.statics;
        let mut ids: BTreeMap<(u32, u32, [u64; 3]), usize> = BTreeMap::new();
        let mut groups = Vec::new();
        let mut names = HashSet::new();
        let mut class_hosts = fleet.existing_in_class.clone();
        let mut requests: Vec<&Request> = problem.requests.iter().collect();
        requests.sort_by(|a, b| a.name.cmp(&b.name));
        let group_of = requests
            .iter()
            .map(|r| {
                if !names.insert(r.name.as_str()) {
                    return None;
                }
                let class = statics.class_ids[r.class.as_str()];
                class_hosts[class as usize] += 1;
                let driver = statics.driver_ids[r.driver.as_str()];
                let size = r.size.vector();
                Some(*ids.entry((class, driver, size)).or_insert_with(|| {
                    groups.push(Group {
                        class,
                        driver,
                        size,
                    });
                    groups.len() - 1
                }))
            })
            .collect();
        let mut hosts = Hosts {
            requests,
            groups,
            group_of,
            class_hosts,
            reference: statics.reference,
            slots: Vec::new(),
            tight: Vec::new(),
        };
        hosts.measure_room(fleet);
        hosts
    }

    /// Slots and tightness of every group against the fleet before placement. A group whose
    /// rules alone allow twice its hosts (label values × max_per) is not measured here: it is not
    /// tight, and its slots are only needed if it ends up unplaced ([`Hosts::slots_of`]).
    fn measure_room(&mut self, fleet: &Fleet) {
        let counts = self.counts(|_| true);
        for (g, group) in self.groups.iter().enumerate() {
            let n = counts[g].max(1);
            let rules = &fleet.classes[group.class as usize].rules;
            let rule_cap = rules
                .iter()
                .map(|r| r.counts.len() as u64 * u64::from(r.limit))
                .min();
            if rule_cap.is_none_or(|c| c >= 2 * u64::from(n)) {
                self.tight.push(u64::MAX);
                self.slots.push(None);
                continue;
            }
            let s = bounds::slots(fleet, group, n.saturating_mul(2));
            let ratio = u64::from(s.total) * 1000 / u64::from(n);
            self.tight.push(if ratio < 2000 { ratio } else { u64::MAX });
            self.slots.push(Some(s));
        }
    }

    /// The slots of group `g` on the fleet before placement (`base`).
    fn slots_of(&self, base: &Fleet, g: usize, n: u32) -> bounds::Slots {
        match &self.slots[g] {
            Some(s) => s.clone(),
            None => bounds::slots(base, &self.groups[g], n.saturating_mul(2)),
        }
    }

    /// Hosts per group, counting only groups for which `include` holds.
    pub fn counts(&self, include: impl Fn(&Group) -> bool) -> Vec<u32> {
        let mut n = vec![0; self.groups.len()];
        for g in self.group_of.iter().flatten() {
            if include(&self.groups[*g]) {
                n[*g] += 1;
            }
        }
        n
    }

    /// Request indices, large hosts first (ties by name) under the given measure of size.
    pub fn ordered(&self, order: Order) -> Vec<usize> {
        let mut idx: Vec<(u64, u128, usize)> = (0..self.requests.len())
            .filter_map(|i| {
                let g = self.group_of[i]?;
                let size = self.groups[g].size;
                let rank = if order == Order::Tight {
                    self.tight[g]
                } else {
                    0
                };
                let w = match order {
                    Order::Sum | Order::Tight => score::weight(self.reference, size),
                    Order::Max => (0..3)
                        .map(|d| {
                            let mut unit = [0; 3];
                            unit[d] = size[d];
                            score::weight(self.reference, unit)
                        })
                        .max()
                        .unwrap_or(0),
                };
                Some((rank, w, i))
            })
            .collect();
        idx.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then(b.1.cmp(&a.1))
                .then_with(|| self.requests[a.2].name.cmp(&self.requests[b.2].name))
        });
        idx.into_iter().map(|(_, _, i)| i).collect()
    }
}

/// How "large" is measured when ordering hosts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Order {
    /// Sum of the dimensions, each relative to the largest machine.
    Sum,
    /// The largest dimension, relative to the largest machine.
    Max,
    /// Tight groups first (fewest slots per host under their rules), then by [`Order::Sum`].
    Tight,
}

/// A complete assignment of the new hosts and the fleet state it leads to.
#[derive(Clone)]
pub(crate) struct Solution<'p> {
    pub fleet: Fleet<'p>,
    pub assign: Vec<Option<u32>>,
    pub work: u64,
}

impl Solution<'_> {
    /// Lower is better: unplaced hosts first, then machines in use.
    pub fn cost(&self) -> (usize, usize) {
        let unplaced = self.assign.iter().filter(|a| a.is_none()).count();
        let used = self.fleet.hosts_on.iter().filter(|&&n| n > 0).count();
        (unplaced, used)
    }
}

/// One constructive pass: every host in order, onto the machine the selector picks.
pub(crate) fn construct<'p>(base: &Fleet<'p>, hosts: &Hosts, order: Order) -> Solution<'p> {
    let mut fleet = base.clone();
    let mut selector = Selector::new(&fleet, &hosts.groups, &hosts.counts(|_| true));
    let mut assign = vec![None; hosts.requests.len()];
    for i in hosts.ordered(order) {
        let Some(g) = hosts.group_of[i] else { continue };
        let group = &hosts.groups[g];
        if let Some(m) = selector.choose(&fleet, g, group) {
            selector.put(&mut fleet, g, group, m);
            assign[i] = Some(m);
        }
    }
    Solution {
        fleet,
        assign,
        work: selector.work,
    }
}

fn finish(base: &Fleet, hosts: &Hosts, best: &Solution) -> Placement {
    let fleet = &best.fleet;
    let mut placement = Placement::default();
    let wanted = hosts.counts(|_| true);
    let demand = if best.cost().0 > 0 {
        bounds::demand(
            base,
            hosts.group_of.iter().flatten().map(|&g| &hosts.groups[g]),
        )
    } else {
        Vec::new()
    };
    for (i, r) in hosts.requests.iter().enumerate() {
        match (hosts.group_of[i], best.assign[i]) {
            (_, Some(m)) => {
                placement.assigned.insert(
                    r.name.clone(),
                    fleet.statics.machines[m as usize].name.to_string(),
                );
            }
            (None, None) => placement.unplaced.push(Unplaced {
                name: r.name.clone(),
                class: r.class.clone(),
                reasons: BTreeMap::from([("duplicate".to_string(), 1)]),
                explanation: format!("host `{}` is requested more than once", r.name),
            }),
            (Some(g), None) => {
                let group = &hosts.groups[g];
                let total = hosts.class_hosts[group.class as usize];
                let slots = hosts.slots_of(base, g, wanted[g]);
                let proof = explain::Proof {
                    slots: &slots,
                    wanted: wanted[g],
                    demand: &demand[group.driver as usize],
                };
                let (reasons, explanation) = explain::explain(fleet, group, total, &proof);
                placement.unplaced.push(Unplaced {
                    name: r.name.clone(),
                    class: r.class.clone(),
                    reasons,
                    explanation,
                });
            }
        }
    }
    placement.unplaced.sort_by(|a, b| a.name.cmp(&b.name));
    placement
}
