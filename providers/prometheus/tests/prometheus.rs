//! The Prometheus integration against a real Prometheus: one job reads the file_sd file kloud
//! writes, another polls an http_sd endpoint serving [`http_sd_body`]; `/api/v1/targets` must
//! list exactly the managed hosts, with kloud's labels, and follow a change of the host set.
//!
//! Host addresses are 127.0.x.y so the scrapes Prometheus makes stay on loopback.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kloud_provider_api::integration::{ConvergeRequest, HostRecord, Integration};
use kloud_provider_prometheus::{http_sd_body, PrometheusProvider};
use serde_json::json;
use support::{prometheus_bin, Prometheus};

const PORT: u16 = 9;
const JOBS: [&str; 2] = ["kloud-file", "kloud-http"];

/// An http_sd endpoint serving whatever body it holds (this crate cannot start `kloud hostdb
/// serve`; the kloud package's `tests/integrations_sd.rs` tests the real route).
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
    let prom = Prometheus::start(
        &bin,
        dir.path(),
        &format!(
            "- job_name: kloud-file\n  file_sd_configs:\n  - files: ['{}']\n    refresh_interval: 1s\n\
             - job_name: kloud-http\n  http_sd_configs:\n  - url: 'http://127.0.0.1:{}/sd'\n    refresh_interval: 1s\n",
            file_sd.display(),
            sd.port
        ),
    );

    let names = |hosts: &[HostRecord]| -> BTreeSet<String> {
        hosts.iter().map(|h| h.fqdn.clone()).collect()
    };
    let all = prom.wait_for(&JOBS, &names(&hosts));
    let without_job = |job: &str| {
        let mut t = all[job].clone();
        t.values_mut().for_each(|l| {
            l.remove("job");
        });
        t
    };
    assert_eq!(
        without_job("kloud-file"),
        without_job("kloud-http"),
        "both discovery paths give the same targets and labels"
    );
    let seen = &all["kloud-file"];
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
    prom.wait_for(&JOBS, &names(&hosts));
}
