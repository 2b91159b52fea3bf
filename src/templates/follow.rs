//! Keeping templates converged while HostDB changes (`kloud sync template --watch`).
//!
//! The same wait as the integrations' watcher ([`crate::integrations::follow`]: a blocking
//! query over HTTP, an index poll on SQLite and PostgreSQL, on a helper thread so a stop is
//! noticed at once), then **coalescing**: once HostDB moved, the watcher keeps waiting while
//! further writes arrive less than [`Options::coalesce`] apart, for at most
//! [`Options::coalesce_max`], so a burst of writes (an apply creating twenty hosts) renders
//! and reloads once, not twenty times. Then one read of HostDB, and every followed template
//! is converged from it.
//!
//! Failures never end the loop: a HostDB that cannot be read is reopened with backoff; a
//! template that failed (its check, its on_change, a command that timed out) is tried again
//! with backoff, and an `on_change` that failed after its file was written is run again even
//! though the text no longer changes.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Config, Template};
use crate::hostdb::{Store, StoreError};
use crate::integrations::follow::{wait_for_change, Identity, Location};

use super::{converge_these, rerun_on_change, Converged, Fleet, Outcome, TemplateError};

/// How to follow.
#[derive(Debug, Clone)]
pub struct Options {
    /// How often a store without blocking queries has its index read.
    pub poll: Duration,
    /// Longest one wait for a change is held.
    pub hold: Duration,
    /// Converge this often even without changes, to repair files changed behind our back.
    pub resync: Duration,
    /// After a change, wait until HostDB has been quiet this long (zero: do not wait)…
    pub coalesce: Duration,
    /// …but never longer than this after the first change.
    pub coalesce_max: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            poll: Duration::from_millis(200),
            hold: Duration::from_secs(30),
            resync: Duration::from_secs(300),
            coalesce: Duration::from_millis(20),
            coalesce_max: Duration::from_secs(1),
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// What happened; the CLI prints a line per event.
#[derive(Debug)]
pub enum Event<'a> {
    /// (Re)connected to HostDB; `first` is false after an outage.
    Connected { index: u64, first: bool },
    /// A round ran: every followed template, converged from HostDB at `index`.
    Converged {
        index: u64,
        results: &'a [Converged],
        took: Duration,
    },
    /// HostDB could not be read; the next attempt is in `retry_in`.
    Failed {
        error: &'a StoreError,
        retry_in: Duration,
    },
}

type Connection = (Arc<dyn Store>, Option<Identity>);

/// State carried between rounds.
struct Watch {
    store: Option<Connection>,
    /// The index the last round read HostDB at.
    seen: Option<u64>,
    last_round: Instant,
    /// Set after a failed template: run a round then even if HostDB does not move.
    retry_at: Option<Instant>,
    backoff: Duration,
    connected_once: bool,
    /// Templates whose on_change failed after their file was written.
    on_change_pending: BTreeSet<String>,
}

/// Follow HostDB until `stop` is set, converging `templates` whenever it changes.
pub fn follow(
    location: &Location,
    config: &Config,
    templates: &[&Template],
    opts: &Options,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(Event<'_>),
) {
    let mut w = Watch {
        store: None,
        seen: None,
        last_round: Instant::now(),
        retry_at: None,
        backoff: opts.min_backoff,
        connected_once: false,
        on_change_pending: BTreeSet::new(),
    };
    while !stop.load(Ordering::Relaxed) {
        let Some((store, id)) = connect(location, &mut w, opts, stop, on_event) else {
            continue;
        };
        let current = || id.is_none() || location.identity() == id;
        let index = match wait_for_reason(&store, &w, opts, stop, &current) {
            Ok(i) => i,
            Err(e) => {
                lost(e, &mut w, opts, stop, on_event);
                continue;
            }
        };
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let now = Instant::now();
        let moved = w.seen.is_some_and(|s| s != index);
        let due = w.seen.is_none()
            || moved
            || w.retry_at.is_some_and(|t| now >= t)
            || now >= w.last_round + opts.resync;
        if !due {
            continue;
        }
        if moved {
            if let Err(e) = coalesce(&*store, index, opts, stop) {
                lost(e, &mut w, opts, stop, on_event);
                continue;
            }
        }
        let started = Instant::now();
        let fleet = match Fleet::read(&*store) {
            Ok(f) => f,
            Err(e) => {
                lost(e, &mut w, opts, stop, on_event);
                continue;
            }
        };
        let results = round(config, templates, &fleet, &mut w);
        w.last_round = Instant::now();
        w.seen = Some(fleet.index);
        on_event(Event::Converged {
            index: fleet.index,
            results: &results,
            took: started.elapsed(),
        });
        if results.iter().any(|(_, r)| r.is_err()) {
            w.retry_at = Some(Instant::now() + w.backoff);
            w.backoff = (w.backoff * 2).min(opts.max_backoff);
        } else {
            w.retry_at = None;
            w.backoff = opts.min_backoff;
        }
    }
}

/// The open store, opening it (or reopening a replaced SQLite file) first; `None` after a
/// failure, reported and slept off.
fn connect(
    location: &Location,
    w: &mut Watch,
    opts: &Options,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(Event<'_>),
) -> Option<Connection> {
    if let Some((_, id)) = &w.store {
        if id.is_some() && location.identity() != *id {
            w.store = None;
        }
    }
    if w.store.is_none() {
        match location.open().and_then(|s| s.index().map(|i| (s, i))) {
            Ok((s, index)) => {
                on_event(Event::Connected {
                    index,
                    first: !w.connected_once,
                });
                w.connected_once = true;
                w.store = Some((Arc::from(s), location.identity()));
                // Re-read in full after a reconnect: the index may be of another database.
                w.seen = None;
                w.backoff = opts.min_backoff;
            }
            Err(e) => {
                lost(e, w, opts, stop, on_event);
                return None;
            }
        }
    }
    w.store.clone()
}

/// Wait until HostDB moves past what the last round saw, a retry is due, or the resync period
/// ends; the index last read.
fn wait_for_reason(
    store: &Arc<dyn Store>,
    w: &Watch,
    opts: &Options,
    stop: &AtomicBool,
    current: &dyn Fn() -> bool,
) -> Result<u64, StoreError> {
    match w.seen {
        None => store.index(),
        Some(seen) => {
            let until = [w.retry_at, Some(w.last_round + opts.resync)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or_else(Instant::now);
            wait_for_change(store, seen, opts.poll, opts.hold, until, stop, current)
        }
    }
}

/// HostDB moved to `index`: wait while further writes keep arriving (see the module doc).
fn coalesce(
    store: &dyn Store,
    mut index: u64,
    opts: &Options,
    stop: &AtomicBool,
) -> Result<u64, StoreError> {
    let end = Instant::now() + opts.coalesce_max;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if opts.coalesce.is_zero() || left.is_zero() || stop.load(Ordering::Relaxed) {
            return Ok(index);
        }
        let quiet = opts.coalesce.min(left);
        let next = store.wait_for_change(index, quiet, opts.poll.min(quiet))?;
        if next == index {
            return Ok(index);
        }
        index = next;
    }
}

/// Converge every template once; run again the on_change commands that failed before.
fn round(config: &Config, templates: &[&Template], fleet: &Fleet, w: &mut Watch) -> Vec<Converged> {
    let mut results = converge_these(config, templates, fleet);
    for ((name, result), t) in results.iter_mut().zip(templates) {
        match result {
            Err(TemplateError::OnChange { .. }) => {
                w.on_change_pending.insert(name.clone());
            }
            Ok(Outcome::Unchanged { hosts }) if w.on_change_pending.contains(name) => {
                let hosts = *hosts;
                *result = rerun_on_change(t, &config.dir).map(|()| Outcome::Written {
                    hosts,
                    created: false,
                    bytes: 0,
                    on_change: true,
                });
                if result.is_ok() {
                    w.on_change_pending.remove(name);
                }
            }
            Ok(_) => {
                w.on_change_pending.remove(name);
            }
            Err(_) => {}
        }
    }
    results
}

/// HostDB could not be read: drop the connection, report, back off.
fn lost(
    e: StoreError,
    w: &mut Watch,
    opts: &Options,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(Event<'_>),
) {
    w.store = None;
    on_event(Event::Failed {
        error: &e,
        retry_in: w.backoff,
    });
    let end = Instant::now() + w.backoff;
    w.backoff = (w.backoff * 2).min(opts.max_backoff);
    while !stop.load(Ordering::Relaxed) {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}
