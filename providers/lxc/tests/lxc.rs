//! The LXC driver against real LXC on this computer (as root), locally and through a real
//! sshd on loopback. Each test makes its own machines, network and bridge, and removes them.

mod support;

use std::time::Duration;

use kloud_provider_api::compute::{
    ComputeDriver, Connect, ContainerState, DriverError, MachineRef,
};
use kloud_provider_api::{Cpu, Severity};
use kloud_provider_lxc::{ImageMap, LxcConfig, LxcDriver};
use support::*;

#[test]
fn lifecycle_create_list_ping_resize_stop_start_destroy() {
    if !lxc_available("lifecycle") {
        return;
    }
    let mut guard = Cleanup::new();
    let net = guard.network();
    let d = driver(&guard.root);
    let m = local_machine("hw");
    let name = format!("{}.dc1.test", unique("web"));
    let mut s = spec(&name, &net, 10);
    s.hostname = format!("h-{name}");

    let created = d.create(&m, &s).unwrap();
    assert!(!created.adopted);
    // The dir backing store cannot limit disk: the driver must say so.
    assert!(created
        .diagnostics
        .iter()
        .any(|x| x.severity == Severity::Warning && x.summary.contains("not enforced")));

    let ip = s.network.address.to_string();
    let listed = d.list(&m).unwrap().containers;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].name, name);
    assert_eq!(listed[0].state, ContainerState::Running);
    assert_eq!(listed[0].ip.as_deref(), Some(ip.as_str()));
    assert!(pings(&ip, Duration::from_secs(5)), "{ip} does not answer");
    assert_eq!(
        in_container(&guard.root, &m, &name, &["hostname"]),
        s.hostname
    );

    d.resize(&m, &name, Cpu::from_cores(2), 256, 1).unwrap();
    assert_eq!(
        cgroup_value(&guard.root, &m, &name, "memory.limit_in_bytes"),
        (256u64 << 20).to_string()
    );
    assert_eq!(
        cgroup_value(&guard.root, &m, &name, "cpu.cfs_quota_us"),
        "200000"
    );
    // Half a core: half of each CFS period.
    d.resize(&m, &name, Cpu::from_millis(500), 256, 1).unwrap();
    assert_eq!(
        cgroup_value(&guard.root, &m, &name, "cpu.cfs_quota_us"),
        "50000"
    );

    d.stop(&m, &name).unwrap();
    let listed = d.list(&m).unwrap().containers;
    assert_eq!(listed[0].state, ContainerState::Stopped);
    // Stopped, it still reports the address it is configured with.
    assert_eq!(listed[0].ip.as_deref(), Some(ip.as_str()));
    assert!(
        !pings(&ip, Duration::from_millis(0)),
        "{ip} answers while stopped"
    );

    d.start(&m, &name).unwrap();
    assert!(
        pings(&ip, Duration::from_secs(5)),
        "{ip} does not answer after start"
    );
    // The resize survived the restart: it went into the config, not only the cgroup.
    assert_eq!(
        cgroup_value(&guard.root, &m, &name, "memory.limit_in_bytes"),
        (256u64 << 20).to_string()
    );

    d.destroy(&m, &name).unwrap();
    assert!(d.list(&m).unwrap().containers.is_empty());
    assert!(!pings(&ip, Duration::from_millis(0)));
}

#[test]
fn create_and_destroy_are_idempotent() {
    if !lxc_available("idempotent") {
        return;
    }
    let mut guard = Cleanup::new();
    let net = guard.network();
    let d = driver(&guard.root);
    let m = local_machine("hw");
    let name = format!("{}.dc1.test", unique("db"));
    let s = spec(&name, &net, 11);

    assert!(!d.create(&m, &s).unwrap().adopted);
    assert!(
        d.create(&m, &s).unwrap().adopted,
        "second create must adopt"
    );
    assert_eq!(d.list(&m).unwrap().containers.len(), 1);

    // A stopped container is adopted by starting it.
    d.stop(&m, &name).unwrap();
    d.stop(&m, &name).unwrap();
    let again = d.create(&m, &s).unwrap();
    assert!(again.adopted);
    assert_eq!(
        d.list(&m).unwrap().containers[0].state,
        ContainerState::Running
    );
    d.start(&m, &name).unwrap();

    d.destroy(&m, &name).unwrap();
    d.destroy(&m, &name).unwrap();
    assert!(d.list(&m).unwrap().containers.is_empty());
    // Nothing of the container is left in the machine's directory, its lock file included.
    let left: Vec<_> = std::fs::read_dir(guard.root.join(&m.name))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.contains(&name))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    // A machine that never ran anything lists as empty rather than failing.
    assert!(d
        .list(&local_machine("empty"))
        .unwrap()
        .containers
        .is_empty());
}

#[test]
fn calls_on_a_missing_container_say_not_found() {
    if !lxc_available("not_found") {
        return;
    }
    let guard = Cleanup::new();
    let d = driver(&guard.root);
    let m = local_machine("hw");
    for r in [
        d.start(&m, "nope.test"),
        d.stop(&m, "nope.test"),
        d.resize(&m, "nope.test", Cpu::from_cores(1), 64, 1),
    ] {
        assert!(matches!(r, Err(DriverError::NotFound { .. })), "{r:?}");
    }
    // Asking about a container that is not there leaves no lock file for it.
    assert!(!guard.root.join(&m.name).join(".lock-nope.test").exists());
}

#[test]
fn unknown_image_is_a_clear_error_listing_known_images() {
    let guard = Cleanup::new();
    let d = driver(&guard.root);
    let mut s = spec("x.test", &network(), 5);
    s.image = "centos-7".into();
    match d.create(&local_machine("hw"), &s) {
        Err(DriverError::UnknownImage { image, known, .. }) => {
            assert_eq!(image, "centos-7");
            assert_eq!(known, ["busybox", "debian-12", "debian-12+puppet"]);
        }
        other => panic!("expected UnknownImage, got {other:?}"),
    }
    assert_eq!(d.images(), ["busybox", "debian-12", "debian-12+puppet"]);
}

#[test]
fn two_machines_on_one_computer_keep_their_containers_apart() {
    if !lxc_available("two_machines") {
        return;
    }
    let mut guard = Cleanup::new();
    let net = guard.network();
    // Full copies of the image (the `dir` backing store) rather than overlay snapshots.
    let d = LxcDriver::new(LxcConfig {
        root: guard.root.clone(),
        backing: kloud_provider_lxc::Backing::Dir,
        ..LxcConfig::default()
    });
    let (a, b) = (local_machine("hw-a"), local_machine("hw-b"));
    let na = format!("{}.test", unique("on-a"));
    let nb = format!("{}.test", unique("on-b"));
    d.create(&a, &spec(&na, &net, 20)).unwrap();
    d.create(&b, &spec(&nb, &net, 21)).unwrap();

    let names = |m: &MachineRef| -> Vec<String> {
        d.list(m)
            .unwrap()
            .containers
            .into_iter()
            .map(|c| c.name)
            .collect()
    };
    assert_eq!(names(&a), vec![na.clone()]);
    assert_eq!(names(&b), vec![nb.clone()]);
    // Destroying through the wrong machine touches nothing.
    d.destroy(&a, &nb).unwrap();
    assert_eq!(names(&b), vec![nb.clone()]);
    // Both share the network's bridge and reach each other's addresses from the host.
    for ip in [spec(&na, &net, 20), spec(&nb, &net, 21)].map(|s| s.network.address.to_string()) {
        assert!(pings(&ip, Duration::from_secs(5)), "{ip}");
    }
    d.destroy(&a, &na).unwrap();
    d.destroy(&b, &nb).unwrap();
    assert!(names(&a).is_empty() && names(&b).is_empty());
}

#[test]
fn an_unknown_template_fails_the_create_and_leaves_nothing() {
    if !lxc_available("unknown_template") {
        return;
    }
    let mut guard = Cleanup::new();
    let net = guard.network();
    let images = ImageMap::with_json(
        r#"{"ghost": {"template": "kloud-no-such-template"}}"#,
        "test",
    )
    .unwrap();
    let d = LxcDriver::new(LxcConfig {
        root: guard.root.clone(),
        images,
        ..LxcConfig::default()
    });
    let m = local_machine("hw");
    let mut s = spec(&format!("{}.test", unique("ghost")), &net, 30);
    s.image = "ghost".into();
    match d.create(&m, &s) {
        Err(DriverError::CommandFailed {
            command,
            status,
            stderr,
            ..
        }) => {
            assert!(command.starts_with("lxc-create"), "{command}");
            // LXC's own complaint, without the driver's step markers.
            assert!(stderr.contains("kloud-no-such-template"), "{stderr}");
            assert!(!stderr.contains("kloud-step"), "{stderr}");
            assert!(command.contains("kloud-no-such-template"), "{command}");
            assert_ne!(status, Some(0));
        }
        other => panic!("expected CommandFailed, got {other:?}"),
    }
    assert!(d.list(&m).unwrap().containers.is_empty());
}

#[test]
fn a_refused_ssh_connection_is_a_connection_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let guard = Cleanup::new();
    let d = driver(&guard.root);
    let m = MachineRef::new(
        "hw-gone.test",
        format!("ssh://root@127.0.0.1:{port}")
            .parse::<Connect>()
            .unwrap(),
    );
    let r = d.list(&m);
    assert!(matches!(r, Err(DriverError::Connection { .. })), "{r:?}");
    let r = d.create(&m, &spec("x.test", &network(), 9));
    assert!(matches!(r, Err(DriverError::Connection { .. })), "{r:?}");
}

#[test]
fn containers_on_a_machine_reached_over_ssh() {
    if !lxc_available("over_ssh") {
        return;
    }
    let Some((port, key, known)) = sshd("over_ssh") else {
        return;
    };
    let mut guard = Cleanup::new();
    let net = guard.network();
    let d = LxcDriver::new(LxcConfig {
        root: guard.root.clone(),
        ssh: ssh_options(&known),
        ..LxcConfig::default()
    });
    let m = MachineRef::new(
        format!("{}.test", unique("hw-ssh")),
        Connect::Ssh {
            user: "root".into(),
            host: "127.0.0.1".into(),
            port,
            identity: Some(key),
        },
    );
    let name = format!("{}.test", unique("remote"));
    let s = spec(&name, &net, 40);
    d.create(&m, &s).unwrap();
    let listed = d.list(&m).unwrap().containers;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, ContainerState::Running);
    let ip = s.network.address.to_string();
    assert_eq!(listed[0].ip.as_deref(), Some(ip.as_str()));
    assert!(pings(&ip, Duration::from_secs(5)));
    d.resize(&m, &name, Cpu::from_cores(1), 192, 1).unwrap();
    assert_eq!(
        cgroup_value(&guard.root, &m, &name, "memory.limit_in_bytes"),
        (192u64 << 20).to_string()
    );
    d.destroy(&m, &name).unwrap();
    assert!(d.list(&m).unwrap().containers.is_empty());
}

#[test]
fn loop_backing_enforces_the_disk_size() {
    if !lxc_available("loop_backing") {
        return;
    }
    let mut guard = Cleanup::new();
    let net = guard.network();
    let d = LxcDriver::new(LxcConfig {
        root: guard.root.clone(),
        backing: kloud_provider_lxc::Backing::Loop,
        stop_timeout_s: 5,
        ..LxcConfig::default()
    });
    let m = local_machine("hw");
    let name = format!("{}.test", unique("disk"));
    let s = spec(&name, &net, 50);
    let created = d.create(&m, &s).unwrap();
    assert!(
        created
            .diagnostics
            .iter()
            .all(|x| !x.summary.contains("not enforced")),
        "{:?}",
        created.diagnostics
    );
    // The root filesystem is a 1 GiB image: `df` inside sees its size, not the host's disk.
    let df = in_container(&guard.root, &m, &name, &["df", "-k", "/"]);
    let size_kib: u64 = df
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!((900_000..=1_048_576).contains(&size_kib), "{df}");
    assert!(pings(
        &s.network.address.to_string(),
        Duration::from_secs(5)
    ));
    // Growing a loop disk is not done in place, and the driver says so.
    let r = d.resize(&m, &name, Cpu::from_cores(1), 128, 2).unwrap();
    assert!(
        r.diagnostics
            .iter()
            .any(|x| x.summary.contains("stays 1 GiB")),
        "{:?}",
        r.diagnostics
    );
    d.destroy(&m, &name).unwrap();
}

/// An existing container that cannot start is reported, never destroyed: create cannot tell
/// the remains of an interrupted create from a container someone is repairing or whose data
/// matters, so it leaves it as it is (`kloud apply --replace FQDN` remakes it on purpose).
/// Only a container made in the same call, whose first start fails, is removed.
#[test]
fn a_container_that_cannot_start_is_reported_not_destroyed_by_create() {
    if !lxc_available("broken_kept") {
        return;
    }
    let mut guard = Cleanup::new();
    let net = guard.network();
    let d = driver(&guard.root);
    let m = local_machine("hw");
    let name = format!("{}.test", unique("broken"));
    let s = spec(&name, &net, 60);
    d.create(&m, &s).unwrap();
    d.stop(&m, &name).unwrap();
    let dir = guard.root.join(&m.name).join(&name);
    // Something of the container's own that a destroy would lose.
    std::fs::write(dir.join("rootfs/data.txt"), "precious").unwrap();
    // What an interrupted create can leave: a container whose config points at a file that
    // was never written, so lxc-start fails for real.
    std::fs::remove_file(dir.join("kloud-rcS")).unwrap();
    assert!(
        d.start(&m, &name).is_err(),
        "start of the broken container must fail"
    );

    let err = d.create(&m, &s).unwrap_err();
    match &err {
        DriverError::CommandFailed {
            command, stderr, ..
        } => {
            assert!(command.starts_with("lxc-start"), "{command}");
            assert!(stderr.contains("left as it is"), "{stderr}");
        }
        other => panic!("expected the start failure, got {other:?}"),
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("rootfs/data.txt")).unwrap(),
        "precious",
        "the existing container must not be remade"
    );
    let listed = d.list(&m).unwrap().containers;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, ContainerState::Stopped);
    // A deliberate destroy (what --replace does) still works on kloud's own container.
    d.destroy(&m, &name).unwrap();
    assert!(d.list(&m).unwrap().containers.is_empty());
}

/// A container made with `lxc-create` by hand under a machine's LXC path, beside kloud's,
/// carries no kloud mark: create refuses to adopt it and destroy refuses to remove it, with
/// [`DriverError::NotOurs`], and it stays running. kloud's own container there carries
/// `# kloud.owner = OWNER` and `# kloud.record = FQDN` in its config and is destroyed as usual.
#[test]
fn a_container_made_by_hand_is_never_adopted_or_destroyed() {
    if !lxc_available("hand_made") {
        return;
    }
    let mut guard = Cleanup::new();
    let net = guard.network();
    let d = driver(&guard.root);
    let m = local_machine("hw");
    let ours = format!("{}.test", unique("ours"));
    d.create(&m, &spec(&ours, &net, 70)).unwrap();
    let config =
        std::fs::read_to_string(guard.root.join(&m.name).join(&ours).join("config")).unwrap();
    assert!(config.contains("# kloud.owner = kloud-test\n"), "{config}");
    assert!(
        config.contains(&format!("# kloud.record = {ours}\n")),
        "{config}"
    );

    let theirs = format!("{}.test", unique("hand"));
    let path = guard.root.join(&m.name);
    // No network: the system's default config links to a bridge that may not exist here.
    let hand_conf = guard.root.join("hand.conf");
    std::fs::create_dir_all(&guard.root).unwrap();
    std::fs::write(&hand_conf, "lxc.net.0.type = empty\n").unwrap();
    let made = std::process::Command::new("lxc-create")
        .arg("-P")
        .arg(&path)
        .args(["-n", &theirs, "-f"])
        .arg(&hand_conf)
        .args(["-t", "busybox"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let started = std::process::Command::new("lxc-start")
        .arg("-P")
        .arg(&path)
        .args(["-n", &theirs])
        .output()
        .unwrap();
    assert!(started.status.success(), "{started:?}");

    let refused = d.destroy(&m, &theirs).unwrap_err();
    assert!(
        matches!(&refused, DriverError::NotOurs { name, .. } if name == &theirs),
        "{refused:?}"
    );
    assert!(
        refused.to_string().contains("not made by kloud"),
        "{refused}"
    );
    let adopt = d.create(&m, &spec(&theirs, &net, 71)).unwrap_err();
    assert!(matches!(adopt, DriverError::NotOurs { .. }), "{adopt:?}");

    let listed = d.list(&m).unwrap().containers;
    let hand = listed
        .iter()
        .find(|o| o.name == theirs)
        .expect("still there");
    assert_eq!(hand.state, ContainerState::Running);
    let hand_config = std::fs::read_to_string(path.join(&theirs).join("config")).unwrap();
    assert!(
        !hand_config.contains("# kloud."),
        "create must not have marked it"
    );

    d.destroy(&m, &ours).unwrap();
    let names: Vec<_> = d
        .list(&m)
        .unwrap()
        .containers
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(names, vec![theirs]);
}

#[test]
fn images_build_once_into_a_base_that_is_never_listed() {
    if !lxc_available("base") {
        return;
    }
    let mut guard = Cleanup::new();
    let net = guard.network();
    let d = driver(&guard.root);
    let (a, b) = (local_machine("hw-a"), local_machine("hw-b"));
    d.create(&a, &spec(&format!("{}.test", unique("c1")), &net, 70))
        .unwrap();
    d.create(&b, &spec(&format!("{}.test", unique("c2")), &net, 71))
        .unwrap();
    let bases: Vec<String> = std::fs::read_dir(guard.root.join(".images"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("kloud-ready").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(bases.len(), 1, "one base for one image: {bases:?}");
    assert!(bases[0].starts_with("busybox-"));
    assert_eq!(d.list(&a).unwrap().containers.len(), 1);
    assert_eq!(d.list(&b).unwrap().containers.len(), 1);

    // Without cloning, the template runs for the container and no base is involved.
    let plain = LxcDriver::new(LxcConfig {
        root: guard.root.clone(),
        clone_images: false,
        backing: kloud_provider_lxc::Backing::Dir,
        ..LxcConfig::default()
    });
    let c = local_machine("hw-c");
    let s = spec(&format!("{}.test", unique("c3")), &net, 72);
    plain.create(&c, &s).unwrap();
    assert!(pings(
        &s.network.address.to_string(),
        Duration::from_secs(5)
    ));
    assert_eq!(plain.list(&c).unwrap().containers.len(), 1);
}

#[test]
fn calls_on_one_container_wait_for_a_call_still_running() {
    if !lxc_available("lock") {
        return;
    }
    let mut guard = Cleanup::new();
    let net = guard.network();
    let d = driver(&guard.root);
    let m = local_machine("hw");
    let name = format!("{}.test", unique("locked"));
    let s = spec(&name, &net, 80);
    d.create(&m, &s).unwrap();

    // What a killed kloud leaves behind: a command on the container still running. It holds
    // the container's lock, and stops the container when it finishes.
    let path = guard.root.join(&m.name);
    let mut orphan = std::process::Command::new("flock")
        .arg(path.join(format!(".lock-{name}")))
        .args([
            "sh",
            "-c",
            "touch \"$0.held\"; sleep 1.5; lxc-stop -P \"$1\" -n \"$2\" -k",
        ])
        .arg(path.join("orphan"))
        .arg(&path)
        .arg(&name)
        .spawn()
        .unwrap();
    let held = path.join("orphan.held");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !held.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(held.exists(), "the orphan never took the lock");

    // Without the lock, create would see the container running and return at once, and the
    // orphan would stop it a moment later. With it, create sees the stopped container and
    // starts it.
    let r = d.create(&m, &s).unwrap();
    assert!(r.adopted);
    assert!(orphan.wait().unwrap().success());
    assert_eq!(
        d.list(&m).unwrap().containers[0].state,
        ContainerState::Running
    );
    assert!(pings(
        &s.network.address.to_string(),
        Duration::from_secs(5)
    ));
}

/// The remains of kloud's own create that was interrupted after `lxc-create` but before the
/// config (and its mark) was written: the making-file beside it says it is kloud's, so the
/// next create finishes it (writes the config, starts it) instead of refusing it as not ours,
/// and without destroying it.
#[test]
fn the_remains_of_an_interrupted_create_are_finished_not_refused() {
    if !lxc_available("interrupted") {
        return;
    }
    let mut guard = Cleanup::new();
    let net = guard.network();
    let d = driver(&guard.root);
    let m = local_machine("hw");
    let name = format!("{}.test", unique("cut"));
    let path = guard.root.join(&m.name);
    std::fs::create_dir_all(&path).unwrap();
    // What the create script leaves when killed right after its lxc-create.
    std::fs::write(path.join(format!(".kloud-making-{name}")), "").unwrap();
    let made = std::process::Command::new("lxc-create")
        .arg("-P")
        .arg(&path)
        .args(["-n", &name, "-t", "busybox"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    std::fs::write(path.join(&name).join("rootfs/left.txt"), "kept").unwrap();

    let s = spec(&name, &net, 80);
    let r = d.create(&m, &s).unwrap();
    assert!(!r.adopted);
    let config = std::fs::read_to_string(path.join(&name).join("config")).unwrap();
    assert!(config.contains("# kloud.owner = kloud-test\n"), "{config}");
    assert_eq!(
        std::fs::read_to_string(path.join(&name).join("rootfs/left.txt")).unwrap(),
        "kept",
        "finished in place, not remade"
    );
    assert!(!path.join(format!(".kloud-making-{name}")).exists());
    assert!(pings(
        &s.network.address.to_string(),
        Duration::from_secs(5)
    ));
    d.destroy(&m, &name).unwrap();
    assert!(d.list(&m).unwrap().containers.is_empty());
}
