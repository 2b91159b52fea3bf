//! The provider interface of kloud.
//!
//! Two families live here, each in its own module:
//! - [`compute`]: drivers that create, resize, start, stop and destroy containers on a machine
//!   and list what a machine really runs (for drift and orphan detection);
//! - [`integration`]: DNS, monitoring and puppet, which receive the desired state of the hosts
//!   they care about and converge it;
//! - [`registry`]: what each provider crate exports (name, attributes, constructor) so kloud
//!   lists every provider in one table.
//!
//! Every call takes a request struct and returns a response that carries [`Diagnostic`]s, so
//! that a provider can warn without failing and fail with something an operator can act on.

pub mod boot;
pub mod compute;
pub mod cpu;
pub mod diag;
pub mod integration;
pub mod registry;

pub use cpu::{Cpu, Overcommit};
pub use diag::{Diagnostic, Severity};

/// Whether this runs under CI, where a test whose component is missing must fail rather than
/// skip: `CI` set to anything but empty, `0` or `false` (most CI systems set `CI=true`, some
/// `CI=1`). Every component gate in the tests asks this one function.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| {
        let v = v.trim();
        !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false")
    })
}
