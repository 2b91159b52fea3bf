//! What the zones should hold, what they hold, and the changes between the two.
//!
//! Ownership follows external-dns: every name kloud manages carries a TXT record
//! `"heritage=kloud"` beside its A/AAAA/PTR records. A name without it is never touched; a name
//! with it that is no longer desired is removed. Each change carries RFC 2136 prerequisites
//! describing the state it was computed from, so the server applies it only if nobody changed
//! that name in between.

use std::collections::BTreeMap;
use std::net::IpAddr;

use hickory_proto::rr::rdata::{A, AAAA, PTR, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use kloud_provider_api::integration::HostRecord;
use kloud_provider_api::Diagnostic;

use crate::wire::rr;

/// The TXT string that marks a name as kloud's.
pub const HERITAGE: &str = "heritage=kloud";

/// Record types kloud manages at a name it owns.
const MANAGED: [RecordType; 3] = [RecordType::A, RecordType::AAAA, RecordType::PTR];

/// An RRset keyed by the text form of each record's data, so comparisons are order-free.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RrSet {
    pub ttl: u32,
    pub data: BTreeMap<String, RData>,
}

/// What kloud wants at each name of one zone: the managed RRsets (TTL ignored in the key).
pub type DesiredZone = BTreeMap<Name, BTreeMap<RecordType, BTreeMap<String, RData>>>;

/// What one name holds, as far as kloud cares.
#[derive(Debug, Clone, Default)]
pub struct NameState {
    /// The full TXT RRset (ours and anybody else's), needed for exact prerequisites.
    pub txt: Vec<RData>,
    pub managed: BTreeMap<RecordType, RrSet>,
    /// Whether any record of another type lives here (MX, CNAME, SOA, …).
    pub other: bool,
}

impl NameState {
    pub fn owned(&self) -> bool {
        self.txt.iter().any(is_heritage)
    }
}

fn is_heritage(data: &RData) -> bool {
    match data {
        RData::TXT(t) => t.txt_data.concat() == HERITAGE.as_bytes(),
        _ => false,
    }
}

fn heritage() -> RData {
    RData::TXT(TXT::new(vec![HERITAGE.to_string()]))
}

/// The state of one zone as read by a transfer, keyed by lower-case name.
pub fn zone_state(records: Vec<Record>) -> BTreeMap<Name, NameState> {
    let mut zone: BTreeMap<Name, NameState> = BTreeMap::new();
    for rec in records {
        let state = zone.entry(rec.name.to_lowercase()).or_default();
        let rtype = rec.record_type();
        if rtype == RecordType::TXT {
            state.txt.push(rec.data);
        } else if MANAGED.contains(&rtype) {
            let set = state.managed.entry(rtype).or_default();
            set.ttl = rec.ttl;
            set.data
                .insert(rec.data.to_string().to_lowercase(), rec.data);
        } else {
            state.other = true;
        }
    }
    zone
}

/// Desired records for the forward and (optional) reverse zone, and diagnostics for hosts
/// that cannot be expressed in them.
pub struct Desired {
    pub forward: DesiredZone,
    pub reverse: DesiredZone,
    pub diagnostics: Vec<Diagnostic>,
}

fn fqdn(text: &str) -> Option<Name> {
    let mut name = Name::from_ascii(text.trim()).ok()?;
    name.set_fqdn(true);
    Some(name.to_lowercase())
}

pub fn desired(hosts: &[HostRecord], zone: &Name, reverse_zone: Option<&Name>) -> Desired {
    let mut d = Desired {
        forward: BTreeMap::new(),
        reverse: BTreeMap::new(),
        diagnostics: Vec::new(),
    };
    for host in hosts {
        let Some(name) = fqdn(&host.fqdn) else {
            d.diagnostics.push(Diagnostic::error(format!(
                "dns: `{}` is not a valid DNS name; skipped",
                host.fqdn
            )));
            continue;
        };
        if !zone.zone_of(&name) || &name == zone {
            d.diagnostics.push(
                Diagnostic::error(format!(
                    "dns: `{}` is outside zone `{zone}`; skipped",
                    host.fqdn
                ))
                .with_detail("set the provider's `zone` to the domain of the hosts"),
            );
            continue;
        }
        let Ok(ip) = host.ip.trim().parse::<IpAddr>() else {
            d.diagnostics.push(Diagnostic::error(format!(
                "dns: `{}` has no valid IP address (`{}`); skipped",
                host.fqdn, host.ip
            )));
            continue;
        };
        let (rtype, data) = match ip {
            IpAddr::V4(v4) => (RecordType::A, RData::A(A::from(v4))),
            IpAddr::V6(v6) => (RecordType::AAAA, RData::AAAA(AAAA::from(v6))),
        };
        d.forward
            .entry(name.clone())
            .or_default()
            .entry(rtype)
            .or_default()
            .insert(data.to_string().to_lowercase(), data);
        let Some(rz) = reverse_zone else { continue };
        let ptr_name = Name::from(ip).to_lowercase();
        if rz.zone_of(&ptr_name) {
            let data = RData::PTR(PTR(name.clone()));
            d.reverse
                .entry(ptr_name)
                .or_default()
                .entry(RecordType::PTR)
                .or_default()
                .insert(data.to_string().to_lowercase(), data);
        } else {
            d.diagnostics.push(Diagnostic::warning(format!(
                "dns: no PTR for `{}`: {ip} is outside reverse zone `{rz}`",
                host.fqdn
            )));
        }
    }
    d
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Create,
    Update,
    Delete,
}

/// One name's change, with the prerequisites that make it safe to apply.
#[derive(Debug, Clone)]
pub struct Change {
    pub kind: Kind,
    pub name: Name,
    pub prerequisites: Vec<Record>,
    pub updates: Vec<Record>,
}

impl Change {
    /// A generous estimate of the encoded size, for batching under the 64 KiB TCP limit.
    pub fn wire_size(&self) -> usize {
        self.prerequisites
            .iter()
            .chain(&self.updates)
            .map(|r| r.name.len() + 2 + 10 + rdata_size(&r.data))
            .sum()
    }
}

fn rdata_size(data: &RData) -> usize {
    match data {
        RData::A(_) => 4,
        RData::AAAA(_) => 16,
        RData::PTR(p) => p.0.len() + 2,
        RData::TXT(t) => t.txt_data.iter().map(|s| s.len() + 1).sum(),
        _ => 64,
    }
}

/// The changes that turn `actual` into `desired` for one zone, and conflicts as diagnostics.
pub fn diff(
    desired: &DesiredZone,
    actual: &BTreeMap<Name, NameState>,
    ttl: u32,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<Change> {
    let mut changes = Vec::new();
    let empty = NameState::default();
    for (name, want) in desired {
        let have = actual.get(name).unwrap_or(&empty);
        if !have.owned() {
            if actual.contains_key(name) {
                diagnostics.push(
                    Diagnostic::error(format!(
                        "dns: `{name}` already exists and is not managed by kloud; left alone"
                    ))
                    .with_detail(format!(
                        "remove it by hand, or adopt it by adding TXT \"{HERITAGE}\" to it"
                    )),
                );
                continue;
            }
            let mut updates = vec![rr::add(name, ttl, heritage())];
            for set in want.values() {
                updates.extend(set.values().map(|d| rr::add(name, ttl, d.clone())));
            }
            changes.push(Change {
                kind: Kind::Create,
                name: name.clone(),
                prerequisites: vec![rr::name_not_in_use(name)],
                updates,
            });
            continue;
        }
        let mut updates = Vec::new();
        for rtype in MANAGED {
            let want_set = want.get(&rtype);
            let have_set = have.managed.get(&rtype);
            let same = match (want_set, have_set) {
                (None, None) => true,
                (Some(w), Some(h)) => h.ttl == ttl && w.keys().eq(h.data.keys()),
                _ => false,
            };
            if same {
                continue;
            }
            if have_set.is_some() {
                updates.push(rr::delete_rrset(name, rtype));
            }
            if let Some(w) = want_set {
                updates.extend(w.values().map(|d| rr::add(name, ttl, d.clone())));
            }
        }
        if !updates.is_empty() {
            changes.push(Change {
                kind: Kind::Update,
                name: name.clone(),
                prerequisites: owned_prerequisites(name, have),
                updates,
            });
        }
    }
    for (name, have) in actual {
        if !have.owned() || desired.contains_key(name) {
            continue;
        }
        let mut updates: Vec<Record> = have
            .managed
            .keys()
            .map(|t| rr::delete_rrset(name, *t))
            .collect();
        updates.push(rr::delete_rr(name, heritage()));
        changes.push(Change {
            kind: Kind::Delete,
            name: name.clone(),
            prerequisites: owned_prerequisites(name, have),
            updates,
        });
    }
    changes
}

/// "This name is still exactly as we read it": the whole TXT RRset and every managed RRset
/// match (value-dependent), and managed types we saw absent are still absent.
fn owned_prerequisites(name: &Name, have: &NameState) -> Vec<Record> {
    let mut pre: Vec<Record> = have
        .txt
        .iter()
        .map(|d| rr::rrset_member(name, d.clone()))
        .collect();
    for rtype in MANAGED {
        match have.managed.get(&rtype) {
            Some(set) => pre.extend(set.data.values().map(|d| rr::rrset_member(name, d.clone()))),
            None => pre.push(rr::rrset_absent(name, rtype)),
        }
    }
    pre
}

/// Number of names kloud owns in a zone state.
pub fn owned_count(actual: &BTreeMap<Name, NameState>) -> usize {
    actual.values().filter(|s| s.owned()).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::DNSClass;

    fn host(fqdn: &str, ip: &str) -> HostRecord {
        HostRecord {
            fqdn: fqdn.into(),
            ip: ip.into(),
            class: "web".into(),
            tags: vec![],
            labels: Default::default(),
            machine: "hw-1".into(),
            roles: vec![],
            properties: Default::default(),
        }
    }

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn rec(name: &str, data: RData) -> Record {
        Record::from_rdata(n(name), 300, data)
    }

    #[test]
    fn desired_skips_foreign_names_and_bad_addresses_and_builds_ptrs() {
        let zone = n("dc1.test.");
        let rz = n("40.10.in-addr.arpa.");
        let d = desired(
            &[
                host("Web-1.dc1.test", "10.40.0.5"),
                host("web-2.other.test", "10.40.0.6"),
                host("web-3.dc1.test", "not-an-ip"),
                host("web-4.dc1.test", "192.168.1.1"),
                host("web-5.dc1.test", "fd00::5"),
            ],
            &zone,
            Some(&rz),
        );
        let names: Vec<String> = d.forward.keys().map(|k| k.to_string()).collect();
        assert_eq!(
            names,
            ["web-1.dc1.test.", "web-4.dc1.test.", "web-5.dc1.test."]
        );
        assert!(d.forward[&n("web-5.dc1.test.")].contains_key(&RecordType::AAAA));
        let rev: Vec<String> = d.reverse.keys().map(|k| k.to_string()).collect();
        assert_eq!(rev, ["5.0.40.10.in-addr.arpa."]);
        let errors = d
            .diagnostics
            .iter()
            .filter(|x| x.severity == kloud_provider_api::Severity::Error)
            .count();
        assert_eq!(errors, 2);
        // web-4 and web-5 are outside the reverse zone: warned, not failed.
        assert_eq!(d.diagnostics.len(), 4);
    }

    #[test]
    fn diff_creates_updates_deletes_and_leaves_foreign_names_alone() {
        let zone = n("dc1.test.");
        let d = desired(
            &[
                host("new.dc1.test", "10.0.0.1"),
                host("moved.dc1.test", "10.0.0.9"),
                host("same.dc1.test", "10.0.0.3"),
                host("handmade.dc1.test", "10.0.0.4"),
            ],
            &zone,
            None,
        );
        let a = |ip: &str| RData::A(ip.parse::<A>().unwrap());
        let actual = zone_state(vec![
            rec("moved.dc1.test.", heritage()),
            rec("moved.dc1.test.", a("10.0.0.2")),
            rec("same.dc1.test.", heritage()),
            rec("same.dc1.test.", a("10.0.0.3")),
            rec("gone.dc1.test.", heritage()),
            rec("gone.dc1.test.", a("10.0.0.7")),
            rec("handmade.dc1.test.", a("10.0.0.99")),
            rec("other.dc1.test.", a("10.0.0.50")),
        ]);
        let mut diags = Vec::new();
        let changes = diff(&d.forward, &actual, 300, &mut diags);
        let summary: Vec<(Kind, String)> = changes
            .iter()
            .map(|c| (c.kind, c.name.to_string()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (Kind::Update, "moved.dc1.test.".into()),
                (Kind::Create, "new.dc1.test.".into()),
                (Kind::Delete, "gone.dc1.test.".into()),
            ]
        );
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert!(diags[0].summary.contains("handmade.dc1.test."));
        // The create is conditional on the name being unused.
        let create = &changes[1];
        assert_eq!(create.prerequisites[0].dns_class, DNSClass::NONE);
        assert_eq!(create.prerequisites[0].record_type(), RecordType::ANY);
        // The update is conditional on the exact A RRset that was read.
        let update = &changes[0];
        assert!(update
            .prerequisites
            .iter()
            .any(|r| r.data == a("10.0.0.2") && r.dns_class == DNSClass::IN));
        // The delete removes only our TXT, not the whole TXT RRset.
        let delete = &changes[2];
        assert!(delete
            .updates
            .iter()
            .any(|r| r.record_type() == RecordType::TXT && r.dns_class == DNSClass::NONE));
        assert_eq!(owned_count(&actual), 3);
    }

    #[test]
    fn a_ttl_change_is_an_update() {
        let zone = n("dc1.test.");
        let d = desired(&[host("same.dc1.test", "10.0.0.3")], &zone, None);
        let actual = zone_state(vec![
            rec("same.dc1.test.", heritage()),
            rec("same.dc1.test.", RData::A("10.0.0.3".parse::<A>().unwrap())),
        ]);
        let mut diags = Vec::new();
        assert!(diff(&d.forward, &actual, 300, &mut diags).is_empty());
        assert_eq!(diff(&d.forward, &actual, 60, &mut diags).len(), 1);
    }
}
