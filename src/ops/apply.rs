//! `apply`: carry out a plan — lock, freshness, hosts, integrations — reporting as it goes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::OpsError;
use super::events::{Event, Events};
use crate::apply::{self, DriverSet, LockGuard, Outcome, Report};
use crate::config::Config;
use crate::hostdb::Store;
use crate::integrations;
use crate::plan::{Action, Plan};

/// How to apply.
#[derive(Debug, Clone)]
pub struct ApplyRequest {
    /// How many hosts to work on at once.
    pub parallelism: usize,
    /// Who applies, for the lock and the change log.
    pub actor: String,
    /// Set to stop starting new hosts (Ctrl-C, a server shutting down); the engine sets it
    /// too when the lock is in trouble.
    pub cancel: Arc<AtomicBool>,
    /// How long the apply lock's lease lives without renewal (`apply::TTL` unless testing).
    pub lock_ttl: Duration,
}

/// How one integration's converge went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrationOutcome {
    pub name: String,
    /// Added, updated, removed; or why it failed.
    pub result: Result<(usize, usize, usize), String>,
}

/// What one apply did.
#[derive(Debug)]
pub struct ApplyOutcome {
    pub hosts: Report,
    pub integrations: Vec<IntegrationOutcome>,
    /// The lease could not be renewed at some point (reported as events too).
    pub lock_trouble: bool,
    pub took: Duration,
}

impl ApplyOutcome {
    pub fn done(&self) -> usize {
        self.hosts
            .results
            .values()
            .filter(|(_, o, _)| *o == Outcome::Done)
            .count()
    }

    pub fn integration_failures(&self) -> usize {
        self.integrations
            .iter()
            .filter(|i| i.result.is_err())
            .count()
    }

    /// Every host done and every integration converged.
    pub fn complete(&self) -> bool {
        self.hosts.failed() == 0 && self.hosts.skipped() == 0 && self.integration_failures() == 0
    }
}

/// Refuse a plan with unplaced hosts unless the operator allows a partial apply.
pub fn check_placed(plan: &Plan, allow_partial: bool) -> Result<(), OpsError> {
    if plan.unplaced.is_empty() || allow_partial {
        Ok(())
    } else {
        Err(OpsError::Unplaced {
            count: plan.unplaced.len(),
        })
    }
}

/// Apply `plan` made from `config`: take the HostDB lock, refuse a stale plan, work through
/// the hosts, release the lock, then converge the integrations to what now exists.
pub fn apply(
    plan: &Plan,
    config: &Config,
    store: &dyn Store,
    drivers: &dyn DriverSet,
    req: &ApplyRequest,
    events: &dyn Events,
) -> Result<ApplyOutcome, OpsError> {
    let started = Instant::now();
    let guard =
        LockGuard::acquire(store, &req.actor, req.lock_ttl).map_err(OpsError::from_apply)?;
    if let Some(lease) = guard.lease() {
        events.emit(Event::Locked { lock_id: lease.id });
    }
    apply::check_fresh(plan, config, store).map_err(OpsError::from_apply)?;
    let total = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::NoOp)
        .count();
    events.emit(Event::Started { total });
    let opts = apply::Options {
        parallelism: req.parallelism,
        actor: req.actor.clone(),
        cancel: req.cancel.clone(),
        fence: guard.lease().map(|l| (l.name, l.id)),
    };
    let lock_trouble = AtomicBool::new(false);
    let trouble = |error: String, fatal: bool| {
        lock_trouble.store(true, Ordering::SeqCst);
        if fatal {
            req.cancel.store(true, Ordering::SeqCst);
        }
        events.emit(Event::LockTrouble { error });
    };
    let hosts = guard
        .while_held(&trouble, || {
            apply::apply(plan, config, store, drivers, &opts, events)
        })
        .map_err(OpsError::Apply)?;
    drop(guard);
    let mut integrations = converge_integrations(config, store, events);
    integrations.extend(converge_templates(config, store, events));
    Ok(ApplyOutcome {
        hosts,
        integrations,
        lock_trouble: lock_trouble.load(Ordering::SeqCst),
        took: started.elapsed(),
    })
}

/// Bring DNS, monitoring and puppet in line with HostDB, passing on what each provider said.
fn converge_integrations(
    config: &Config,
    store: &dyn Store,
    events: &dyn Events,
) -> Vec<IntegrationOutcome> {
    let outcomes = match integrations::converge_all(config, store, false) {
        Ok(o) => o,
        Err(e) => {
            let error = e.to_string();
            events.emit(Event::IntegrationFailed {
                name: "integrations".into(),
                error: error.clone(),
            });
            return vec![IntegrationOutcome {
                name: "integrations".into(),
                result: Err(error),
            }];
        }
    };
    outcomes
        .into_iter()
        .map(|(name, outcome)| match outcome {
            Ok(resp) => {
                for d in &resp.diagnostics {
                    events.emit(Event::diagnostic(&name, None, d));
                }
                events.emit(Event::Integration {
                    name: name.clone(),
                    added: resp.added,
                    updated: resp.updated,
                    removed: resp.removed,
                });
                IntegrationOutcome {
                    name,
                    result: Ok((resp.added, resp.updated, resp.removed)),
                }
            }
            Err(e) => {
                let error = e.to_string();
                events.emit(Event::IntegrationFailed {
                    name: name.clone(),
                    error: error.clone(),
                });
                IntegrationOutcome {
                    name,
                    result: Err(error),
                }
            }
        })
        .collect()
}

/// Render the templates (haproxy, munin, …) from what now exists.
fn converge_templates(
    config: &Config,
    store: &dyn Store,
    events: &dyn Events,
) -> Vec<IntegrationOutcome> {
    crate::templates::converge_all(config, store)
        .into_iter()
        .map(|(name, outcome)| {
            let result = match outcome {
                Ok(o) => {
                    events.emit(Event::Template {
                        name: name.clone(),
                        outcome: o.to_string(),
                    });
                    let written = matches!(o, crate::templates::Outcome::Written { .. });
                    Ok((0, usize::from(written), 0))
                }
                Err(e) => {
                    let error = e.to_string();
                    events.emit(Event::TemplateFailed {
                        name: name.clone(),
                        error: error.clone(),
                    });
                    Err(error)
                }
            };
            IntegrationOutcome {
                name: format!("template {name}"),
                result,
            }
        })
        .collect()
}
