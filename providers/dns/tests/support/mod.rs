//! Real DNS servers for the DNS tests and benchmark: a BIND 9 `named` or a Knot `knotd` of our
//! own on a free loopback port, in a temp dir, with a forward and a reverse zone that accept
//! TSIG-signed updates and transfers, plus `dig`/`nsupdate` helpers as the independent client.
//! It can be stopped and started again on the same port with the same zones and journals.
//! Killed by pid on drop. The root crate's integration tests and watch benchmark use it too
//! (through `tests/integrations_support`).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kloud_provider_dns::DnsProvider;
use serde_json::{json, Value};

pub const ZONE: &str = "dc1.test";
pub const REVERSE_ZONE: &str = "40.10.in-addr.arpa";
pub const KEY_NAME: &str = "kloud";
/// 32 random bytes, base64 (what `tsig-keygen` prints).
pub const SECRET: &str = "7qV3m4v6b9nYkqg2cQm8dJxw0hT5aL1sZpR3eU9iK0o=";
pub const WRONG_SECRET: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

fn tool(var: &str, default: &str) -> Option<PathBuf> {
    let p = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    p.exists().then_some(p)
}

/// Which DNS server to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bind,
    Knot,
    PowerDns,
}

/// The server/dig/nsupdate binaries, or None (test skipped) when absent outside CI. Under
/// `CI=true` a missing program fails the test.
pub fn tools(kind: Kind) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let server = match kind {
        Kind::Bind => tool("KLOUD_TEST_NAMED", "/usr/sbin/named"),
        Kind::Knot => tool("KLOUD_TEST_KNOTD", "/usr/sbin/knotd"),
        Kind::PowerDns => tool("KLOUD_TEST_PDNS", "/usr/sbin/pdns_server").filter(|_| {
            tool("KLOUD_TEST_PDNSUTIL", "/usr/bin/pdnsutil").is_some()
                && tool("KLOUD_TEST_SQLITE3", "/usr/bin/sqlite3").is_some()
                && tool("KLOUD_TEST_PDNS_SCHEMA", PDNS_SCHEMA).is_some()
        }),
    };
    let found = (
        server,
        tool("KLOUD_TEST_DIG", "/usr/bin/dig"),
        tool("KLOUD_TEST_NSUPDATE", "/usr/bin/nsupdate"),
    );
    match found {
        (Some(n), Some(d), Some(u)) => Some((n, d, u)),
        _ => {
            if kloud_provider_api::under_ci() {
                panic!("{kind:?} server, dig or nsupdate missing under CI=true: source scripts/setup/bind.sh");
            }
            eprintln!("SKIPPED: {kind:?} server/dig/nsupdate not installed (source scripts/setup/bind.sh)");
            None
        }
    }
}

const PDNS_SCHEMA: &str = "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql";

/// Run a setup command for a server, failing the test with its output if it fails.
fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run setup command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A loopback port free for both TCP and UDP.
pub fn free_port() -> u16 {
    for _ in 0..50 {
        let Ok(tcp) = TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = tcp.local_addr() else { continue };
        if UdpSocket::bind(("127.0.0.1", addr.port())).is_ok() {
            return addr.port();
        }
    }
    panic!("no free loopback port");
}

/// Which zones our key may update (it may always transfer both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Updates {
    All,
    ForwardOnly,
    None,
}

impl Updates {
    fn allows(self, zone: &str) -> bool {
        match self {
            Updates::All => true,
            Updates::ForwardOnly => zone == ZONE,
            Updates::None => false,
        }
    }
}

pub struct DnsServer {
    pub port: u16,
    kind: Kind,
    /// None while stopped.
    child: Option<Child>,
    /// The server binary and its arguments, to start it again after [`DnsServer::stop`].
    program: PathBuf,
    args: Vec<OsString>,
    dir: tempfile::TempDir,
    dig: PathBuf,
    nsupdate: PathBuf,
}

impl DnsServer {
    /// Start BIND with both zones; the forward zone holds a hand-made `handmade` A record.
    pub fn start() -> Option<DnsServer> {
        Self::start_kind(Kind::Bind)
    }

    /// Start BIND or Knot with the same zones, key and permissions.
    pub fn start_kind(kind: Kind) -> Option<DnsServer> {
        Self::start_with(kind, Updates::All)
    }

    /// Start a server whose key may transfer both zones and update those `updates` allows.
    pub fn start_with(kind: Kind, updates: Updates) -> Option<DnsServer> {
        let (server_bin, dig, nsupdate) = tools(kind)?;
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path().display().to_string();
        let port = free_port();
        std::fs::write(
            dir.path().join("fwd.db"),
            format!(
                "$TTL 300\n@ IN SOA ns.{ZONE}. admin.{ZONE}. 1 3600 600 86400 60\n\
                 @ IN NS ns.{ZONE}.\nns IN A 127.0.0.1\nhandmade IN A 10.40.9.9\n\
                 handmade IN TXT \"made by hand\"\n"
            ),
        )
        .expect("zone file");
        std::fs::write(
            dir.path().join("rev.db"),
            format!(
                "$TTL 300\n@ IN SOA ns.{ZONE}. admin.{ZONE}. 1 3600 600 86400 60\n\
                 @ IN NS ns.{ZONE}.\n9.9 IN PTR handmade.{ZONE}.\n"
            ),
        )
        .expect("zone file");
        let args: Vec<OsString> = match kind {
            Kind::Bind => {
                let zone = |name: &str, file: &str| {
                    let update = if updates.allows(name) {
                        format!("key {KEY_NAME};")
                    } else {
                        "none;".to_string()
                    };
                    format!(
                        "zone \"{name}\" {{ type primary; file \"{d}/{file}\"; \
                         allow-update {{ {update} }}; allow-transfer {{ key {KEY_NAME}; }}; }};\n"
                    )
                };
                let conf = format!(
                    "options {{\n directory \"{d}\";\n listen-on port {port} {{ 127.0.0.1; }};\n \
                     listen-on-v6 {{ none; }};\n pid-file \"{d}/named.pid\";\n \
                     session-keyfile \"{d}/session.key\";\n managed-keys-directory \"{d}\";\n \
                     recursion no;\n notify no;\n dnssec-validation no;\n}};\ncontrols {{ }};\n\
                     key \"{KEY_NAME}\" {{ algorithm hmac-sha256; secret \"{SECRET}\"; }};\n{}{}",
                    zone(ZONE, "fwd.db"),
                    zone(REVERSE_ZONE, "rev.db"),
                );
                let conf_path = dir.path().join("named.conf");
                std::fs::write(&conf_path, conf).expect("named.conf");
                vec![
                    "-g".into(),
                    "-n".into(),
                    "1".into(),
                    "-c".into(),
                    conf_path.into(),
                ]
            }
            Kind::Knot => {
                let acl = |zone: &str| {
                    if updates.allows(zone) {
                        "kloud_rw"
                    } else {
                        "kloud_ro"
                    }
                };
                let conf = format!(
                    "server:\n  rundir: \"{d}\"\n  listen: 127.0.0.1@{port}\n  user: root:root\n  \
                     background-workers: 1\n  udp-workers: 1\n  tcp-workers: 1\n\
                     database:\n  storage: \"{d}/db\"\n\
                     key:\n  - id: {KEY_NAME}\n    algorithm: hmac-sha256\n    secret: {SECRET}\n\
                     acl:\n  - id: kloud_rw\n    key: {KEY_NAME}\n    action: [update, transfer]\n\
                     \x20 - id: kloud_ro\n    key: {KEY_NAME}\n    action: [transfer]\n\
                     template:\n  - id: default\n    storage: \"{d}\"\n    journal-content: changes\n\
                     zone:\n  - domain: {ZONE}\n    file: fwd.db\n    acl: {}\n\
                     \x20 - domain: {REVERSE_ZONE}\n    file: rev.db\n    acl: {}\n\
                     log:\n  - target: stderr\n    any: info\n",
                    acl(ZONE),
                    acl(REVERSE_ZONE),
                );
                // Knot keeps its journal there; updates fail without it.
                std::fs::create_dir_all(dir.path().join("db")).expect("knot db dir");
                let conf_path = dir.path().join("knot.conf");
                std::fs::write(&conf_path, conf).expect("knot.conf");
                vec!["-c".into(), conf_path.into()]
            }
            Kind::PowerDns => {
                let path =
                    |var: &str, default: &str| tool(var, default).expect("checked in tools()");
                let db = dir.path().join("pdns.db");
                let schema = std::fs::File::open(path("KLOUD_TEST_PDNS_SCHEMA", PDNS_SCHEMA))
                    .expect("pdns schema");
                run(Command::new(path("KLOUD_TEST_SQLITE3", "/usr/bin/sqlite3"))
                    .arg(&db)
                    .stdin(schema));
                std::fs::write(
                    dir.path().join("pdns.conf"),
                    format!(
                        "launch=gsqlite3\ngsqlite3-database={}\nlocal-address=127.0.0.1\n\
                         local-port={port}\ndnsupdate=yes\nallow-dnsupdate-from=\n\
                         allow-axfr-ips=\ndisable-axfr=no\nsocket-dir={d}\nguardian=no\n\
                         daemon=no\nwrite-pid=no\ndistributor-threads=1\nreceiver-threads=1\n",
                        db.display(),
                    ),
                )
                .expect("pdns.conf");
                let pdnsutil = path("KLOUD_TEST_PDNSUTIL", "/usr/bin/pdnsutil");
                let util = |args: &[&str]| {
                    run(Command::new(&pdnsutil)
                        .arg(format!("--config-dir={d}"))
                        .args(args));
                };
                util(&["import-tsig-key", KEY_NAME, "hmac-sha256", SECRET]);
                for (zone, file) in [(ZONE, "fwd.db"), (REVERSE_ZONE, "rev.db")] {
                    let file = format!("{d}/{file}");
                    util(&["load-zone", zone, &file]);
                    // Updates are allowed per zone: from loopback, signed with our key.
                    if updates.allows(zone) {
                        util(&["set-meta", zone, "ALLOW-DNSUPDATE-FROM", "127.0.0.0/8"]);
                        util(&["set-meta", zone, "TSIG-ALLOW-DNSUPDATE", KEY_NAME]);
                    }
                    util(&["set-meta", zone, "TSIG-ALLOW-AXFR", KEY_NAME]);
                }
                vec![format!("--config-dir={d}").into()]
            }
        };
        let mut n = DnsServer {
            port,
            kind,
            child: None,
            program: server_bin,
            args,
            dir,
            dig,
            nsupdate,
        };
        n.spawn();
        Some(n)
    }

    /// Start the server process (its log appended to `server.log`) and wait until it answers
    /// for the forward zone.
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("log");
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.program.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.dig(ZONE, "SOA").is_empty() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("{:?} server exited ({status}): {}", self.kind, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "{:?} server did not start: {}",
                self.kind,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stop the server (the zones and their journals stay on disk).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on the same port with the same zones and journals.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `dig +short ARGS` answers, sorted.
    fn dig_args(&self, args: &[&str]) -> Vec<String> {
        let out = Command::new(&self.dig)
            .args(["@127.0.0.1", "-p", &self.port.to_string()])
            .args(["+short", "+norec", "+tries=1", "+time=2"])
            .args(args)
            .output()
            .expect("run dig");
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with(';'))
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        lines.sort();
        lines
    }

    /// `dig +short NAME TYPE`, sorted.
    pub fn dig(&self, name: &str, rtype: &str) -> Vec<String> {
        self.dig_args(&[name, rtype])
    }

    /// `dig +short -x IP`, sorted.
    pub fn reverse(&self, ip: &str) -> Vec<String> {
        self.dig_args(&["-x", ip])
    }

    /// The whole zone as `dig AXFR` prints it (signed with our key), sorted, SOA excluded.
    pub fn axfr(&self, zone: &str) -> Vec<String> {
        let out = Command::new(&self.dig)
            .args([
                "@127.0.0.1",
                "-p",
                &self.port.to_string(),
                "+noall",
                "+answer",
                "-y",
            ])
            .arg(format!("hmac-sha256:{KEY_NAME}:{SECRET}"))
            .args([zone, "AXFR"])
            .output()
            .expect("run dig");
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.contains("\tSOA\t") && !l.trim().is_empty())
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        lines.sort();
        lines.dedup();
        lines
    }

    /// Run an nsupdate script (a concurrent writer, or a human) signed with our key.
    pub fn nsupdate(&self, commands: &str) {
        let mut child = Command::new(&self.nsupdate)
            .arg("-y")
            .arg(format!("hmac-sha256:{KEY_NAME}:{SECRET}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nsupdate");
        let script = format!("server 127.0.0.1 {}\n{commands}\nsend\n", self.port);
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(script.as_bytes())
            .expect("write nsupdate script");
        let out = child.wait_with_output().expect("nsupdate");
        assert!(
            out.status.success(),
            "nsupdate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn block(&self, secret: &str, reverse: bool) -> BTreeMap<String, Value> {
        let mut v = json!({
            "server": self.server(), "zone": ZONE, "key_name": KEY_NAME, "secret": secret,
            "ttl": 300,
        });
        if reverse {
            v["reverse_zone"] = json!(REVERSE_ZONE);
        }
        v.as_object().expect("object").clone().into_iter().collect()
    }

    pub fn provider(&self) -> DnsProvider {
        DnsProvider::from_block(&self.block(SECRET, true), std::path::Path::new("."))
            .expect("valid dns block")
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- DNS server log ---\n{}", self.log());
        }
        self.stop();
    }
}

pub fn host(name: &str, ip: &str) -> kloud_provider_api::integration::HostRecord {
    kloud_provider_api::integration::HostRecord {
        fqdn: format!("{name}.{ZONE}"),
        ip: ip.to_string(),
        class: "web".into(),
        tags: vec!["web".into()],
        labels: BTreeMap::from([("rack".to_string(), "r1".to_string())]),
        machine: format!("hw-1.{ZONE}"),
        roles: vec![],
        properties: Default::default(),
    }
}

/// `count` hosts web-1… with addresses 10.40.x.y.
pub fn hosts(count: usize) -> Vec<kloud_provider_api::integration::HostRecord> {
    (1..=count)
        .map(|i| {
            host(
                &format!("web-{i}"),
                &format!("10.40.{}.{}", i / 250, i % 250 + 1),
            )
        })
        .collect()
}
