//! The DNS integration: A/AAAA and PTR records for every host kloud manages, kept in line by
//! RFC 2136 dynamic updates signed with TSIG, so it works with any primary that accepts them
//! (BIND, PowerDNS, Knot).
//!
//! One converge: transfer the zone(s) (AXFR, signed), compute per-name changes for the names
//! kloud owns (see [`plan`]), check the deletion guard, then send the changes in large batched
//! UPDATE messages. Every change carries prerequisites; when the server reports one failed (a
//! concurrent writer), the zones are read again and the remaining changes recomputed, never
//! forced.

pub mod config;
pub mod plan;
pub mod wire;

use std::collections::BTreeMap;
use std::path::Path;

use hickory_proto::op::Message;
use hickory_proto::rr::Name;
use kloud_provider_api::integration::{
    ConfigError, ConvergeRequest, ConvergeResponse, Integration, IntegrationError,
};
use kloud_provider_api::registry::{self, Build};
use serde_json::Value;

pub use config::{DnsConfig, Secret, ATTRIBUTES, PROVIDER};
use plan::{Change, Kind};
use wire::Connection;

/// Share of managed names one run may delete without `force` (octoDNS's default).
pub const DELETE_GUARD_RATIO: f64 = 0.3;
/// Below this many managed names the guard does not apply (octoDNS: MIN_EXISTING_RECORDS).
pub const DELETE_GUARD_MIN_EXISTING: usize = 10;
/// How many times a converge re-reads the zones after a failed prerequisite.
pub const MAX_ATTEMPTS: usize = 4;
/// Upper bound on the encoded size of one UPDATE (the TCP limit is 65,535 with TSIG).
const BATCH_BYTES: usize = 48 * 1024;

/// Errors of the DNS integration before they are mapped to [`IntegrationError`].
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("cannot reach DNS server `{server}`: {reason}")]
    Unreachable { server: String, reason: String },
    #[error("DNS server `{server}` refused our key: {reason}")]
    Auth { server: String, reason: String },
    #[error("DNS server `{server}`: {reason}")]
    Protocol { server: String, reason: String },
    #[error("dns provider configuration: {0}")]
    Config(String),
}

impl From<DnsError> for IntegrationError {
    fn from(e: DnsError) -> Self {
        match e {
            DnsError::Unreachable { server, reason } => IntegrationError::Unreachable {
                target: server,
                reason,
            },
            DnsError::Auth { server, reason } => IntegrationError::Auth {
                target: server,
                reason,
            },
            DnsError::Protocol { server, reason } => IntegrationError::Protocol {
                target: server,
                reason,
            },
            DnsError::Config(reason) => IntegrationError::Protocol {
                target: "dns".into(),
                reason,
            },
        }
    }
}

/// The `dns` integration.
#[derive(Debug, Clone)]
pub struct DnsProvider {
    config: DnsConfig,
}

#[derive(Default)]
struct Counts {
    added: usize,
    updated: usize,
    removed: usize,
}

impl Counts {
    fn count(&mut self, changes: &[Change]) {
        for c in changes {
            match c.kind {
                Kind::Create => self.added += 1,
                Kind::Update => self.updated += 1,
                Kind::Delete => self.removed += 1,
            }
        }
    }

    fn any(&self) -> bool {
        self.added + self.updated + self.removed > 0
    }
}

/// Split one zone's changes into UPDATE messages of at most [`BATCH_BYTES`].
fn batches(zone: &Name, changes: &[Change]) -> Vec<(Message, Vec<Change>)> {
    let mut out = Vec::new();
    let mut msg = wire::update_message(zone);
    let mut members = Vec::new();
    let mut size = 0;
    for change in changes {
        let s = change.wire_size();
        if !members.is_empty() && size + s > BATCH_BYTES {
            out.push((msg, std::mem::take(&mut members)));
            msg = wire::update_message(zone);
            size = 0;
        }
        msg.answers.extend(change.prerequisites.iter().cloned());
        msg.authorities.extend(change.updates.iter().cloned());
        members.push(change.clone());
        size += s;
    }
    if !members.is_empty() {
        out.push((msg, members));
    }
    out
}

impl DnsProvider {
    pub fn new(config: DnsConfig) -> Self {
        Self { config }
    }

    /// Build from a `provider "dns" { … }` block.
    pub fn from_block(
        attrs: &BTreeMap<String, Value>,
        base_dir: &Path,
    ) -> Result<Self, Vec<ConfigError>> {
        DnsConfig::from_block(attrs, base_dir).map(Self::new)
    }

    pub fn config(&self) -> &DnsConfig {
        &self.config
    }

    fn zones(&self) -> Vec<&Name> {
        let mut z = vec![&self.config.zone];
        z.extend(self.config.reverse_zone.as_ref());
        z
    }

    /// [`Integration::converge`], calling `after_read(attempt)` each time the zones have been
    /// read and before anything is written. Tests use it to play a concurrent writer.
    pub fn converge_observed(
        &self,
        req: &ConvergeRequest,
        after_read: &mut dyn FnMut(usize),
    ) -> Result<ConvergeResponse, IntegrationError> {
        self.run(req, after_read)
    }

    fn run(
        &self,
        req: &ConvergeRequest,
        after_read: &mut dyn FnMut(usize),
    ) -> Result<ConvergeResponse, IntegrationError> {
        let cfg = &self.config;
        let desired = plan::desired(&req.hosts, &cfg.zone, cfg.reverse_zone.as_ref());
        let mut diagnostics = desired.diagnostics;
        let mut done = Counts::default();
        let mut conn = Connection::open(cfg)?;
        for attempt in 1..=MAX_ATTEMPTS {
            // Read every zone first: the guard looks at the whole run before anything is written.
            let mut per_zone = Vec::new();
            let mut owned = 0;
            let mut run_diags = Vec::new();
            for zone in self.zones() {
                let records = conn.axfr(zone).map_err(|e| self.fail(e, &done))?;
                let actual = plan::zone_state(records);
                owned += plan::owned_count(&actual);
                let want = if zone == &cfg.zone {
                    &desired.forward
                } else {
                    &desired.reverse
                };
                let changes = plan::diff(want, &desired.frozen, &actual, cfg.ttl, &mut run_diags);
                per_zone.push((zone.clone(), changes));
            }
            let mut planned = Counts::default();
            for (_, changes) in &per_zone {
                planned.count(changes);
            }
            if !req.force
                && owned >= DELETE_GUARD_MIN_EXISTING
                && planned.removed as f64 > owned as f64 * DELETE_GUARD_RATIO
            {
                let refusal = format!(
                    "dns: this run would delete {} of the {owned} names kloud manages (more than \
                     {}%); re-run with force if that is intended",
                    planned.removed,
                    (DELETE_GUARD_RATIO * 100.0) as u32
                );
                // After a re-read some changes may already be in: say so rather than claim
                // that nothing was changed.
                return Err(if done.any() {
                    self.fail_reason(refusal, &done)
                } else {
                    IntegrationError::Guard(format!("{refusal}; nothing was changed"))
                });
            }
            if req.dry_run {
                diagnostics.extend(run_diags);
                return Ok(ConvergeResponse {
                    added: planned.added,
                    updated: planned.updated,
                    removed: planned.removed,
                    diagnostics,
                });
            }
            after_read(attempt);
            let mut conflict = None;
            'zones: for (zone, changes) in &per_zone {
                for (msg, members) in batches(zone, changes) {
                    match conn.update(msg).map_err(|e| self.fail(e, &done))? {
                        Ok(()) => done.count(&members),
                        Err(code) => {
                            conflict = Some(code);
                            break 'zones;
                        }
                    }
                }
            }
            match conflict {
                None => {
                    diagnostics.extend(run_diags);
                    return Ok(ConvergeResponse {
                        added: done.added,
                        updated: done.updated,
                        removed: done.removed,
                        diagnostics,
                    });
                }
                Some(code) if attempt == MAX_ATTEMPTS => {
                    return Err(self.fail_reason(
                        format!(
                            "a prerequisite still failed ({code}) after {MAX_ATTEMPTS} re-reads: \
                             another writer keeps changing the names kloud manages"
                        ),
                        &done,
                    ));
                }
                Some(code) => diagnostics.push(kloud_provider_api::Diagnostic::warning(format!(
                    "dns: a prerequisite failed ({code}): the zone changed under us; re-read it \
                     and retried"
                ))),
            }
        }
        // Every attempt returns; the last one turns a conflict into an error.
        Err(self.fail_reason("no attempt was made".into(), &done))
    }

    fn fail(&self, e: DnsError, done: &Counts) -> IntegrationError {
        if done.any() {
            self.fail_reason(e.to_string(), done)
        } else {
            e.into()
        }
    }

    fn fail_reason(&self, reason: String, done: &Counts) -> IntegrationError {
        if done.any() {
            IntegrationError::Partial {
                added: done.added,
                updated: done.updated,
                removed: done.removed,
                reason,
            }
        } else {
            IntegrationError::Protocol {
                target: self.config.server.clone(),
                reason,
            }
        }
    }
}

impl Integration for DnsProvider {
    fn name(&self) -> &str {
        PROVIDER
    }

    /// Converge A/AAAA (and PTR with `reverse_zone`) records of `req.hosts`. Counts are of DNS
    /// names: a host with a PTR record counts once in each zone.
    fn converge(&self, req: &ConvergeRequest) -> Result<ConvergeResponse, IntegrationError> {
        self.run(req, &mut |_| {})
    }
}

/// This provider's entry in kloud's provider table.
pub const REGISTRY: registry::Provider = registry::Provider {
    name: PROVIDER,
    attributes: ATTRIBUTES,
    build: Build::Integration {
        new: build,
        sync: true,
    },
};

fn build(
    attrs: &registry::Attributes,
    base_dir: &Path,
) -> Result<Box<dyn Integration>, Vec<ConfigError>> {
    Ok(Box::new(DnsProvider::from_block(attrs, base_dir)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kloud_provider_api::integration::HostRecord;

    fn hosts(n: usize) -> Vec<HostRecord> {
        (0..n)
            .map(|i| HostRecord {
                fqdn: format!("a-rather-long-host-name-{i}.some-cluster.dc1.example.internal"),
                ip: format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256),
                class: "web".into(),
                tags: vec![],
                labels: Default::default(),
                machine: "hw".into(),
                roles: vec![],
                properties: Default::default(),
            })
            .collect()
    }

    #[test]
    fn batches_fit_a_tcp_message_and_carry_every_change_once() {
        let zone = Name::from_ascii("dc1.example.internal.").unwrap();
        let d = plan::desired(&hosts(5000), &zone, None);
        let mut diags = Vec::new();
        let changes = plan::diff(&d.forward, &d.frozen, &BTreeMap::new(), 300, &mut diags);
        assert_eq!(changes.len(), 5000);
        let out = batches(&zone, &changes);
        assert!(out.len() > 1, "5000 names must not fit one message");
        let mut seen = 0;
        for (msg, members) in &out {
            let len = msg.to_vec().unwrap().len();
            // Room is left for the TSIG record (about 100 bytes for HMAC-SHA256).
            assert!(len + 200 < 65_535, "batch of {len} bytes");
            assert_eq!(msg.answers.len(), members.len());
            seen += members.len();
        }
        assert_eq!(seen, 5000);
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let attrs: BTreeMap<String, Value> = [
            ("server", "127.0.0.1:53"),
            ("zone", "dc1.test"),
            ("key_name", "kloud"),
            ("secret", "c3VwZXItc2VjcmV0LXRzaWcta2V5"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
        let p = DnsProvider::from_block(&attrs, Path::new(".")).unwrap();
        let dbg = format!("{p:?} {:#?}", p.config());
        assert!(!dbg.contains("c3VwZXIt"), "{dbg}");
        assert!(!dbg.contains("super-secret"), "{dbg}");
    }
}
