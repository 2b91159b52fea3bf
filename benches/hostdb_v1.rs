//! HostDB v1 API figures over HTTPS (release build; `cargo bench --bench hostdb_v1`):
//! - `GET /hostdb/v1/hosts/NAME` of a fixed host, driven by `wrk` over TLS (wrk does not
//!   verify the self-signed certificate): requests/s and p99, median of 3 runs of 5 s;
//! - `GET /hostdb/v1/hosts/*/Network/IP?foreach=tags/T/members` over a tag of 10,000 hosts:
//!   the time of one answer, median of 5, with a client that trusts the certificate.
//!
//! SQLite in a temporary directory; 10,000 hosts with a small YAML value each.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kloud::config::auth::HostDbV1Access;
use kloud::hostdb::{Actor, Expect, Host, Store, Tag, Write};
use kloud::identity::Identity;
use kloud::server::tls;

const MEMBERS: usize = 10_000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn load(store: &dyn Store) {
    let actor = Actor::new("bench");
    store
        .put_tag(Tag::new("web"), Expect::Absent, &actor)
        .unwrap();
    let writes: Vec<Write> = (0..MEMBERS)
        .map(|i| {
            let mut h = Host::container(&format!("web-{i:05}.dc1.example"));
            h.tags = vec!["web".into()];
            h.properties.insert(
                "Network".into(),
                serde_json::json!({"IP": format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256), "CNAME": "www"}),
            );
            h.properties.insert("team".into(), serde_json::json!("web"));
            Write::PutHost {
                host: h,
                expect: Expect::Absent,
            }
        })
        .collect();
    for chunk in writes.chunks(1000) {
        store.write(chunk.to_vec(), &actor).unwrap();
    }
}

/// wrk's requests/s and p99 (ms).
fn wrk(url: &str, secs: u32, connections: u32) -> Option<(f64, f64)> {
    let out = std::process::Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            "--latency",
            url,
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let rps = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let p99 = text.lines().find(|l| l.trim_start().starts_with("99%"))?;
    let v = p99.split_whitespace().nth(1)?;
    let p99 = if let Some(us) = v.strip_suffix("us") {
        us.parse::<f64>().ok()? / 1000.0
    } else if let Some(m) = v.strip_suffix("ms") {
        m.parse().ok()?
    } else {
        v.strip_suffix('s')?.parse::<f64>().ok()? * 1000.0
    };
    Some((rps, p99))
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(kloud::hostdb::sqlite::open(&dir.path().join("hostdb.db")).unwrap());
    let t = Instant::now();
    load(&*store);
    println!(
        "loaded {MEMBERS} hosts in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let cert = tls::self_signed(&["localhost".to_string()]).unwrap();
    let config = tls::server_config(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes()).unwrap();
    let app_store = store.clone();
    let running = tls::spawn(
        "127.0.0.1:0".parse().unwrap(),
        move || {
            let identity = Arc::new(Identity::new(app_store.clone(), None).unwrap());
            kloud::server::v1::router(app_store, identity, HostDbV1Access::default())
        },
        config,
        tls::Timeouts::default(),
        2,
    )
    .unwrap();
    let base = format!("https://127.0.0.1:{}/hostdb/v1", running.addr.port());

    let url = format!("{base}/hosts/web-04242.dc1.example");
    for connections in [8, 64] {
        let mut runs = Vec::new();
        for _ in 0..3 {
            match wrk(&url, 5, connections) {
                Some(r) => runs.push(r),
                None => {
                    println!("  wrk not found or failed: skipping the GET figure");
                    break;
                }
            }
        }
        if !runs.is_empty() {
            let rps = median(runs.iter().map(|r| r.0).collect());
            let p99 = median(runs.iter().map(|r| r.1).collect());
            println!(
                "  GET /hostdb/v1/hosts/NAME over https (wrk -t2 -c{connections}, 3 x 5 s): median {rps:.0} req/s, p99 {p99:.2} ms"
            );
        }
    }

    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert_pem.as_bytes()).unwrap())
        .resolve("localhost", running.addr)
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let foreach = format!(
        "https://localhost:{}/hostdb/v1/hosts/*/Network/IP?foreach=tags/web/members",
        running.addr.port()
    );
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let text = client.get(&foreach).send().unwrap().text().unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(text.lines().count(), MEMBERS);
    }
    println!(
        "  GET hosts/*/Network/IP?foreach=tags/web/members ({MEMBERS} members, 5 runs): median {:.0} ms",
        median(times)
    );
}
