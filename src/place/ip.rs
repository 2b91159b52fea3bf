//! Address allocation for new hosts: the lowest free addresses of a network, in order, never one
//! already held by a host, never the network, broadcast or gateway address.

use ipnet::IpNet;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpError {
    #[error("network `{network}` is exhausted: {requested} addresses requested, {available} free")]
    Exhausted {
        network: String,
        requested: usize,
        available: usize,
    },
}

/// `count` addresses from `net`, lowest first, skipping `used`, `gateway` and the addresses the
/// network reserves (IPv4: network and broadcast, except on /31 and /32; IPv6: the subnet-router
/// anycast address, except on /127 and /128).
pub fn allocate(
    net: &IpNet,
    gateway: Option<IpAddr>,
    used: &HashSet<IpAddr>,
    count: usize,
) -> Result<Vec<IpAddr>, IpError> {
    let mut out = Vec::with_capacity(count.min(1 << 16));
    if count == 0 {
        return Ok(out);
    }
    let (first, last) = bounds(net);
    let mut n = first;
    loop {
        let a = address(net, n);
        if !reserved(net, a) && Some(a) != gateway && !used.contains(&a) {
            out.push(a);
            if out.len() == count {
                return Ok(out);
            }
        }
        if n == last {
            break;
        }
        n += 1;
    }
    Err(IpError::Exhausted {
        network: net.to_string(),
        requested: count,
        available: out.len(),
    })
}

/// Whether `a` is an address of `net` that is never given to a host.
pub fn reserved(net: &IpNet, a: IpAddr) -> bool {
    match net {
        IpNet::V4(v4) => {
            v4.prefix_len() < 31
                && (IpAddr::V4(v4.network()) == a || IpAddr::V4(v4.broadcast()) == a)
        }
        IpNet::V6(v6) => v6.prefix_len() < 127 && IpAddr::V6(v6.network()) == a,
    }
}

fn bounds(net: &IpNet) -> (u128, u128) {
    match net {
        IpNet::V4(v4) => (
            u128::from(u32::from(v4.network())),
            u128::from(u32::from(v4.broadcast())),
        ),
        IpNet::V6(v6) => (u128::from(v6.network()), u128::from(v6.broadcast())),
    }
}

fn address(net: &IpNet, n: u128) -> IpAddr {
    match net {
        // Within an IPv4 network every offset fits in 32 bits.
        IpNet::V4(_) => IpAddr::V4(Ipv4Addr::from(n as u32)),
        IpNet::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn lowest_free_skipping_reserved_gateway_and_used() {
        let net: IpNet = "10.40.0.0/29".parse().unwrap();
        let used = HashSet::from([ip("10.40.0.2"), ip("10.40.0.4")]);
        let got = allocate(&net, Some(ip("10.40.0.1")), &used, 3).unwrap();
        assert_eq!(got, vec![ip("10.40.0.3"), ip("10.40.0.5"), ip("10.40.0.6")]);
    }

    #[test]
    fn exhausted_pool_names_the_network() {
        let net: IpNet = "10.40.0.0/30".parse().unwrap();
        let err = allocate(&net, Some(ip("10.40.0.1")), &HashSet::new(), 2).unwrap_err();
        assert_eq!(
            err,
            IpError::Exhausted {
                network: "10.40.0.0/30".into(),
                requested: 2,
                available: 1
            }
        );
        assert!(err.to_string().contains("10.40.0.0/30"));
    }

    #[test]
    fn point_to_point_and_v6() {
        let p2p: IpNet = "192.0.2.0/31".parse().unwrap();
        assert_eq!(allocate(&p2p, None, &HashSet::new(), 2).unwrap().len(), 2);
        let v6: IpNet = "2001:db8::/126".parse().unwrap();
        let got = allocate(&v6, Some(ip("2001:db8::1")), &HashSet::new(), 2).unwrap();
        assert_eq!(got, vec![ip("2001:db8::2"), ip("2001:db8::3")]);
    }
}
