//! Shared pieces of the LXC driver tests: the LXC/ssh availability gate, unique names and
//! subnets, and a guard that removes every container, machine directory and bridge a test
//! made, even when the test fails.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kloud_provider_api::compute::{Connect, ContainerSpec, MachineRef, NetworkSpec};
use kloud_provider_exec::SshOptions;
use kloud_provider_lxc::{bridge_name, LxcConfig, LxcDriver};

fn ci() -> bool {
    kloud_provider_api::under_ci()
}

/// Whether LXC can run here. Without it the test is skipped with a message, except under
/// `CI=true`, where a missing LXC is a failure.
pub fn lxc_available(test: &str) -> bool {
    let has_tool = Command::new("lxc-create")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if has_tool && root {
        return true;
    }
    let why = if has_tool {
        "not running as root"
    } else {
        "lxc-create not found"
    };
    assert!(!ci(), "{test}: LXC is required under CI=true but {why}");
    eprintln!("SKIP {test}: {why} (install lxc and run as root)");
    false
}

/// The loopback sshd from scripts/setup/sshd.sh: (port, client key, known_hosts).
pub fn sshd(test: &str) -> Option<(u16, PathBuf, PathBuf)> {
    let port = std::env::var("KLOUD_TEST_SSH_PORT")
        .ok()
        .and_then(|p| p.parse().ok());
    let key = std::env::var_os("KLOUD_TEST_SSH_KEY").map(PathBuf::from);
    let known = std::env::var_os("KLOUD_TEST_SSH_KNOWN_HOSTS").map(PathBuf::from);
    match (port, key, known) {
        (Some(p), Some(k), Some(h)) => Some((p, k, h)),
        _ => {
            assert!(
                !ci(),
                "{test}: sshd is required under CI=true; source scripts/setup/sshd.sh"
            );
            eprintln!("SKIP {test}: KLOUD_TEST_SSH_* not set (source scripts/setup/sshd.sh)");
            None
        }
    }
}

pub fn ssh_options(known_hosts: &std::path::Path) -> SshOptions {
    SshOptions {
        options: vec![
            format!("UserKnownHostsFile={}", known_hosts.display()),
            "StrictHostKeyChecking=yes".into(),
        ],
        ..SshOptions::default()
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);
static SUBNETS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// A name no other test (or earlier run) uses: `<prefix>-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// A /24 in 10.231.0.0/16 that no interface on this computer routes yet and no other test
/// in this process took.
pub fn free_subnet() -> u8 {
    let routes = Command::new("ip")
        .args(["-4", "route", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut taken = SUBNETS.lock().unwrap_or_else(|e| e.into_inner());
    let start = (std::process::id() % 200) as u8;
    for i in 0..=255u16 {
        let n = start.wrapping_add(i as u8);
        if n == 0 || taken.contains(&n) || routes.contains(&format!("10.231.{n}.")) {
            continue;
        }
        taken.push(n);
        return n;
    }
    panic!("no free /24 in 10.231.0.0/16");
}

/// A network of its own for one test.
pub fn network() -> NetworkSpec {
    let n = free_subnet();
    NetworkSpec {
        name: unique("t"),
        cidr: format!("10.231.{n}.0/24"),
        gateway: IpAddr::V4(Ipv4Addr::new(10, 231, n, 1)),
        address: IpAddr::V4(Ipv4Addr::new(10, 231, n, 2)),
        prefix_len: 24,
    }
}

pub fn spec(name: &str, net: &NetworkSpec, host: u8) -> ContainerSpec {
    let IpAddr::V4(gw) = net.gateway else {
        unreachable!("test networks are IPv4")
    };
    let o = gw.octets();
    ContainerSpec {
        name: name.to_string(),
        hostname: name.to_string(),
        image: "busybox".into(),
        cpu: kloud_provider_api::Cpu::from_cores(1),
        memory_mib: 128,
        disk_gib: 1,
        network: NetworkSpec {
            address: IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], host)),
            ..net.clone()
        },
        driver_id: None,
        boot: Default::default(),
        owner: "kloud-test".into(),
    }
}

pub fn local_machine(prefix: &str) -> MachineRef {
    MachineRef::new(format!("{}.test", unique(prefix)), Connect::Local)
}

/// A driver whose containers live under a test root of their own.
pub fn driver(root: &std::path::Path) -> LxcDriver {
    LxcDriver::new(LxcConfig {
        root: root.to_path_buf(),
        stop_timeout_s: 5,
        ..LxcConfig::default()
    })
}

/// Removes what a test made when it goes out of scope, pass or fail.
pub struct Cleanup {
    pub root: PathBuf,
    pub bridges: Vec<String>,
}

impl Cleanup {
    pub fn new() -> Self {
        Self {
            root: PathBuf::from(format!("/var/lib/kloud/test-lxc/{}", unique("run"))),
            bridges: Vec::new(),
        }
    }

    pub fn network(&mut self) -> NetworkSpec {
        let net = network();
        self.bridges.push(bridge_name(&net.name));
        net
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(machines) = std::fs::read_dir(&self.root) {
            // Image bases last: overlay containers are snapshots of them.
            let mut paths: Vec<PathBuf> = machines.flatten().map(|m| m.path()).collect();
            paths.sort_by_key(|p| p.ends_with(".images"));
            for path in paths {
                if let Ok(containers) = std::fs::read_dir(&path) {
                    for c in containers.flatten() {
                        if c.path().join("config").exists() {
                            let _ = Command::new("lxc-destroy")
                                .arg("-P")
                                .arg(&path)
                                .arg("-n")
                                .arg(c.file_name())
                                .arg("-f")
                                .output();
                            remove_leftover_cgroups(&c.file_name().to_string_lossy());
                        }
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
        for b in &self.bridges {
            let _ = Command::new("ip").args(["link", "del", b]).output();
        }
    }
}

/// A container whose start failed leaves LXC's monitor cgroup behind (LXC cannot remove it
/// while its monitor is still in it); remove it once the container is gone. Only empty
/// cgroups can be removed, so this never touches a live one.
pub fn remove_leftover_cgroups(container: &str) {
    let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for c in controllers.flatten() {
        for kind in ["lxc.monitor.", "lxc.payload."] {
            let _ = std::fs::remove_dir(c.path().join(format!("{kind}{container}")));
        }
    }
}

/// Whether the host gets an answer from `ip` within `within`.
pub fn pings(ip: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        let ok = Command::new("ping")
            .args(["-c1", "-W1", "-n", "-q", ip])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Output of a command run in a container, trimmed.
pub fn in_container(root: &std::path::Path, m: &MachineRef, name: &str, argv: &[&str]) -> String {
    let out = Command::new("lxc-attach")
        .arg("-P")
        .arg(root.join(&m.name))
        .args(["-n", name, "--"])
        .args(argv)
        .output()
        .expect("lxc-attach runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A cgroup value of a running container, as lxc-cgroup reads it.
pub fn cgroup_value(root: &std::path::Path, m: &MachineRef, name: &str, key: &str) -> String {
    let out = Command::new("lxc-cgroup")
        .arg("-P")
        .arg(root.join(&m.name))
        .args(["-n", name, key])
        .output()
        .expect("lxc-cgroup runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
