//! The glue between HostDB and the integration providers (DNS, Prometheus, Nagios, Puppet).
//!
//! [`host_records`] (a read over HostDB, in `hostdb::records`) gives the [`HostRecord`]s every
//! integration takes; [`providers`] builds the integrations a config declares; [`converge_all`]
//! runs them at the end of `kloud apply`; [`follow`] keeps one of them converged while HostDB
//! changes (`kloud sync --watch`). The integrations themselves live in `providers/`.

pub mod follow;

pub use crate::hostdb::records::{host_record, host_records};

use kloud_provider_api::integration::{
    ConfigError, ConvergeRequest, ConvergeResponse, Integration, IntegrationError,
};
use thiserror::Error;

use crate::config::{Config, Provider};
use crate::hostdb::{Store, StoreError};
use crate::providers::{self, Build};

/// Why the integrations could not be run at all.
#[derive(Debug, Error)]
pub enum IntegrationsError {
    #[error("cannot read HostDB: {0}")]
    Store(#[from] StoreError),
    #[error("provider `{provider}`: {}", join(.errors))]
    Config {
        provider: String,
        errors: Vec<ConfigError>,
    },
    #[error("provider `{provider}`: `{attribute}` reads the environment variable `{variable}`, which is not set")]
    SecretUnset {
        provider: String,
        attribute: String,
        variable: String,
    },
    #[error("provider `{0}` is not configured")]
    NotConfigured(String),
    #[error("`{0}` is not an integration (expected one of: {names})", names = integration_names())]
    NotAnIntegration(String),
}

/// The integrations' names, sorted and joined, for messages.
fn integration_names() -> String {
    let names: Vec<&str> = providers::integrations().iter().map(|p| p.name).collect();
    names.join(", ")
}

fn join(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Build the integration of one `provider` block.
pub fn provider(
    name: &str,
    block: &Provider,
    config: &Config,
) -> Result<Box<dyn Integration>, IntegrationsError> {
    if let Some((attribute, variable)) = block.unset.first() {
        return Err(IntegrationsError::SecretUnset {
            provider: name.to_string(),
            attribute: attribute.clone(),
            variable: variable.clone(),
        });
    }
    let wrap = |errors| IntegrationsError::Config {
        provider: name.to_string(),
        errors,
    };
    match providers::find(&block.kind).map(|p| p.build) {
        Some(Build::Integration { new, .. }) => new(&block.attributes, &config.dir).map_err(wrap),
        _ => Err(IntegrationsError::NotAnIntegration(block.kind.clone())),
    }
}

/// Every integration the config declares, by provider name. Compute providers (`lxc`,
/// `openvz`) are not integrations and are skipped. Every broken block is reported, not only
/// the first.
pub fn providers(config: &Config) -> Result<Vec<Box<dyn Integration>>, IntegrationsError> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (name, block) in &config.providers {
        if !providers::is_integration(&block.kind) {
            continue;
        }
        match provider(name, block, config) {
            Ok(p) => out.push(p),
            Err(IntegrationsError::Config {
                provider,
                errors: e,
            }) => errors.extend(e.into_iter().map(|e| (provider.clone(), e))),
            Err(e) => return Err(e),
        }
    }
    match errors.first() {
        None => Ok(out),
        Some((first, _)) => {
            let provider = first.clone();
            Err(IntegrationsError::Config {
                provider,
                errors: errors.into_iter().map(|(_, e)| e).collect(),
            })
        }
    }
}

/// The one integration of kind `kind` (`dns`, `prometheus`, …) the config declares.
pub fn one_provider(
    config: &Config,
    kind: &str,
) -> Result<Box<dyn Integration>, IntegrationsError> {
    if !providers::is_integration(kind) {
        return Err(IntegrationsError::NotAnIntegration(kind.to_string()));
    }
    let (name, block) = config
        .providers
        .iter()
        .find(|(_, p)| p.kind == kind)
        .ok_or_else(|| IntegrationsError::NotConfigured(kind.to_string()))?;
    provider(name, block, config)
}

/// One integration's name and how its converge went.
pub type Outcome = (String, Result<ConvergeResponse, IntegrationError>);

/// Converge every integration of the config to what HostDB holds, as the last step of
/// `kloud apply`. The desired set is every running container in HostDB, whoever owns it:
/// the providers remove every record of theirs that is not listed, so converging one owner's
/// hosts would delete another config's records (and `kloud sync` converges the same set, so
/// the two never fight). The integrations run in parallel; results come in provider-name order.
///
/// Costs nothing (no HostDB read) when the config declares no integration.
pub fn converge_all(
    config: &Config,
    store: &dyn Store,
    force: bool,
) -> Result<Vec<Outcome>, IntegrationsError> {
    if !config
        .providers
        .values()
        .any(|p| providers::is_integration(&p.kind))
    {
        return Ok(Vec::new());
    }
    let integrations = providers(config)?;
    let req = ConvergeRequest {
        hosts: host_records(store, None)?,
        force,
        dry_run: false,
    };
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = integrations
            .iter()
            .map(|i| {
                let req = &req;
                s.spawn(move || (i.name().to_string(), i.converge(req)))
            })
            .collect();
        handles
            .into_iter()
            .zip(&integrations)
            .map(|(h, i)| {
                h.join().unwrap_or_else(|_| {
                    (
                        i.name().to_string(),
                        Err(IntegrationError::Protocol {
                            target: i.name().to_string(),
                            reason: "the provider panicked".to_string(),
                        }),
                    )
                })
            })
            .collect::<Vec<_>>()
    });
    Ok(results)
}
