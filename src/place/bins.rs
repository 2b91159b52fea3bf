//! Bin-centric filling, an alternative constructive pass for the improvement phase: take one
//! machine at a time (those already in use first, then empty ones in name order) and keep adding
//! the pending host that suits it best until none fits, then move on. On vector packing it beats
//! host-by-host first fit because each machine is filled with a complementary mix.
//! Hosts of spread classes are placed host by host first, as in the main pass.

use super::fleet::Fleet;
use super::model::Strategy;
use super::score::{self, Affinity};
use super::select::Selector;
use super::stages::{feasible, Group};
use super::{Hosts, Order, Solution};

pub(crate) fn fill<'p>(base: &Fleet<'p>, hosts: &Hosts, kind: Affinity) -> Solution<'p> {
    let mut fleet = base.clone();
    let spread = |g: &Group| fleet.classes[g.class as usize].strategy == Strategy::Spread;
    let mut selector = Selector::new(&fleet, &hosts.groups, &hosts.counts(spread));
    let mut assign = vec![None; hosts.requests.len()];
    // Per group, its hosts in reverse name order so that `pop` hands out the first name.
    let mut queue: Vec<Vec<usize>> = vec![Vec::new(); hosts.groups.len()];
    for i in hosts.ordered(Order::Tight) {
        let Some(g) = hosts.group_of[i] else { continue };
        let group = &hosts.groups[g];
        if fleet.classes[group.class as usize].strategy == Strategy::Spread {
            if let Some(m) = selector.choose(&fleet, g, group) {
                selector.put(&mut fleet, g, group, m);
                assign[i] = Some(m);
            }
        } else {
            queue[g].push(i);
        }
    }
    let mut work = selector.work;
    for q in queue.iter_mut() {
        q.sort_by(|a, b| hosts.requests[*b].name.cmp(&hosts.requests[*a].name));
    }
    let mut live: Vec<usize> = (0..queue.len()).filter(|&g| !queue[g].is_empty()).collect();
    let n = fleet.hosts_on.len() as u32;
    let (mut machines, empty): (Vec<u32>, Vec<u32>) =
        (0..n).partition(|&m| fleet.hosts_on[m as usize] > 0);
    machines.extend(empty);
    for m in machines {
        if live.is_empty() {
            break;
        }
        let cap = fleet.statics.machines[m as usize].cap;
        loop {
            let mut best: Option<(u128, usize)> = None;
            let free = fleet.free(m);
            for &g in &live {
                work += 1;
                let group = &hosts.groups[g];
                if feasible(&fleet, group, m).is_err() {
                    continue;
                }
                let a = score::affinity(kind, cap, free, group.size);
                // Higher wins; the first group seen keeps a tie.
                if !matches!(best, Some((b, _)) if b >= a) {
                    best = Some((a, g));
                }
            }
            let Some((_, g)) = best else { break };
            let group = &hosts.groups[g];
            if let Some(i) = queue[g].pop() {
                fleet.put(group.class, group.size, m);
                assign[i] = Some(m);
            }
            if queue[g].is_empty() {
                live.retain(|&x| x != g);
            }
        }
    }
    Solution {
        fleet,
        assign,
        work,
    }
}
