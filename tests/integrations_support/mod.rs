//! What the end-to-end integration tests and the watch benchmark share: a config directory with
//! a SQLite HostDB written through the `Store` API, and the `kloud` binary run as a child
//! process (killed by pid on drop). [`serve`] runs `kloud hostdb serve` over the fixture's
//! database.
//!
//! The DNS server (a BIND 9 `named` of our own on a free loopback port with a dynamic forward
//! and reverse zone and a TSIG key, `dig` as the independent client) is the DNS provider's own
//! harness ([`dns`], [`DnsServer`]); the Prometheus harness is the prometheus provider's own
//! ([`prometheus`]).

#![allow(dead_code)]

#[path = "../../providers/dns/tests/support/mod.rs"]
pub mod dns;
#[path = "../../providers/prometheus/tests/support/mod.rs"]
pub mod prometheus;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kloud::hostdb::{self, Actor, Expect, Host, State, Store, Tag};

// Not every test binary uses every re-export.
#[allow(unused_imports)]
pub use dns::{free_port, DnsServer, KEY_NAME, REVERSE_ZONE, SECRET, ZONE};

pub const KLOUD: &str = env!("CARGO_BIN_EXE_kloud");

/// A missing program: a failure under `CI=true`, a printed skip otherwise.
pub fn missing(what: &str, setup: &str) {
    if kloud_provider_api::under_ci() {
        panic!("{what} missing under CI=true: source scripts/setup/{setup}");
    }
    eprintln!("SKIPPED: {what} not installed (source scripts/setup/{setup})");
}

/// A config directory (`main.hcl`) with a SQLite HostDB (`hostdb.db`) in it.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub store: Box<dyn Store>,
    actor: Actor,
}

impl Fixture {
    /// A config with the given provider blocks (HCL text) and an empty HostDB holding one
    /// machine `hw-1.dc1.test` in rack r1 behind switch sw-a.
    pub fn new(providers: &str) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("main.hcl"),
            format!(
                "kloud {{\n  domain = \"{ZONE}\"\n  hostdb = \"sqlite:hostdb.db\"\n}}\n\n{providers}"
            ),
        )
        .expect("write config");
        let store = hostdb::open("sqlite:hostdb.db", dir.path()).expect("open HostDB");
        let f = Fixture {
            dir,
            store,
            actor: Actor::new("other-tool"),
        };
        let mut m = Host::machine(&format!("hw-1.{ZONE}"));
        m.labels = BTreeMap::from([
            ("rack".to_string(), "r1".to_string()),
            ("switch".to_string(), "sw-a".to_string()),
        ]);
        f.store.put_host(m, Expect::Any, &f.actor).expect("machine");
        f
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A running container `NAME.dc1.test` written straight into HostDB.
    pub fn host(&self, name: &str, ip: &str) -> Host {
        let mut h = Host::container(&format!("{name}.{ZONE}"));
        h.class = Some("web".into());
        h.owner = Some("other-tool".into());
        h.machine = Some(format!("hw-1.{ZONE}"));
        h.ip = Some(ip.into());
        h.state = Some(State::Running);
        h.tags = vec!["web".into()];
        h.roles = vec!["role::nginx".into(), "role::base".into()];
        h
    }

    pub fn put(&self, host: Host) -> u64 {
        self.store
            .put_host(host, Expect::Any, &self.actor)
            .expect("put host")
    }

    pub fn put_tag(&self, tag: Tag) -> u64 {
        self.store
            .put_tag(tag, Expect::Any, &self.actor)
            .expect("put tag")
    }

    pub fn delete(&self, name: &str) -> u64 {
        self.store
            .delete_host(&format!("{name}.{ZONE}"), Expect::Any, &self.actor)
            .expect("delete host")
    }

    /// `kloud ARGS` run in the config directory, without a HostDB in the environment.
    pub fn kloud(&self, args: &[&str]) -> Command {
        let mut c = Command::new(KLOUD);
        c.args(args)
            .current_dir(self.path())
            .env_remove("KLOUD_HOSTDB")
            .env("NO_COLOR", "1");
        c
    }
}

/// The `provider "dns"` block for a server.
pub fn dns_block(bind: &DnsServer) -> String {
    format!(
        "provider \"dns\" {{\n  server = \"{}\"\n  zone = \"{ZONE}\"\n  reverse_zone = \"{REVERSE_ZONE}\"\n  \
         key_name = \"{KEY_NAME}\"\n  secret = \"{SECRET}\"\n}}\n",
        bind.server()
    )
}

/// A `kloud` child process whose stdout and stderr lines are collected as they come.
pub struct Running {
    child: Child,
    pub stdout: Arc<Mutex<Vec<(Instant, String)>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl Running {
    pub fn spawn(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kloud");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            let lines = Arc::clone(&stdout);
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    lines.lock().expect("lines").push((Instant::now(), line));
                }
            });
        }
        if let Some(err) = child.stderr.take() {
            let lines = Arc::clone(&stderr);
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    lines.lock().expect("lines").push(line);
                }
            });
        }
        Running {
            child,
            stdout,
            stderr,
        }
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout
            .lock()
            .expect("lines")
            .iter()
            .map(|(_, l)| l.clone())
            .collect()
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().expect("lines").clone()
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Send SIGINT (Ctrl-C) to this child's pid.
    pub fn interrupt(&self) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) with the pid of a child we spawned and have not reaped.
        unsafe {
            libc::kill(pid, libc::SIGINT);
        }
    }

    /// Its exit status, waiting at most `limit`.
    pub fn exited_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn dump(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.stdout_lines().join("\n"),
            self.stderr_lines().join("\n")
        )
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Child::kill sends SIGKILL to this child's pid only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kloud hostdb serve` over the fixture's SQLite file on `port` with `extra` arguments
/// (`--anonymous-read`, say); returns once it accepts connections.
pub fn serve(f: &Fixture, port: u16, extra: &[&str]) -> Running {
    let db = format!("sqlite:{}", f.path().join("hostdb.db").display());
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["hostdb", "serve", "--store", &db, "--listen", &listen];
    args.extend_from_slice(extra);
    let server = Running::spawn(f.kloud(&args));
    let up = wait_until(Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(
        up.is_some(),
        "hostdb serve did not start\n{}",
        server.dump()
    );
    server
}

/// Poll `check` every few milliseconds until it holds or `limit` passes; the time it took.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if check() {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
