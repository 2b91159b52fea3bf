//! How often the self-service worker looks at HostDB and retries a person's failed hosts.
//!
//! Two rules, kept in memory by each server (a restarted server starts afresh, which is safe:
//! it only retries sooner):
//! - **Idle skip**: a pass that found nothing to do remembers HostDB's index; while the index
//!   has not moved and no retry is due, the next pass reads nothing (one `index()` call instead
//!   of reading every person's hosts every few seconds).
//! - **Backoff**: a person whose work a pass left unfinished (a host `failed`, or one that could
//!   not be placed) is tried again after 5 s, then 10 s, 20 s … up to 10 minutes, instead of on
//!   every pass. Anything new from that person (a record of theirs changed since: a request, a
//!   release, a recreate) is worked on at once and clears the backoff.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The first wait after a failed retry.
pub const FIRST_RETRY: Duration = Duration::from_secs(5);
/// The longest wait between retries.
pub const LONGEST_RETRY: Duration = Duration::from_secs(600);

/// A person's unfinished attempts and when the next is due.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    due: Instant,
    /// The newest `modified_index` among their records after the last attempt.
    seen: u64,
}

/// The worker's memory between passes.
#[derive(Debug, Default)]
pub struct Pacing {
    /// HostDB's index after the last pass that had nothing to do.
    idle_at: Option<u64>,
    backoff: BTreeMap<String, Backoff>,
}

impl Pacing {
    /// Whether a pass at HostDB index `index` and time `now` can be skipped without reading.
    pub fn can_skip(&self, index: u64, now: Instant) -> bool {
        self.idle_at == Some(index) && !self.backoff.values().any(|b| b.due <= now)
    }

    /// Remember that the pass at `index` found nothing it could work on.
    pub fn idle(&mut self, index: u64) {
        self.idle_at = Some(index);
    }

    /// Whether `owner`, whose newest record changed at `latest`, is worked on now. A change
    /// since the last attempt always is, and forgets the backoff.
    pub fn due(&mut self, owner: &str, latest: u64, now: Instant) -> bool {
        match self.backoff.get(owner) {
            None => true,
            Some(b) if latest > b.seen => {
                self.backoff.remove(owner);
                true
            }
            Some(b) => b.due <= now,
        }
    }

    /// After a pass worked on `owner`: their work is done (`unfinished` false), or they wait
    /// longer before the next try. `latest` is their newest record's `modified_index` now.
    pub fn settle(&mut self, owner: &str, unfinished: bool, latest: u64, now: Instant) {
        self.idle_at = None;
        if !unfinished {
            self.backoff.remove(owner);
            return;
        }
        let failures = self.backoff.get(owner).map_or(0, |b| b.failures) + 1;
        let wait = FIRST_RETRY
            .saturating_mul(2u32.saturating_pow(failures - 1))
            .min(LONGEST_RETRY);
        self.backoff.insert(
            owner.to_string(),
            Backoff {
                failures,
                due: now + wait,
                seen: latest,
            },
        );
    }

    /// The wait before `owner`'s next retry, if they are backing off (for tests and logs).
    pub fn wait_of(&self, owner: &str, now: Instant) -> Option<Duration> {
        self.backoff
            .get(owner)
            .map(|b| b.due.saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfinished_work_waits_longer_each_time_up_to_the_cap() {
        let mut p = Pacing::default();
        let t0 = Instant::now();
        assert!(p.due("user:ann", 3, t0), "a first attempt is at once");
        let mut waits = Vec::new();
        for _ in 0..10 {
            p.settle("user:ann", true, 3, t0);
            waits.push(p.wait_of("user:ann", t0).map(|d| d.as_secs()));
        }
        let secs: Vec<u64> = waits.into_iter().flatten().collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 320, 600, 600, 600]);
        assert!(!p.due("user:ann", 3, t0 + Duration::from_secs(599)));
        assert!(p.due("user:ann", 3, t0 + Duration::from_secs(600)));
    }

    #[test]
    fn a_change_is_worked_on_at_once_and_forgets_the_backoff() {
        let mut p = Pacing::default();
        let t0 = Instant::now();
        p.settle("user:ann", true, 3, t0);
        p.settle("user:ann", true, 3, t0);
        assert!(!p.due("user:ann", 3, t0));
        assert!(p.due("user:ann", 4, t0), "a new request is not held back");
        assert_eq!(p.wait_of("user:ann", t0), None);
        p.settle("user:bob", true, 5, t0);
        p.settle("user:bob", false, 6, t0);
        assert_eq!(p.wait_of("user:bob", t0), None, "repaired: no backoff left");
    }

    #[test]
    fn an_idle_pass_is_skipped_until_the_index_moves_or_a_retry_is_due() {
        let mut p = Pacing::default();
        let t0 = Instant::now();
        assert!(!p.can_skip(7, t0), "nothing known yet");
        p.idle(7);
        assert!(p.can_skip(7, t0));
        assert!(!p.can_skip(8, t0), "HostDB changed");
        p.settle("user:ann", true, 8, t0);
        p.idle(9);
        assert!(p.can_skip(9, t0 + Duration::from_secs(4)));
        assert!(
            !p.can_skip(9, t0 + Duration::from_secs(5)),
            "a retry is due"
        );
    }
}
