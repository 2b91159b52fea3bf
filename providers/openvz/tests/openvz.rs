//! The OpenVZ driver through a real sshd on loopback (scripts/setup/sshd.sh) running the
//! stand-in vzctl/vzlist from tests/standin/ (there is no OpenVZ kernel here). Each test
//! points the stand-in at a state directory of its own through ssh's SetEnv.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use kloud_provider_api::compute::{
    ComputeDriver, Connect, ContainerSpec, ContainerState, DriverError, MachineRef, NetworkSpec,
};
use kloud_provider_api::Cpu;
use kloud_provider_exec::SshOptions;
use kloud_provider_openvz::{OpenVzConfig, OpenVzDriver};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// One test's machine: a stand-in state directory behind the loopback sshd.
struct Machine {
    state: PathBuf,
    machine: MachineRef,
    driver: OpenVzDriver,
    ssh: SshOptions,
}

impl Drop for Machine {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

impl Machine {
    /// None (skip) when sshd.sh was not sourced, except under CI=true where that fails.
    fn new(test: &str) -> Option<Self> {
        let port = std::env::var("KLOUD_TEST_SSH_PORT")
            .ok()
            .and_then(|p| p.parse::<u16>().ok());
        let key = std::env::var_os("KLOUD_TEST_SSH_KEY").map(PathBuf::from);
        let known = std::env::var_os("KLOUD_TEST_SSH_KNOWN_HOSTS").map(PathBuf::from);
        let (Some(port), Some(key), Some(known)) = (port, key, known) else {
            assert!(
                !kloud_provider_api::under_ci(),
                "{test}: sshd is required under CI=true; source scripts/setup/sshd.sh"
            );
            eprintln!("SKIP {test}: KLOUD_TEST_SSH_* not set (source scripts/setup/sshd.sh)");
            return None;
        };
        let id = format!(
            "{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let state = PathBuf::from(format!("/var/tmp/kloud-vz-test/{test}-{id}"));
        std::fs::create_dir_all(state.join("template/cache")).unwrap();
        std::fs::write(state.join("template/cache/debian-12-x86_64.tar.gz"), b"").unwrap();
        let ssh = SshOptions {
            options: vec![
                format!("UserKnownHostsFile={}", known.display()),
                "StrictHostKeyChecking=yes".into(),
                format!("SetEnv=KLOUD_VZ_STATE={}", state.display()),
            ],
            ..SshOptions::default()
        };
        let connect = format!("ssh://root@127.0.0.1:{port}?identity={}", key.display());
        Some(Self {
            driver: OpenVzDriver::new(OpenVzConfig {
                ssh: ssh.clone(),
                ..OpenVzConfig::default()
            }),
            ssh,
            machine: MachineRef::new(format!("vz-{id}.test"), connect.parse().unwrap()),
            state,
        })
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.state.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Runs the stand-in directly, as an operator on the machine would.
    fn vzctl_by_hand(&self, args: &[&str]) {
        let standin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standin/vzctl");
        let out = Command::new(standin)
            .args(args)
            .env("KLOUD_VZ_STATE", &self.state)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
}

fn spec(name: &str, host: u8) -> ContainerSpec {
    ContainerSpec {
        name: name.to_string(),
        hostname: name.to_string(),
        image: "debian-12".into(),
        cpu: Cpu::from_cores(2),
        memory_mib: 512,
        disk_gib: 10,
        network: NetworkSpec {
            name: "prod".into(),
            cidr: "10.40.0.0/16".into(),
            gateway: IpAddr::V4(Ipv4Addr::new(10, 40, 0, 1)),
            address: IpAddr::V4(Ipv4Addr::new(10, 40, 1, host)),
            prefix_len: 16,
        },
        driver_id: None,
        boot: Default::default(),
        owner: "kloud-test".into(),
    }
}

#[test]
fn lifecycle_through_vzctl_over_ssh() {
    let Some(vz) = Machine::new("lifecycle") else {
        return;
    };
    let (d, m) = (&vz.driver, &vz.machine);
    let created = d.create(m, &spec("web-1.dc1.test", 7)).unwrap();
    assert_eq!(created.driver_id.as_deref(), Some("101"));
    assert!(!created.adopted);
    let calls = vz.calls();
    for expected in [
        "vzctl create 101 --ostemplate debian-12-x86_64 --hostname web-1.dc1.test --ipadd 10.40.1.7 --name web-1.dc1.test",
        "vzctl set 101 --ram 512M --diskspace 10G --cpus 2 --cpulimit 200 --save",
        "vzctl start 101",
    ] {
        assert!(calls.iter().any(|c| c == expected), "no `{expected}` in {calls:#?}");
    }

    let listed = d.list(m).unwrap().containers;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "web-1.dc1.test");
    assert_eq!(listed[0].state, ContainerState::Running);
    assert_eq!(listed[0].ip.as_deref(), Some("10.40.1.7"));
    assert_eq!(listed[0].driver_id.as_deref(), Some("101"));

    assert!(d.can_resize_live());
    d.resize(m, "web-1.dc1.test", Cpu::from_cores(4), 1024, 20)
        .unwrap();
    assert_eq!(
        vz.calls().last().map(String::as_str),
        Some("vzctl set 101 --ram 1024M --diskspace 20G --cpus 4 --cpulimit 400 --save")
    );
    // Half a core: one core seen, half its time allowed.
    d.resize(m, "web-1.dc1.test", Cpu::from_millis(500), 1024, 20)
        .unwrap();
    assert_eq!(
        vz.calls().last().map(String::as_str),
        Some("vzctl set 101 --ram 1024M --diskspace 20G --cpus 1 --cpulimit 50 --save")
    );

    d.stop(m, "web-1.dc1.test").unwrap();
    assert_eq!(
        d.list(m).unwrap().containers[0].state,
        ContainerState::Stopped
    );
    d.stop(m, "web-1.dc1.test").unwrap();
    d.start(m, "web-1.dc1.test").unwrap();
    assert_eq!(
        d.list(m).unwrap().containers[0].state,
        ContainerState::Running
    );

    d.destroy(m, "web-1.dc1.test").unwrap();
    // A running container is stopped before vzctl destroy, which refuses running ones.
    let calls = vz.calls();
    let n = calls.len();
    assert_eq!(calls[n - 2..], ["vzctl stop 101", "vzctl destroy 101"]);
    assert!(d.list(m).unwrap().containers.is_empty());
    d.destroy(m, "web-1.dc1.test").unwrap();
    for r in [
        d.start(m, "web-1.dc1.test"),
        d.resize(m, "web-1.dc1.test", Cpu::from_cores(1), 1, 1),
    ] {
        assert!(matches!(r, Err(DriverError::NotFound { .. })), "{r:?}");
    }
}

#[test]
fn ctids_are_the_lowest_free_above_100_or_the_recorded_one() {
    let Some(vz) = Machine::new("ctids") else {
        return;
    };
    let (d, m) = (&vz.driver, &vz.machine);
    // Containers made by hand, outside kloud.
    vz.vzctl_by_hand(&[
        "create",
        "101",
        "--ostemplate",
        "debian-12-x86_64",
        "--hostname",
        "hand-1",
    ]);
    vz.vzctl_by_hand(&[
        "create",
        "103",
        "--ostemplate",
        "debian-12-x86_64",
        "--hostname",
        "hand-3",
    ]);
    let id = |n: &str, s: ContainerSpec| {
        d.create(
            m,
            &ContainerSpec {
                name: n.into(),
                hostname: n.into(),
                ..s
            },
        )
        .unwrap()
        .driver_id
        .unwrap()
    };
    assert_eq!(id("a.test", spec("", 1)), "102");
    assert_eq!(id("b.test", spec("", 2)), "104");
    let mut recorded = spec("", 3);
    recorded.driver_id = Some("150".into());
    assert_eq!(id("c.test", recorded), "150");
    let mut clash = spec("", 4);
    clash.driver_id = Some("101".into());
    assert_eq!(id("d.test", clash), "105");
    // Containers without an OpenVZ name are listed by hostname.
    let names: Vec<String> = d
        .list(m)
        .unwrap()
        .containers
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(
        names,
        ["a.test", "b.test", "c.test", "d.test", "hand-1", "hand-3"]
    );
}

#[test]
fn parallel_creates_on_one_machine_get_distinct_ctids() {
    let Some(vz) = Machine::new("parallel") else {
        return;
    };
    let (d, m) = (&vz.driver, &vz.machine);
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8u8)
            .map(|i| s.spawn(move || d.create(m, &spec(&format!("p{i}.test"), 10 + i))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap().driver_id.unwrap())
            .collect()
    });
    let distinct: BTreeSet<u32> = ids.iter().map(|i| i.parse().unwrap()).collect();
    assert_eq!(distinct, (101..=108).collect::<BTreeSet<u32>>());
    assert_eq!(d.list(m).unwrap().containers.len(), 8);
}

#[test]
fn create_adopts_an_existing_container_and_starts_it() {
    let Some(vz) = Machine::new("adopt") else {
        return;
    };
    let (d, m) = (&vz.driver, &vz.machine);
    let first = d.create(m, &spec("db-1.test", 5)).unwrap();
    d.stop(m, "db-1.test").unwrap();
    let again = d.create(m, &spec("db-1.test", 5)).unwrap();
    assert!(again.adopted);
    assert_eq!(again.driver_id, first.driver_id);
    assert_eq!(d.list(m).unwrap().containers.len(), 1);
    assert_eq!(
        d.list(m).unwrap().containers[0].state,
        ContainerState::Running
    );
}

#[test]
fn unknown_images_and_missing_templates_are_errors() {
    let Some(vz) = Machine::new("images") else {
        return;
    };
    let (d, m) = (&vz.driver, &vz.machine);
    let mut s = spec("x.test", 9);
    s.image = "busybox".into();
    match d.create(m, &s) {
        Err(DriverError::UnknownImage { known, .. }) => {
            assert!(known.contains(&"debian-12".to_string()))
        }
        other => panic!("expected UnknownImage, got {other:?}"),
    }
    // Known to kloud, but the machine has no cached template for it: vzctl refuses.
    s.image = "centos-7".into();
    match d.create(m, &s) {
        Err(DriverError::CommandFailed {
            command,
            status,
            stderr,
            ..
        }) => {
            assert!(
                command.starts_with("vzctl create 101 --ostemplate centos-7-x86_64"),
                "{command}"
            );
            assert_eq!(status, Some(91));
            assert!(
                stderr.contains("centos-7-x86_64.tar.gz not found"),
                "{stderr}"
            );
        }
        other => panic!("expected CommandFailed, got {other:?}"),
    }
    assert!(d.list(m).unwrap().containers.is_empty());
}

#[test]
fn refused_and_unauthorised_ssh_are_connection_errors() {
    let Some(vz) = Machine::new("ssh_faults") else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let closed = MachineRef::new(
        "vz-closed.test",
        format!("ssh://root@127.0.0.1:{port}").parse().unwrap(),
    );
    let r = vz.driver.create(&closed, &spec("x.test", 1));
    assert!(matches!(r, Err(DriverError::Connection { .. })), "{r:?}");

    // The right server, a key it does not know.
    let stranger = vz.state.join("stranger");
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    assert!(ok.success());
    let Connect::Ssh { port, .. } = vz.machine.connect else {
        unreachable!()
    };
    let wrong_key = MachineRef::new(
        "vz-denied.test",
        Connect::Ssh {
            user: "root".into(),
            host: "127.0.0.1".into(),
            port,
            identity: Some(stranger),
        },
    );
    match vz.driver.list(&wrong_key) {
        Err(DriverError::Connection { reason, .. }) => {
            assert!(reason.contains("Permission denied"), "{reason}")
        }
        other => panic!("expected Connection, got {other:?}"),
    }
}

#[test]
fn a_container_locked_by_another_vzctl_is_waited_for() {
    let Some(vz) = Machine::new("locked") else {
        return;
    };
    let (d, m) = (&vz.driver, &vz.machine);
    d.create(m, &spec("busy.test", 3)).unwrap();
    // Another vzctl holds the container's lock (the stand-in's lock is a directory).
    let lock = vz.state.join("ct/101.lck");
    std::fs::create_dir(&lock).unwrap();
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(1500));
            std::fs::remove_dir(&lock).unwrap();
        });
        d.stop(m, "busy.test").unwrap();
    });
    assert!(started.elapsed() >= std::time::Duration::from_millis(1400));
    assert_eq!(
        d.list(m).unwrap().containers[0].state,
        ContainerState::Stopped
    );

    // With no patience, the lock is an error that says what vzctl said.
    std::fs::create_dir(&lock).unwrap();
    let impatient = OpenVzDriver::new(OpenVzConfig {
        lock_wait: std::time::Duration::ZERO,
        ssh: vz.ssh.clone(),
        ..OpenVzConfig::default()
    });
    match impatient.start(m, "busy.test") {
        Err(DriverError::CommandFailed { status, stderr, .. }) => {
            assert_eq!(status, Some(9));
            assert!(stderr.contains("locked"), "{stderr}");
        }
        other => panic!("expected CommandFailed, got {other:?}"),
    }
    std::fs::remove_dir(&lock).unwrap();
}

/// First boot goes through `vzctl exec2` with the script on stdin (the stand-in emulates the
/// steps and runs the commands, see tests/standin/vzctl): commands once, in order, with the
/// KLOUD_* variables; an adopting create skips what finished; a failing command comes back
/// with its step, exit status and output.
#[test]
fn first_boot_through_vzctl_exec2() {
    let Some(vz) = Machine::new("first_boot") else {
        return;
    };
    let (d, m) = (&vz.driver, &vz.machine);
    let mut s = spec("web-1.dc1.test", 7);
    s.boot.class = "web".into();
    s.boot.roles = vec!["role::web".into()];
    s.boot.commands = vec![
        "echo one >> ran".into(),
        "echo \"$KLOUD_FQDN $KLOUD_CLASS $KLOUD_ROLES\" > env".into(),
    ];
    let created = d.create(m, &s).unwrap();
    let fb = created.first_boot.expect("first boot ran");
    assert!(fb.succeeded(), "{fb:?}");
    assert_eq!(fb.ran, ["hostname", "sshd", "command 1", "command 2"]);
    let ct = vz.state.join("ct/101");
    assert!(vz
        .calls()
        .iter()
        .any(|c| c.starts_with("vzctl exec2 101 script=$(cat)")));
    assert_eq!(
        std::fs::read_to_string(ct.join("env")).unwrap(),
        "web-1.dc1.test web role::web\n"
    );

    let again = d.create(m, &s).unwrap();
    assert!(again.adopted);
    let fb = again.first_boot.unwrap();
    assert!(fb.ran.is_empty() && fb.skipped.len() == 4, "{fb:?}");
    assert_eq!(std::fs::read_to_string(ct.join("ran")).unwrap(), "one\n");

    let mut bad = spec("web-2.dc1.test", 8);
    bad.boot.commands = vec!["echo bad-output; exit 4".into()];
    let f = d
        .create(m, &bad)
        .unwrap()
        .first_boot
        .unwrap()
        .failure
        .unwrap();
    assert_eq!((f.step.as_str(), f.exit), ("command 1", Some(4)));
    assert_eq!(f.output, "bad-output");

    // A class that asks for nothing gets no first boot (vzctl set the hostname).
    let plain = d.create(m, &spec("web-3.dc1.test", 9)).unwrap();
    assert!(plain.first_boot.is_none());
}

/// A container made with vzctl by hand carries no kloud description: create refuses to adopt
/// it and destroy refuses to remove it ([`DriverError::NotOurs`]), and no vzctl call touches it.
/// kloud's own container is marked `kloud owner=OWNER record=FQDN` and destroyed as usual.
#[test]
fn a_container_made_by_hand_is_never_adopted_or_destroyed() {
    let Some(vz) = Machine::new("hand_made") else {
        return;
    };
    let (d, m) = (&vz.driver, &vz.machine);
    let ours = d.create(m, &spec("ours.test", 5)).unwrap();
    let ctid = ours.driver_id.unwrap();
    let description =
        std::fs::read_to_string(vz.state.join("ct").join(&ctid).join("DESCRIPTION")).unwrap();
    assert_eq!(description, "kloud owner=kloud-test record=ours.test");

    vz.vzctl_by_hand(&[
        "create",
        "120",
        "--ostemplate",
        "debian-12-x86_64",
        "--hostname",
        "hand.test",
        "--name",
        "hand.test",
    ]);
    vz.vzctl_by_hand(&["start", "120"]);
    let before = vz.calls().len();
    let refused = d.destroy(m, "hand.test").unwrap_err();
    assert!(
        matches!(&refused, DriverError::NotOurs { name, .. } if name == "hand.test"),
        "{refused:?}"
    );
    let adopt = d.create(m, &spec("hand.test", 6)).unwrap_err();
    assert!(matches!(adopt, DriverError::NotOurs { .. }), "{adopt:?}");
    let touched: Vec<String> = vz.calls()[before..]
        .iter()
        .filter(|c| c.starts_with("vzctl"))
        .cloned()
        .collect();
    assert!(touched.is_empty(), "vzctl must not run: {touched:?}");
    let hand = d
        .list(m)
        .unwrap()
        .containers
        .into_iter()
        .find(|o| o.name == "hand.test")
        .expect("still there");
    assert_eq!(hand.state, ContainerState::Running);

    d.destroy(m, "ours.test").unwrap();
    let names: Vec<String> = d
        .list(m)
        .unwrap()
        .containers
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(names, ["hand.test"]);
}
