//! HostDB benchmarks (release build; `cargo bench --bench hostdb` or `scripts/bench-hostdb.sh`).
//!
//! Loads 100,000 containers (10 owners, each in one of 1,000 tags and one of 100 groups) and
//! 1,000 machines into a store, then measures, each as the median of several runs:
//! - a tag query returning 1,000 hosts, in the store and over HTTP;
//! - `snapshot` of 10,000 owned hosts;
//! - GET of one (random) host over loopback HTTP, driven by `wrk` from a second process;
//! - how long 1,000 blocked watchers take to be answered after a write.
//!
//! SQLite always; PostgreSQL too when `KLOUD_TEST_PG_URL` is set (a fresh schema is used).

use std::io::{Read, Write as _};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kloud::hostdb::server::{spawn, ServerConfig};
use kloud::hostdb::{Actor, Expect, Host, HostQuery, Role, Store, Tag, Write};

const HOSTS: usize = 100_000;
const MACHINES: usize = 1_000;
const TAGS: usize = 1_000;
const GROUPS: usize = 100;
const OWNERS: usize = 10;
const WATCHERS: usize = 1_000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// CPU time this thread has used, in ms (from the scheduler's own accounting), so figures can
/// be read apart from other processes competing for the two cores.
fn thread_cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|n| n.parse::<f64>().ok())
        })
        .map_or(0.0, |ns| ns / 1e6)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn load(store: &dyn Store) {
    let actor = Actor::new("bench");
    let t = Instant::now();
    let mut tags = Vec::new();
    for i in 0..TAGS {
        let mut tag = Tag::new(&format!("t{i}"));
        tag.properties.insert("n".into(), i.into());
        tags.push(Write::PutTag {
            tag,
            expect: Expect::Any,
        });
    }
    store.write(tags, &actor).unwrap();
    let mut batch = Vec::new();
    for i in 0..MACHINES {
        let mut m = Host::machine(&format!("hw-{i:04}.dc1.example.internal"));
        m.cpu = Some(32);
        m.memory_mib = Some(131_072);
        m.labels.insert("rack".into(), format!("r{}", i % 20));
        m.driver = Some("lxc".into());
        batch.push(Write::PutHost {
            host: m,
            expect: Expect::Any,
        });
    }
    store.write(batch, &actor).unwrap();
    for chunk in 0..HOSTS / 1000 {
        let mut batch = Vec::with_capacity(1000);
        for i in chunk * 1000..(chunk + 1) * 1000 {
            let mut h = Host::container(&format!("h{i:06}.dc1.example.internal"));
            h.owner = Some(format!("owner{}", i % OWNERS));
            h.class = Some(format!("class{}", i % 50));
            h.tags = vec![format!("t{}", i % TAGS), format!("g{}", i % GROUPS)];
            h.machine = Some(format!("hw-{:04}.dc1.example.internal", i % MACHINES));
            h.ip = Some(format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255));
            h.cpu = Some(2);
            h.memory_mib = Some(4096);
            h.disk_gib = Some(20);
            h.image = Some("debian-12".into());
            h.roles = vec!["role::base".into()];
            h.properties
                .insert("env".into(), if i % 2 == 0 { "prod" } else { "dev" }.into());
            h.properties
                .insert("team".into(), format!("team{}", i % 30).into());
            batch.push(Write::PutHost {
                host: h,
                expect: Expect::Any,
            });
        }
        store.write(batch, &actor).unwrap();
    }
    let took = t.elapsed();
    println!(
        "  load: {} hosts + {} machines + {} tags in {:.1} s ({:.0} hosts/s)",
        HOSTS,
        MACHINES,
        TAGS,
        took.as_secs_f64(),
        (HOSTS + MACHINES) as f64 / took.as_secs_f64()
    );
}

fn bench_store(store: &dyn Store) {
    let q = HostQuery {
        tags: vec!["g7".into()],
        limit: Some(1000),
        ..HostQuery::default()
    };
    let n = store.list_hosts(&q).unwrap().items.len();
    assert_eq!(n, 1000);
    let cpu0 = thread_cpu_ms();
    let runs: Vec<f64> = (0..20)
        .map(|i| {
            let q = HostQuery {
                tags: vec![format!("g{}", i % GROUPS)],
                ..q.clone()
            };
            let t = Instant::now();
            let page = store.list_hosts(&q).unwrap();
            assert_eq!(page.items.len(), 1000);
            ms(t.elapsed())
        })
        .collect();
    println!(
        "  tag query, 1,000 hosts, in the store: median {:.2} ms wall, {:.2} ms CPU per query",
        median(runs),
        (thread_cpu_ms() - cpu0) / 20.0
    );
    let q2 = HostQuery {
        tags: vec!["g7".into(), "t7".into()],
        properties: vec![("env".into(), "dev".into())],
        ..HostQuery::default()
    };
    let cpu0 = thread_cpu_ms();
    let runs: Vec<f64> = (0..10)
        .map(|_| {
            let t = Instant::now();
            let page = store.list_hosts(&q2).unwrap();
            assert_eq!(page.items.len(), 100);
            ms(t.elapsed())
        })
        .collect();
    println!(
        "  two tags + property query (100 hosts): median {:.2} ms wall, {:.2} ms CPU",
        median(runs),
        (thread_cpu_ms() - cpu0) / 10.0
    );
    let cpu0 = thread_cpu_ms();
    let runs: Vec<f64> = (0..7)
        .map(|i| {
            let t = Instant::now();
            let snap = store.snapshot(&format!("owner{}", i % OWNERS)).unwrap();
            assert_eq!(snap.hosts.len(), HOSTS / OWNERS);
            assert_eq!(snap.machines.len(), MACHINES);
            ms(t.elapsed())
        })
        .collect();
    println!(
        "  snapshot: {} owned hosts of {} + {} machines + {} tags: median {:.1} ms wall, {:.1} ms CPU",
        HOSTS / OWNERS,
        HOSTS,
        MACHINES,
        TAGS,
        median(runs),
        (thread_cpu_ms() - cpu0) / 7.0
    );
    let runs: Vec<f64> = (0..2000)
        .map(|i| {
            let name = format!("h{:06}.dc1.example.internal", (i * 7919) % HOSTS);
            let t = Instant::now();
            store.get_host(&name).unwrap().unwrap();
            ms(t.elapsed()) * 1000.0
        })
        .collect();
    println!("  get_host in the store: median {:.1} µs", median(runs));
}

/// Parse wrk's "Requests/sec:" and the 99% latency line, in ms.
fn wrk(
    url: &str,
    token: &str,
    script: &std::path::Path,
    secs: u32,
    connections: u32,
) -> Option<(f64, f64)> {
    let out = std::process::Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            "--latency",
            "-s",
        ])
        .arg(script)
        .args(["-H", &format!("Authorization: Bearer {token}"), url])
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

/// Send a GET and return the open connection (the answer is read later).
fn http_send(addr: std::net::SocketAddr, path: &str, token: &str) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(addr)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )?;
    Ok(s)
}

fn http_read(mut s: TcpStream) -> std::io::Result<(Instant, String)> {
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    Ok((Instant::now(), buf))
}

fn bench_http(store: Arc<dyn Store>) {
    let (_, token) = store.token_create("bench", Role::Operator).unwrap();
    let server = spawn(
        "127.0.0.1:0".parse().unwrap(),
        store.clone(),
        ServerConfig::default(),
        2,
    )
    .unwrap();
    let http = reqwest::blocking::Client::new();
    let runs: Vec<f64> = (0..20)
        .map(|i| {
            let t = Instant::now();
            let r = http
                .get(format!(
                    "{}/v1/hosts?tag=g{}&limit=1000",
                    server.url(),
                    i % GROUPS
                ))
                .bearer_auth(&token)
                .send()
                .unwrap();
            let body = r.bytes().unwrap();
            assert!(body.len() > 100_000);
            ms(t.elapsed())
        })
        .collect();
    println!(
        "  tag query, 1,000 hosts, over HTTP (whole JSON body): median {:.2} ms",
        median(runs)
    );

    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("random.lua");
    std::fs::write(
        &script,
        format!(
            "math.randomseed(os.time())\nrequest = function()\n  return wrk.format(nil, \
             string.format(\"/v1/hosts/h%06d.dc1.example.internal\", math.random(0, {})))\nend\n",
            HOSTS - 1
        ),
    )
    .unwrap();
    // Two client concurrencies: on 2 cores wrk's threads compete with the server's, so p99
    // grows with the number of connections while the rate stays flat.
    for connections in [8, 32] {
        let mut results = Vec::new();
        for _ in 0..3 {
            match wrk(&server.url(), &token, &script, 5, connections) {
                Some(r) => results.push(r),
                None => {
                    println!("  wrk not available or failed; skipping the GET benchmark");
                    break;
                }
            }
        }
        println!("  (load average during the HTTP runs: {})", load_average());
        if !results.is_empty() {
            let rps = median(results.iter().map(|r| r.0).collect());
            let p99 = median(results.iter().map(|r| r.1).collect());
            println!(
                "  GET one random host over HTTP (wrk -t2 -c{connections}, 3 x 5 s): median {rps:.0} req/s, p99 {p99:.2} ms"
            );
        }
    }

    // Watchers: 1,000 blocking GETs of one host, then one write to it.
    let name = "h000005.dc1.example.internal";
    for round in 0..3 {
        let index = store.index().unwrap();
        let addr = server.addr;
        let path = format!("/v1/hosts/{name}?index={index}&wait=60s");
        // Connect one after the other so the accept queue never overflows.
        let handles: Vec<_> = (0..WATCHERS)
            .map(|_| {
                let conn = http_send(addr, &path, &token).unwrap();
                std::thread::Builder::new()
                    .stack_size(64 * 1024)
                    .spawn(move || http_read(conn))
                    .unwrap()
            })
            .collect();
        // Let every watcher connect and be held.
        std::thread::sleep(Duration::from_secs(3));
        let mut h = store.get_host(name).unwrap().unwrap();
        h.properties.insert("round".into(), round.into());
        let t = Instant::now();
        let r = http
            .put(format!("{}/v1/hosts/{name}", server.url()))
            .bearer_auth(&token)
            .json(&h)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let mut failed = 0;
        let mut lat: Vec<f64> = Vec::new();
        for h in handles {
            match h.join().unwrap() {
                Ok((at, body))
                    if body.starts_with("HTTP/1.1 200")
                        && body.contains(&format!("\"round\":{round}")) =>
                {
                    lat.push(ms(at.duration_since(t)))
                }
                _ => failed += 1,
            }
        }
        lat.sort_by(|a, b| a.total_cmp(b));
        println!(
            "  write seen by {WATCHERS} blocked watchers (round {}): {} answered, median {:.1} ms, \
             last after {:.1} ms{}",
            round + 1,
            lat.len(),
            lat.get(lat.len() / 2).copied().unwrap_or(f64::NAN),
            lat.last().copied().unwrap_or(f64::NAN),
            if failed > 0 { format!(", {failed} failed") } else { String::new() }
        );
    }
}

fn run(label: &str, store: Arc<dyn Store>) {
    println!("{label}");
    load(&*store);
    bench_store(&*store);
    bench_http(store);
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sqlite = kloud::hostdb::sqlite::open(&dir.path().join("bench.db")).unwrap();
    run("SQLite", Arc::new(sqlite));
    if let Ok(url) = std::env::var("KLOUD_TEST_PG_URL") {
        let schema = format!("bench_{}", kloud::hostdb::util::random_hex(6).unwrap());
        let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .unwrap();
        let sep = if url.contains('?') { '&' } else { '?' };
        let pg_url = format!("{url}{sep}options=-c%20search_path%3D{schema}");
        let pg = kloud::hostdb::postgres::open(&pg_url).unwrap();
        run("PostgreSQL", Arc::new(pg));
        let _ = admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
    } else {
        println!("PostgreSQL: skipped (KLOUD_TEST_PG_URL not set)");
    }
}
