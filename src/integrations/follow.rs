//! Keeping one integration converged while HostDB changes (`kloud sync --watch`).
//!
//! The loop waits for HostDB's global index to move ([`Store::wait_for_change`]), re-lists the
//! hosts and converges. Over HTTP the wait is one Consul-style blocking query
//! (`/v1/index?index=N&wait=D`) that the server answers the moment a write lands; the embedded
//! stores read their one-row index every poll interval. The wait runs on a helper thread so
//! that a stop request, or a SQLite file replaced underneath us, is noticed within
//! [`CHECK_EVERY`] even while a query is held for many seconds.
//!
//! Failures never end the loop. A HostDB that cannot be read (a server restart, a database
//! file being replaced) is reopened with exponential backoff and re-listed in full; a failed
//! converge (DNS server down) is retried with backoff even if HostDB does not move; a converge
//! the integration refuses (the deletion guard, say) waits for the next HostDB change, as
//! retrying the same input would be refused again.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use kloud_provider_api::integration::{
    ConvergeRequest, ConvergeResponse, HostRecord, Integration, IntegrationError,
};

use crate::hostdb::{Store, StoreError};

use super::host_records;

pub use crate::hostdb::location::{Identity, Location};

/// How often a waiting watcher checks for a stop request and a replaced SQLite file.
pub const CHECK_EVERY: Duration = Duration::from_millis(50);

/// How to follow.
#[derive(Debug, Clone)]
pub struct Options {
    /// How often a store without blocking queries (SQLite, PostgreSQL) has its index read
    /// while nothing changes.
    pub poll: Duration,
    /// Longest one wait for a change is held (one blocking query over HTTP).
    pub hold: Duration,
    /// Converge even when HostDB did not change, to repair changes made behind our back.
    pub resync: Duration,
    /// First and largest delay between retries after a failure.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Passed to every converge.
    pub force: bool,
    /// Only the containers of this owner (all containers when `None`).
    pub owner: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            poll: Duration::from_millis(200),
            hold: Duration::from_secs(30),
            resync: Duration::from_secs(300),
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
            force: false,
            owner: None,
        }
    }
}

/// What the HostDB listing changed since the last successful converge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

impl Delta {
    fn between(
        before: &BTreeMap<String, HostRecord>,
        after: &BTreeMap<String, HostRecord>,
    ) -> Self {
        let mut d = Delta::default();
        for (name, rec) in after {
            match before.get(name) {
                None => d.added.push(name.clone()),
                Some(old) if old != rec => d.changed.push(name.clone()),
                Some(_) => {}
            }
        }
        d.removed = before
            .keys()
            .filter(|n| !after.contains_key(*n))
            .cloned()
            .collect();
        d
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// Why a round failed.
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    #[error("HostDB: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Integration(#[from] IntegrationError),
}

/// What happened; the CLI prints one line per event.
#[derive(Debug)]
pub enum Event<'a> {
    /// A converge ran.
    Converged {
        index: u64,
        hosts: usize,
        delta: &'a Delta,
        response: &'a ConvergeResponse,
        took: Duration,
    },
    /// HostDB moved but the hosts the integration sees did not change: nothing to do.
    Unchanged { index: u64 },
    /// (Re)connected to HostDB; `first` is false after an outage.
    Connected { index: u64, first: bool },
    /// A round failed; the next attempt is in `retry_in` (or at the next HostDB change).
    Failed {
        error: &'a RoundError,
        retry_in: Option<Duration>,
    },
}

/// Wait until the index differs from `seen`, `stop` is set or `until` passes; returns the
/// index last read (`seen` when it did not move). `current` says whether the store still reads
/// the database it was opened on. A single wait is held at most `hold`; embedded stores are
/// polled every `poll` (see the module doc).
pub fn wait_for_change(
    store: &Arc<dyn Store>,
    seen: u64,
    poll: Duration,
    hold: Duration,
    until: Instant,
    stop: &AtomicBool,
    current: &dyn Fn() -> bool,
) -> Result<u64, StoreError> {
    if !current() {
        return Err(replaced());
    }
    if stop.load(Ordering::Relaxed) {
        return Ok(seen);
    }
    let timeout = hold.min(until.saturating_duration_since(Instant::now()));
    let (tx, rx) = mpsc::channel();
    let waiter = Arc::clone(store);
    let spawned = std::thread::Builder::new()
        .name("hostdb-wait".to_string())
        .spawn(move || {
            // Nobody listens any more when the watcher stopped meanwhile; that is fine.
            let _ = tx.send(waiter.wait_for_change(seen, timeout, poll));
        });
    if spawned.is_err() {
        // No thread to spare: wait in this one, a poll interval at a time.
        return store.wait_for_change(seen, timeout.min(poll), poll);
    }
    loop {
        match rx.recv_timeout(CHECK_EVERY) {
            Ok(result) => return result,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // A held query is left to end on its own; its answer is not needed.
                if stop.load(Ordering::Relaxed) {
                    return Ok(seen);
                }
                if !current() {
                    return Err(replaced());
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(StoreError::Backend(
                    "the HostDB wait ended without an answer".to_string(),
                ))
            }
        }
    }
}

fn replaced() -> StoreError {
    StoreError::Unavailable("the HostDB file was removed or replaced".to_string())
}

fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let end = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// Converge `integration` once from the hosts of `store`.
pub fn converge_once(
    store: &dyn Store,
    integration: &dyn Integration,
    owner: Option<&str>,
    force: bool,
) -> Result<(Vec<HostRecord>, ConvergeResponse), RoundError> {
    let hosts = host_records(store, owner)?;
    let req = ConvergeRequest {
        hosts,
        force,
        dry_run: false,
    };
    let resp = integration.converge(&req)?;
    Ok((req.hosts, resp))
}

/// Whether retrying the same input can succeed; a refusal or a bad host needs a new input.
fn transient(e: &RoundError) -> bool {
    !matches!(
        e,
        RoundError::Integration(IntegrationError::Guard(_) | IntegrationError::InvalidHost { .. })
    )
}

/// Follow HostDB until `stop` is set, converging `integration` whenever the hosts change.
pub fn follow(
    location: &Location,
    integration: &dyn Integration,
    opts: &Options,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(Event<'_>),
) {
    let mut store: Option<(Arc<dyn Store>, Option<Identity>)> = None;
    // The listing of the last successful converge, and the index it was read at.
    let mut converged: BTreeMap<String, HostRecord> = BTreeMap::new();
    let mut converged_at: Option<u64> = None;
    let mut last_converge = Instant::now();
    // Set after a transient failure: retry at this time even if HostDB does not move.
    let mut retry_at: Option<Instant> = None;
    let mut backoff = opts.min_backoff;
    let mut ever_connected = false;

    while !stop.load(Ordering::Relaxed) {
        let fail = |e: RoundError, backoff: &mut Duration, on_event: &mut dyn FnMut(Event<'_>)| {
            let retry = transient(&e).then_some(*backoff);
            on_event(Event::Failed {
                error: &e,
                retry_in: retry,
            });
            let wait = *backoff;
            *backoff = (*backoff * 2).min(opts.max_backoff);
            (retry, wait)
        };

        // Connect, or notice that the database was replaced underneath us.
        if let Some((_, id)) = &store {
            if id.is_some() && location.identity() != *id {
                store = None;
            }
        }
        if store.is_none() {
            let opened = location.open().and_then(|s| s.index().map(|i| (s, i)));
            match opened {
                Ok((s, index)) => {
                    on_event(Event::Connected {
                        index,
                        first: !ever_connected,
                    });
                    ever_connected = true;
                    store = Some((Arc::from(s), location.identity()));
                    // Re-list in full after a reconnect: the index may be of another database.
                    converged_at = None;
                    backoff = opts.min_backoff;
                }
                Err(e) => {
                    let (_, wait) = fail(e.into(), &mut backoff, on_event);
                    sleep_unless_stopped(wait, stop);
                    continue;
                }
            }
        }
        let Some((s, id)) = &store else { continue };
        let id = *id;
        let current = || id.is_none() || location.identity() == id;

        // Wait for a reason to converge: HostDB moved, a retry is due, or the resync period.
        let index = match converged_at {
            None => s.index(),
            Some(seen) => {
                let until = [retry_at, Some(last_converge + opts.resync)]
                    .into_iter()
                    .flatten()
                    .min()
                    .unwrap_or_else(Instant::now);
                wait_for_change(s, seen, opts.poll, opts.hold, until, stop, &current)
            }
        };
        let index = match index {
            Ok(i) => i,
            Err(e) => {
                store = None;
                let (_, wait) = fail(e.into(), &mut backoff, on_event);
                sleep_unless_stopped(wait, stop);
                continue;
            }
        };
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let now = Instant::now();
        let due = converged_at != Some(index)
            || retry_at.is_some_and(|t| now >= t)
            || now >= last_converge + opts.resync;
        if !due {
            continue;
        }

        let started = Instant::now();
        let hosts = match host_records(&**s, opts.owner.as_deref()) {
            Ok(h) => h,
            Err(e) => {
                store = None;
                let (_, wait) = fail(e.into(), &mut backoff, on_event);
                sleep_unless_stopped(wait, stop);
                continue;
            }
        };
        let listing: BTreeMap<String, HostRecord> =
            hosts.iter().map(|h| (h.fqdn.clone(), h.clone())).collect();
        let delta = Delta::between(&converged, &listing);
        let resync_due = now >= last_converge + opts.resync;
        if converged_at.is_some() && delta.is_empty() && retry_at.is_none() && !resync_due {
            // HostDB moved for something the integration does not see (a lock, a machine
            // without hosts, another owner's host): nothing to converge.
            converged_at = Some(index);
            on_event(Event::Unchanged { index });
            continue;
        }
        let req = ConvergeRequest {
            hosts,
            force: opts.force,
            dry_run: false,
        };
        last_converge = Instant::now();
        match integration.converge(&req) {
            Ok(response) => {
                on_event(Event::Converged {
                    index,
                    hosts: req.hosts.len(),
                    delta: &delta,
                    response: &response,
                    took: started.elapsed(),
                });
                converged = listing;
                converged_at = Some(index);
                retry_at = None;
                backoff = opts.min_backoff;
            }
            Err(e) => {
                let (retry, _) = fail(e.into(), &mut backoff, on_event);
                // Either way this index has been tried; a transient failure is retried on a
                // timer, a refusal waits for HostDB to change.
                converged_at = Some(index);
                retry_at = retry.map(|d| Instant::now() + d);
                if retry.is_none() {
                    // Compare the next listing with this one, not the last converged.
                    converged = listing;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, ip: &str) -> HostRecord {
        HostRecord {
            fqdn: name.into(),
            ip: ip.into(),
            class: "web".into(),
            tags: vec![],
            labels: BTreeMap::new(),
            machine: "m".into(),
            roles: vec![],
            properties: Default::default(),
        }
    }

    #[test]
    fn delta_names_added_changed_removed() {
        let before: BTreeMap<_, _> = [rec("a", "1"), rec("b", "2"), rec("c", "3")]
            .into_iter()
            .map(|r| (r.fqdn.clone(), r))
            .collect();
        let after: BTreeMap<_, _> = [rec("a", "1"), rec("b", "9"), rec("d", "4")]
            .into_iter()
            .map(|r| (r.fqdn.clone(), r))
            .collect();
        let d = Delta::between(&before, &after);
        assert_eq!(d.added, ["d"]);
        assert_eq!(d.changed, ["b"]);
        assert_eq!(d.removed, ["c"]);
        assert!(Delta::between(&after, &after).is_empty());
    }

    #[test]
    fn a_missing_sqlite_file_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let loc = Location {
            url: "sqlite:nope.db".into(),
            base_dir: dir.path().into(),
            source: "test".into(),
        };
        assert!(matches!(loc.open(), Err(StoreError::Unavailable(_))));
        assert!(!dir.path().join("nope.db").exists());
        assert_eq!(loc.identity(), None);
    }
}
