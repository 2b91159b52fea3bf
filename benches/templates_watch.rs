//! `kloud sync template --watch` latency over an HTTP HostDB (`kloud hostdb serve`, writes
//! through its API): from a host written into HostDB to the destination file rewritten, and
//! to `on_change` having run (it copies the file aside, so "seen" means rendered, checked,
//! renamed into place and the command finished). For a small and a 1,000-host fleet, with the
//! default coalescing window (20 ms) and without (0). Then a burst: 20 writes 5 ms apart, and
//! how many times `on_change` ran for them.
//!
//! `cargo bench --bench templates_watch [-- FILTER]` (release). Prints medians and 99th
//! percentiles over [`WRITES`] writes.

#[path = "../tests/integrations_support/mod.rs"]
mod integrations_support;

use std::path::Path;
use std::time::{Duration, Instant};

use integrations_support::{free_port, serve, wait_until, Fixture, Running};
use kloud::hostdb::client::HttpStore;
use kloud::hostdb::{Actor, Expect, Role, Store, Write};

const WRITES: usize = 60;

const TEMPLATE: &str = "{% for h in hosts %}server {{ h.short }} {{ h.ip }}:80\n{% endfor %}";

fn block() -> String {
    r#"template "lb" {
  source      = "lb.j2"
  destination = "out/lb.cfg"
  check       = "test -s {{ path }}"
  on_change   = "cp {{ path }} seen.cfg && echo ran >> runs.log"
}
"#
    .to_string()
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Poll every millisecond until `check` holds (at most `limit`); the time it took.
fn until(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

fn contains(path: &Path, text: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|c| c.contains(text))
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

/// A config with the template, a HostDB server over its database and an API client.
fn setup(fleet_size: usize) -> (Fixture, Running, HttpStore, String) {
    let f = Fixture::new(&block());
    std::fs::write(f.path().join("lb.j2"), TEMPLATE).expect("template");
    fleet(&f, fleet_size);
    let (_, secret) = f
        .store
        .token_create("bench", Role::Operator)
        .expect("token");
    let port = free_port();
    let server = serve(&f, port, &["--anonymous-read"]);
    let url = format!("http://127.0.0.1:{port}");
    let api = HttpStore::new(&url, Some(secret)).expect("client");
    (f, server, api, url)
}

fn latency(fleet_size: usize, coalesce: &str) {
    let (f, server, api, url) = setup(fleet_size);
    let watch = Running::spawn(f.kloud(&[
        "sync",
        "template",
        "--watch",
        "--hostdb",
        &url,
        "--coalesce",
        coalesce,
    ]));
    let dest = f.path().join("out/lb.cfg");
    let seen = f.path().join("seen.cfg");
    assert!(
        wait_until(Duration::from_secs(60), || seen.exists()).is_some(),
        "no first render\n{}",
        watch.dump()
    );
    let actor = Actor::new("bench");
    let (mut to_file, mut to_on_change) = (Vec::new(), Vec::new());
    for i in 0..WRITES {
        let name = format!("new-{i}");
        let ip = format!("10.40.1.{}", 1 + i);
        let line = format!(" {ip}:80");
        std::thread::sleep(Duration::from_millis((i as u64 * 37) % 97));
        let written = Instant::now();
        api.put_host(f.host(&name, &ip), Expect::Any, &actor)
            .expect("write");
        let file = until(Duration::from_secs(10), || contains(&dest, &line));
        to_file.push(file.unwrap_or_else(|| panic!("{name} never rendered\n{}", watch.dump())));
        let ran = until(Duration::from_secs(10), || contains(&seen, &line));
        assert!(ran.is_some(), "on_change never saw {name}");
        to_on_change.push(written.elapsed());
    }
    println!(
        "http, hosts {fleet_size:>5}, coalesce {coalesce:>4}: write -> file rewritten median {} p99 {} | \
         write -> on_change done median {} p99 {}  ({WRITES} writes)",
        ms(percentile(&mut to_file, 0.5)),
        ms(percentile(&mut to_file, 0.99)),
        ms(percentile(&mut to_on_change, 0.5)),
        ms(percentile(&mut to_on_change, 0.99)),
    );
    drop(watch);
    drop(server);
}

/// 20 writes 5 ms apart: how many renders (on_change runs) they cost.
fn burst(coalesce: &str) {
    let (f, server, api, url) = setup(10);
    let watch = Running::spawn(f.kloud(&[
        "sync",
        "template",
        "--watch",
        "--hostdb",
        &url,
        "--coalesce",
        coalesce,
    ]));
    let runs = f.path().join("runs.log");
    let count = || {
        std::fs::read_to_string(&runs)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    assert!(
        wait_until(Duration::from_secs(60), || count() == 1).is_some(),
        "{}",
        watch.dump()
    );
    let actor = Actor::new("bench");
    let started = Instant::now();
    for i in 0..20 {
        api.put_host(
            f.host(&format!("burst-{i}"), &format!("10.40.2.{}", 1 + i)),
            Expect::Any,
            &actor,
        )
        .expect("write");
        std::thread::sleep(Duration::from_millis(5));
    }
    let dest = f.path().join("seen.cfg");
    let done = until(Duration::from_secs(10), || {
        contains(&dest, " 10.40.2.20:80")
    });
    assert!(done.is_some(), "{}", watch.dump());
    std::thread::sleep(Duration::from_millis(300));
    println!(
        "burst of 20 writes 5 ms apart, coalesce {coalesce:>4}: on_change ran {} times, last write rendered {} after the first",
        count() - 1,
        ms(started.elapsed().saturating_sub(Duration::from_millis(300)))
    );
    drop(watch);
    drop(server);
}

fn main() {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let wanted = |label: &str| filter.as_deref().is_none_or(|f| label.contains(f));
    for (n, coalesce) in [(10, "20ms"), (10, "0"), (1000, "20ms")] {
        if wanted(&format!("latency {n} {coalesce}")) {
            latency(n, coalesce);
        }
    }
    for coalesce in ["20ms", "0"] {
        if wanted(&format!("burst {coalesce}")) {
            burst(coalesce);
        }
    }
}
