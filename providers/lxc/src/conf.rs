//! The part of a container's LXC config that kloud owns, and reading back what LXC reports.
//!
//! kloud writes its keys (hostname, network, cgroup limits) as one block at the end of the
//! container's `config` after the template ran, deleting any earlier value of those keys, so
//! the file says exactly once what the container is. `lxc-ls` and `lxc-info` output is parsed
//! here too, so the parsing is tested without containers.
//!
//! The block starts with kloud's ownership mark, two comment lines LXC ignores (its config
//! parser skips lines starting with `#`, and `lxc-start`, `lxc-copy` and `lxc-info` keep
//! them): `# kloud.owner = OWNER` and `# kloud.record = FQDN`. The driver adopts and destroys
//! only containers whose config carries `# kloud.owner = `; one made by hand is left alone.

use std::net::{IpAddr, Ipv4Addr};

use kloud_provider_api::compute::ContainerState;
use kloud_provider_api::Cpu;

/// The start of the ownership mark's first line; the driver's scripts grep for it
/// (`^# kloud\.owner = `).
pub const MARK_OWNER: &str = "# kloud.owner = ";
/// The start of the mark's second line: the HostDB record (the host's FQDN).
pub const MARK_RECORD: &str = "# kloud.record = ";

/// The ownership mark's lines for a container made for `owner` as record `record`. Control
/// characters (a newline would end the comment) are written as `_`.
pub fn mark(owner: &str, record: &str) -> String {
    let clean = |v: &str| -> String {
        v.chars()
            .map(|c| if c.is_control() { '_' } else { c })
            .collect()
    };
    format!(
        "{MARK_OWNER}{}\n{MARK_RECORD}{}\n",
        clean(owner),
        clean(record)
    )
}

/// The owner a config's mark names, if it carries kloud's mark.
pub fn marked_owner(config: &str) -> Option<&str> {
    config.lines().find_map(|l| l.strip_prefix(MARK_OWNER))
}

/// cgroup layout of a machine: decides which keys set limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cgroup {
    /// v1 or hybrid (`/sys/fs/cgroup` is a tmpfs of controllers).
    V1,
    /// unified v2 (`/sys/fs/cgroup` is `cgroup2fs`).
    V2,
}

/// CFS period: quota = cpus x period gives a container `cpu` cores worth of time.
pub const CPU_PERIOD_US: u64 = 100_000;

/// The smallest CFS quota the kernel takes (1 ms); a few millicores are raised to it.
pub const CPU_QUOTA_MIN_US: u64 = 1_000;

/// The CFS quota of `cpu` over [`CPU_PERIOD_US`]: 100 µs per millicore (`0.5` → 50000).
pub fn cpu_quota(cpu: Cpu) -> u64 {
    let quota = u64::from(cpu.millis()) * CPU_PERIOD_US / 1000;
    if cpu.is_zero() {
        quota
    } else {
        quota.max(CPU_QUOTA_MIN_US)
    }
}

/// cgroup limit (file, value) pairs for a size: used both in the config and by `lxc-cgroup`.
pub fn limits(cg: Cgroup, cpu: Cpu, memory_mib: u64) -> Vec<(&'static str, String)> {
    let bytes = memory_mib.saturating_mul(1024 * 1024);
    let quota = cpu_quota(cpu);
    match cg {
        Cgroup::V1 => vec![
            ("memory.limit_in_bytes", bytes.to_string()),
            ("cpu.cfs_period_us", CPU_PERIOD_US.to_string()),
            ("cpu.cfs_quota_us", quota.to_string()),
        ],
        Cgroup::V2 => vec![
            ("memory.max", bytes.to_string()),
            ("cpu.max", format!("{quota} {CPU_PERIOD_US}")),
        ],
    }
}

fn cgroup_prefix(cg: Cgroup) -> &'static str {
    match cg {
        Cgroup::V1 => "lxc.cgroup.",
        Cgroup::V2 => "lxc.cgroup2.",
    }
}

/// Everything kloud sets on a container.
#[derive(Debug, Clone)]
pub struct Block<'a> {
    pub hostname: &'a str,
    pub bridge: &'a str,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    /// Host path of kloud's busybox `rcS`, bound over the container's.
    pub busybox_rcs: Option<String>,
    pub cgroup: Cgroup,
    pub cpu: Cpu,
    pub memory_mib: u64,
}

/// A fixed MAC per address, so the neighbours' ARP caches stay right across restarts.
pub fn mac_for(address: Ipv4Addr) -> String {
    let o = address.octets();
    format!("02:4b:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

const BLOCK_START: &str = "# --- kloud: managed below, rewritten on resize ---";

/// The config lines of a block.
pub fn render(b: &Block<'_>) -> String {
    let mut s = String::new();
    s.push_str(BLOCK_START);
    s.push('\n');
    let mut kv = |k: &str, v: &str| {
        s.push_str(k);
        s.push_str(" = ");
        s.push_str(v);
        s.push('\n');
    };
    kv("lxc.uts.name", b.hostname);
    kv("lxc.net.0.type", "veth");
    kv("lxc.net.0.link", b.bridge);
    kv("lxc.net.0.flags", "up");
    kv("lxc.net.0.name", "eth0");
    kv("lxc.net.0.hwaddr", &mac_for(b.address));
    kv(
        "lxc.net.0.ipv4.address",
        &format!("{}/{}", b.address, b.prefix_len),
    );
    if let Some(gw) = b.gateway {
        kv("lxc.net.0.ipv4.gateway", &gw.to_string());
    }
    if let Some(rcs) = &b.busybox_rcs {
        kv(
            "lxc.mount.entry",
            &format!("{rcs} etc/init.d/rcS none ro,bind 0 0"),
        );
    }
    let prefix = cgroup_prefix(b.cgroup);
    for (k, v) in limits(b.cgroup, b.cpu, b.memory_mib) {
        kv(&format!("{prefix}{k}"), &v);
    }
    s
}

/// Whether a config line sets a key kloud owns (and so is replaced by kloud's block).
fn owned(line: &str) -> bool {
    let key = line.split('=').next().unwrap_or("").trim();
    key == "lxc.uts.name"
        || key.starts_with("lxc.net.")
        || key.starts_with("lxc.cgroup.")
        || key.starts_with("lxc.cgroup2.")
        || (key == "lxc.mount.entry" && line.contains("kloud-rcS"))
        || line.trim() == BLOCK_START
}

/// `config` with kloud's keys removed and `block` appended.
pub fn merge(config: &str, block: &str) -> String {
    let mut out: String = config
        .lines()
        .filter(|l| !owned(l))
        .flat_map(|l| [l, "\n"])
        .collect();
    out.push_str(block);
    out
}

/// `config` with only the cgroup limits replaced (resize).
pub fn set_limits(config: &str, cg: Cgroup, cpu: Cpu, memory_mib: u64) -> String {
    let mut out: String = config
        .lines()
        .filter(|l| {
            let key = l.split('=').next().unwrap_or("").trim();
            !(key.starts_with("lxc.cgroup.") || key.starts_with("lxc.cgroup2."))
        })
        .flat_map(|l| [l, "\n"])
        .collect();
    let prefix = cgroup_prefix(cg);
    for (k, v) in limits(cg, cpu, memory_mib) {
        out.push_str(&format!("{prefix}{k} = {v}\n"));
    }
    out
}

/// The configured IPv4 address (without prefix) of a config, if any.
pub fn configured_address(config: &str) -> Option<String> {
    config.lines().rev().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        if k.trim() != "lxc.net.0.ipv4.address" {
            return None;
        }
        let addr = v.trim().split('/').next()?;
        addr.parse::<IpAddr>().ok().map(|a| a.to_string())
    })
}

/// Parses an LXC state word (`RUNNING`, `STOPPED`, `FROZEN`...).
pub fn state(word: &str) -> ContainerState {
    match word.trim() {
        "RUNNING" => ContainerState::Running,
        "STOPPED" => ContainerState::Stopped,
        other => ContainerState::Other(other.to_string()),
    }
}

/// One row of `lxc-ls -f -F NAME,STATE,IPV4`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    pub state: ContainerState,
    pub ipv4: Vec<String>,
}

/// Parses `lxc-ls -f -F NAME,STATE,IPV4`: a header, then `name state ip[, ip]...` with `-`
/// for no address.
pub fn parse_ls(out: &str) -> Vec<Row> {
    out.lines()
        .filter_map(|line| {
            let mut it = line.split_whitespace();
            let name = it.next()?;
            let st = it.next()?;
            if name == "NAME" && st == "STATE" {
                return None;
            }
            let rest: String = it.collect::<Vec<_>>().join(" ");
            let ipv4 = rest
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty() && *s != "-")
                .map(str::to_string)
                .collect();
            Some(Row {
                name: name.to_string(),
                state: state(st),
                ipv4,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_names_owner_and_record_on_comment_lines_and_reads_back() {
        let m = mark("team-a", "web-1.dc1.test");
        assert_eq!(
            m,
            "# kloud.owner = team-a\n# kloud.record = web-1.dc1.test\n"
        );
        let config = format!("lxc.uts.name = web-1\n{m}lxc.net.0.type = veth\n");
        assert_eq!(marked_owner(&config), Some("team-a"));
        assert_eq!(marked_owner("lxc.uts.name = hand\n# a comment\n"), None);
        // A newline in an owner cannot end the comment and start an LXC key.
        let odd = mark("a\nlxc.init.cmd = /bin/evil", "x");
        assert_eq!(odd.lines().count(), 2, "{odd}");
        assert!(odd.lines().all(|l| l.starts_with("# kloud.")), "{odd}");
    }

    fn block(cg: Cgroup) -> Block<'static> {
        Block {
            hostname: "web-1.dc1",
            bridge: "kl-prod",
            address: Ipv4Addr::new(10, 40, 0, 17),
            prefix_len: 16,
            gateway: Some(Ipv4Addr::new(10, 40, 0, 1)),
            busybox_rcs: Some("/p/web-1.dc1/kloud-rcS".into()),
            cgroup: cg,
            cpu: Cpu::from_cores(2),
            memory_mib: 512,
        }
    }

    #[test]
    fn block_sets_network_hostname_and_v1_limits() {
        let b = render(&block(Cgroup::V1));
        for line in [
            "lxc.uts.name = web-1.dc1",
            "lxc.net.0.link = kl-prod",
            "lxc.net.0.name = eth0",
            "lxc.net.0.hwaddr = 02:4b:0a:28:00:11",
            "lxc.net.0.ipv4.address = 10.40.0.17/16",
            "lxc.net.0.ipv4.gateway = 10.40.0.1",
            "lxc.mount.entry = /p/web-1.dc1/kloud-rcS etc/init.d/rcS none ro,bind 0 0",
            "lxc.cgroup.memory.limit_in_bytes = 536870912",
            "lxc.cgroup.cpu.cfs_quota_us = 200000",
        ] {
            assert!(b.lines().any(|l| l == line), "missing {line:?} in\n{b}");
        }
        let b2 = render(&block(Cgroup::V2));
        assert!(b2.contains("lxc.cgroup2.memory.max = 536870912\n"), "{b2}");
        assert!(b2.contains("lxc.cgroup2.cpu.max = 200000 100000\n"), "{b2}");
        assert!(!b2.contains("lxc.cgroup."), "{b2}");
    }

    #[test]
    fn merge_replaces_owned_keys_and_keeps_the_rest() {
        let template = "lxc.net.0.type = veth\nlxc.net.0.link = lxcbr0\nlxc.rootfs.path = dir:/r\n\
                        lxc.uts.name = \"web-1\"\nlxc.mount.entry = /lib lib none ro,bind 0 0\n";
        let b = render(&block(Cgroup::V1));
        let merged = merge(template, &b);
        assert!(merged.contains("lxc.rootfs.path = dir:/r\n"));
        assert!(merged.contains("lxc.mount.entry = /lib lib none ro,bind 0 0\n"));
        assert!(!merged.contains("lxcbr0"));
        assert_eq!(merged.matches("lxc.uts.name").count(), 1);
        // Merging twice changes nothing: create after a crash rewrites the same block.
        assert_eq!(merge(&merged, &b), merged);
    }

    #[test]
    fn set_limits_rewrites_only_cgroup_keys() {
        let merged = merge("lxc.rootfs.path = dir:/r\n", &render(&block(Cgroup::V1)));
        let resized = set_limits(&merged, Cgroup::V1, Cpu::from_cores(1), 256);
        assert!(resized.contains("lxc.cgroup.memory.limit_in_bytes = 268435456\n"));
        assert!(resized.contains("lxc.cgroup.cpu.cfs_quota_us = 100000\n"));
        assert!(!resized.contains("536870912"));
        assert!(resized.contains("lxc.net.0.ipv4.address = 10.40.0.17/16\n"));
        assert_eq!(configured_address(&resized).as_deref(), Some("10.40.0.17"));
    }

    /// A machine that moved to unified cgroup v2 (a fresh Debian 12) gets v2 keys on resize,
    /// and the v1 keys of the old config are gone, not left for LXC to refuse.
    #[test]
    fn set_limits_writes_v2_keys_and_drops_v1_ones() {
        let merged = merge("lxc.rootfs.path = dir:/r\n", &render(&block(Cgroup::V1)));
        let resized = set_limits(&merged, Cgroup::V2, Cpu::from_cores(3), 1024);
        assert!(
            resized.contains("lxc.cgroup2.memory.max = 1073741824\n"),
            "{resized}"
        );
        assert!(
            resized.contains("lxc.cgroup2.cpu.max = 300000 100000\n"),
            "{resized}"
        );
        assert!(!resized.contains("lxc.cgroup."), "{resized}");
        assert_eq!(
            limits(Cgroup::V2, Cpu::from_cores(3), 1024),
            vec![
                ("memory.max", "1073741824".to_string()),
                ("cpu.max", "300000 100000".to_string())
            ]
        );
        assert_eq!(
            limits(Cgroup::V1, Cpu::from_cores(3), 1024),
            vec![
                ("memory.limit_in_bytes", "1073741824".to_string()),
                ("cpu.cfs_period_us", "100000".to_string()),
                ("cpu.cfs_quota_us", "300000".to_string())
            ]
        );
    }

    #[test]
    fn parses_lxc_ls_fancy_output() {
        let out = "NAME        STATE   IPV4                 \n\
                   a.dc1       RUNNING 10.0.0.2, 10.0.0.3   \n\
                   b.dc1       STOPPED -                    \n\
                   c.dc1       FROZEN  10.0.0.9             \n";
        let rows = parse_ls(out);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].ipv4, vec!["10.0.0.2", "10.0.0.3"]);
        assert_eq!(rows[1].state, ContainerState::Stopped);
        assert!(rows[1].ipv4.is_empty());
        assert_eq!(rows[2].state, ContainerState::Other("FROZEN".into()));
        assert!(parse_ls("").is_empty());
    }

    #[test]
    fn fractional_cpu_sets_a_fractional_quota_on_v1_and_v2() {
        let half = Cpu::from_millis(500);
        assert_eq!(
            limits(Cgroup::V2, half, 256)[1],
            ("cpu.max", "50000 100000".to_string())
        );
        assert_eq!(
            limits(Cgroup::V1, Cpu::from_millis(1250), 256)[2],
            ("cpu.cfs_quota_us", "125000".to_string())
        );
        // Below the kernel's minimum quota, a tiny share is raised to 1 ms.
        assert_eq!(cpu_quota(Cpu::from_millis(1)), CPU_QUOTA_MIN_US);
        assert_eq!(cpu_quota(Cpu::from_millis(10)), 1_000);
        assert_eq!(cpu_quota(Cpu::from_millis(25)), 2_500);
    }
}
