//! The kloud language: loading a directory of `*.hcl` into a typed, validated [`Config`].
//!
//! hcl-edit parses (it keeps spans), hcl-rs evaluates expressions; every problem becomes a
//! [`Diagnostic`] with a stable code, a file:line:col, a label and a help line. Nothing outside
//! this module sees raw HCL.

pub mod auth;
mod decode;
pub mod diag;
pub mod eval;
mod expand;
pub mod fmt;
pub mod load;
pub mod locate;
pub mod login;
pub mod model;
pub mod names;
pub mod offer;
mod reader;
pub mod schema;
pub mod template;

pub use diag::{Diagnostic, Diagnostics, SourceFile};
pub use load::{load, load_sources, VarOverrides};
pub use model::*;
pub use offer::Offer;
pub use template::{HostFilter, Template};
