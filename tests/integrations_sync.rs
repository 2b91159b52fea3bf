//! `kloud sync` end to end against a real BIND 9 (started by the test on a free loopback
//! port) and a real SQLite HostDB written through the `Store` API, with `dig` as the
//! independent client: once, and `--watch` run as a child process (killed by pid at the end),
//! including a DNS server restart, a HostDB file replaced underneath the watcher, and a
//! `kloud hostdb serve` restart while the watcher follows it over HTTP.

mod integrations_support;

use std::time::Duration;

use integrations_support::{dns_block, serve, wait_until, DnsServer, Fixture, Running, ZONE};
use kloud::hostdb::{self, Actor, Expect, Host, State};
use serde_json::Value;

fn fqdn(name: &str) -> String {
    format!("{name}.{ZONE}")
}

#[test]
fn sync_dns_once_makes_the_hosts_in_hostdb_resolve() {
    let Some(bind) = DnsServer::start() else {
        return;
    };
    let f = Fixture::new(&dns_block(&bind));
    f.put(f.host("web-1", "10.40.0.11"));
    f.put(f.host("web-2", "10.40.0.12"));
    let mut creating = f.host("web-3", "10.40.0.13");
    creating.state = Some(State::Creating);
    f.put(creating);
    let mut no_ip_yet = f.host("web-4", "10.40.0.14");
    no_ip_yet.state = Some(State::Creating);
    no_ip_yet.ip = None;
    f.put(no_ip_yet);
    let mut going = f.host("web-5", "10.40.0.15");
    going.state = Some(State::Deleting);
    f.put(going);

    let out = f.kloud(&["sync", "dns"]).output().expect("run kloud");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("dns: index"), "{stdout}");
    assert!(stdout.contains("3 hosts"), "{stdout}");
    for (name, ip) in [
        ("web-1", "10.40.0.11"),
        ("web-2", "10.40.0.12"),
        ("web-3", "10.40.0.13"),
    ] {
        assert_eq!(bind.dig(&fqdn(name), "A"), [ip], "{name}");
        assert_eq!(bind.reverse(ip), [format!("{}.", fqdn(name))], "{name}");
    }
    assert!(
        bind.dig(&fqdn("web-4"), "A").is_empty(),
        "no address, no record"
    );
    assert!(
        bind.dig(&fqdn("web-5"), "A").is_empty(),
        "a deleting host has no record"
    );
    assert_eq!(
        bind.dig(&fqdn("handmade"), "A"),
        ["10.40.9.9"],
        "not ours: untouched"
    );

    // A second run changes nothing; a deleted host and a moved address are converged.
    let out = f.kloud(&["sync", "dns"]).output().expect("run kloud");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("0 added, 0 updated, 0 removed"), "{stdout}");
    f.delete("web-1");
    f.put(f.host("web-2", "10.40.0.22"));
    let out = f.kloud(&["sync", "dns"]).output().expect("run kloud");
    assert!(out.status.success());
    assert!(bind.dig(&fqdn("web-1"), "A").is_empty());
    assert!(bind.reverse("10.40.0.11").is_empty());
    assert_eq!(bind.dig(&fqdn("web-2"), "A"), ["10.40.0.22"]);
    assert_eq!(bind.reverse("10.40.0.22"), [format!("{}.", fqdn("web-2"))]);
    assert!(bind.reverse("10.40.0.12").is_empty());

    // An integration the config does not declare is a clear error.
    let out = f.kloud(&["sync", "nagios"]).output().expect("run kloud");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not configured"));
}

/// The prometheus file_sd targets as (target, instance label) pairs.
fn targets(path: &std::path::Path) -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let Ok(Value::Array(groups)) = serde_json::from_str::<Value>(&text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for g in groups {
        let instance = g["labels"]["instance"].as_str().unwrap_or("").to_string();
        for t in g["targets"].as_array().into_iter().flatten() {
            out.push((t.as_str().unwrap_or("").to_string(), instance.clone()));
        }
    }
    out.sort();
    out
}

#[test]
fn sync_watch_follows_hostdb_writes_into_dns_and_prometheus() {
    let Some(bind) = DnsServer::start() else {
        return;
    };
    let f = Fixture::new(&format!(
        "{}\nprovider \"prometheus\" {{\n  file_sd = \"targets.json\"\n  port = 9100\n}}\n",
        dns_block(&bind)
    ));
    f.put(f.host("web-1", "10.40.0.11"));
    let file_sd = f.path().join("targets.json");
    let dns = Running::spawn(f.kloud(&["sync", "dns", "--watch"]));
    let prom = Running::spawn(f.kloud(&["sync", "prometheus", "--watch"]));
    let limit = Duration::from_secs(2);
    let startup = Duration::from_secs(20);
    assert!(
        wait_until(startup, || bind.dig(&fqdn("web-1"), "A") == ["10.40.0.11"]).is_some(),
        "the first converge did not happen\n{}",
        dns.dump()
    );
    assert!(
        wait_until(startup, || targets(&file_sd).len() == 1).is_some(),
        "{}",
        prom.dump()
    );

    let mut latencies = Vec::new();
    for i in 2..=4 {
        let name = format!("web-{i}");
        let ip = format!("10.40.0.{}", 10 + i);
        f.put(f.host(&name, &ip));
        let took = wait_until(limit, || bind.dig(&fqdn(&name), "A") == [ip.clone()]);
        assert!(
            took.is_some(),
            "{name} did not resolve within 2 s\n{}",
            dns.dump()
        );
        latencies.extend(took);
        assert_eq!(bind.reverse(&ip), [format!("{}.", fqdn(&name))]);
        let target = (format!("{ip}:9100"), fqdn(&name));
        assert!(
            wait_until(limit, || targets(&file_sd).contains(&target)).is_some(),
            "{name} is not a prometheus target within 2 s\n{}",
            prom.dump()
        );
    }
    eprintln!("watch latency, HostDB write -> dig resolves: {latencies:?}");

    f.delete("web-2");
    assert!(
        wait_until(limit, || bind.dig(&fqdn("web-2"), "A").is_empty()).is_some(),
        "web-2 still resolves 2 s after its deletion\n{}",
        dns.dump()
    );
    assert!(
        wait_until(limit, || !targets(&file_sd)
            .iter()
            .any(|(_, i)| *i == fqdn("web-2")))
        .is_some(),
        "web-2 is still a target\n{}",
        prom.dump()
    );
    assert_eq!(bind.dig(&fqdn("web-3"), "A"), ["10.40.0.13"], "others stay");
    assert_eq!(targets(&file_sd).len(), 3);

    // One line per converge, naming what HostDB changed; the counts are of DNS names, and
    // each host has one in the forward and one in the reverse zone.
    let lines = dns.stdout_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("(+web-3.dc1.test)") && l.contains("2 added")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("(-web-2.dc1.test)") && l.contains("2 removed")),
        "{lines:#?}"
    );
    // A HostDB write the integration does not see (a tag nobody uses) converges nothing.
    let before = dns.stdout_lines().len();
    f.put_tag(kloud::hostdb::Tag::new("unused"));
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        dns.stdout_lines().len(),
        before,
        "{:#?}",
        dns.stdout_lines()
    );
}

#[test]
fn sync_watch_survives_a_dns_outage_and_a_replaced_hostdb() {
    let Some(mut bind) = DnsServer::start() else {
        return;
    };
    let f = Fixture::new(&dns_block(&bind));
    f.put(f.host("web-1", "10.40.0.11"));
    let mut dns = Running::spawn(f.kloud(&["sync", "dns", "--watch"]));
    let startup = Duration::from_secs(20);
    assert!(
        wait_until(startup, || bind.dig(&fqdn("web-1"), "A") == ["10.40.0.11"]).is_some(),
        "{}",
        dns.dump()
    );

    // The DNS server goes away; a host written meanwhile is added once it is back.
    bind.stop();
    f.put(f.host("web-2", "10.40.0.12"));
    assert!(
        wait_until(Duration::from_secs(10), || dns
            .stderr_lines()
            .iter()
            .any(|l| l.contains("cannot reach") && l.contains("retrying")))
        .is_some(),
        "{}",
        dns.dump()
    );
    bind.restart();
    assert!(
        wait_until(Duration::from_secs(20), || bind.dig(&fqdn("web-2"), "A")
            == ["10.40.0.12"])
        .is_some(),
        "web-2 did not appear after the DNS server came back\n{}",
        dns.dump()
    );
    assert!(dns.alive());

    // HostDB disappears (an outage), then a different database takes its place (a restore):
    // the watcher reports, backs off, reopens, re-lists and converges to the new contents.
    let restored = tempfile::tempdir().expect("tempdir");
    {
        let other = hostdb::open("sqlite:restored.db", restored.path()).expect("open");
        let actor = Actor::new("restore");
        other
            .put_host(Host::machine(&format!("hw-1.{ZONE}")), Expect::Any, &actor)
            .expect("machine");
        other
            .put_host(f.host("web-9", "10.40.0.19"), Expect::Any, &actor)
            .expect("host");
        other
            .put_host(f.host("web-1", "10.40.0.11"), Expect::Any, &actor)
            .expect("host");
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(f.path().join(format!("hostdb.db{suffix}")));
    }
    assert!(
        wait_until(Duration::from_secs(10), || dns
            .stderr_lines()
            .iter()
            .any(|l| l.contains("does not exist") && l.contains("retrying")))
        .is_some(),
        "{}",
        dns.dump()
    );
    assert_eq!(
        bind.dig(&fqdn("web-2"), "A"),
        ["10.40.0.12"],
        "an outage removes nothing"
    );
    std::fs::rename(
        restored.path().join("restored.db"),
        f.path().join("hostdb.db"),
    )
    .expect("restore");
    assert!(
        wait_until(Duration::from_secs(20), || bind.dig(&fqdn("web-9"), "A")
            == ["10.40.0.19"])
        .is_some(),
        "the restored HostDB was not followed\n{}",
        dns.dump()
    );
    assert!(
        wait_until(Duration::from_secs(5), || bind
            .dig(&fqdn("web-2"), "A")
            .is_empty())
        .is_some(),
        "web-2 is not in the restored HostDB and must go\n{}",
        dns.dump()
    );
    assert_eq!(bind.dig(&fqdn("web-1"), "A"), ["10.40.0.11"]);
    assert!(
        dns.stderr_lines().iter().any(|l| l.contains("reconnected")),
        "{}",
        dns.dump()
    );
    // And it keeps following the new file.
    let store = hostdb::open("sqlite:hostdb.db", f.path()).expect("open");
    store
        .put_host(
            f.host("web-10", "10.40.0.20"),
            Expect::Any,
            &Actor::new("t"),
        )
        .expect("host");
    assert!(
        wait_until(Duration::from_secs(2), || bind.dig(&fqdn("web-10"), "A")
            == ["10.40.0.20"])
        .is_some(),
        "{}",
        dns.dump()
    );
    assert!(dns.alive());
    eprintln!("{}", dns.dump());
}

#[test]
fn sync_watch_through_the_http_api_survives_a_hostdb_server_restart() {
    let Some(bind) = DnsServer::start() else {
        return;
    };
    let f = Fixture::new(&dns_block(&bind));
    f.put(f.host("web-1", "10.40.0.11"));
    let port = integrations_support::free_port();
    let server = serve(&f, port, &["--anonymous-read"]);
    let url = format!("http://127.0.0.1:{port}");
    let mut dns = Running::spawn(f.kloud(&["sync", "dns", "--watch", "--hostdb", &url]));
    assert!(
        wait_until(Duration::from_secs(20), || bind.dig(&fqdn("web-1"), "A")
            == ["10.40.0.11"])
        .is_some(),
        "{}",
        dns.dump()
    );
    // Written by another tool while the HostDB server runs: followed through the API.
    f.put(f.host("web-2", "10.40.0.12"));
    assert!(
        wait_until(Duration::from_secs(2), || bind.dig(&fqdn("web-2"), "A")
            == ["10.40.0.12"])
        .is_some(),
        "{}",
        dns.dump()
    );

    // The server goes down; the watcher says so, backs off, and removes nothing.
    drop(server);
    f.put(f.host("web-3", "10.40.0.13"));
    assert!(
        wait_until(Duration::from_secs(10), || dns
            .stderr_lines()
            .iter()
            .any(|l| l.contains("HostDB") && l.contains("retrying")))
        .is_some(),
        "{}",
        dns.dump()
    );
    assert_eq!(bind.dig(&fqdn("web-2"), "A"), ["10.40.0.12"]);
    // Back on the same address: reconnect, re-list, converge what was written meanwhile.
    let _server = serve(&f, port, &["--anonymous-read"]);
    assert!(
        wait_until(Duration::from_secs(20), || bind.dig(&fqdn("web-3"), "A")
            == ["10.40.0.13"])
        .is_some(),
        "web-3 did not appear after the HostDB server came back\n{}",
        dns.dump()
    );
    assert!(
        dns.stderr_lines().iter().any(|l| l.contains("reconnected")),
        "{}",
        dns.dump()
    );
    f.delete("web-1");
    assert!(
        wait_until(Duration::from_secs(2), || bind
            .dig(&fqdn("web-1"), "A")
            .is_empty())
        .is_some(),
        "{}",
        dns.dump()
    );
    assert!(dns.alive());
    eprintln!("{}", dns.dump());
}

/// `Store::wait_for_change`, what `sync --watch` waits with: over HTTP one blocking query
/// (the poll interval given is ignored, so a 10 s poll proves it), on SQLite a poll.
#[test]
fn wait_for_change_blocks_over_http_and_polls_sqlite() {
    use kloud::hostdb::client::HttpStore;
    use kloud::server::{spawn, ServerConfig};
    use kloud::hostdb::{Role, Store};
    use std::sync::Arc;
    use std::time::Instant;

    let dir = tempfile::tempdir().expect("tempdir");
    let local: Arc<dyn Store> = Arc::from(hostdb::open("sqlite:h.db", dir.path()).expect("open"));
    let (_, secret) = local.token_create("t", Role::Operator).expect("token");
    let server = spawn(
        "127.0.0.1:0".parse().expect("addr"),
        Arc::clone(&local),
        ServerConfig::default(),
        2,
    )
    .expect("server");
    let remote: Arc<dyn Store> =
        Arc::new(HttpStore::new(&server.url(), Some(secret)).expect("client"));
    let actor = Actor::new("t");
    let mut n = 0;
    for (what, store, poll) in [
        ("sqlite", &local, Duration::from_millis(20)),
        ("http", &remote, Duration::from_secs(10)),
    ] {
        let at = store.index().expect("index");
        // Nothing written: the wait lasts its timeout and answers the same index.
        let t = Instant::now();
        let got = store
            .wait_for_change(at, Duration::from_millis(300), poll)
            .expect("wait");
        assert_eq!(got, at, "{what}");
        assert!(
            t.elapsed() >= Duration::from_millis(290),
            "{what}: {:?}",
            t.elapsed()
        );
        // A write 200 ms in wakes the wait long before its 20 s timeout.
        n += 1;
        let name = format!("w-{n}.{ZONE}");
        let t = Instant::now();
        let got = std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(200));
                store
                    .put_host(Host::machine(&name), Expect::Any, &actor)
                    .expect("write");
            });
            store
                .wait_for_change(at, Duration::from_secs(20), poll)
                .expect("wait")
        });
        let took = t.elapsed();
        assert!(got > at, "{what}: {got} after {at}");
        assert!(
            took >= Duration::from_millis(190) && took < Duration::from_secs(5),
            "{what}: woke after {took:?}"
        );
    }
    // A server holding queries shorter than asked answers early with nothing new: the client
    // then pauses a poll interval, so a loop over it does not spin.
    let (_, secret) = local.token_create("short", Role::Reader).expect("token");
    let short = spawn(
        "127.0.0.1:0".parse().expect("addr"),
        Arc::clone(&local),
        ServerConfig {
            max_wait: Duration::from_millis(50),
            ..ServerConfig::default()
        },
        2,
    )
    .expect("server");
    let client = HttpStore::new(&short.url(), Some(secret)).expect("client");
    let at = local.index().expect("index");
    let t = Instant::now();
    let got = client
        .wait_for_change(at, Duration::from_secs(5), Duration::from_millis(500))
        .expect("wait");
    assert_eq!(got, at);
    assert!(
        (Duration::from_millis(540)..Duration::from_secs(4)).contains(&t.elapsed()),
        "{:?}",
        t.elapsed()
    );
    // A database that went back (restored) counts as a change too.
    let at = local.index().expect("index");
    let got = local
        .wait_for_change(at + 5, Duration::from_secs(5), Duration::from_millis(20))
        .expect("wait");
    assert_eq!(got, at);
}

/// While `sync --watch` holds a 30 s blocking query on an idle HostDB server, Ctrl-C still ends
/// it at once (the wait runs on a helper thread; the watcher checks for a stop every 50 ms).
#[test]
fn sync_watch_over_http_stops_promptly_while_a_query_is_held() {
    let Some(bind) = DnsServer::start() else {
        return;
    };
    let f = Fixture::new(&dns_block(&bind));
    f.put(f.host("web-1", "10.40.0.11"));
    let port = integrations_support::free_port();
    let _server = serve(&f, port, &["--anonymous-read"]);
    let url = format!("http://127.0.0.1:{port}");
    let mut dns = Running::spawn(f.kloud(&["sync", "dns", "--watch", "--hostdb", &url]));
    assert!(
        wait_until(Duration::from_secs(20), || !dns.stdout_lines().is_empty()).is_some(),
        "{}",
        dns.dump()
    );
    // Well into the held query, nothing written meanwhile.
    std::thread::sleep(Duration::from_millis(500));
    let t = std::time::Instant::now();
    dns.interrupt();
    let status = dns.exited_within(Duration::from_secs(5));
    assert!(
        status.is_some(),
        "still running 5 s after Ctrl-C\n{}",
        dns.dump()
    );
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "took {:?} to stop",
        t.elapsed()
    );
    assert_eq!(bind.dig(&fqdn("web-1"), "A"), ["10.40.0.11"]);
}
