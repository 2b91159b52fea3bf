//! The HTTP API as a client sees it: auth, bad input, compare-and-set headers, blocking
//! queries, and a PostgreSQL restart in the middle of a write load.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kloud::hostdb::client::HttpStore;
use kloud::hostdb::{Actor, Expect, Host, Role, Store, StoreError, Write};
use kloud::server::{spawn, Running, ServerConfig};
use kloud::Cpu;
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::{json, Value};

struct Env {
    server: Running,
    store: Arc<dyn Store>,
    admin: String,
    operator: String,
    reader: String,
    http: Client,
    _dir: tempfile::TempDir,
}

fn env_with(config: ServerConfig) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(kloud::hostdb::sqlite::open(&dir.path().join("h.db")).unwrap());
    let (_, admin) = store.token_create("admin", Role::Admin).unwrap();
    let (_, operator) = store.token_create("op", Role::Operator).unwrap();
    let (_, reader) = store.token_create("ro", Role::Reader).unwrap();
    let server = spawn("127.0.0.1:0".parse().unwrap(), store.clone(), config, 2).unwrap();
    Env {
        server,
        store,
        admin,
        operator,
        reader,
        http: Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        _dir: dir,
    }
}

fn env() -> Env {
    env_with(ServerConfig::default())
}

impl Env {
    fn req(&self, method: reqwest::Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let rb = self
            .http
            .request(method, format!("{}{path}", self.server.url()));
        match token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    fn put_host(&self, name: &str, body: Value, token: &str) -> Response {
        self.req(
            reqwest::Method::PUT,
            &format!("/v1/hosts/{name}"),
            Some(token),
        )
        .json(&body)
        .send()
        .unwrap()
    }
}

/// Status and error code of a JSON error answer (asserting it is one).
fn error_of(resp: Response) -> (u16, String) {
    let status = resp.status().as_u16();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "status {status} is not JSON"
    );
    let body: Value = resp.json().unwrap();
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"));
    assert!(body["error"]["message"].is_string(), "{body}");
    (status, code.to_string())
}

fn host_json(name: &str) -> Value {
    json!({ "name": name, "kind": "container", "owner": "t" })
}

fn index_of(resp: &Response) -> u64 {
    resp.headers()["x-hostdb-index"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn tokens_and_roles() {
    let e = env();
    let get = |token: Option<&str>| {
        e.req(reqwest::Method::GET, "/v1/hosts", token)
            .send()
            .unwrap()
    };
    assert_eq!(error_of(get(None)), (401, "unauthorized".into()));
    assert_eq!(
        error_of(get(Some("hdb_nope"))),
        (401, "unauthorized".into())
    );
    let basic = e
        .req(reqwest::Method::GET, "/v1/hosts", None)
        .header("authorization", "Basic Zm9vOmJhcg==")
        .send()
        .unwrap();
    assert_eq!(error_of(basic).0, 401);
    assert_eq!(get(Some(&e.reader)).status(), 200);
    assert_eq!(
        error_of(e.put_host("a", host_json("a"), &e.reader)),
        (403, "forbidden".into())
    );
    assert_eq!(e.put_host("a", host_json("a"), &e.operator).status(), 200);
    let tokens = |t: &str| {
        e.req(reqwest::Method::GET, "/v1/tokens", Some(t))
            .send()
            .unwrap()
    };
    assert_eq!(error_of(tokens(&e.operator)).0, 403);
    assert_eq!(tokens(&e.admin).status(), 200);
    // A token created and revoked over the API stops working at once on this server.
    let created: Value = e
        .req(reqwest::Method::POST, "/v1/tokens", Some(&e.admin))
        .json(&json!({ "name": "tmp", "role": "reader" }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let secret = created["secret"].as_str().unwrap();
    let id = created["token"]["id"].as_str().unwrap();
    assert_eq!(get(Some(secret)).status(), 200);
    let del = e
        .req(
            reqwest::Method::DELETE,
            &format!("/v1/tokens/{id}"),
            Some(&e.admin),
        )
        .send()
        .unwrap();
    assert_eq!(del.status(), 204);
    assert_eq!(error_of(get(Some(secret))).0, 401);
    // The whole history records the token behind each write.
    let hist = e.store.history("a").unwrap();
    assert_eq!(hist[0].actor, "op");
}

#[test]
fn anonymous_read() {
    let e = env_with(ServerConfig {
        anonymous_read: true,
        ..ServerConfig::default()
    });
    let r = e
        .req(reqwest::Method::GET, "/v1/hosts", None)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let w = e
        .req(reqwest::Method::PUT, "/v1/hosts/a", None)
        .json(&host_json("a"))
        .send()
        .unwrap();
    assert_eq!(error_of(w).0, 401);
    let t = e
        .req(reqwest::Method::GET, "/v1/tokens", None)
        .send()
        .unwrap();
    assert_eq!(error_of(t).0, 401);
}

#[test]
fn bad_input_is_a_json_error_and_writes_nothing() {
    let e = env();
    let put_raw = |body: &str, ctype: Option<&str>| {
        let mut rb = e
            .req(reqwest::Method::PUT, "/v1/hosts/a", Some(&e.operator))
            .body(body.to_string());
        if let Some(c) = ctype {
            rb = rb.header("content-type", c);
        }
        rb.send().unwrap()
    };
    let json_ct = Some("application/json");
    assert_eq!(error_of(put_raw("{not json", json_ct)).0, 400);
    assert_eq!(
        error_of(put_raw(
            r#"{"name":"a","kind":"container","cpu":"four"}"#,
            json_ct
        ))
        .0,
        422
    );
    assert_eq!(
        error_of(put_raw(r#"{"name":"a","kind":"vm"}"#, json_ct)).0,
        422
    );
    assert_eq!(
        error_of(put_raw(
            r#"{"name":"a","kind":"container","colour":"red"}"#,
            json_ct
        ))
        .0,
        422
    );
    assert_eq!(
        error_of(put_raw(r#"{"name":"a","kind":"container"}"#, None)).0,
        415
    );
    assert_eq!(
        error_of(e.put_host("a", host_json("b"), &e.operator)).0,
        422
    );
    assert_eq!(
        error_of(e.put_host("Bad_Name", host_json("Bad_Name"), &e.operator)),
        (422, "invalid".into())
    );
    let mut bad_ip = host_json("a");
    bad_ip["ip"] = json!("999.1.1.1");
    assert_eq!(error_of(e.put_host("a", bad_ip, &e.operator)).0, 422);
    let txn = e
        .req(reqwest::Method::POST, "/v1/txn", Some(&e.operator))
        .json(
            &json!({ "writes": [{ "op": "put_host", "host": host_json("a"), "expect": "any" },
                                  { "op": "explode" }] }),
        )
        .send()
        .unwrap();
    assert_eq!(error_of(txn).0, 422);
    for q in [
        "?bogus=1",
        "?limit=0",
        "?limit=x",
        "?kind=vm",
        "?index=-1",
        "?wait=soon",
        "?property=novalue",
    ] {
        let r = e
            .req(
                reqwest::Method::GET,
                &format!("/v1/hosts{q}"),
                Some(&e.reader),
            )
            .send()
            .unwrap();
        assert_eq!(error_of(r).0, 400, "{q}");
    }
    // Leases and tokens are outside the index: no blocking query on them.
    for (path, token) in [("/v1/locks", &e.reader), ("/v1/tokens", &e.admin)] {
        let r = e
            .req(
                reqwest::Method::GET,
                &format!("{path}?index=0&wait=1s"),
                Some(token),
            )
            .send()
            .unwrap();
        assert_eq!(error_of(r), (400, "bad_request".into()), "{path}");
    }
    let r = e
        .req(reqwest::Method::GET, "/v1/no/such/route", Some(&e.reader))
        .send()
        .unwrap();
    assert_eq!(error_of(r), (404, "not_found".into()));
    let r = e
        .req(reqwest::Method::PATCH, "/v1/hosts/a", Some(&e.operator))
        .send()
        .unwrap();
    assert_eq!(error_of(r).0, 405);
    assert_eq!(e.store.index().unwrap(), 0);
    assert!(e.store.get_host("a").unwrap().is_none());
}

#[test]
fn oversized_body_is_413() {
    // A small cap, so the whole body fits the socket buffers and the client reads the answer
    // instead of a reset; the default cap is 1 MiB.
    let e = env_with(ServerConfig {
        max_body: 16 * 1024,
        ..ServerConfig::default()
    });
    let mut big = host_json("a");
    big["properties"] = json!({ "blob": "x".repeat(40 * 1024) });
    assert_eq!(
        error_of(e.put_host("a", big, &e.operator)),
        (413, "body_too_large".into())
    );
    let mut small = host_json("a");
    small["properties"] = json!({ "blob": "x".repeat(8 * 1024) });
    assert_eq!(e.put_host("a", small, &e.operator).status(), 200);
}

#[test]
fn compare_and_set_headers() {
    let e = env();
    let put = |cond: Option<(&str, &str)>| {
        let mut rb = e
            .req(reqwest::Method::PUT, "/v1/hosts/a", Some(&e.operator))
            .json(&host_json("a"));
        if let Some((h, v)) = cond {
            rb = rb.header(h, v);
        }
        rb.send().unwrap()
    };
    let r = put(Some(("if-none-match", "*")));
    assert_eq!(r.status(), 200);
    let first = index_of(&r);
    let r = put(Some(("if-none-match", "*")));
    let status = r.status().as_u16();
    let body: Value = r.json().unwrap();
    assert_eq!(status, 412);
    assert_eq!(body["error"]["code"], "conflict");
    assert_eq!(body["error"]["details"]["actual"], json!(first));
    assert_eq!(error_of(put(Some(("if-match", "\"999\"")))).0, 412);
    assert_eq!(error_of(put(Some(("if-match", "abc")))).0, 400);
    let r = put(Some(("if-match", &format!("\"{first}\""))));
    assert_eq!(r.status(), 200);
    let second = index_of(&r);
    // Racing writers with the same If-Match: exactly one wins.
    let results: Vec<u16> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    put(Some(("if-match", &second.to_string())))
                        .status()
                        .as_u16()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        results.iter().filter(|s| **s == 200).count(),
        1,
        "{results:?}"
    );
    assert_eq!(
        results.iter().filter(|s| **s == 412).count(),
        3,
        "{results:?}"
    );
    // Deletes honour If-Match too, and a txn conflict is 409.
    let d = e
        .req(reqwest::Method::DELETE, "/v1/hosts/a", Some(&e.operator))
        .header("if-match", first.to_string())
        .send()
        .unwrap();
    assert_eq!(error_of(d).0, 412);
    let txn = e
        .req(reqwest::Method::POST, "/v1/txn", Some(&e.operator))
        .json(&json!({ "writes": [{ "op": "put_host", "host": host_json("a"), "expect": "absent" }] }))
        .send()
        .unwrap();
    assert_eq!(error_of(txn), (409, "conflict".into()));
    let r = e
        .req(reqwest::Method::DELETE, "/v1/hosts/zz", Some(&e.operator))
        .send()
        .unwrap();
    assert_eq!(error_of(r).0, 404);
}

/// Writes check, in order: the token's role, the body's name against the path, the
/// precondition header; then a delete of a missing object without one is 404. Hosts and tags
/// share that preamble, so both are held to it.
#[test]
fn write_errors_are_reported_in_order_for_hosts_and_tags() {
    let e = env();
    for kind in ["hosts", "tags"] {
        let body = |name: &str| match kind {
            "hosts" => host_json(name),
            _ => json!({ "name": name }),
        };
        let put = |token: &str, name_in_body: &str, if_match: Option<&str>| {
            let mut rb = e
                .req(reqwest::Method::PUT, &format!("/v1/{kind}/x"), Some(token))
                .json(&body(name_in_body));
            if let Some(m) = if_match {
                rb = rb.header("if-match", m);
            }
            error_of(rb.send().unwrap())
        };
        // A reader may not write, whatever else is wrong with the request.
        assert_eq!(
            put(&e.reader, "y", Some("nonsense")),
            (403, "forbidden".into())
        );
        // The body naming another object is reported before a malformed header.
        assert_eq!(
            put(&e.operator, "y", Some("nonsense")),
            (422, "invalid".into())
        );
        assert_eq!(
            put(&e.operator, "x", Some("nonsense")),
            (400, "bad_request".into())
        );
        // A stale If-Match on a missing object is a failed precondition.
        assert_eq!(put(&e.operator, "x", Some("\"7\"")).0, 412);
        let delete = |if_match: Option<&str>| {
            let mut rb = e.req(
                reqwest::Method::DELETE,
                &format!("/v1/{kind}/x"),
                Some(&e.operator),
            );
            if let Some(m) = if_match {
                rb = rb.header("if-match", m);
            }
            error_of(rb.send().unwrap())
        };
        assert_eq!(delete(None), (404, "not_found".into()), "{kind}");
        assert_eq!(delete(Some("nonsense")).0, 400, "{kind}");
        assert_eq!(delete(Some("\"7\"")).0, 412, "{kind}");
    }
    // Nothing was written.
    assert_eq!(e.store.index().unwrap(), 0);
}

#[test]
fn blocking_queries() {
    let e = env();
    let r = e.put_host("a", host_json("a"), &e.operator);
    let idx = index_of(&r);
    // Already past: answers at once.
    let t = Instant::now();
    let r = e
        .req(
            reqwest::Method::GET,
            "/v1/hosts/a?index=0&wait=10s",
            Some(&e.reader),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(index_of(&r), idx);
    // Nothing changes: answers when the wait ends, with the same index.
    let t = Instant::now();
    let r = e
        .req(
            reqwest::Method::GET,
            &format!("/v1/hosts?index={idx}&wait=300ms"),
            Some(&e.reader),
        )
        .send()
        .unwrap();
    assert!(t.elapsed() >= Duration::from_millis(290));
    assert_eq!(index_of(&r), idx);
    // A held get of `a` ignores a write to `b` and answers the write to `a`.
    std::thread::scope(|s| {
        let held = s.spawn(|| {
            let r = e
                .req(
                    reqwest::Method::GET,
                    &format!("/v1/hosts/a?index={idx}&wait=20s"),
                    Some(&e.reader),
                )
                .send()
                .unwrap();
            let index = index_of(&r);
            let host: Value = r.json().unwrap();
            (Instant::now(), index, host)
        });
        let list = s.spawn(|| {
            let r = e
                .req(
                    reqwest::Method::GET,
                    &format!("/v1/hosts?index={idx}&wait=20s"),
                    Some(&e.reader),
                )
                .send()
                .unwrap();
            (Instant::now(), index_of(&r))
        });
        std::thread::sleep(Duration::from_millis(300));
        let b_at = Instant::now();
        assert_eq!(e.put_host("b", host_json("b"), &e.operator).status(), 200);
        std::thread::sleep(Duration::from_millis(500));
        let mut changed = host_json("a");
        changed["class"] = json!("web");
        let a_at = Instant::now();
        let w = e.put_host("a", changed, &e.operator);
        let a_index = index_of(&w);
        let (got_at, index, host) = held.join().unwrap();
        assert!(got_at >= a_at, "the get answered before `a` changed");
        assert_eq!(index, a_index);
        assert_eq!(host["class"], "web");
        let (list_at, list_index) = list.join().unwrap();
        assert!(
            list_at >= b_at && list_at < a_at,
            "the list should answer the write to `b`"
        );
        assert_eq!(list_index, idx + 1);
    });
}

#[test]
fn many_watchers_all_answered() {
    let e = env();
    let idx = index_of(&e.put_host("a", host_json("a"), &e.operator));
    let n = 200;
    let answered = std::thread::scope(|s| {
        let hs: Vec<_> = (0..n)
            .map(|_| {
                s.spawn(|| {
                    let r = e
                        .req(
                            reqwest::Method::GET,
                            &format!("/v1/hosts/a?index={idx}&wait=30s"),
                            Some(&e.reader),
                        )
                        .send()
                        .unwrap();
                    index_of(&r)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1000));
        let w = index_of(&e.put_host("a", host_json("a"), &e.operator));
        hs.into_iter()
            .map(|h| h.join().unwrap())
            .filter(|i| *i == w)
            .count()
    });
    assert_eq!(answered, n);
}

#[test]
fn writes_by_another_process_wake_watchers() {
    let e = env();
    let dir = e._dir.path().to_path_buf();
    let before: u64 = e
        .req(reqwest::Method::GET, "/v1/index", Some(&e.reader))
        .send()
        .unwrap()
        .headers()["x-hostdb-index"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    std::thread::scope(|s| {
        let held = s.spawn(|| {
            let started = std::time::Instant::now();
            let r = e
                .req(
                    reqwest::Method::GET,
                    &format!("/v1/hosts?index={before}&wait=20s"),
                    Some(&e.reader),
                )
                .send()
                .unwrap();
            let index: u64 = r.headers()["x-hostdb-index"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let body: serde_json::Value = r.json().unwrap();
            (started.elapsed(), index, body)
        });
        std::thread::sleep(Duration::from_millis(300));
        // A second store on the same file stands for another process (the CLI, say).
        let other = kloud::hostdb::sqlite::open(&dir.join("h.db")).unwrap();
        let mut h = Host::container("x");
        h.owner = Some("t".into());
        other
            .put_host(h, Expect::Any, &Actor::new("other"))
            .unwrap();
        let (took, index, body) = held.join().unwrap();
        // Answered because of the write — not because the 20 s wait ran out — and it shows it.
        assert!(
            took >= Duration::from_millis(250),
            "answered before the write: {took:?}"
        );
        assert!(
            took < Duration::from_secs(5),
            "the write did not wake the watcher: {took:?}"
        );
        assert!(index > before, "index {index} did not move past {before}");
        let names: Vec<&str> = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"x"), "{body}");
    });
}

#[test]
fn client_maps_errors_back() {
    let e = env();
    let reader = HttpStore::new(&e.server.url(), Some(e.reader.clone())).unwrap();
    let err = reader
        .put_host(Host::container("a"), Expect::Any, &Actor::new("t"))
        .unwrap_err();
    assert!(matches!(err, StoreError::Forbidden(_)), "{err:?}");
    let nobody = HttpStore::new(&e.server.url(), None).unwrap();
    assert!(matches!(nobody.index(), Err(StoreError::Unauthorized(_))));
    let down = HttpStore::new("http://127.0.0.1:1", None).unwrap();
    assert!(matches!(down.index(), Err(StoreError::Unavailable(_))));
    assert!(matches!(
        HttpStore::new("https://x", None),
        Err(StoreError::Url { .. })
    ));
}

/// A private PostgreSQL cluster (so restarting it disturbs no other test).
struct PrivatePg {
    bin: String,
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivatePg {
    fn start() -> Option<PrivatePg> {
        let bin = match std::env::var("KLOUD_TEST_PG_BIN") {
            Ok(b) if !b.is_empty() => b,
            _ if kloud_provider_api::under_ci() => {
                panic!("CI=true but KLOUD_TEST_PG_BIN is not set: source scripts/setup/postgres.sh")
            }
            _ => {
                eprintln!("skipping: KLOUD_TEST_PG_BIN not set (source scripts/setup/postgres.sh)");
                return None;
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let ok = std::process::Command::new("chown")
            .args(["postgres:postgres", dir.path().to_str().unwrap()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "chown");
        let pg = PrivatePg { bin, dir, port };
        pg.pg(&["initdb", "-D", &pg.data(), "-A", "trust", "-U", "postgres"]);
        pg.ctl("start");
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn pg(&self, args: &[&str]) {
        let out = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(format!("{}/{}", self.bin, args[0]))
            .args(&args[1..])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ctl(&self, action: &str) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        self.pg(&[
            "pg_ctl",
            "-D",
            &self.data(),
            "-l",
            &log,
            "-w",
            "-m",
            "fast",
            "-o",
            &opts,
            action,
        ]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(format!("{}/pg_ctl", self.bin))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
    }
}

#[test]
fn postgres_restart_during_load() {
    let Some(pg) = PrivatePg::start() else { return };
    let store: Arc<dyn Store> = Arc::new(kloud::hostdb::postgres::open(&pg.url()).unwrap());
    let (_, token) = store.token_create("load", Role::Operator).unwrap();
    let server = spawn(
        "127.0.0.1:0".parse().unwrap(),
        store.clone(),
        ServerConfig::default(),
        2,
    )
    .unwrap();
    let client = HttpStore::new(&server.url(), Some(token)).unwrap();
    let batch = |i: usize| -> Vec<Write> {
        (0..5)
            .map(|j| {
                let mut h = Host::container(&format!("b{i}-h{j}"));
                h.owner = Some("load".into());
                Write::PutHost {
                    host: h,
                    expect: Expect::Absent,
                }
            })
            .collect()
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (ok, unavailable, other) = std::thread::scope(|s| {
        let load = s.spawn(|| {
            let (mut ok, mut unavailable, mut other) = (Vec::new(), 0usize, Vec::new());
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match client.write(batch(i), &Actor::new("load")) {
                    Ok(_) => ok.push(i),
                    Err(StoreError::Unavailable(_)) => unavailable += 1,
                    Err(e) => other.push(format!("{e}")),
                }
                i += 1;
            }
            (ok, unavailable, other)
        });
        std::thread::sleep(Duration::from_millis(500));
        pg.ctl("restart");
        // Writes must succeed again soon after the server is back.
        let t = Instant::now();
        loop {
            let probe =
                client.put_host(Host::container("probe"), Expect::Any, &Actor::new("probe"));
            if probe.is_ok() {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "no recovery: {probe:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        load.join().unwrap()
    });
    assert!(other.is_empty(), "unexpected errors: {other:?}");
    assert!(ok.len() > 10, "too little load got through: {}", ok.len());
    eprintln!("{} batches written, {unavailable} answered 503", ok.len());
    // Never half-written: every batch is all there or not at all; every acknowledged one is.
    let hosts = store.all_hosts(&Default::default()).unwrap();
    let mut per_batch = std::collections::BTreeMap::<String, usize>::new();
    for h in hosts.iter().filter(|h| h.name.starts_with('b')) {
        let b = h.name.split('-').next().unwrap().to_string();
        *per_batch.entry(b).or_default() += 1;
    }
    assert!(per_batch.values().all(|n| *n == 5), "{per_batch:?}");
    for i in ok {
        assert_eq!(
            per_batch.get(&format!("b{i}")),
            Some(&5),
            "acknowledged batch {i} missing"
        );
    }
}

/// A token scoped to owner `team-a` (`POST /v1/tokens` with `owner`, as `kloud hostdb token
/// create --owner` makes) creates, changes and deletes `team-a`'s records, and nothing else:
/// another owner's record, a record moved to or from another owner, one without an owner, a
/// tag, or a transaction holding any of these is `403 forbidden_owner` and writes nothing.
/// Reads are unchanged; the HTTP client maps the answer back to `StoreError::ForbiddenOwner`.
#[test]
fn a_token_scoped_to_an_owner_writes_only_that_owners_records() {
    let e = env();
    let actor = Actor::new("setup");
    for (name, owner) in [("a-1", "team-a"), ("b-1", "team-b")] {
        let mut h = Host::container(name);
        h.owner = Some(owner.into());
        e.store.put_host(h, Expect::Any, &actor).unwrap();
    }
    let made = e
        .req(reqwest::Method::POST, "/v1/tokens", Some(&e.admin))
        .json(&json!({ "name": "team-a-ci", "role": "operator", "owner": "team-a" }))
        .send()
        .unwrap();
    assert_eq!(made.status().as_u16(), 201);
    let made: Value = made.json().unwrap();
    assert_eq!(made["token"]["owner"], "team-a", "{made}");
    let scoped = made["secret"].as_str().unwrap().to_string();
    let owned = |name: &str, owner: Option<&str>| {
        let mut v = json!({ "name": name, "kind": "container" });
        if let Some(o) = owner {
            v["owner"] = json!(o);
        }
        v
    };

    // Its own owner's records: create, change, delete.
    assert_eq!(
        e.put_host("a-2", owned("a-2", Some("team-a")), &scoped)
            .status()
            .as_u16(),
        200
    );
    let mut changed = owned("a-1", Some("team-a"));
    changed["class"] = json!("web");
    assert_eq!(e.put_host("a-1", changed, &scoped).status().as_u16(), 200);
    let del = |name: &str| {
        e.req(
            reqwest::Method::DELETE,
            &format!("/v1/hosts/{name}"),
            Some(&scoped),
        )
        .send()
        .unwrap()
    };
    assert_eq!(del("a-2").status().as_u16(), 200);

    let forbidden = (403, "forbidden_owner".to_string());
    // Another owner's: create, take over, change, delete.
    assert_eq!(
        error_of(e.put_host("b-2", owned("b-2", Some("team-b")), &scoped)),
        forbidden
    );
    assert_eq!(
        error_of(e.put_host("b-1", owned("b-1", Some("team-a")), &scoped)),
        forbidden,
        "taking another owner's record over"
    );
    assert_eq!(
        error_of(e.put_host("b-1", owned("b-1", Some("team-b")), &scoped)),
        forbidden
    );
    assert_eq!(error_of(del("b-1")), forbidden);
    // Giving its own record away, or writing one without an owner.
    assert_eq!(
        error_of(e.put_host("a-1", owned("a-1", Some("team-b")), &scoped)),
        forbidden
    );
    assert_eq!(
        error_of(e.put_host("n-1", owned("n-1", None), &scoped)),
        forbidden
    );
    // Tags have no owner and are shared by every owner.
    let tag = e
        .req(reqwest::Method::PUT, "/v1/tags/web", Some(&scoped))
        .json(&json!({ "name": "web" }))
        .send()
        .unwrap();
    assert_eq!(error_of(tag), forbidden);
    // A transaction is all or nothing: its own record is not written either.
    let txn = e
        .req(reqwest::Method::POST, "/v1/txn", Some(&scoped))
        .json(&json!({ "writes": [
            { "op": "put_host", "host": owned("a-3", Some("team-a")), "expect": "any" },
            { "op": "delete_host", "name": "b-1", "expect": "any" },
        ] }))
        .send()
        .unwrap();
    let (status, code) = error_of(txn);
    assert_eq!((status, code.as_str()), (403, "forbidden_owner"));
    assert!(e.store.get_host("a-3").unwrap().is_none());

    // Nothing of team-b's changed; reads are unchanged.
    let b1 = e.store.get_host("b-1").unwrap().unwrap();
    assert_eq!(b1.owner.as_deref(), Some("team-b"));
    assert!(e.store.get_host("b-2").unwrap().is_none());
    assert!(e.store.get_host("n-1").unwrap().is_none());
    let read = e
        .req(reqwest::Method::GET, "/v1/hosts/b-1", Some(&scoped))
        .send()
        .unwrap();
    assert_eq!(read.status().as_u16(), 200);

    // The client sees the typed error.
    let client = HttpStore::new(&e.server.url(), Some(scoped.clone())).unwrap();
    let mut b = Host::container("b-3");
    b.owner = Some("team-b".into());
    let err = client.put_host(b, Expect::Any, &actor).unwrap_err();
    assert!(
        matches!(&err, StoreError::ForbiddenOwner { object, owner, scope }
            if object == "b-3" && owner.as_deref() == Some("team-b") && scope == "team-a"),
        "{err:?}"
    );
    // An admin token cannot be scoped: it could make itself an unscoped one.
    let admin = e
        .req(reqwest::Method::POST, "/v1/tokens", Some(&e.admin))
        .json(&json!({ "name": "x", "role": "admin", "owner": "team-a" }))
        .send()
        .unwrap();
    assert_eq!(error_of(admin), (422, "invalid".to_string()));
}

/// `kloud hostdb token create --owner team-a` makes a scoped token that the server then
/// holds to `team-a`'s records; `token list` shows the scope.
#[test]
fn the_cli_makes_scoped_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let url = format!("sqlite:{}", db.display());
    let kloud = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kloud"))
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let secret = kloud(&[
        "hostdb", "token", "create", "--role", "operator", "--owner", "team-a", "--name", "ci-a",
        "--store", &url,
    ]);
    let secret = secret.trim().to_string();
    let list = kloud(&["hostdb", "token", "list", "--store", &url]);
    let row = list.lines().find(|l| l.contains("ci-a")).unwrap();
    assert!(row.contains("team-a"), "{list}");

    let store: Arc<dyn Store> = Arc::new(kloud::hostdb::sqlite::open(&db).unwrap());
    let server = spawn(
        "127.0.0.1:0".parse().unwrap(),
        store.clone(),
        ServerConfig::default(),
        2,
    )
    .unwrap();
    let client = HttpStore::new(&server.url(), Some(secret)).unwrap();
    let mut a = Host::container("a-1");
    a.owner = Some("team-a".into());
    client.put_host(a, Expect::Any, &Actor::new("ci")).unwrap();
    let mut b = Host::container("b-1");
    b.owner = Some("team-b".into());
    let err = client
        .put_host(b, Expect::Any, &Actor::new("ci"))
        .unwrap_err();
    assert!(matches!(err, StoreError::ForbiddenOwner { .. }), "{err:?}");
    assert!(store.get_host("b-1").unwrap().is_none());
}

/// Follows `Link: <…>; rel="next"` from `path`, asserting no page holds more than `max`
/// items; returns every item and how many pages there were.
fn follow_links(e: &Env, path: &str, max: usize) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut pages = 0;
    let mut next = Some(path.to_string());
    while let Some(url) = next.take() {
        let resp = e
            .req(reqwest::Method::GET, &url, Some(&e.reader))
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{url}");
        next = resp.headers().get("link").map(|l| {
            let l = l.to_str().unwrap();
            assert!(l.ends_with("; rel=\"next\""), "{l}");
            l[1..l.find('>').unwrap()].to_string()
        });
        assert_eq!(
            next.is_some(),
            resp.headers().get("x-hostdb-next").is_some(),
            "both next headers or neither"
        );
        let page: Vec<Value> = resp.json().unwrap();
        assert!(page.len() <= max, "{url}: {} items", page.len());
        items.extend(page);
        pages += 1;
    }
    (items, pages)
}

/// `/v1/snapshot`, `/v1/history/{name}`, `/v1/tags` and `/v1/sd/prometheus` never answer more
/// than the server's page limit (`Limits::page_limit`, 7 here), say where the next page starts,
/// and refuse a larger `limit`; the HTTP client follows the pages, so it sees exactly what the
/// store holds.
#[test]
fn lists_answer_at_most_a_page_and_the_client_sees_everything() {
    let mut config = ServerConfig::default();
    config.limits.page_limit = 7;
    let e = env_with(config);
    let actor = Actor::new("setup");
    let mut writes = Vec::new();
    for i in 0..9 {
        let mut m = Host::machine(&format!("m{i:02}.dc1.test"));
        m.cpu = Some(Cpu::from_cores(8));
        writes.push(Write::PutHost {
            host: m,
            expect: Expect::Any,
        });
    }
    for i in 0..20 {
        let mut h = Host::container(&format!("web-{i:02}.dc1.test"));
        h.owner = Some(if i % 3 == 0 { "other" } else { "dc1.test" }.into());
        h.machine = Some(format!("m{:02}.dc1.test", i % 9));
        h.ip = Some(format!("10.0.0.{}", i + 10));
        h.state = Some(kloud::hostdb::State::Running);
        writes.push(Write::PutHost {
            host: h,
            expect: Expect::Any,
        });
    }
    for i in 0..15 {
        writes.push(Write::PutTag {
            tag: kloud::hostdb::Tag::new(&format!("tag-{i:02}")),
            expect: Expect::Any,
        });
    }
    e.store.write(writes, &actor).unwrap();
    for i in 0..11 {
        let mut h = Host::container("web-00.dc1.test");
        h.owner = Some("other".into());
        h.class = Some(format!("c{i}"));
        e.store.put_host(h, Expect::Any, &actor).unwrap();
    }

    // Raw pages: at most 7, and a larger limit is refused.
    let (tags, pages) = follow_links(&e, "/v1/tags", 7);
    assert_eq!((tags.len(), pages), (15, 3));
    let (history, _) = follow_links(&e, "/v1/history/web-00.dc1.test", 7);
    assert_eq!(history.len(), 12);
    let (groups, pages) = follow_links(&e, "/v1/sd/prometheus?port=9100", 7);
    assert!(pages > 1, "{pages}");
    let unpaged: Value = serde_json::from_str(
        &kloud::server::sd::prometheus_body(
            &*e.store,
            &kloud::server::sd::PrometheusQuery::parse(None, None).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(Value::Array(groups), unpaged);
    for path in [
        "/v1/tags?limit=8",
        "/v1/history/web-00.dc1.test?limit=8",
        "/v1/snapshot?owner=dc1.test&limit=8",
        "/v1/sd/prometheus?limit=8",
    ] {
        let resp = e
            .req(reqwest::Method::GET, path, Some(&e.reader))
            .send()
            .unwrap();
        assert_eq!(error_of(resp), (400, "bad_request".into()), "{path}");
    }
    let mut snapshot_pages = 0;
    let mut after: Option<String> = None;
    loop {
        let url = match &after {
            None => "/v1/snapshot?owner=dc1.test".to_string(),
            Some(a) => format!("/v1/snapshot?owner=dc1.test&after={a}"),
        };
        let page: Value = e
            .req(reqwest::Method::GET, &url, Some(&e.reader))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let n: usize = ["machines", "hosts", "others", "tags"]
            .iter()
            .map(|k| page[k].as_array().map_or(0, Vec::len))
            .sum();
        assert!(n <= 7, "{n} items in {page}");
        snapshot_pages += 1;
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    // 9 machines + 13 hosts + 7 others + 15 tags = 44 items: 7 pages.
    assert_eq!(snapshot_pages, 7);

    // The client follows pages and sees exactly what the store holds.
    let client = HttpStore::new(&e.server.url(), Some(e.reader.clone())).unwrap();
    assert_eq!(
        client.snapshot("dc1.test").unwrap(),
        e.store.snapshot("dc1.test").unwrap()
    );
    assert_eq!(client.list_tags().unwrap(), e.store.list_tags().unwrap());
    assert_eq!(
        client.history("web-00.dc1.test").unwrap(),
        e.store.history("web-00.dc1.test").unwrap()
    );
}
