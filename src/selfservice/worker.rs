//! The background loop of every `kloud serve`: finds the people with pending work (a host
//! `creating`, `failed`, `deleting` or marked for recreation) and converges them all in one
//! `ops::converge` — one lock, each person's plan, the crash-safe steps, then integrations.
//!
//! It wakes when a request of this server kicks it, and every `poll_every` otherwise, which
//! is how it picks up requests made through another server and work a crashed server left
//! half done. A failed host is retried on every pass, so it is repaired as soon as it can be.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::hostdb::model::{Host, State};
use crate::ops::{self, events::Silent, ApplyRequest, ConvergeRequest, OpsError, PlanRequest};

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
            if let Ok(Err(e)) = pass {
                eprintln!("kloud serve: self-service worker: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });
}

/// One pass: converge every person with pending work. Returns how many people it worked on.
pub fn run_once(service: &SelfService, stop: &Arc<AtomicBool>) -> Result<usize, SelfError> {
    let store = service.store.as_ref();
    // A cheap look first, without the lock: most passes find nothing to do.
    if pending(&person::hosts_of(store, None)?).is_empty() {
        return Ok(0);
    }
    // The records the plans are made from are read again under the lock (see `ops::converge`).
    let configs = || -> Result<Vec<(Config, PlanRequest)>, OpsError> {
        let read = |e: crate::hostdb::StoreError| OpsError::Read(e);
        let pending = pending(&person::hosts_of(store, None).map_err(read)?);
        let machines = reserve::machine_names(store).map_err(|e| match e {
            SelfError::Store(e) => read(e),
            other => read(crate::hostdb::StoreError::Backend(other.to_string())),
        })?;
        Ok(pending
            .iter()
            .map(|(owner, hosts)| {
                let config = person::config_for(&service.config, owner, hosts, None, &machines);
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
    Ok(outcome.applied.len())
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
