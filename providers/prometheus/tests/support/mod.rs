//! A real Prometheus for tests: started on a free loopback port with a temp storage dir and the
//! scrape jobs a test gives, asked for its active targets through `/api/v1/targets`, killed by
//! pid on drop. Used by this crate's tests and, through `#[path]`, by the kloud package's
//! `tests/integrations_*.rs` (the http_sd endpoint of `kloud hostdb serve`).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// job → (instance → labels, with the discovered `__address__`) of the active targets.
pub type Targets = BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>>;

/// The prometheus binary, or None (the test skips) when absent outside CI; under `CI=true` a
/// missing binary fails the test.
pub fn prometheus_bin() -> Option<PathBuf> {
    let p = std::env::var_os("KLOUD_TEST_PROMETHEUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus"));
    if p.exists() {
        return Some(p);
    }
    if kloud_provider_api::under_ci() {
        panic!("prometheus missing under CI=true: source scripts/setup/monitoring.sh");
    }
    eprintln!("SKIPPED: prometheus not installed (source scripts/setup/monitoring.sh)");
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A minimal HTTP GET over loopback; returns (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

pub struct Prometheus {
    pub port: u16,
    child: Child,
    dir: PathBuf,
}

impl Prometheus {
    /// Start with `scrape_configs`: the YAML list items of the `scrape_configs:` key (each
    /// starting `- job_name: …` at column 0). Scrapes are hourly: the tests look at discovery
    /// only. Waits until the server is ready.
    pub fn start(bin: &Path, dir: &Path, scrape_configs: &str) -> Self {
        let port = free_port();
        let conf = dir.join("prometheus.yml");
        std::fs::write(
            &conf,
            format!("global:\n  scrape_interval: 1h\nscrape_configs:\n{scrape_configs}"),
        )
        .expect("config");
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", conf.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn prometheus");
        let mut p = Self {
            port,
            child,
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get(port, "/-/ready").map(|r| r.0) != Some(200) {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("prometheus exited ({status}): {}", p.log());
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready: {}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// The active targets by job and instance.
    pub fn targets(&self) -> Targets {
        let mut out = Targets::new();
        let Some((200, body)) = http_get(self.port, "/api/v1/targets?state=active") else {
            return out;
        };
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        for t in v["data"]["activeTargets"].as_array().into_iter().flatten() {
            let mut labels: BTreeMap<String, String> = t["labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(addr) = t["discoveredLabels"]["__address__"].as_str() {
                labels.insert("__address__".into(), addr.to_string());
            }
            let job = labels.get("job").cloned().unwrap_or_default();
            let instance = labels.get("instance").cloned().unwrap_or_default();
            out.entry(job).or_default().insert(instance, labels);
        }
        out
    }

    /// Wait (up to 30 s) until every job of `jobs` lists exactly the instances `expected`;
    /// returns the targets then. Panics with what was seen and Prometheus' log otherwise.
    pub fn wait_for(&self, jobs: &[&str], expected: &BTreeSet<String>) -> Targets {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let t = self.targets();
            let seen: BTreeMap<&str, BTreeSet<String>> = jobs
                .iter()
                .map(|j| {
                    let names = t
                        .get(*j)
                        .map(|m| m.keys().cloned().collect())
                        .unwrap_or_default();
                    (*j, names)
                })
                .collect();
            if seen.values().all(|names| names == expected) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "targets never matched {expected:?}: {seen:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // Child::kill sends SIGKILL to this child's pid only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
