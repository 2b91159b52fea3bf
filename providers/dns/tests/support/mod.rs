//! A real BIND 9 for the DNS tests and benchmark: a `named` of our own on a free loopback port,
//! in a temp dir, with a forward and a reverse zone that accept TSIG-signed updates and
//! transfers, plus `dig`/`nsupdate` helpers as the independent client. Killed by pid on drop.

#![allow(dead_code)]

use std::collections::BTreeMap;
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

/// The named/dig/nsupdate binaries, or None (test skipped) when absent outside CI. Under
/// `CI=true` a missing program fails the test.
pub fn tools() -> Option<(PathBuf, PathBuf, PathBuf)> {
    let found = (
        tool("KLOUD_TEST_NAMED", "/usr/sbin/named"),
        tool("KLOUD_TEST_DIG", "/usr/bin/dig"),
        tool("KLOUD_TEST_NSUPDATE", "/usr/bin/nsupdate"),
    );
    match found {
        (Some(n), Some(d), Some(u)) => Some((n, d, u)),
        _ => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "named, dig or nsupdate missing under CI=true: source scripts/setup/bind.sh"
                );
            }
            eprintln!("SKIPPED: named/dig/nsupdate not installed (source scripts/setup/bind.sh)");
            None
        }
    }
}

fn free_port() -> u16 {
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

pub struct Named {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
    dig: PathBuf,
    nsupdate: PathBuf,
}

impl Named {
    /// Start named with both zones; the forward zone holds a hand-made `handmade` A record.
    pub fn start() -> Option<Named> {
        let (named, dig, nsupdate) = tools()?;
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
        let zone = |name: &str, file: &str| {
            format!(
                "zone \"{name}\" {{ type primary; file \"{d}/{file}\"; \
                 allow-update {{ key {KEY_NAME}; }}; allow-transfer {{ key {KEY_NAME}; }}; }};\n"
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
        let log = std::fs::File::create(dir.path().join("named.log")).expect("log");
        let child = Command::new(named)
            .args(["-g", "-n", "1", "-c"])
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn named");
        let mut n = Named {
            port,
            child,
            dir,
            dig,
            nsupdate,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if !n.dig(ZONE, "SOA").is_empty() {
                return Some(n);
            }
            if let Ok(Some(status)) = n.child.try_wait() {
                panic!("named exited ({status}): {}", n.log());
            }
            assert!(
                Instant::now() < deadline,
                "named did not start: {}",
                n.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("named.log")).unwrap_or_default()
    }

    pub fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `dig +short` answers, sorted.
    pub fn dig(&self, name: &str, rtype: &str) -> Vec<String> {
        let out = Command::new(&self.dig)
            .args([
                "@127.0.0.1",
                "-p",
                &self.port.to_string(),
                "+short",
                "+norec",
                "+tries=1",
                "+time=2",
            ])
            .args([name, rtype])
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

    pub fn reverse(&self, ip: &str) -> Vec<String> {
        let out = Command::new(&self.dig)
            .args([
                "@127.0.0.1",
                "-p",
                &self.port.to_string(),
                "+short",
                "+norec",
                "-x",
                ip,
            ])
            .output()
            .expect("run dig");
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        lines.sort();
        lines
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

impl Drop for Named {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
