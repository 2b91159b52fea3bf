//! The DNS integration against real servers, BIND 9, Knot and PowerDNS (every scenario runs on
//! each):
//! records resolve through `dig`, changes follow, only kloud's names are touched, the deletion
//! guard holds, wrong keys and dead servers fail cleanly, and a failed prerequisite leads to a
//! re-read rather than a forced write.

mod support;

use kloud_provider_api::integration::{ConvergeRequest, Integration, IntegrationError};
use kloud_provider_api::Severity;
use support::{host, hosts, DnsServer, Kind, Updates, REVERSE_ZONE, WRONG_SECRET, ZONE};

/// Run a scenario `fn(Kind)` against BIND, Knot and PowerDNS.
macro_rules! on_both_servers {
    ($($scenario:ident),* $(,)?) => {
        $(mod $scenario {
            #[test]
            fn bind() {
                super::$scenario(super::Kind::Bind)
            }
            #[test]
            fn knot() {
                super::$scenario(super::Kind::Knot)
            }
            #[test]
            fn powerdns() {
                super::$scenario(super::Kind::PowerDns)
            }
        })*
    };
}

on_both_servers!(
    converge_publishes_names_and_follows_changes,
    empty_set_removes_only_ours_and_needs_force_past_the_guard,
    delete_guard_allows_thirty_percent_and_refuses_more,
    a_wrong_key_is_refused_and_the_zone_is_unchanged,
    a_failed_prerequisite_is_reread_not_forced,
    a_zone_the_server_does_not_serve_is_a_clear_error,
    a_key_without_update_rights_is_refused,
    a_failure_after_some_writes_says_what_was_done,
);

fn req(hosts: Vec<kloud_provider_api::integration::HostRecord>) -> ConvergeRequest {
    ConvergeRequest {
        hosts,
        force: false,
        dry_run: false,
    }
}

/// The set after web-2 moved to 10.40.3.3.
fn after_move(
    set: &[kloud_provider_api::integration::HostRecord],
) -> Vec<kloud_provider_api::integration::HostRecord> {
    let mut v = set.to_vec();
    v[1].ip = "10.40.3.3".into();
    v
}

fn converge_publishes_names_and_follows_changes(kind: Kind) {
    let Some(server) = DnsServer::start_kind(kind) else {
        return;
    };
    let dns = server.provider();
    let set = vec![
        host("web-1", "10.40.0.1"),
        host("web-2", "10.40.0.2"),
        host("db-1", "10.40.1.7"),
    ];
    let r = dns.converge(&req(set.clone())).expect("converge");
    assert_eq!((r.added, r.updated, r.removed), (6, 0, 0), "{r:?}");
    for h in &set {
        assert_eq!(server.dig(&h.fqdn, "A"), vec![h.ip.clone()]);
        assert_eq!(server.reverse(&h.ip), vec![format!("{}.", h.fqdn)]);
        assert_eq!(
            server.dig(&h.fqdn, "TXT"),
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
    assert_eq!(server.dig(&format!("web-2.{ZONE}"), "A"), vec!["10.40.3.3"]);
    assert_eq!(server.reverse("10.40.3.3"), vec![format!("web-2.{ZONE}.")]);
    assert!(server.reverse("10.40.0.2").is_empty());

    // A host whose address is momentarily unknown keeps its records (and its PTR).
    let mut unknown = after_move(&set);
    unknown[0].ip = String::new();
    let r = server.provider().converge(&req(unknown)).expect("converge");
    assert!(r.is_noop(), "{r:?}");
    assert!(r
        .diagnostics
        .iter()
        .any(|d| d.summary.contains("no valid IP")));
    assert_eq!(server.dig(&set[0].fqdn, "A"), vec![set[0].ip.clone()]);
    assert_eq!(
        server.reverse(&set[0].ip),
        vec![format!("{}.", set[0].fqdn)]
    );

    // The hand-made records were never touched.
    assert_eq!(
        server.dig(&format!("handmade.{ZONE}"), "A"),
        vec!["10.40.9.9"]
    );
    assert_eq!(
        server.reverse("10.40.9.9"),
        vec![format!("handmade.{ZONE}.")]
    );
}

fn empty_set_removes_only_ours_and_needs_force_past_the_guard(kind: Kind) {
    let Some(server) = DnsServer::start_kind(kind) else {
        return;
    };
    let dns = server.provider();
    let before = server.axfr(ZONE);
    let set = hosts(12);
    dns.converge(&req(set.clone())).expect("converge");
    assert_eq!(server.dig(&set[11].fqdn, "A"), vec![set[11].ip.clone()]);
    let full = server.axfr(ZONE);

    // 24 names (12 forward, 12 reverse) would all go: refused, and nothing changes.
    let err = dns.converge(&req(vec![])).expect_err("guard");
    assert!(matches!(err, IntegrationError::Guard(_)), "{err}");
    assert!(err.to_string().contains("24 of the 24"), "{err}");
    assert_eq!(server.axfr(ZONE), full);

    // A dry run with force reports without writing.
    let dry = dns
        .converge(&ConvergeRequest {
            hosts: vec![],
            force: true,
            dry_run: true,
        })
        .expect("dry run");
    assert_eq!(dry.removed, 24);
    assert_eq!(server.axfr(ZONE), full);

    let r = dns
        .converge(&ConvergeRequest {
            hosts: vec![],
            force: true,
            dry_run: false,
        })
        .expect("forced converge");
    assert_eq!(r.removed, 24);
    // The forward zone is back to exactly what the operator made by hand.
    assert_eq!(server.axfr(ZONE), before);
    assert!(server
        .axfr(REVERSE_ZONE)
        .iter()
        .all(|l| !l.contains("web-")));
    assert_eq!(
        server.dig(&format!("handmade.{ZONE}"), "A"),
        vec!["10.40.9.9"]
    );
    assert_eq!(
        server.reverse("10.40.9.9"),
        vec![format!("handmade.{ZONE}.")]
    );
}

fn delete_guard_allows_thirty_percent_and_refuses_more(kind: Kind) {
    let Some(server) = DnsServer::start_kind(kind) else {
        return;
    };
    let dns = server.provider();
    let set = hosts(20);
    dns.converge(&req(set.clone())).expect("converge");
    // 40 names managed; dropping 7 hosts deletes 14 names = 35%: refused.
    let err = dns.converge(&req(set[..13].to_vec())).expect_err("guard");
    assert!(matches!(err, IntegrationError::Guard(_)), "{err}");
    assert_eq!(server.dig(&set[19].fqdn, "A"), vec![set[19].ip.clone()]);
    // Dropping 6 hosts deletes 12 of 40 names = 30%: allowed.
    let r = dns
        .converge(&req(set[..14].to_vec()))
        .expect("within the guard");
    assert_eq!(r.removed, 12);
    assert!(server.dig(&set[19].fqdn, "A").is_empty());
    assert_eq!(server.dig(&set[13].fqdn, "A"), vec![set[13].ip.clone()]);
}

fn a_wrong_key_is_refused_and_the_zone_is_unchanged(kind: Kind) {
    let Some(server) = DnsServer::start_kind(kind) else {
        return;
    };
    let before = server.axfr(ZONE);
    let bad = kloud_provider_dns::DnsProvider::from_block(
        &server.block(WRONG_SECRET, true),
        std::path::Path::new("."),
    )
    .expect("block");
    let err = bad.converge(&req(hosts(3))).expect_err("wrong secret");
    assert!(matches!(err, IntegrationError::Auth { .. }), "{err}");
    // BIND and Knot say which TSIG check failed; PowerDNS answers a bare NOTAUTH.
    let expected = |tsig_error: &str| match kind {
        Kind::PowerDns => "NOTAUTH".to_string(),
        _ => tsig_error.to_string(),
    };
    assert!(err.to_string().contains(&expected("BADSIG")), "{err}");
    assert_eq!(server.axfr(ZONE), before);

    let mut block = server.block(support::SECRET, true);
    block.insert("key_name".into(), serde_json::json!("nobody"));
    let unknown = kloud_provider_dns::DnsProvider::from_block(&block, std::path::Path::new("."))
        .expect("block");
    let err = unknown.converge(&req(hosts(3))).expect_err("unknown key");
    assert!(matches!(err, IntegrationError::Auth { .. }), "{err}");
    assert!(err.to_string().contains(&expected("BADKEY")), "{err}");
    assert_eq!(server.axfr(ZONE), before);
    assert!(server.dig(&format!("web-1.{ZONE}"), "A").is_empty());
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
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

fn a_failed_prerequisite_is_reread_not_forced(kind: Kind) {
    let Some(server) = DnsServer::start_kind(kind) else {
        return;
    };
    let dns = server.provider();
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
                server.nsupdate(&format!(
                    "update delete web-1.{ZONE} TXT \"heritage=kloud\"\n\
                     update delete web-1.{ZONE} A\nupdate add web-1.{ZONE} 300 A 10.40.0.55"
                ));
            }
        })
        .expect("converge after a re-read");
    assert_eq!(attempts, vec![1, 2]);
    // The operator's record stands; kloud says why it left it alone.
    assert_eq!(
        server.dig(&format!("web-1.{ZONE}"), "A"),
        vec!["10.40.0.55"]
    );
    assert!(r
        .diagnostics
        .iter()
        .any(|d| d.severity == Severity::Error && d.summary.contains("web-1")));
    assert!(r
        .diagnostics
        .iter()
        .any(|d| d.summary.contains("prerequisite")));
    // web-2 still converged.
    assert_eq!(
        server.dig(&format!("web-2.{ZONE}"), "A"),
        vec!["10.40.0.12"]
    );
}

fn a_zone_the_server_does_not_serve_is_a_clear_error(kind: Kind) {
    let Some(server) = DnsServer::start_kind(kind) else {
        return;
    };
    let mut block = server.block(support::SECRET, false);
    block.insert("zone".into(), serde_json::json!("nowhere.test"));
    let dns = kloud_provider_dns::DnsProvider::from_block(&block, std::path::Path::new("."))
        .expect("block");
    let mut h = host("web-1", "10.40.0.1");
    h.fqdn = "web-1.nowhere.test".into();
    let err = dns.converge(&req(vec![h])).expect_err("zone not served");
    assert!(err.to_string().contains("NOTAUTH"), "{err}");
    // BIND signs its answer, so kloud can tell the key was fine; Knot and PowerDNS answer
    // unsigned, and the error says both causes are possible.
    if kind == Kind::Bind {
        assert!(matches!(err, IntegrationError::Protocol { .. }), "{err}");
        assert!(err.to_string().contains("not authoritative"), "{err}");
    } else {
        assert!(err.to_string().contains("does not serve the zone"), "{err}");
    }
}

fn a_key_without_update_rights_is_refused(kind: Kind) {
    let Some(server) = DnsServer::start_with(kind, Updates::None) else {
        return;
    };
    let before = server.axfr(ZONE);
    let err = server
        .provider()
        .converge(&req(hosts(3)))
        .expect_err("no update rights");
    assert!(matches!(err, IntegrationError::Auth { .. }), "{err}");
    // Knot reports an ACL denial as BADKEY; BIND and PowerDNS as REFUSED.
    let expected = if kind == Kind::Knot {
        "BADKEY"
    } else {
        "REFUSED"
    };
    assert!(err.to_string().contains(expected), "{err}");
    assert_eq!(server.axfr(ZONE), before);
}

fn a_failure_after_some_writes_says_what_was_done(kind: Kind) {
    // The key may update the forward zone but not the reverse one: the forward batch lands,
    // then the reverse batch is refused.
    let Some(server) = DnsServer::start_with(kind, Updates::ForwardOnly) else {
        return;
    };
    let set = hosts(3);
    let err = server
        .provider()
        .converge(&req(set.clone()))
        .expect_err("reverse zone refused");
    match &err {
        IntegrationError::Partial {
            added,
            updated,
            removed,
            reason,
        } => {
            assert_eq!((*added, *updated, *removed), (3, 0, 0), "{err}");
            let expected = if kind == Kind::Knot {
                "BADKEY"
            } else {
                "REFUSED"
            };
            assert!(reason.contains(expected), "{err}");
        }
        other => panic!("expected a partial failure, got {other}"),
    }
    // What the error says was done is exactly what the server holds.
    for h in &set {
        assert_eq!(server.dig(&h.fqdn, "A"), vec![h.ip.clone()]);
        assert!(server.reverse(&h.ip).is_empty());
    }
}
