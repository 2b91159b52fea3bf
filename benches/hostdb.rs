//! HostDB benchmarks (release build; `cargo bench --bench hostdb` or `scripts/bench-hostdb.sh`).
//!
//! Loads 100,000 containers (10 owners, each in one of 1,000 tags and one of 100 groups) and
//! 1,000 machines into a store, then measures, each as the median of several runs:
//! - a tag query returning 1,000 hosts, in the store and over HTTP;
//! - `snapshot` of 10,000 owned hosts;
//! - GET of one (random) host over loopback HTTP, driven by `wrk` from a second process;
//! - how long 1,000 blocked watchers take to be answered after a write, on kept-alive
//!   connections (how watchers ask) and with `Connection: close` (each answer also tears down
//!   its connection); `cargo bench --bench hostdb -- watchers` runs only this one.
//!
//! SQLite always; PostgreSQL too when `KLOUD_TEST_PG_URL` is set (a fresh schema is used).

use std::sync::Arc;
use std::time::{Duration, Instant};

use kloud::hostdb::{Actor, Expect, Host, HostQuery, Role, Store, Tag, Write};
use kloud::server::{spawn, ServerConfig};
use kloud::Cpu;

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

/// CPU time used so far by the server's runtime (its workers and blocking pool, all named
/// `tokio-rt-worker`), in ms: what answering costs, apart from the bench's own client thread.
fn server_cpu_ms() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim() == "tokio-rt-worker")
        })
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum::<f64>()
        / 1e6
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
        m.cpu = Some(Cpu::from_cores(32));
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
            h.cpu = Some(Cpu::from_cores(2));
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

/// 1,000 watchers, held by one thread: a single-threaded tokio runtime owns every connection,
/// so the client wakes once per ready socket instead of scheduling 1,000 threads on the same two
/// cores as the server — the figure then measures the server, not the bench's thread switches.
/// Connections are kept alive, as a real watcher's are (it asks again at once on the same
/// connection), and closed only after every answer is in; with `close`, each request says
/// `Connection: close` and is answered when the server has closed it, so the 1,000 TCP
/// teardowns fall inside the measured window.
struct Watchers {
    answers: std::sync::mpsc::Receiver<Vec<std::io::Result<Answer>>>,
}

/// When a watcher's last byte arrived, and its whole response.
type Answer = (Instant, Vec<u8>);

impl Watchers {
    /// Connect `n` watchers one after the other (so the accept queue never overflows), send
    /// each its GET, and return once all requests are written.
    fn hold(
        addr: std::net::SocketAddr,
        path: &str,
        token: &str,
        n: usize,
        close: bool,
    ) -> Watchers {
        let connection = if close { "Connection: close\r\n" } else { "" };
        let request = Arc::new(
            format!(
                "GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n{connection}\r\n"
            )
            .into_bytes(),
        );
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let (tx, answers) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new().name("watchers".into());
        thread
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let mut tasks = Vec::with_capacity(n);
                    for _ in 0..n {
                        let s = tokio::net::TcpStream::connect(addr).await.unwrap();
                        s.set_nodelay(true).unwrap();
                        write_all(&s, &request).await.unwrap();
                        tasks.push(tokio::spawn(read_response(s, close)));
                    }
                    ready_tx.send(()).unwrap();
                    let mut out = Vec::with_capacity(n);
                    let mut open = Vec::with_capacity(n);
                    for t in tasks {
                        match t.await.unwrap() {
                            Ok((s, at, body)) => {
                                open.push(s);
                                out.push(Ok((at, body)));
                            }
                            Err(e) => out.push(Err(e)),
                        }
                    }
                    tx.send(out).unwrap();
                    drop(open);
                });
            })
            .unwrap();
        ready.recv().unwrap();
        Watchers { answers }
    }
}

async fn write_all(s: &tokio::net::TcpStream, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        s.writable().await?;
        match s.try_write(buf) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Read one HTTP/1.1 response: to the end of its `content-length` (the connection stays open)
/// or, with `until_eof`, until the server closes the connection.
async fn read_response(
    s: tokio::net::TcpStream,
    until_eof: bool,
) -> std::io::Result<(tokio::net::TcpStream, Instant, Vec<u8>)> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        s.readable().await?;
        match s.try_read(&mut buf) {
            Ok(0) if until_eof => return Ok((s, Instant::now(), out)),
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
        if until_eof {
            continue;
        }
        if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| std::io::Error::other("no content-length"))?;
            if out.len() >= end + 4 + length {
                return Ok((s, Instant::now(), out));
            }
        }
    }
}

fn bench_http(server: &kloud::server::Running, token: &str) {
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
                .bearer_auth(token)
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
            match wrk(&server.url(), token, &script, 5, connections) {
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
}

/// 1,000 blocking GETs of one host, then one write to it: when does the last watcher hear?
fn bench_watchers(store: &Arc<dyn Store>, server: &kloud::server::Running, token: &str) {
    let http = reqwest::blocking::Client::new();
    let name = "h000005.dc1.example.internal";
    let mut round = 0;
    for (mode, close) in [("kept alive", false), ("Connection: close", true)] {
        let mut lasts = Vec::new();
        for _ in 0..5 {
            round += 1;
            let index = store.index().unwrap();
            let addr = server.addr;
            let path = format!("/v1/hosts/{name}?index={index}&wait=60s");
            let watchers = Watchers::hold(addr, &path, token, WATCHERS, close);
            // Let every watcher's request reach its handler and be held.
            std::thread::sleep(Duration::from_secs(3));
            let mut h = store.get_host(name).unwrap().unwrap();
            h.properties.insert("round".into(), round.into());
            let server_cpu = server_cpu_ms();
            let t = Instant::now();
            let r = http
                .put(format!("{}/v1/hosts/{name}", server.url()))
                .bearer_auth(token)
                .json(&h)
                .send()
                .unwrap();
            assert_eq!(r.status(), 200);
            let written = ms(t.elapsed());
            let mut failed = 0;
            let mut lat: Vec<f64> = Vec::new();
            let round_marker = format!("\"round\":{round}");
            for answer in watchers.answers.recv().unwrap() {
                match answer {
                    Ok((at, body))
                        if body.starts_with(b"HTTP/1.1 200")
                            && String::from_utf8_lossy(&body).contains(&round_marker) =>
                    {
                        lat.push(ms(at.duration_since(t)))
                    }
                    _ => failed += 1,
                }
            }
            let server_cpu = server_cpu_ms() - server_cpu;
            lat.sort_by(|a, b| a.total_cmp(b));
            println!(
            "  write seen by {WATCHERS} blocked watchers ({mode}, round {round}): write answered after \
             {written:.1} ms, {} answered, first after {:.1} ms, median {:.1} ms, last after {:.1} ms; server CPU {server_cpu:.1} ms{}",
            lat.len(),
            lat.first().copied().unwrap_or(f64::NAN),
            lat.get(lat.len() / 2).copied().unwrap_or(f64::NAN),
            lat.last().copied().unwrap_or(f64::NAN),
            if failed > 0 { format!(", {failed} failed") } else { String::new() }
        );
            lasts.push(lat.last().copied().unwrap_or(f64::NAN));
        }
        lasts.sort_by(|a, b| a.total_cmp(b));
        println!(
          "  write seen by {WATCHERS} blocked watchers ({mode}): last answer after {:.1} ms (median of 5 rounds; min {:.1}, max {:.1})",
          median(lasts.clone()),
          lasts[0],
          lasts[lasts.len() - 1]
      );
    }
}

/// `cargo bench --bench hostdb -- watchers` runs only the watcher figure (after the load).
fn run(label: &str, store: Arc<dyn Store>, only_watchers: bool) {
    println!("{label}");
    load(&*store);
    let (_, token) = store.token_create("bench", Role::Operator).unwrap();
    let server = spawn(
        "127.0.0.1:0".parse().unwrap(),
        store.clone(),
        ServerConfig::default(),
        2,
    )
    .unwrap();
    if !only_watchers {
        bench_store(&*store);
        bench_http(&server, &token);
    }
    bench_watchers(&store, &server, &token);
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let only_watchers = std::env::args().any(|a| a == "watchers");
    let dir = tempfile::tempdir().unwrap();
    let sqlite = kloud::hostdb::sqlite::open(&dir.path().join("bench.db")).unwrap();
    run("SQLite", Arc::new(sqlite), only_watchers);
    if let Ok(url) = std::env::var("KLOUD_TEST_PG_URL") {
        let schema = format!("bench_{}", kloud::hostdb::util::random_hex(6).unwrap());
        let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .unwrap();
        let sep = if url.contains('?') { '&' } else { '?' };
        let pg_url = format!("{url}{sep}options=-c%20search_path%3D{schema}");
        let pg = kloud::hostdb::postgres::open(&pg_url).unwrap();
        run("PostgreSQL", Arc::new(pg), only_watchers);
        let _ = admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
    } else {
        println!("PostgreSQL: skipped (KLOUD_TEST_PG_URL not set)");
    }
}
