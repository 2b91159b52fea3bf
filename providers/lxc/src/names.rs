//! Names LXC and the kernel will accept: machine directories, container names, bridge names.

/// Linux limits interface names to 15 bytes (IFNAMSIZ - 1).
pub const MAX_IFNAME: usize = 15;

/// The bridge a network's containers join on every machine: `kl-<network>` when it fits in
/// 15 bytes, else a prefix of the name plus a hash of all of it, so long names that share a
/// prefix still get distinct bridges.
pub fn bridge_name(network: &str) -> String {
    let clean: String = network
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let short = format!("kl-{clean}");
    if short.len() <= MAX_IFNAME && clean == network {
        return short;
    }
    let hash = hash(network.as_bytes());
    // "kl-" + 6 chars + "-" + 5 hex = 15
    let prefix: String = clean.chars().take(6).collect();
    format!("kl-{prefix}-{:05x}", hash & 0xf_ffff)
}

/// A stable hash (the standard library's is not stable across releases): FNV-1a.
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Whether `name` can be a directory or container name under the LXC path: one path
/// component, no whitespace or shell-hostile characters.
pub fn is_safe_component(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name != "."
        && name != ".."
        && !name.starts_with('.')
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_network_names_read_plainly() {
        assert_eq!(bridge_name("prod"), "kl-prod");
        assert_eq!(bridge_name("backend-1"), "kl-backend-1");
    }

    #[test]
    fn long_or_odd_names_fit_and_stay_distinct() {
        let a = bridge_name("production-frontend");
        let b = bridge_name("production-backend");
        let c = bridge_name("Prod");
        for n in [&a, &b, &c] {
            assert!(n.len() <= MAX_IFNAME, "{n}");
            assert!(n.starts_with("kl-"));
        }
        assert_ne!(a, b);
        assert_ne!(c, bridge_name("prod"));
        assert_eq!(a, bridge_name("production-frontend"));
    }

    #[test]
    fn components_reject_paths_and_dots() {
        for ok in ["web-1.dc1.example.internal", "hw-r1-1", "a_b"] {
            assert!(is_safe_component(ok), "{ok}");
        }
        for bad in ["", ".", "..", ".hidden", "a/b", "a b", "-n", "x;rm", "a\nb"] {
            assert!(!is_safe_component(bad), "{bad:?}");
        }
    }
}
