//! The one table of providers kloud has.
//!
//! Each provider crate under `providers/` exports a `REGISTRY` entry: its name, the attributes
//! its `provider "NAME" { … }` block takes and its constructor. The language's schema
//! (`config::decode` validates provider blocks and `driver` names against it), the compute
//! driver set (`apply::drivers`), the integrations (`integrations`) and `kloud sync` all read
//! [`PROVIDERS`]; adding a provider is one line here.

pub use kloud_provider_api::registry::{Attr, AttrType, Attributes, Build, Provider};

/// Every provider, in the order messages list them.
pub const PROVIDERS: &[Provider] = &[
    kloud_provider_dns::REGISTRY,
    kloud_provider_prometheus::REGISTRY,
    kloud_provider_nagios::REGISTRY,
    kloud_provider_puppet::REGISTRY,
    kloud_provider_lxc::REGISTRY,
    kloud_provider_openvz::REGISTRY,
];

/// The provider called `name`.
pub fn find(name: &str) -> Option<&'static Provider> {
    PROVIDERS.iter().find(|p| p.name == name)
}

/// Every provider's name.
pub fn names() -> impl Iterator<Item = &'static str> {
    PROVIDERS.iter().map(|p| p.name)
}

/// The compute drivers (`driver = "NAME"`).
pub fn drivers() -> impl Iterator<Item = &'static Provider> {
    PROVIDERS.iter().filter(|p| p.is_compute())
}

/// The integrations, sorted by name.
pub fn integrations() -> Vec<&'static Provider> {
    let mut out: Vec<_> = PROVIDERS.iter().filter(|p| p.is_integration()).collect();
    out.sort_by_key(|p| p.name);
    out
}

/// Whether `name` is an integration.
pub fn is_integration(name: &str) -> bool {
    find(name).is_some_and(Provider::is_integration)
}

/// Whether `kloud sync NAME` converges the integration `name` on its own.
pub fn syncable(name: &str) -> bool {
    matches!(
        find(name).map(|p| p.build),
        Some(Build::Integration { sync: true, .. })
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_kind_is_present() {
        let mut names: Vec<_> = names().collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PROVIDERS.len());
        let drivers: Vec<_> = drivers().map(|p| p.name).collect();
        assert_eq!(drivers, ["lxc", "openvz"]);
        let integrations: Vec<_> = integrations().iter().map(|p| p.name).collect();
        assert_eq!(integrations, ["dns", "nagios", "prometheus", "puppet"]);
        assert!(syncable("dns") && !syncable("puppet") && !syncable("lxc"));
    }
}
