//! The Prometheus http_sd endpoint of `kloud hostdb serve` (`GET /v1/sd/prometheus`) against
//! a real Prometheus: the server runs as a child process over a SQLite HostDB, Prometheus
//! (started on a free loopback port, `refresh_interval: 1s`, a reader token as its bearer
//! credentials) must list exactly the managed hosts with kloud's labels, and follow hosts
//! written and deleted through the API. Also the endpoint's HTTP contract: auth, content
//! type, the index header, bad parameters, and that Prometheus keeps its targets while the
//! server is down.
//!
//! Host addresses are 127.0.x.y and the exporter port 9 so the scrapes stay on loopback.

mod integrations_support;

use std::collections::BTreeSet;
use std::time::Instant;

use integrations_support::prometheus::{prometheus_bin, Prometheus};
use integrations_support::{free_port, serve, Fixture, ZONE};
use kloud::hostdb::client::HttpStore;
use kloud::hostdb::{Actor, Expect, Role, State, Store};
use serde_json::Value;

const JOB: &str = "kloud";

fn fqdn(name: &str) -> String {
    format!("{name}.{ZONE}")
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|n| fqdn(n)).collect()
}

#[test]
fn prometheus_discovers_exactly_the_managed_hosts_through_hostdb_serve() {
    let Some(bin) = prometheus_bin() else { return };
    let f = Fixture::new("");
    let (_, reader) = f
        .store
        .token_create("prometheus", Role::Reader)
        .expect("token");
    let (_, operator) = f.store.token_create("ops", Role::Operator).expect("token");
    f.put(f.host("web-1", "127.0.1.1"));
    f.put(f.host("web-2", "127.0.1.2"));
    // Not targets: a host being deleted, and a running host without an address yet.
    let mut going = f.host("web-3", "127.0.1.3");
    going.state = Some(State::Deleting);
    f.put(going);
    let mut no_ip = f.host("web-4", "127.0.1.4");
    no_ip.ip = None;
    f.put(no_ip);

    let port = free_port();
    let server = serve(&f, port, &[]);
    let url = format!("http://127.0.0.1:{port}");
    let sd = format!("{url}/v1/sd/prometheus?port=9");

    // The HTTP contract, as Prometheus and other clients see it.
    let http = reqwest::blocking::Client::new();
    let resp = http.get(&sd).send().expect("GET");
    assert_eq!(resp.status().as_u16(), 401, "reads need a token");
    let resp = http.get(&sd).bearer_auth(&reader).send().expect("GET");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let index: u64 = resp
        .headers()
        .get("x-hostdb-index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("index header");
    assert_eq!(index, f.store.index().expect("index"));
    let body: Value = resp.json().expect("JSON body");
    let targets: Vec<&str> = body
        .as_array()
        .expect("a list of target groups")
        .iter()
        .filter_map(|g| g["targets"][0].as_str())
        .collect();
    assert_eq!(targets, ["127.0.1.1:9", "127.0.1.2:9"]);
    for bad in ["port=0", "port=65536", "port=x", "color=red"] {
        let resp = http
            .get(format!("{url}/v1/sd/prometheus?{bad}"))
            .bearer_auth(&reader)
            .send()
            .expect("GET");
        assert_eq!(resp.status().as_u16(), 400, "{bad}");
    }
    let other_owner = http
        .get(format!("{url}/v1/sd/prometheus?owner=nobody"))
        .bearer_auth(&reader)
        .send()
        .expect("GET")
        .json::<Value>()
        .expect("JSON");
    assert_eq!(other_owner, Value::Array(vec![]), "`owner` filters");

    // Prometheus itself, with the reader token as its credentials. `type: Bearer` is the
    // documented default, but Prometheus 2.42's http_sd sends the bare token without it.
    let dir = tempfile::tempdir().expect("tempdir");
    let prom = Prometheus::start(
        &bin,
        dir.path(),
        &format!(
            "- job_name: {JOB}\n  http_sd_configs:\n  - url: '{sd}'\n    refresh_interval: 1s\n    \
             authorization:\n      type: Bearer\n      credentials: '{reader}'\n"
        ),
    );
    let seen = prom.wait_for(&[JOB], &names(&["web-1", "web-2"]));
    let web1 = &seen[JOB][&fqdn("web-1")];
    assert_eq!(web1["__address__"], "127.0.1.1:9");
    assert_eq!(web1["class"], "web");
    assert_eq!(web1["machine"], fqdn("hw-1"));
    assert_eq!(web1["rack"], "r1");
    assert_eq!(web1["switch"], "sw-a");
    assert_eq!(web1["tags"], ",web,");

    // Written and deleted through the API: Prometheus follows at its next refresh.
    let api = HttpStore::new(&url, Some(operator)).expect("client");
    let actor = Actor::new("test");
    let written = Instant::now();
    api.put_host(f.host("web-5", "127.0.1.5"), Expect::Any, &actor)
        .expect("put through the API");
    prom.wait_for(&[JOB], &names(&["web-1", "web-2", "web-5"]));
    let added = written.elapsed();
    api.delete_host(&fqdn("web-1"), Expect::Any, &actor)
        .expect("delete through the API");
    let mut moved = f.host("web-2", "127.0.1.22");
    moved.class = Some("api".into());
    api.put_host(moved, Expect::Any, &actor).expect("update");
    let seen = prom.wait_for(&[JOB], &names(&["web-2", "web-5"]));
    let web2 = &seen[JOB][&fqdn("web-2")];
    assert_eq!(web2["__address__"], "127.0.1.22:9");
    assert_eq!(web2["class"], "api");
    eprintln!("API write -> Prometheus target: {} ms", added.as_millis());

    // HostDB unreachable: Prometheus keeps the targets of the last good answer.
    drop(server);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let kept: BTreeSet<String> = prom
        .targets()
        .get(JOB)
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default();
    assert_eq!(kept, names(&["web-2", "web-5"]), "{}", prom.log());
    assert!(
        prom.log().contains("Unable to refresh target groups"),
        "the refreshes did fail meanwhile\n{}",
        prom.log()
    );
}
