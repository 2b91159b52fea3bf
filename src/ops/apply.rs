//! `apply`: carry out a plan — lock, freshness, hosts, integrations — reporting as it goes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::OpsError;
use super::events::{Event, Events};
use super::plan::PlanRequest;
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
    let held = run_held(&[(plan, config)], store, drivers, req, events, guard)?;
    Ok(ApplyOutcome {
        hosts: held.reports.into_iter().next().unwrap_or_default(),
        integrations: held.integrations,
        lock_trouble: held.lock_trouble,
        took: started.elapsed(),
    })
}

/// How [`converge`] applies, waiting up to `lock_wait` for the lock.
#[derive(Debug, Clone)]
pub struct ConvergeRequest {
    pub apply: ApplyRequest,
    pub lock_wait: Duration,
}

/// What one [`converge`] did: per config its plan and hosts' report, then the integrations.
#[derive(Debug)]
pub struct ConvergeOutcome {
    pub applied: Vec<(Plan, Report)>,
    pub integrations: Vec<IntegrationOutcome>,
    pub lock_trouble: bool,
    pub took: Duration,
}

/// Plan and apply several owners' configs in one go while holding the lock, so nothing can
/// change HostDB in between (a server carrying out many people's requests at once). `configs`
/// is called once the lock is held: configs made from HostDB records must be read under it,
/// or a record written in between would be planned away. A config whose plan fails or that
/// `accept` refuses is left out and reported as an event; unplaced hosts are left out, not
/// fatal. Owners are worked on `apply.parallelism` at a time.
pub fn converge(
    configs: &dyn Fn() -> Result<Vec<(Config, PlanRequest)>, OpsError>,
    store: &dyn Store,
    drivers: &dyn DriverSet,
    req: &ConvergeRequest,
    accept: &(dyn Fn(&Config, &Plan) -> Result<(), OpsError> + Sync),
    events: &dyn Events,
) -> Result<ConvergeOutcome, OpsError> {
    let started = Instant::now();
    let guard =
        LockGuard::acquire_waiting(store, &req.apply.actor, req.apply.lock_ttl, req.lock_wait)
            .map_err(OpsError::from_apply)?;
    if let Some(lease) = guard.lease() {
        events.emit(Event::Locked { lock_id: lease.id });
    }
    let configs = configs()?;
    let mut planned = Vec::new();
    for (config, plan_req) in &configs {
        match super::plan::plan(config, store, drivers, plan_req, events)
            .and_then(|p| accept(config, &p).map(|()| p))
        {
            Ok(plan) => planned.push((plan, config)),
            Err(e) => events.emit(Event::Diagnostic {
                source: "plan".into(),
                host: None,
                error: true,
                summary: format!("{}: {e}", config.settings.owner),
                detail: None,
            }),
        }
    }
    let items: Vec<(&Plan, &Config)> = planned.iter().map(|(p, c)| (p, *c)).collect();
    let held = run_held(&items, store, drivers, &req.apply, events, guard)?;
    let applied = planned
        .into_iter()
        .map(|(p, _)| p)
        .zip(held.reports)
        .collect();
    Ok(ConvergeOutcome {
        applied,
        integrations: held.integrations,
        lock_trouble: held.lock_trouble,
        took: started.elapsed(),
    })
}

/// What [`run_held`] did.
struct Held {
    reports: Vec<Report>,
    integrations: Vec<IntegrationOutcome>,
    lock_trouble: bool,
}

/// The hosts of each plan under the held lock, then the integrations once it is released. One
/// plan gets every worker; several are worked on `parallelism` at a time, one worker each.
fn run_held(
    items: &[(&Plan, &Config)],
    store: &dyn Store,
    drivers: &dyn DriverSet,
    req: &ApplyRequest,
    events: &dyn Events,
    guard: LockGuard<'_>,
) -> Result<Held, OpsError> {
    let total = items
        .iter()
        .flat_map(|(p, _)| &p.changes)
        .filter(|c| c.action != Action::NoOp)
        .count();
    events.emit(Event::Started { total });
    let opts = apply::Options {
        parallelism: if items.len() > 1 { 1 } else { req.parallelism },
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
    let reports = guard.while_held(&trouble, || {
        apply_each(items, store, drivers, &opts, req.parallelism, events)
    })?;
    drop(guard);
    let mut integrations = Vec::new();
    if let Some((_, config)) = items.first() {
        integrations = converge_integrations(config, store, events);
        integrations.extend(converge_templates(config, store, events));
    }
    Ok(Held {
        reports,
        integrations,
        lock_trouble: lock_trouble.load(Ordering::SeqCst),
    })
}

/// `apply::apply` for each plan, `workers` plans at a time; reports in the plans' order.
fn apply_each(
    items: &[(&Plan, &Config)],
    store: &dyn Store,
    drivers: &dyn DriverSet,
    opts: &apply::Options,
    workers: usize,
    events: &dyn Events,
) -> Result<Vec<Report>, OpsError> {
    if let [(plan, config)] = items {
        return Ok(vec![apply::apply(
            plan, config, store, drivers, opts, events,
        )
        .map_err(OpsError::Apply)?]);
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<Result<Report, OpsError>>>> =
        std::sync::Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers.clamp(1, items.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((plan, config)) = items.get(i) else {
                    break;
                };
                let r = apply::apply(plan, config, store, drivers, opts, events)
                    .map_err(OpsError::Apply);
                if let Ok(mut all) = results.lock() {
                    all[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Ok(Report::default())))
        .collect()
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
