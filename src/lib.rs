//! kloud: a declarative plan/apply tool for a private container cloud.
//!
//! The pipeline (see `design.md` §1): [`config`] loads `*.hcl` into a typed `Config`;
//! [`hostdb`] is the source of truth it is diffed against; [`place`] puts new containers on
//! machines; [`plan`] holds the changes and renders them; [`apply`] carries them out through
//! providers, which [`providers`] lists in one table. [`cli`] is the edge: it parses arguments, calls the engine and renders reports.

pub mod apply;
pub mod cli;
pub mod config;
pub mod hostdb;
pub mod identity;
pub mod integrations;
pub mod ops;
pub mod place;
pub mod plan;
pub mod providers;
pub mod selfservice;
pub mod server;
pub mod size;
pub mod templates;
pub mod ui;

/// Cpu quantities in millicores, and the cpu overcommit factor of a machine (shared with the
/// provider crates).
pub use kloud_provider_api::cpu::{Cpu, CpuError, Overcommit, OvercommitError};
