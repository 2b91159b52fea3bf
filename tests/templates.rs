//! `template` blocks end to end with the real programs they configure (scripts/setup/templates.sh):
//!
//! - a real haproxy on a free loopback port, configured by the example template
//!   (`examples/datacenter/templates/haproxy.cfg.j2`), checked with `haproxy -c` and started
//!   and reloaded by `on_change`, balancing to busybox `httpd` in real LXC containers; a host
//!   added in HostDB is followed by `kloud sync template --watch`; a template whose output
//!   `haproxy -c` rejects leaves the old file and exits non-zero;
//! - munin: the example munin template's output is accepted by munin's own parser (the
//!   template's check) and by munin-update, which collects from a munin-node of the test's own
//!   for every host the file lists.
//!
//! Every process the tests start is stopped by pid; containers and bridges are removed by
//! the LXC support guard.

mod integrations_support;
#[path = "../providers/lxc/tests/support/mod.rs"]
mod lxc_support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use integrations_support::{free_port, missing, wait_until, Fixture, Running, ZONE};
use kloud_provider_api::compute::ComputeDriver;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A program the setup script exports, or a skip (a failure under CI=true).
fn program(var: &str) -> Option<PathBuf> {
    match std::env::var_os(var).map(PathBuf::from) {
        Some(p) if p.exists() => Some(p),
        _ => {
            missing(var, "templates.sh");
            None
        }
    }
}

/// The body of `GET /` through `port`, or `None` if it could not be had.
fn get(port: u16) -> Option<String> {
    get_at(&format!("127.0.0.1:{port}")).ok()
}

fn get_at(addr: &str) -> Result<String, String> {
    let addr: std::net::SocketAddr = addr.parse().map_err(|e| format!("{e}"))?;
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(|e| format!("{e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| format!("{e}"))?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: lb\r\n\r\n")
        .map_err(|e| format!("{e}"))?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| format!("{e}"))?;
    let (head, body) = out.split_once("\r\n\r\n").ok_or(out.clone())?;
    if head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200") {
        Ok(body.trim().to_string())
    } else {
        Err(head.to_string())
    }
}

/// The distinct bodies of `n` requests.
fn backends_seen(port: u16, n: usize) -> BTreeSet<String> {
    (0..n).filter_map(|_| get(port)).collect()
}

/// The haproxy processes an `on_change` started, by the pid file it gave them; killed on drop.
struct Haproxy {
    pidfile: PathBuf,
}

impl Haproxy {
    fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(&self.pidfile)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        for pid in self.pids() {
            // SAFETY: kill(2) on the pids haproxy wrote for the daemon this test started.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }
}

/// Busybox httpd in an LXC container of its own, answering `GET /` with its name.
fn web_container(
    d: &kloud_provider_lxc::LxcDriver,
    guard: &lxc_support::Cleanup,
    m: &kloud_provider_api::compute::MachineRef,
    net: &kloud_provider_api::compute::NetworkSpec,
    name: &str,
    host: u8,
) -> String {
    let s = lxc_support::spec(name, net, host);
    d.create(m, &s).expect("create container");
    let ip = s.network.address.to_string();
    let out = Command::new("lxc-attach")
        .arg("-P")
        .arg(guard.root.join(&m.name))
        .args(["-n", name, "--", "/bin/sh", "-c"])
        .arg(format!(
            "mkdir -p /www && echo {name} > /www/index.html && busybox httpd -p 80 -h /www"
        ))
        .output()
        .expect("lxc-attach");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let addr = format!("{ip}:80");
    assert!(
        wait_until(Duration::from_secs(20), || get_at(&addr)
            .is_ok_and(|b| b == name))
        .is_some(),
        "httpd in {name} does not answer: {:?}",
        get_at(&addr)
    );
    ip
}

fn template_block(port: u16, source: &str) -> String {
    format!(
        r#"template "haproxy" {{
  source      = "{source}"
  destination = "haproxy/haproxy.cfg"
  hosts       = {{ class = "web" }}
  check       = "haproxy -c -q -f {{{{ path }}}}"
  on_change   = "if [ -s haproxy.pid ]; then exec haproxy -D -f {{{{ path }}}} -p haproxy.pid -sf $(cat haproxy.pid); else exec haproxy -D -f {{{{ path }}}} -p haproxy.pid; fi"
  timeout     = "20s"
  vars        = {{ bind = "127.0.0.1:{port}" }}
}}
"#
    )
}

#[test]
fn haproxy_is_configured_reloaded_and_protected_by_its_check() {
    let Some(_haproxy) = program("KLOUD_TEST_HAPROXY") else {
        return;
    };
    if !lxc_support::lxc_available("templates_haproxy") {
        return;
    }
    let mut guard = lxc_support::Cleanup::new();
    let net = guard.network();
    let d = lxc_support::driver(&guard.root);
    let m = lxc_support::local_machine("tpl");
    let port = free_port();
    let f = Fixture::new(&template_block(port, "templates/haproxy.cfg.j2"));
    std::fs::create_dir_all(f.path().join("templates")).expect("templates dir");
    let source = f.path().join("templates/haproxy.cfg.j2");
    std::fs::copy(
        repo("examples/datacenter/templates/haproxy.cfg.j2"),
        &source,
    )
    .expect("copy the example template");
    let running = Haproxy {
        pidfile: f.path().join("haproxy.pid"),
    };

    let names = ["web-1", "web-2", "web-3"];
    let mut ips = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let name = format!("{}-{n}", lxc_support::unique("tpl"));
        ips.push((
            name.clone(),
            web_container(&d, &guard, &m, &net, &name, 10 + i as u8),
        ));
    }
    // Two web hosts in HostDB, pointing at the first two containers; an lb host is not a
    // backend (the filter is `class = "web"`).
    for (host, (_, ip)) in names.iter().zip(&ips).take(2) {
        f.put(f.host(host, ip));
    }
    let mut lb = f.host("lb-1", "10.0.0.99");
    lb.class = Some("lb".into());
    f.put(lb);

    let out = f
        .kloud(&["sync", "template", "haproxy"])
        .output()
        .expect("run kloud");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("template haproxy: index"), "{stdout}");
    assert!(stdout.contains("2 hosts, created"), "{stdout}");
    let dest = f.path().join("haproxy/haproxy.cfg");
    let cfg = std::fs::read_to_string(&dest).expect("rendered");
    assert!(
        cfg.contains(&format!("server web-1 {}:80 check", ips[0].1)),
        "{cfg}"
    );
    assert!(!cfg.contains("10.0.0.99"), "{cfg}");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(&dest).expect("meta").mode() & 0o777,
        0o644
    );

    // Requests through haproxy reach both containers.
    let want: BTreeSet<String> = ips[..2].iter().map(|(n, _)| n.clone()).collect();
    assert!(
        wait_until(Duration::from_secs(10), || backends_seen(port, 6) == want).is_some(),
        "haproxy on {port} does not balance to {want:?}: saw {:?} (direct: {:?}, through: {:?}, pids {:?})\n{cfg}",
        backends_seen(port, 6),
        ips.iter().map(|(_, ip)| get_at(&format!("{ip}:80"))).collect::<Vec<_>>(),
        get_at(&format!("127.0.0.1:{port}")),
        running.pids()
    );
    let first_pids = running.pids();
    assert!(!first_pids.is_empty());

    // Nothing changed: nothing written, on_change not run (haproxy keeps its pid).
    let out = f.kloud(&["sync", "template"]).output().expect("run kloud");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 hosts, unchanged"));
    assert_eq!(running.pids(), first_pids);

    // A host added in HostDB: the watcher rewrites the file, reloads haproxy, which serves it.
    let watch = Running::spawn(f.kloud(&["sync", "template", "haproxy", "--watch"]));
    assert!(
        wait_until(Duration::from_secs(20), || !watch.stderr_lines().is_empty()).is_some(),
        "{}",
        watch.dump()
    );
    f.put(f.host("web-3", &ips[2].1));
    assert!(
        wait_until(Duration::from_secs(5), || std::fs::read_to_string(&dest)
            .is_ok_and(|c| c.contains(&ips[2].1)))
        .is_some(),
        "web-3 not in the file\n{}",
        watch.dump()
    );
    let all: BTreeSet<String> = ips.iter().map(|(n, _)| n.clone()).collect();
    assert!(
        wait_until(Duration::from_secs(10), || backends_seen(port, 9) == all).is_some(),
        "haproxy does not serve web-3: saw {:?}\n{}",
        backends_seen(port, 9),
        watch.dump()
    );
    assert_ne!(running.pids(), first_pids, "on_change reloaded haproxy");
    // The watcher reports the pass once on_change has finished: its line may still be on its
    // way through the pipe when haproxy already serves the new file.
    assert!(
        wait_until(Duration::from_secs(5), || watch.stdout_lines().iter().any(
            |l| l.contains("3 hosts, rewritten") && l.contains("on_change ran")
        ))
        .is_some(),
        "{}",
        watch.dump()
    );
    drop(watch);

    // A template whose output haproxy rejects: the old file stays, no litter, exit 1.
    let good = std::fs::read_to_string(&dest).expect("current");
    let text = std::fs::read_to_string(&source).expect("source");
    std::fs::write(
        &source,
        text.replace("balance roundrobin", "balance no-such-algorithm"),
    )
    .expect("break the template");
    let pids = running.pids();
    let out = f
        .kloud(&["sync", "template", "haproxy"])
        .output()
        .expect("run kloud");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("check failed"), "{stderr}");
    assert!(stderr.contains("kept as it was"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&dest).expect("current"), good);
    let litter: Vec<_> = std::fs::read_dir(dest.parent().expect("dir"))
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .filter(|n| n != "haproxy.cfg")
        .collect();
    assert!(litter.is_empty(), "{litter:?}");
    assert_eq!(running.pids(), pids, "no reload after a failed check");
    assert_eq!(
        backends_seen(port, 9),
        all,
        "haproxy still serves the old config"
    );
    drop(guard);
}

/// A munin-node of the test's own on a free loopback port, serving only the `load` plugin.
fn munin_node(bin: &Path, dir: &Path, port: u16) -> Running {
    let conf = dir.join("node.conf");
    std::fs::write(
        &conf,
        format!(
            "log_level 4\nlog_file {d}/node.log\npid_file {d}/node.pid\nbackground 0\nsetsid 0\n\
             user root\ngroup root\nhost_name kl-tpl-node\nallow ^127\\.0\\.0\\.1$\nhost 127.0.0.1\n\
             port {port}\nignore_file ^(?!load$)\n",
            d = dir.display()
        ),
    )
    .expect("node config");
    let node = Running::spawn({
        let mut c = Command::new(bin);
        c.arg("--config").arg(&conf);
        c
    });
    assert!(
        wait_until(Duration::from_secs(20), || TcpStream::connect((
            "127.0.0.1",
            port
        ))
        .is_ok())
        .is_some(),
        "munin-node did not start\n{}",
        node.dump()
    );
    node
}

#[test]
fn munin_accepts_the_config_the_example_template_renders() {
    let (Some(node_bin), Some(update)) = (
        program("KLOUD_TEST_MUNIN_NODE"),
        program("KLOUD_TEST_MUNIN_UPDATE"),
    ) else {
        return;
    };
    // munin-update refuses to run as root: it runs as `munin` in a directory of its own.
    let dir = PathBuf::from(format!("/tmp/kl-tpl-munin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["db", "html", "log", "run", "conf.d"] {
        std::fs::create_dir_all(dir.join(sub)).expect("munin dirs");
    }
    let chown = Command::new("chown")
        .args(["-R", "munin:munin"])
        .arg(&dir)
        .status()
        .expect("chown");
    assert!(chown.success());
    let port = free_port();
    let node = munin_node(&node_bin, &dir, port);

    let dest = dir.join("conf.d/kloud.conf");
    let f = Fixture::new(&format!(
        r#"template "munin" {{
  source      = "munin.conf.j2"
  destination = "{}"
  check       = "perl -MMunin::Master::Config -e 'Munin::Master::Config->instance->parse_config_from_file(shift)' {{{{ path }}}}"
}}
"#,
        dest.display()
    ));
    std::fs::copy(
        repo("examples/datacenter/templates/munin.conf.j2"),
        f.path().join("munin.conf.j2"),
    )
    .expect("copy the example template");
    for name in ["web-1", "web-2"] {
        let mut h = f.host(name, "127.0.0.1");
        h.properties.insert("munin_port".into(), port.into());
        f.put(h);
    }
    let out = f
        .kloud(&["sync", "template", "munin"])
        .output()
        .expect("run kloud");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = std::fs::read_to_string(&dest).expect("rendered");
    assert!(
        rendered.contains(&format!("[web;web-1.{ZONE}]")),
        "{rendered}"
    );

    std::fs::write(
        dir.join("munin.conf"),
        format!(
            "dbdir {d}/db\nhtmldir {d}/html\nlogdir {d}/log\nrundir {d}/run\nincludedir {d}/conf.d\n",
            d = dir.display()
        ),
    )
    .expect("master config");
    let run = Command::new("runuser")
        .args(["-u", "munin", "--"])
        .arg(&update)
        .arg("--config_file")
        .arg(dir.join("munin.conf"))
        .arg("--nofork")
        .output()
        .expect("munin-update");
    let log = std::fs::read_to_string(dir.join("log/munin-update.log")).unwrap_or_default();
    assert!(
        run.status.success(),
        "{}{}\n{log}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    for name in ["web-1", "web-2"] {
        let rrd = dir.join(format!("db/web/{name}.{ZONE}-load-load-g.rrd"));
        assert!(
            rrd.exists(),
            "munin collected nothing for {name}\n{rendered}\n{log}"
        );
    }
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `kloud apply` renders templates after the hosts: real LXC containers are created, and the
/// file lists them with the addresses HostDB recorded; `kloud destroy` empties it again.
#[test]
fn apply_renders_templates_after_the_hosts() {
    if !lxc_support::lxc_available("templates_apply") {
        return;
    }
    let mut guard = lxc_support::Cleanup::new();
    let n = lxc_support::free_subnet();
    let network = format!("tp{}", std::process::id() % 100_000);
    guard
        .bridges
        .push(kloud_provider_lxc::bridge_name(&network));
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("main.hcl"),
        format!(
            r#"kloud {{
  domain = "tpl.kloud.test"
}}

machine_class "box" {{
  cpu    = 8
  memory = "4GiB"
  disk   = "50GiB"
}}

machines "m" {{
  class   = "box"
  count   = 1
  name    = "tplm{{{{ index }}}}"
  labels  = {{ rack = "r1" }}
  connect = "local"
}}

network "{network}" {{
  cidr    = "10.231.{n}.0/24"
  gateway = "10.231.{n}.1"
}}

host_class "web" {{
  count   = 2
  cpu     = 1
  memory  = "128MiB"
  disk    = "1GiB"
  image   = "busybox"
  network = "{network}"
}}

template "hosts" {{
  source      = "hosts.j2"
  destination = "out/hosts"
  on_change   = "echo ran >> changes.log"
}}
"#
        ),
    )
    .expect("config");
    std::fs::write(
        dir.path().join("hosts.j2"),
        "{% for h in hosts %}\n{{ h.ip }} {{ h.name }} {{ h.short }}\n{% endfor %}\n",
    )
    .expect("template");
    let kloud = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_kloud"))
            .args(args)
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .env("KLOUD_LXC_ROOT", &guard.root)
            .env_remove("KLOUD_HOSTDB")
            .output()
            .expect("run kloud");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "kloud {}:\n{text}", args.join(" "));
        text
    };
    let out = kloud(&["apply", ".", "--auto-approve"]);
    assert!(out.contains("template hosts: 2 hosts, created"), "{out}");
    let store = kloud::hostdb::open("sqlite:.kloud/hostdb.db", dir.path()).expect("HostDB");
    let hosts = store
        .all_hosts(&kloud::hostdb::HostQuery {
            kind: Some(kloud::hostdb::Kind::Container),
            ..Default::default()
        })
        .expect("hosts");
    let want: String = hosts
        .iter()
        .map(|h| {
            let short = h.name.split('.').next().unwrap_or_default();
            format!(
                "{} {} {short}\n",
                h.ip.as_deref().unwrap_or_default(),
                h.name
            )
        })
        .collect();
    assert_eq!(hosts.len(), 2);
    let file = dir.path().join("out/hosts");
    assert_eq!(std::fs::read_to_string(&file).expect("rendered"), want);
    let log = dir.path().join("changes.log");
    assert_eq!(
        std::fs::read_to_string(&log).expect("on_change ran"),
        "ran\n"
    );

    let out = kloud(&["destroy", ".", "--auto-approve"]);
    assert!(out.contains("template hosts: 0 hosts, rewritten"), "{out}");
    assert_eq!(std::fs::read_to_string(&file).expect("rendered"), "");
    assert_eq!(std::fs::read_to_string(&log).expect("log"), "ran\nran\n");
    drop(guard);
}

/// `--watch` over a HostDB server: a burst of writes renders once (coalesced), and an
/// on_change that failed after its file was written is run again until it succeeds.
#[test]
fn watch_coalesces_bursts_and_retries_a_failed_on_change() {
    let f = Fixture::new(
        r#"template "list" {
  source      = "list.j2"
  destination = "out/list"
  on_change   = "test -f allow && echo ran >> changes.log"
}
"#,
    );
    std::fs::write(
        f.path().join("list.j2"),
        "{% for h in hosts %}\n{{ h.name }}\n{% endfor %}\n",
    )
    .expect("template");
    std::fs::write(f.path().join("allow"), "").expect("allow");
    let port = free_port();
    let _server = integrations_support::serve(&f, port, &["--anonymous-read"]);
    let url = format!("http://127.0.0.1:{port}");
    let watch = Running::spawn(f.kloud(&[
        "sync",
        "template",
        "list",
        "--watch",
        "--hostdb",
        &url,
        "--coalesce",
        "300ms",
    ]));
    let log = f.path().join("changes.log");
    let runs = || {
        std::fs::read_to_string(&log)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    assert!(
        wait_until(Duration::from_secs(20), || runs() == 1).is_some(),
        "{}",
        watch.dump()
    );
    // Ten writes 20 ms apart: one render, one on_change.
    for i in 0..10 {
        f.put(f.host(&format!("b-{i}"), &format!("10.40.3.{}", i + 1)));
        std::thread::sleep(Duration::from_millis(20));
    }
    let dest = f.path().join("out/list");
    assert!(
        wait_until(Duration::from_secs(5), || std::fs::read_to_string(&dest)
            .is_ok_and(|t| t.lines().count() == 10))
        .is_some(),
        "{}",
        watch.dump()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(runs(), 2, "{}", watch.dump());

    // on_change fails (the file is written anyway); once it can succeed, the watcher's
    // retry runs it although the text no longer changes.
    std::fs::remove_file(f.path().join("allow")).expect("disallow");
    f.put(f.host("late", "10.40.3.99"));
    assert!(
        wait_until(Duration::from_secs(5), || watch
            .stderr_lines()
            .iter()
            .any(|l| l.contains("on_change failed")))
        .is_some(),
        "{}",
        watch.dump()
    );
    assert!(std::fs::read_to_string(&dest)
        .expect("dest")
        .contains("late."));
    assert_eq!(runs(), 2);
    std::fs::write(f.path().join("allow"), "").expect("allow");
    assert!(
        wait_until(Duration::from_secs(10), || runs() == 3).is_some(),
        "{}",
        watch.dump()
    );
}
