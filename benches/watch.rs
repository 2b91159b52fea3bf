//! `kloud sync dns --watch` latency: from a host written into HostDB (SQLite, through the
//! `Store` API) to `dig` resolving its name on a real BIND 9, and to the watcher's converge
//! line; for a small and a 1,000-host fleet and two poll intervals. Also the cost of listing
//! the fleet for the integrations (`host_records`).
//!
//! `cargo bench --bench watch` (release); needs `named` and `dig` (scripts/setup/bind.sh).
//! Prints medians and 90th percentiles of the runs.

#[path = "../tests/integrations_support/mod.rs"]
mod integrations_support;

use std::time::{Duration, Instant};

use integrations_support::{dns_block, wait_until, Bind, Fixture, Running, ZONE};
use kloud::hostdb::{Actor, Expect, Write};

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

fn watch_latency(bind: &Bind, fleet_size: usize, poll: &str) {
    let f = Fixture::new(&dns_block(bind));
    fleet(&f, fleet_size);
    let dns = Running::spawn(f.kloud(&["sync", "dns", "--watch", "--force", "--poll", poll]));
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
        f.put(f.host(&name, &ip));
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
        f.delete(&name);
        let gone = wait_until(Duration::from_secs(10), || bind.dig(&fqdn, "A").is_empty());
        to_gone.push(gone.unwrap_or_else(|| panic!("{fqdn} never went away")));
    }
    println!(
        "hosts {fleet_size:>5}, poll {poll:>5}: write -> converge line median {} p90 {} | \
         write -> dig resolves median {} p90 {} | delete -> gone median {} p90 {}  ({WRITES} runs)",
        ms(percentile(&mut to_line, 0.5)),
        ms(percentile(&mut to_line, 0.9)),
        ms(percentile(&mut to_dig, 0.5)),
        ms(percentile(&mut to_dig, 0.9)),
        ms(percentile(&mut to_gone, 0.5)),
        ms(percentile(&mut to_gone, 0.9)),
    );
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
    // `cargo bench` passes `--bench`; a filter argument runs nothing else here.
    listing_cost();
    let Some(bind) = Bind::start() else { return };
    for (fleet_size, poll) in [(10, "200ms"), (10, "50ms"), (1000, "200ms"), (1000, "50ms")] {
        watch_latency(&bind, fleet_size, poll);
    }
}
