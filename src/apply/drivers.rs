//! The compute drivers apply can use, by the name machines give in `driver`.
//!
//! Apply and refresh take a [`DriverSet`] (a trait object), so tests can hand them a fake that
//! fails on demand; [`Drivers`] is the real set, one driver per compute provider of the
//! provider table ([`crate::providers`]), each built from the config's `provider` block of
//! its name (environment variables override the block's attributes, see the provider crates).

use std::collections::BTreeMap;

use kloud_provider_api::compute::ComputeDriver;
use kloud_provider_api::integration::ConfigError;

use crate::config::Config;
use crate::providers::{self, Attributes, Build};

/// The drivers of one run, by kind.
pub trait DriverSet: Sync {
    /// The driver called `kind`, or why it is unavailable.
    fn get(&self, kind: &str) -> Result<&dyn ComputeDriver, String>;
}

/// Drivers, made once per run and shared by every worker.
pub struct Drivers {
    drivers: BTreeMap<&'static str, Box<dyn ComputeDriver>>,
    /// Why a driver could not be built, by kind.
    errors: BTreeMap<&'static str, String>,
}

impl Drivers {
    /// Build every compute driver from the config's `provider` block of its name (no block:
    /// the driver's defaults), with the environment's settings (`KLOUD_LXC_*`,
    /// `KLOUD_OPENVZ_*`, `KLOUD_SSH_*`) winning over the block's.
    pub fn for_config(config: &Config) -> Self {
        let mut drivers = BTreeMap::new();
        let mut errors = BTreeMap::new();
        let none = Attributes::new();
        for p in providers::drivers() {
            let Build::Compute(new) = p.build else {
                continue;
            };
            let attrs = config
                .providers
                .values()
                .find(|b| b.kind == p.name)
                .map_or(&none, |b| &b.attributes);
            match new(attrs, &config.dir) {
                Ok(d) => {
                    drivers.insert(p.name, d);
                }
                Err(e) => {
                    errors.insert(p.name, join(&e));
                }
            }
        }
        Self { drivers, errors }
    }
}

fn join(errors: &[ConfigError]) -> String {
    let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
    all.join("; ")
}

impl DriverSet for Drivers {
    fn get(&self, kind: &str) -> Result<&dyn ComputeDriver, String> {
        if let Some(d) = self.drivers.get(kind) {
            return Ok(d.as_ref());
        }
        Err(self.errors.get(kind).map_or_else(
            || format!("no driver `{kind}`"),
            |e| format!("driver `{kind}`: {e}"),
        ))
    }
}
