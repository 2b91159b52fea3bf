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

#[test]
fn empty_set_removes_only_ours_and_needs_force_past_the_guard() {
    let Some(bind) = Named::start() else { return };
    let dns = bind.provider();
    let before = bind.axfr(ZONE);
    let set = hosts(12);
    dns.converge(&req(set.clone())).expect("converge");
    assert_eq!(bind.dig(&set[11].fqdn, "A"), vec![set[11].ip.clone()]);
    let full = bind.axfr(ZONE);

    // 24 names (12 forward, 12 reverse) would all go: refused, and nothing changes.
    let err = dns.converge(&req(vec![])).expect_err("guard");
    assert!(matches!(err, IntegrationError::Guard(_)), "{err}");
    assert!(err.to_string().contains("24 of the 24"), "{err}");
    assert_eq!(bind.axfr(ZONE), full);

    // A dry run with force reports without writing.
    let dry = dns
        .converge(&ConvergeRequest {
            hosts: vec![],
            force: true,
            dry_run: true,
        })
        .expect("dry run");
    assert_eq!(dry.removed, 24);
    assert_eq!(bind.axfr(ZONE), full);

    let r = dns
        .converge(&ConvergeRequest {
            hosts: vec![],
            force: true,
            dry_run: false,
        })
        .expect("forced converge");
    assert_eq!(r.removed, 24);
    // The forward zone is back to exactly what the operator made by hand.
    assert_eq!(bind.axfr(ZONE), before);
    assert!(bind.axfr(REVERSE_ZONE).iter().all(|l| !l.contains("web-")));
    assert_eq!(
        bind.dig(&format!("handmade.{ZONE}"), "A"),
        vec!["10.40.9.9"]
    );
    assert_eq!(bind.reverse("10.40.9.9"), vec![format!("handmade.{ZONE}.")]);
}

#[test]
fn delete_guard_allows_thirty_percent_and_refuses_more() {
    let Some(bind) = Named::start() else { return };
    let dns = bind.provider();
    let set = hosts(20);
    dns.converge(&req(set.clone())).expect("converge");
    // 40 names managed; dropping 7 hosts deletes 14 names = 35%: refused.
    let err = dns.converge(&req(set[..13].to_vec())).expect_err("guard");
    assert!(matches!(err, IntegrationError::Guard(_)), "{err}");
    assert_eq!(bind.dig(&set[19].fqdn, "A"), vec![set[19].ip.clone()]);
    // Dropping 6 hosts deletes 12 of 40 names = 30%: allowed.
    let r = dns
        .converge(&req(set[..14].to_vec()))
        .expect("within the guard");
    assert_eq!(r.removed, 12);
    assert!(bind.dig(&set[19].fqdn, "A").is_empty());
    assert_eq!(bind.dig(&set[13].fqdn, "A"), vec![set[13].ip.clone()]);
}

#[test]
fn a_wrong_key_is_refused_and_the_zone_is_unchanged() {
    let Some(bind) = Named::start() else { return };
    let before = bind.axfr(ZONE);
    let bad = kloud_provider_dns::DnsProvider::from_block(
        &bind.block(WRONG_SECRET, true),
        std::path::Path::new("."),
    )
    .expect("block");
    let err = bad.converge(&req(hosts(3))).expect_err("wrong secret");
    assert!(matches!(err, IntegrationError::Auth { .. }), "{err}");
    assert!(err.to_string().contains("BADSIG"), "{err}");
    assert_eq!(bind.axfr(ZONE), before);

    let mut block = bind.block(support::SECRET, true);
    block.insert("key_name".into(), serde_json::json!("nobody"));
    let unknown = kloud_provider_dns::DnsProvider::from_block(&block, std::path::Path::new("."))
        .expect("block");
    let err = unknown.converge(&req(hosts(3))).expect_err("unknown key");
    assert!(err.to_string().contains("BADKEY"), "{err}");
    assert_eq!(bind.axfr(ZONE), before);
    assert!(bind.dig(&format!("web-1.{ZONE}"), "A").is_empty());
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    if support::tools().is_none() {
        return;
    }
    // Bind and drop a listener so the port is known to be closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut block = serde_json::json!({
        "server": format!("127.0.0.1:{port}"), "zone": ZONE, "key_name": "kloud",
        "secret": support::SECRET,
    })
    .as_object()
    .expect("object")
    .clone()
    .into_iter()
    .collect::<std::collections::BTreeMap<_, _>>();
    block.remove("reverse_zone");
    let dns = kloud_provider_dns::DnsProvider::from_block(&block, std::path::Path::new("."))
        .expect("block");
    let err = dns.converge(&req(hosts(1))).expect_err("nothing listens");
    assert!(matches!(err, IntegrationError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains(&port.to_string()), "{err}");
}

#[test]
fn a_failed_prerequisite_is_reread_not_forced() {
    let Some(bind) = Named::start() else { return };
    let dns = bind.provider();
    let set = vec![host("web-1", "10.40.0.1"), host("web-2", "10.40.0.2")];
    dns.converge(&req(set.clone())).expect("converge");

    // Both hosts move. Between kloud's read and its write, an operator takes web-1 over by
    // hand (drops kloud's TXT and points it elsewhere).
    let mut moved = set.clone();
    moved[0].ip = "10.40.0.11".into();
    moved[1].ip = "10.40.0.12".into();
    let mut attempts = Vec::new();
    let r = dns
        .converge_observed(&req(moved), &mut |attempt| {
            attempts.push(attempt);
            if attempt == 1 {
                bind.nsupdate(&format!(
                    "update delete web-1.{ZONE} TXT \"heritage=kloud\"\n\
                     update delete web-1.{ZONE} A\nupdate add web-1.{ZONE} 300 A 10.40.0.55"
                ));
            }
        })
        .expect("converge after a re-read");
    assert_eq!(attempts, vec![1, 2]);
    // The operator's record stands; kloud says why it left it alone.
    assert_eq!(bind.dig(&format!("web-1.{ZONE}"), "A"), vec!["10.40.0.55"]);
    assert!(r
        .diagnostics
        .iter()
        .any(|d| d.severity == Severity::Error && d.summary.contains("web-1")));
    assert!(r
        .diagnostics
        .iter()
        .any(|d| d.summary.contains("prerequisite")));
    // web-2 still converged.
    assert_eq!(bind.dig(&format!("web-2.{ZONE}"), "A"), vec!["10.40.0.12"]);
}
