//! The background loop of every `kloud serve`: finds the people with pending work (a host
//! `creating`, `failed`, `deleting` or marked for recreation) and converges them all in one
//! `ops::converge` — one lock, each person's plan, the crash-safe steps, then integrations.
//!
//! It wakes when a request of this server kicks it, and every `poll_every` otherwise, which
//! is how it picks up requests made through another server and work a crashed server left
//! half done. A pass that would find nothing new reads nothing, and a person's failed hosts are
//! retried with a growing wait ([`super::pacing`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::hostdb::model::{Host, State};
use crate::ops::{self, events::Silent, ApplyRequest, ConvergeRequest, OpsError, PlanRequest};

use super::pacing::Pacing;
use super::person::{self, RECREATE_LABEL};
use super::{reserve, SelfError, SelfService};

/// Start the loop on the current tokio runtime.
pub fn start(service: Arc<SelfService>, stop: Arc<AtomicBool>) {
    tokio::spawn(async move {
        // Work a previous run left behind is looked at straight away.
        let mut first = true;
        while !stop.load(Ordering::SeqCst) {
            if !first {
                tokio::select! {
                    () = service.kick.notified() => {}
                    () = tokio::time::sleep(service.settings.poll_every) => {}
                }
            }
            first = false;
            let s = service.clone();
            let stopping = stop.clone();
            let pass = tokio::task::spawn_blocking(move || run_once(&s, &stopping)).await;
            match pass {
                // More people are waiting than one pass takes: go on at once.
                Ok(Ok(n)) if n >= PER_PASS => first = true,
                Ok(Err(e)) => {
                    eprintln!("kloud serve: self-service worker: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                _ => {}
            }
        }
    });
}

/// People converged in one pass at most. The lock is held for the whole pass, and requests
/// wait for it: small passes let them in between.
const PER_PASS: usize = 8;

/// One pass: converge people with pending work (at most [`PER_PASS`], those waiting longest
/// first). Returns how many people it worked on.
pub fn run_once(service: &SelfService, stop: &Arc<AtomicBool>) -> Result<usize, SelfError> {
    let store = service.store.as_ref();
    let now = Instant::now();
    // The cheapest look first: nothing changed since a pass that had nothing to do.
    let index = store.index()?;
    if pacing(service).can_skip(index, now) {
        return Ok(0);
    }
    // Then without the lock: most passes find nothing to do.
    if due(service, pending(&person::hosts_of(store, None)?), now).is_empty() {
        pacing(service).idle(index);
        return Ok(0);
    }
    // The records the plans are made from are read again under the lock (see `ops::converge`).
    let taken = std::sync::Mutex::new(Vec::<String>::new());
    let configs = || -> Result<Vec<(Config, PlanRequest)>, OpsError> {
        let read = |e: crate::hostdb::StoreError| OpsError::Read(e);
        let pending = due(
            service,
            pending(&person::hosts_of(store, None).map_err(read)?),
            now,
        );
        let machines = reserve::machine_names(store).map_err(|e| match e {
            SelfError::Store(e) => read(e),
            other => read(crate::hostdb::StoreError::Backend(other.to_string())),
        })?;
        let people: Vec<(String, Vec<Host>)> =
            oldest_first(pending).into_iter().take(PER_PASS).collect();
        if let Ok(mut t) = taken.lock() {
            *t = people.iter().map(|(owner, _)| owner.clone()).collect();
        }
        Ok(people
            .into_iter()
            .map(|(owner, hosts)| {
                let config = person::config_for(&service.config, &owner, &hosts, None, &machines);
                let replace = hosts
                    .iter()
                    .filter(|h| h.labels.contains_key(RECREATE_LABEL))
                    .map(|h| h.name.clone())
                    .collect();
                let req = PlanRequest {
                    force: true,
                    replace,
                    ..PlanRequest::default()
                };
                (config, req)
            })
            .collect())
    };
    let req = ConvergeRequest {
        apply: ApplyRequest {
            parallelism: service.settings.parallelism,
            actor: "kloud serve (self-service)".into(),
            // Its own flag: the engine sets it when the lock is in trouble, for this pass only.
            cancel: Arc::new(AtomicBool::new(stop.load(Ordering::SeqCst))),
            lock_ttl: service.settings.lock_ttl,
        },
        lock_wait: service.settings.lock_wait,
    };
    let accept = |_: &Config, _: &crate::plan::Plan| Ok(());
    let outcome = ops::converge(
        &configs,
        store,
        service.drivers.as_ref(),
        &req,
        &accept,
        &Silent,
    )
    .map_err(|e| SelfError::Engine(e.to_string()))?;
    let taken = taken.lock().map(|t| t.clone()).unwrap_or_default();
    settle(service, &taken, now)?;
    Ok(outcome.applied.len())
}

fn pacing(service: &SelfService) -> std::sync::MutexGuard<'_, Pacing> {
    // The pacing is advice: a panic elsewhere never stops the worker.
    service
        .pacing
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The people of `pending` whose turn it is: a change at once, unfinished work after its wait.
fn due(
    service: &SelfService,
    mut pending: BTreeMap<String, Vec<Host>>,
    now: Instant,
) -> BTreeMap<String, Vec<Host>> {
    let mut pacing = pacing(service);
    pending.retain(|owner, hosts| pacing.due(owner, latest_change(hosts), now));
    pending
}

fn latest_change(hosts: &[Host]) -> u64 {
    hosts.iter().map(|h| h.modified_index).max().unwrap_or(0)
}

/// After a pass: each person it took is done, or waits longer before the next try (a host
/// still failed, or a plan that could not be made or placed).
fn settle(service: &SelfService, taken: &[String], now: Instant) -> Result<(), SelfError> {
    for owner in taken {
        let hosts = person::hosts_of(service.store.as_ref(), Some(owner.clone()))?;
        let unfinished = hosts.iter().any(needs_work);
        pacing(service).settle(owner, unfinished, latest_change(&hosts), now);
    }
    Ok(())
}

/// People by the oldest change among their hosts with work to do.
fn oldest_first(pending: BTreeMap<String, Vec<Host>>) -> Vec<(String, Vec<Host>)> {
    let mut people: Vec<(u64, String, Vec<Host>)> = pending
        .into_iter()
        .map(|(owner, hosts)| {
            let since = hosts
                .iter()
                .filter(|h| needs_work(h))
                .map(|h| h.modified_index)
                .min()
                .unwrap_or(0);
            (since, owner, hosts)
        })
        .collect();
    people.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    people.into_iter().map(|(_, o, h)| (o, h)).collect()
}

/// Each person with something to do, with all their hosts (the plan needs them all).
fn pending(hosts: &[Host]) -> BTreeMap<String, Vec<Host>> {
    let mut by_owner: BTreeMap<String, Vec<Host>> = BTreeMap::new();
    for h in hosts {
        if let Some(owner) = &h.owner {
            by_owner.entry(owner.clone()).or_default().push(h.clone());
        }
    }
    by_owner.retain(|_, hosts| hosts.iter().any(needs_work));
    by_owner
}

fn needs_work(h: &Host) -> bool {
    h.state != Some(State::Running) || h.labels.contains_key(RECREATE_LABEL)
}
