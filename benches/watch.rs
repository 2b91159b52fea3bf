//! `kloud sync dns --watch` latency: from a host written into HostDB to `dig` resolving its
//! name on a real BIND 9, and to the watcher's converge line; for a small and a 1,000-host
//! fleet and two poll intervals. Three ways of following HostDB: the watcher reads the SQLite
//! file itself (`sqlite`); it follows a `kloud hostdb serve` over HTTP and the writes go
//! through the API (`http`); or they go straight into the server's database file, as another
//! process sharing it would write (`http-direct`). Also the cost of listing the fleet for the
//! integrations (`host_records`).
//!
//! `cargo bench --bench watch [-- FILTER]` (release); needs `named` and `dig`
//! (scripts/setup/bind.sh). FILTER runs only the rows whose label contains it (`http`, say).
//! Prints medians and 90th percentiles of the runs.

#[path = "../tests/integrations_support/mod.rs"]
mod integrations_support;

use std::time::{Duration, Instant};

use integrations_support::{
    dns_block, free_port, serve, wait_until, DnsServer, Fixture, Running, ZONE,
};
use kloud::hostdb::client::HttpStore;
use kloud::hostdb::{Actor, Expect, Role, Store, Write};

const WRITES: usize = 15;

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn fleet(f: &Fixture, n: usize) {
    let writes = (0..n)
        .map(|i| Write::PutHost {
            host: f.host(
                &format!("fleet-{i}"),
                &format!("10.40.{}.{}", 100 + i / 250, 1 + i % 250),
            ),
            expect: Expect::Any,
        })
        .collect();
    f.store
        .write(writes, &Actor::new("bench"))
        .expect("write fleet");
}

/// How the watcher follows HostDB and where the writes go (see the module doc).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    Sqlite,
    Http,
    HttpDirect,
}

impl Via {
    fn label(self) -> &'static str {
        match self {
            Via::Sqlite => "sqlite",
            Via::Http => "http",
            Via::HttpDirect => "http-direct",
        }
    }
}

fn watch_latency(bind: &DnsServer, fleet_size: usize, poll: &str, via: Via) {
    let f = Fixture::new(&dns_block(bind));
    fleet(&f, fleet_size);
    let mut cmd = vec!["sync", "dns", "--watch", "--force", "--poll", poll];
    let mut server = None;
    let mut api = None;
    let url;
    if via != Via::Sqlite {
        let (_, secret) = f
            .store
            .token_create("bench", Role::Operator)
            .expect("token");
        let port = free_port();
        server = Some(serve(&f, port, &["--anonymous-read"]));
        url = format!("http://127.0.0.1:{port}");
        api = Some(HttpStore::new(&url, Some(secret)).expect("client"));
        cmd.extend(["--hostdb", url.as_str()]);
    }
    let writer: &dyn Store = match (&api, via) {
        (Some(api), Via::Http) => api,
        _ => &*f.store,
    };
    let actor = Actor::new("bench");
    let dns = Running::spawn(f.kloud(&cmd));
    let first = wait_until(Duration::from_secs(60), || !dns.stdout_lines().is_empty());
    assert!(first.is_some(), "no first converge\n{}", dns.dump());
    let mut to_dig = Vec::new();
    let mut to_line = Vec::new();
    let mut to_gone = Vec::new();
    for i in 0..WRITES {
        let name = format!("new-{i}");
        let fqdn = format!("{name}.{ZONE}");
        let ip = format!("10.40.1.{}", 1 + i);
        // The watcher polls right after its last converge; writing right after it would
        // always land at the same phase of the poll. Spread the writes over the interval.
        std::thread::sleep(Duration::from_millis((i as u64 * 37) % 211));
        let written = Instant::now();
        writer
            .put_host(f.host(&name, &ip), Expect::Any, &actor)
            .expect("write");
        let took = wait_until(Duration::from_secs(10), || {
            bind.dig(&fqdn, "A") == [ip.clone()]
        });
        to_dig.push(took.unwrap_or_else(|| panic!("{fqdn} never resolved\n{}", dns.dump())));
        let marker = format!("(+{fqdn})");
        let seen = wait_until(Duration::from_secs(5), || {
            dns.stdout
                .lock()
                .map(|l| l.iter().any(|(_, s)| s.contains(&marker)))
                .unwrap_or(false)
        });
        assert!(seen.is_some(), "no converge line for {fqdn}");
        if let Some(at) = dns
            .stdout
            .lock()
            .ok()
            .and_then(|l| l.iter().find(|(_, s)| s.contains(&marker)).map(|(t, _)| *t))
        {
            to_line.push(at.saturating_duration_since(written));
        }
        writer
            .delete_host(&fqdn, Expect::Any, &actor)
            .expect("delete");
        let gone = wait_until(Duration::from_secs(10), || bind.dig(&fqdn, "A").is_empty());
        to_gone.push(gone.unwrap_or_else(|| panic!("{fqdn} never went away")));
    }
    let label = via.label();
    println!(
        "{label:<11} hosts {fleet_size:>5}, poll {poll:>5}: write -> converge line median {} p90 {} | \
         write -> dig resolves median {} p90 {} | delete -> gone median {} p90 {}  ({WRITES} runs)",
        ms(percentile(&mut to_line, 0.5)),
        ms(percentile(&mut to_line, 0.9)),
        ms(percentile(&mut to_dig, 0.5)),
        ms(percentile(&mut to_dig, 0.9)),
        ms(percentile(&mut to_gone, 0.5)),
        ms(percentile(&mut to_gone, 0.9)),
    );
    drop(dns);
    drop(server);
}

fn listing_cost() {
    for n in [100, 1000, 5000] {
        let f = Fixture::new("");
        fleet(&f, n);
        let mut runs: Vec<Duration> = (0..11)
            .map(|_| {
                let t = Instant::now();
                let r = kloud::integrations::host_records(&*f.store, None).expect("list");
                assert_eq!(r.len(), n);
                t.elapsed()
            })
            .collect();
        println!(
            "host_records over {n:>5} hosts: median {:.2} ms",
            percentile(&mut runs, 0.5).as_secs_f64() * 1000.0
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is a filter on the row labels.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let wanted = |label: &str| filter.as_deref().is_none_or(|f| label.contains(f));
    if wanted("listing") {
        listing_cost();
    }
    let rows = [
        (10, "200ms", Via::Sqlite),
        (10, "50ms", Via::Sqlite),
        (1000, "200ms", Via::Sqlite),
        (1000, "50ms", Via::Sqlite),
        (10, "200ms", Via::Http),
        (1000, "200ms", Via::Http),
        (10, "200ms", Via::HttpDirect),
    ];
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|(n, poll, via)| wanted(&format!("{} {n} {poll}", via.label())))
        .collect();
    if rows.is_empty() {
        return;
    }
    let Some(bind) = DnsServer::start() else {
        return;
    };
    for (fleet_size, poll, via) in rows {
        watch_latency(&bind, fleet_size, poll, via);
    }
}
