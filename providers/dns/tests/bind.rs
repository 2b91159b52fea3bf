//! The DNS integration against a real BIND 9: records resolve through `dig`, changes follow,
//! only kloud's names are touched, the deletion guard holds, wrong keys and dead servers fail
//! cleanly, and a failed prerequisite leads to a re-read rather than a forced write.

mod support;

use kloud_provider_api::integration::{ConvergeRequest, Integration, IntegrationError};
use kloud_provider_api::Severity;
use support::{host, hosts, Named, REVERSE_ZONE, WRONG_SECRET, ZONE};

fn req(hosts: Vec<kloud_provider_api::integration::HostRecord>) -> ConvergeRequest {
    ConvergeRequest {
        hosts,
        force: false,
        dry_run: false,
    }
}

#[test]
fn converge_publishes_names_and_follows_changes() {
    let Some(bind) = Named::start() else { return };
    let dns = bind.provider();
    let set = vec![
        host("web-1", "10.40.0.1"),
        host("web-2", "10.40.0.2"),
        host("db-1", "10.40.1.7"),
    ];
    let r = dns.converge(&req(set.clone())).expect("converge");
    assert_eq!((r.added, r.updated, r.removed), (6, 0, 0), "{r:?}");
    for h in &set {
        assert_eq!(bind.dig(&h.fqdn, "A"), vec![h.ip.clone()]);
        assert_eq!(bind.reverse(&h.ip), vec![format!("{}.", h.fqdn)]);
        assert_eq!(
            bind.dig(&h.fqdn, "TXT"),
            vec!["\"heritage=kloud\"".to_string()]
        );
    }

    // Converging the same set again changes nothing.
    let again = dns.converge(&req(set.clone())).expect("converge");
    assert!(again.is_noop(), "{again:?}");

    // web-2 is replaced on another address: the new address resolves, the old PTR is gone.
    let mut moved = set.clone();
    moved[1].ip = "10.40.3.3".into();
    let r = dns.converge(&req(moved)).expect("converge");
    assert_eq!((r.added, r.updated, r.removed), (1, 1, 1), "{r:?}");
    assert_eq!(bind.dig(&format!("web-2.{ZONE}"), "A"), vec!["10.40.3.3"]);
    assert_eq!(bind.reverse("10.40.3.3"), vec![format!("web-2.{ZONE}.")]);
    assert!(bind.reverse("10.40.0.2").is_empty());

    // The hand-made records were never touched.
    assert_eq!(
        bind.dig(&format!("handmade.{ZONE}"), "A"),
        vec!["10.40.9.9"]
    );
    assert_eq!(bind.reverse("10.40.9.9"), vec![format!("handmade.{ZONE}.")]);
}
