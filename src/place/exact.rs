//! Exact placement for small problems: a depth-first branch and bound over the new hosts'
//! machines, finding a complete placement on the fewest machines, or proving there is none —
//! within a budget of search nodes, so that it ends on time and gives the same answer on every
//! computer.
//!
//! Hosts are taken tight groups first, then large first ([`super::Order::Tight`]); each goes on
//! every machine that passes the stages, machines in use first. Symmetry is cut twice: the
//! hosts of one group are interchangeable, so each goes on a machine with an id no lower than the
//! previous host of its group; and of empty machines that look alike (driver, capacity, the
//! label values the rules count by), only the first is tried. A branch is cut when it already
//! uses as many machines as the best complete placement found.

use super::fleet::{Fleet, MACHINE_KEY};
use super::stages::feasible;
use super::{Hosts, Order, Solution};
use std::collections::{HashMap, HashSet};

/// What the search found.
pub(crate) enum Outcome<'p> {
    /// A complete placement; `optimal` when the search space was exhausted.
    Complete {
        solution: Solution<'p>,
        optimal: bool,
    },
    /// The search space was exhausted: no complete placement exists.
    Infeasible,
    /// The budget ran out before any complete placement was found.
    Unknown,
}

pub(crate) fn solve<'p>(base: &Fleet<'p>, hosts: &Hosts, nodes: u64) -> Outcome<'p> {
    let order: Vec<usize> = hosts.ordered(Order::Tight);
    let n = base.hosts_on.len();
    // Machines that look alike when empty share a signature id.
    let mut ids: HashMap<Vec<u64>, u32> = HashMap::new();
    let signature: Vec<u32> = (0..n as u32)
        .map(|m| {
            let info = &base.statics.machines[m as usize];
            let mut s = vec![
                u64::from(info.driver),
                info.cap[0],
                info.cap[1],
                info.cap[2],
            ];
            for (k, key) in base.statics.keys.iter().enumerate() {
                if key != MACHINE_KEY {
                    s.push(base.statics.value(m, k as u32).map_or(u64::MAX, u64::from));
                }
            }
            let next = ids.len() as u32;
            *ids.entry(s).or_insert(next)
        })
        .collect();
    let mut s = State {
        hosts,
        order,
        signature,
        fleet: base.clone(),
        assign: vec![None; hosts.requests.len()],
        best: None,
        best_used: usize::MAX,
        nodes,
        exhausted: true,
    };
    let used = s.fleet.hosts_on.iter().filter(|&&h| h > 0).count();
    s.dfs(0, used);
    match s.best {
        Some(assign) => {
            let mut fleet = base.clone();
            for (i, a) in assign.iter().enumerate() {
                if let (Some(m), Some(g)) = (*a, hosts.group_of[i]) {
                    let group = &hosts.groups[g];
                    fleet.put(group.class, group.size, m);
                }
            }
            Outcome::Complete {
                solution: Solution {
                    fleet,
                    assign,
                    work: 0,
                },
                optimal: s.exhausted,
            }
        }
        None if s.exhausted => Outcome::Infeasible,
        None => Outcome::Unknown,
    }
}

struct State<'a, 'p> {
    hosts: &'a Hosts<'a>,
    order: Vec<usize>,
    signature: Vec<u32>,
    fleet: Fleet<'p>,
    assign: Vec<Option<u32>>,
    best: Option<Vec<Option<u32>>>,
    best_used: usize,
    nodes: u64,
    /// False once the budget cut the search short.
    exhausted: bool,
}

impl State<'_, '_> {
    fn dfs(&mut self, depth: usize, used: usize) {
        if used >= self.best_used {
            return;
        }
        if self.nodes == 0 {
            self.exhausted = false;
            return;
        }
        self.nodes -= 1;
        let Some(&i) = self.order.get(depth) else {
            self.best_used = used;
            self.best = Some(self.assign.clone());
            return;
        };
        let hosts = self.hosts;
        let Some(g) = hosts.group_of[i] else {
            return self.dfs(depth + 1, used);
        };
        let group = &hosts.groups[g];
        // The previous host of the same group bounds the machine id from below.
        let floor = depth
            .checked_sub(1)
            .map(|d| self.order[d])
            .filter(|&j| hosts.group_of[j] == Some(g))
            .and_then(|j| self.assign[j])
            .unwrap_or(0);
        let n = self.fleet.hosts_on.len() as u32;
        let (in_use, empty): (Vec<u32>, Vec<u32>) =
            (floor..n).partition(|&m| self.fleet.hosts_on[m as usize] > 0);
        let mut seen: HashSet<u32> = HashSet::new();
        for m in in_use.into_iter().chain(empty) {
            let opens = self.fleet.hosts_on[m as usize] == 0;
            if opens && !seen.insert(self.signature[m as usize]) {
                continue;
            }
            if feasible(&self.fleet, group, m).is_err() {
                continue;
            }
            self.fleet.put(group.class, group.size, m);
            self.assign[i] = Some(m);
            self.dfs(depth + 1, used + usize::from(opens));
            self.assign[i] = None;
            self.fleet.take(group.class, group.size, m);
            if self.nodes == 0 {
                break;
            }
        }
    }
}
