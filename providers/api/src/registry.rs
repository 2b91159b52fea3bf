//! What every provider crate exports so kloud can keep all providers in one table.
//!
//! A provider crate has one `pub const REGISTRY: Provider`: its name as written in
//! `provider "NAME" { … }`, the attributes that block takes (with their types; the config
//! loader validates blocks against exactly this list) and how to build the provider from a
//! block's attributes. kloud's `providers` module lists the crates' `REGISTRY` constants;
//! the language's schema, the compute driver set, the integrations and `kloud sync` all read
//! that table.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::compute::ComputeDriver;
use crate::integration::{ConfigError, Integration};

/// The type a provider attribute must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    String,
    Number,
    Bool,
    Map,
}

impl AttrType {
    /// How the type reads in a message ("must be a string").
    pub fn describe(self) -> &'static str {
        match self {
            AttrType::String => "a string",
            AttrType::Number => "a number",
            AttrType::Bool => "true or false",
            AttrType::Map => "an object",
        }
    }

    /// Whether a value has this type.
    pub fn accepts(self, v: &Value) -> bool {
        match self {
            AttrType::String => v.is_string(),
            AttrType::Number => v.is_number(),
            AttrType::Bool => v.is_boolean(),
            AttrType::Map => v.is_object(),
        }
    }
}

/// One attribute of a provider block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub name: &'static str,
    pub ty: AttrType,
    pub required: bool,
}

impl Attr {
    /// An attribute that may be left out.
    pub const fn optional(name: &'static str, ty: AttrType) -> Self {
        Self {
            name,
            ty,
            required: false,
        }
    }

    /// An attribute every block must set.
    pub const fn required(name: &'static str, ty: AttrType) -> Self {
        Self {
            name,
            ty,
            required: true,
        }
    }
}

/// A `provider` block's attributes, decoded to JSON values.
pub type Attributes = BTreeMap<String, Value>;

/// Builds a compute driver from its block's attributes (an empty map when the config has no
/// block) and the config directory relative paths are resolved against.
pub type ComputeConstructor =
    fn(&Attributes, &Path) -> Result<Box<dyn ComputeDriver>, Vec<ConfigError>>;

/// Builds an integration from its block's attributes and the config directory.
pub type IntegrationConstructor =
    fn(&Attributes, &Path) -> Result<Box<dyn Integration>, Vec<ConfigError>>;

/// What a provider is and how it is built.
#[derive(Debug, Clone, Copy)]
pub enum Build {
    /// A compute driver, named by machines' and host classes' `driver`.
    Compute(ComputeConstructor),
    /// An integration converged after apply; `sync`: whether `kloud sync NAME` converges it on
    /// its own (puppet is pulled by the agents through `kloud enc` instead).
    Integration {
        new: IntegrationConstructor,
        sync: bool,
    },
}

/// One provider crate's entry in kloud's table.
#[derive(Debug, Clone, Copy)]
pub struct Provider {
    /// The name written in `provider "NAME"` (and, for a compute driver, in `driver`).
    pub name: &'static str,
    /// Every attribute its block takes.
    pub attributes: &'static [Attr],
    pub build: Build,
}

impl Provider {
    /// Whether this is a compute driver.
    pub fn is_compute(&self) -> bool {
        matches!(self.build, Build::Compute(_))
    }

    /// Whether this is an integration.
    pub fn is_integration(&self) -> bool {
        matches!(self.build, Build::Integration { .. })
    }

    /// The attribute called `name`.
    pub fn attribute(&self, name: &str) -> Option<&'static Attr> {
        self.attributes.iter().find(|a| a.name == name)
    }
}
