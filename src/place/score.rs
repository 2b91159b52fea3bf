//! Scoring of feasible machines. Pack prefers the machine a host fills best (least slack left
//! over the resource vector, each dimension relative to the machine's capacity); spread prefers
//! the least loaded machine. Scores are integers so that equal inputs compare equal on every
//! platform; ties are broken by machine id, which is name order.

use super::fleet::Vec3;

const SCALE: u128 = 1 << 20;

/// How pack measures the slack a host would leave on a machine (lower is a better fit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fit {
    /// Sum of the normalised slack per dimension.
    Sum,
    /// Sum of squares of the normalised slack: prefers an even leftover.
    Squares,
}

/// Slack left on a machine with `free` of `cap` after adding `size` (which must fit).
pub(crate) fn pack(fit: Fit, cap: Vec3, free: Vec3, size: Vec3) -> u128 {
    let mut total = 0u128;
    for d in 0..3 {
        if cap[d] == 0 {
            continue;
        }
        let slack = u128::from(free[d] - size[d]) * SCALE / u128::from(cap[d]);
        total += match fit {
            Fit::Sum => slack,
            Fit::Squares => slack * slack,
        };
    }
    total
}

/// How bin-centric filling picks the next host for a machine (higher is better).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Affinity {
    /// Dot product of the host's size with the machine's free vector (Panigrahy et al.): favours
    /// hosts that use what the machine has most of.
    Dot,
    /// Least squared slack left afterwards.
    Snug,
    /// The largest host that fits.
    Largest,
}

/// How well a host of `size` suits a machine with `free` of `cap` (the host must fit).
pub(crate) fn affinity(kind: Affinity, cap: Vec3, free: Vec3, size: Vec3) -> u128 {
    match kind {
        Affinity::Dot => (0..3)
            .filter(|&d| cap[d] > 0)
            .map(|d| {
                let c = u128::from(cap[d]);
                (u128::from(size[d]) * SCALE / c) * (u128::from(free[d]) * SCALE / c)
            })
            .sum(),
        Affinity::Snug => u128::MAX - pack(Fit::Squares, cap, free, size),
        Affinity::Largest => weight(cap, size),
    }
}

/// How loaded a machine is: the fullest dimension first, then the sum over dimensions.
pub(crate) fn load(cap: Vec3, used: Vec3) -> (u64, u64) {
    let mut max = 0u64;
    let mut sum = 0u64;
    for d in 0..3 {
        let share = if cap[d] == 0 {
            0
        } else {
            (u128::from(used[d]) * SCALE / u128::from(cap[d])) as u64
        };
        max = max.max(share);
        sum += share;
    }
    (max, sum)
}

/// The size of a host relative to the largest machine, for "large hosts first".
pub(crate) fn weight(reference: Vec3, size: Vec3) -> u128 {
    (0..3)
        .map(|d| u128::from(size[d]) * SCALE / u128::from(reference[d].max(1)))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tighter_fit_scores_lower() {
        let cap = [32, 131072, 2048];
        let snug = pack(Fit::Sum, cap, [4, 8192, 100], [4, 8192, 40]);
        let loose = pack(Fit::Sum, cap, [16, 65536, 1000], [4, 8192, 40]);
        assert!(snug < loose);
    }

    #[test]
    fn load_orders_by_fullest_dimension() {
        let cap = [10, 10, 10];
        assert!(load(cap, [9, 0, 0]) > load(cap, [5, 5, 5]));
        assert_eq!(load([0, 0, 0], [0, 0, 0]), (0, 0));
    }
}
