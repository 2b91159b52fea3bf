//! Why an operation could not run, with a stable code and a way out for each.

use miette::Diagnostic;
use thiserror::Error;

use crate::apply::ApplyError;
use crate::hostdb::StoreError;
use crate::plan::DiffError;

/// An operation failed as a whole (one host's failure is an outcome, not an error).
#[derive(Debug, Error, Diagnostic)]
pub enum OpsError {
    #[error("cannot read HostDB: {0}")]
    #[diagnostic(code(kloud::hostdb::read))]
    Read(#[source] StoreError),

    #[error("cannot write HostDB: {0}")]
    #[diagnostic(code(kloud::hostdb::write))]
    Write(#[source] StoreError),

    #[error("{0}")]
    #[diagnostic(code(kloud::plan::refused), help("{}", refused_help(.0)))]
    Refused(#[source] DiffError),

    #[error("refresh failed: {0}")]
    #[diagnostic(code(kloud::refresh::failed))]
    Refresh(#[source] ApplyError),

    #[error("{0}")]
    #[diagnostic(
        code(kloud::apply::locked),
        help("wait for it to finish; if it crashed, its lease expires in 30 s, or run `kloud force-unlock ID`")
    )]
    Locked(#[source] ApplyError),

    #[error("{0}")]
    #[diagnostic(
        code(kloud::apply::stale),
        help("make a new plan with `kloud plan --out FILE` and review it")
    )]
    Stale(#[source] ApplyError),

    #[error("{count} host(s) cannot be placed")]
    #[diagnostic(
        code(kloud::apply::unplaced),
        help("add machines, relax the rules, or pass --allow-partial to apply the rest")
    )]
    Unplaced { count: usize },

    #[error("apply failed: {0}")]
    #[diagnostic(code(kloud::apply::failed))]
    Apply(#[source] ApplyError),
}

fn refused_help(e: &DiffError) -> &'static str {
    match e {
        DiffError::MassDelete { .. } => {
            "check the config; pass --force if the deletion is intended"
        }
        DiffError::MachineInUse { .. } => "move or delete those hosts first, or keep the machine",
        DiffError::MachineDisagrees { .. } => {
            "declare the machine the same way in both configs (class, labels, driver)"
        }
        DiffError::UnknownTarget { .. } => "name a host_class of the config",
        DiffError::AddressesExhausted { .. } => "widen the network's cidr",
    }
}

impl OpsError {
    /// An apply error, sorted by what the operator can do about it.
    pub fn from_apply(e: ApplyError) -> OpsError {
        match e {
            ApplyError::Locked { .. } => OpsError::Locked(e),
            ApplyError::Stale { .. } | ApplyError::ConfigChanged { .. } => OpsError::Stale(e),
            other => OpsError::Apply(other),
        }
    }
}
