//! Address allocation through the public API, verified by the checker: lowest free first, never
//! a used, gateway, network or broadcast address, a typed error naming an exhausted network.

use kloud::place::check::{check_addresses, Violation};
use kloud::place::ip::{allocate, IpError};
use std::collections::HashSet;
use std::net::IpAddr;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

#[test]
fn allocations_pass_the_checker_and_skip_what_is_taken() {
    let net: ipnet::IpNet = "10.40.0.0/24".parse().unwrap();
    let gateway = Some(ip("10.40.0.1"));
    let used: HashSet<IpAddr> = (2..=9).map(|i| ip(&format!("10.40.0.{i}"))).collect();
    let got = allocate(&net, gateway, &used, 250 - 8).unwrap();
    assert_eq!(got.first(), Some(&ip("10.40.0.10")));
    assert_eq!(got.last(), Some(&ip("10.40.0.251")));
    assert!(check_addresses(&net, gateway, &used, &got).is_empty());
    // The whole pool: 254 hosts minus the gateway minus 8 used.
    assert_eq!(allocate(&net, gateway, &used, 245).unwrap().len(), 245);
    let err = allocate(&net, gateway, &used, 246).unwrap_err();
    assert_eq!(
        err,
        IpError::Exhausted {
            network: "10.40.0.0/24".into(),
            requested: 246,
            available: 245
        }
    );
}

#[test]
fn checker_flags_bad_addresses() {
    let net: ipnet::IpNet = "10.40.0.0/24".parse().unwrap();
    let used = HashSet::from([ip("10.40.0.5")]);
    let bad = [
        ip("10.40.0.5"),
        ip("10.40.0.7"),
        ip("10.40.0.7"),
        ip("10.40.0.255"),
        ip("10.41.0.1"),
        ip("10.40.0.1"),
    ];
    let v = check_addresses(&net, Some(ip("10.40.0.1")), &used, &bad);
    let reused = v
        .iter()
        .filter(|v| matches!(v, Violation::AddressReused { .. }))
        .count();
    let outside = v
        .iter()
        .filter(|v| matches!(v, Violation::AddressOutside { .. }))
        .count();
    assert_eq!((reused, outside), (2, 3), "{v:?}");
}
