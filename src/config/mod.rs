//! The kloud language: loading a directory of `*.hcl` into a typed, validated [`Config`].
//!
//! hcl-edit parses (it keeps spans), hcl-rs evaluates expressions; every problem becomes a
//! [`Diagnostic`] with a stable code, a file:line:col, a label and a help line. Nothing outside
//! this module sees raw HCL.

pub mod auth;
pub mod diag;
pub mod eval;
pub mod fmt;
pub mod load;
pub mod model;
pub mod names;
mod reader;
pub mod schema;

pub use diag::{Diagnostic, Diagnostics, SourceFile};
pub use load::{load, load_sources, VarOverrides};
pub use model::*;
