//! Time to converge 1,000 hosts into an empty zone on a real BIND 9 (loopback), batched
//! UPDATEs over one TCP connection. Each run gets a fresh named; prints the median of 5 runs,
//! forward only and forward + reverse (2,000 names). Also the no-op re-converge (two AXFRs).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use kloud_provider_api::integration::{ConvergeRequest, Integration};
use support::Named;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let hosts = support::hosts(1000);
    let req = ConvergeRequest {
        hosts,
        force: false,
        dry_run: false,
    };
    for reverse in [false, true] {
        let mut first = Vec::new();
        let mut noop = Vec::new();
        for _ in 0..5 {
            let Some(bind) = Named::start() else { return };
            let dns = kloud_provider_dns::DnsProvider::from_block(
                &bind.block(support::SECRET, reverse),
                std::path::Path::new("."),
            )
            .expect("block");
            let t = Instant::now();
            let r = dns.converge(&req).expect("converge");
            first.push(t.elapsed());
            assert_eq!(r.added, if reverse { 2000 } else { 1000 });
            let t = Instant::now();
            let r = dns.converge(&req).expect("converge");
            noop.push(t.elapsed());
            assert!(r.is_noop());
            assert_eq!(bind.dig("web-1000.dc1.test", "A"), vec!["10.40.4.1"]);
        }
        let label = if reverse {
            "A+PTR (2000 names)"
        } else {
            "A only (1000 names)"
        };
        println!(
            "dns converge 1000 hosts into empty zone, {label}: median {:.1} ms (runs: {:?})",
            median(first.clone()).as_secs_f64() * 1e3,
            first.iter().map(|d| d.as_millis()).collect::<Vec<_>>()
        );
        println!(
            "dns re-converge 1000 hosts, nothing to change, {label}: median {:.1} ms",
            median(noop).as_secs_f64() * 1e3
        );
    }
}
