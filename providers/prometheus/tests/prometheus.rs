//! The Prometheus integration against a real Prometheus: one job reads the file_sd file kloud
//! writes, another polls an http_sd endpoint serving [`http_sd_body`]; `/api/v1/targets` must
//! list exactly the managed hosts, with kloud's labels, and follow a change of the host set.
//!
//! Host addresses are 127.0.x.y so the scrapes Prometheus makes stay on loopback.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kloud_provider_api::integration::{ConvergeRequest, HostRecord, Integration};
use kloud_provider_prometheus::{http_sd_body, PrometheusProvider};
use serde_json::{json, Value};

const PORT: u16 = 9;

fn prometheus_bin() -> Option<PathBuf> {
    let p = std::env::var_os("KLOUD_TEST_PROMETHEUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus"));
    if p.exists() {
        return Some(p);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
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
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// The stand-in for `kloud hostdb serve`'s http_sd route: serves whatever body it holds.
struct SdServer {
    port: u16,
    body: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SdServer {
    fn start(body: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let body = Arc::new(Mutex::new(body));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, st) = (body.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = Vec::new();
                        let mut chunk = [0u8; 1024];
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match conn.read(&mut chunk) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let body = b.lock().map(|g| g.clone()).unwrap_or_default();
                        let _ = write!(
                            conn,
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Self {
            port,
            body,
            stop,
            thread: Some(thread),
        }
    }

    fn set(&self, body: String) {
        *self.body.lock().expect("lock") = body;
    }
}

impl Drop for SdServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Prometheus {
    port: u16,
    child: Child,
    dir: PathBuf,
}

impl Prometheus {
    fn start(bin: &Path, dir: &Path, file_sd: &Path, sd_port: u16) -> Self {
        let port = free_port();
        let conf = dir.join("prometheus.yml");
        std::fs::write(
            &conf,
            format!(
                "global:\n  scrape_interval: 1h\nscrape_configs:\n\
                 - job_name: kloud-file\n  file_sd_configs:\n  - files: ['{}']\n    refresh_interval: 1s\n\
                 - job_name: kloud-http\n  http_sd_configs:\n  - url: 'http://127.0.0.1:{sd_port}/sd'\n    refresh_interval: 1s\n",
                file_sd.display()
            ),
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

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// job → (instance → labels) of the active targets.
    fn targets(&self) -> BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>> {
        let mut out: BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>> = BTreeMap::new();
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

    /// Wait until both jobs list exactly `expected` instances.
    fn wait_for(&self, expected: &BTreeSet<String>) -> BTreeMap<String, BTreeMap<String, String>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let t = self.targets();
            let file: BTreeSet<String> = t
                .get("kloud-file")
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            let http: BTreeSet<String> = t
                .get("kloud-http")
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            if &file == expected && &http == expected {
                return t.get("kloud-file").cloned().unwrap_or_default();
            }
            assert!(
                Instant::now() < deadline,
                "targets never matched {expected:?}: file {file:?}, http {http:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn host(name: &str, ip: &str, class: &str, rack: &str) -> HostRecord {
    HostRecord {
        fqdn: format!("{name}.dc1.test"),
        ip: ip.into(),
        class: class.into(),
        tags: vec!["web".into(), "checkout".into()],
        labels: BTreeMap::from([
            ("rack".to_string(), rack.to_string()),
            ("switch".to_string(), "sw-a".to_string()),
        ]),
        machine: "hw-r1-1.dc1.test".into(),
        roles: vec![],
        properties: Default::default(),
    }
}

#[test]
fn prometheus_targets_are_exactly_the_managed_hosts() {
    let Some(bin) = prometheus_bin() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let file_sd = dir.path().join("sd").join("targets.json");
    let provider = PrometheusProvider::from_block(
        &json!({"file_sd": "sd/targets.json", "port": PORT, "http_sd": true})
            .as_object()
            .expect("object")
            .clone()
            .into_iter()
            .collect(),
        dir.path(),
    )
    .expect("block");
    let mut hosts = vec![
        host("web-1", "127.0.1.1", "web", "r1"),
        host("web-2", "127.0.1.2", "web", "r2"),
        host("db-1", "127.0.2.1", "db", "r1"),
    ];
    let req = |hosts: &[HostRecord]| ConvergeRequest {
        hosts: hosts.to_vec(),
        force: false,
        dry_run: false,
    };
    provider.converge(&req(&hosts)).expect("converge");
    let sd = SdServer::start(http_sd_body(&hosts, PORT));
    let prom = Prometheus::start(&bin, dir.path(), &file_sd, sd.port);

    let names = |hosts: &[HostRecord]| hosts.iter().map(|h| h.fqdn.clone()).collect();
    let seen = prom.wait_for(&names(&hosts));
    let web2 = &seen["web-2.dc1.test"];
    assert_eq!(web2["__address__"], "127.0.1.2:9");
    assert_eq!(web2["class"], "web");
    assert_eq!(web2["rack"], "r2");
    assert_eq!(web2["switch"], "sw-a");
    assert_eq!(web2["machine"], "hw-r1-1.dc1.test");
    assert_eq!(web2["tags"], ",checkout,web,");
    assert_eq!(seen["db-1.dc1.test"]["class"], "db");

    // A host goes, another comes: both discovery paths follow.
    hosts.remove(0);
    hosts.push(host("web-3", "127.0.1.3", "web", "r3"));
    let r = provider.converge(&req(&hosts)).expect("converge");
    assert_eq!((r.added, r.updated, r.removed), (1, 0, 1));
    sd.set(provider.http_sd_body(&hosts));
    prom.wait_for(&names(&hosts));
}
