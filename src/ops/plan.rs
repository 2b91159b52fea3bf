//! `plan`: what apply would change, from a loaded config and HostDB.

use super::error::OpsError;
use super::events::{Event, Events};
use crate::apply::{refresh, DriverSet};
use crate::config::Config;
use crate::hostdb::Store;
use crate::plan::{self, Plan};

/// What to plan.
#[derive(Debug, Clone, Default)]
pub struct PlanRequest {
    /// Plan the deletion of every host the config manages.
    pub destroy: bool,
    /// Only these host classes; empty means all.
    pub targets: Vec<String>,
    /// Allow deleting more than 30% of the managed hosts.
    pub force: bool,
    /// First ask every machine what it really runs (`kloud refresh`).
    pub refresh: bool,
    /// Hosts (FQDNs) to destroy and create again although nothing requires it.
    pub replace: Vec<String>,
    /// Exact placement within a budget (`kloud plan --exact`).
    pub exact: bool,
}

/// Make the plan for `config` against `store`. Nothing is written, except by `refresh`, which
/// records what machines really run.
pub fn plan(
    config: &Config,
    store: &dyn Store,
    drivers: &dyn DriverSet,
    req: &PlanRequest,
    events: &dyn Events,
) -> Result<Plan, OpsError> {
    tell_unset_secrets(config, events);
    if req.refresh {
        let drift = refresh::refresh(config, store, drivers).map_err(OpsError::Refresh)?;
        for line in drift.lines() {
            events.emit(Event::Drift { line });
        }
    }
    let snapshot = store
        .snapshot(&config.settings.owner)
        .map_err(OpsError::Read)?;
    let used = store.used_ips().map_err(OpsError::Read)?;
    let opts = plan::Options {
        destroy: req.destroy,
        targets: req.targets.clone(),
        force: req.force,
        replace: req.replace.clone(),
        exact: req.exact,
    };
    plan::diff(config, &snapshot, &used, &store.url(), &opts).map_err(OpsError::Refused)
}

/// A provider secret that is not set does not stop a plan (a pull request's CI has no
/// secrets); say that apply will need it.
fn tell_unset_secrets(config: &Config, events: &dyn Events) {
    for p in config.providers.values() {
        for (attribute, variable) in &p.unset {
            events.emit(Event::Diagnostic {
                source: p.kind.clone(),
                host: None,
                error: false,
                summary: format!(
                    "`{attribute}` reads `{variable}`, which is not set: apply and sync will need it"
                ),
                detail: None,
            });
        }
    }
}
