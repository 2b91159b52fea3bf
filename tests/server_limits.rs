//! The HTTP server's limits against real clients over loopback: slow and idle connections are
//! closed by the header-read timeout, the connection cap queues, the held-query cap answers
//! 503, failed token lookups are cached, and a stuck call is cut off by the request timeout.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kloud::hostdb::{Role, Store};
use kloud::server::{spawn, Limits, Running, ServerConfig};
use reqwest::blocking::Client;

struct Env {
    server: Running,
    reader: String,
    operator: String,
    db: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn env(limits: Limits) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let store: Arc<dyn Store> = Arc::new(kloud::hostdb::sqlite::open(&db).unwrap());
    let (_, reader) = store.token_create("ro", Role::Reader).unwrap();
    let (_, operator) = store.token_create("op", Role::Operator).unwrap();
    let config = ServerConfig {
        limits,
        ..ServerConfig::default()
    };
    let server = spawn("127.0.0.1:0".parse().unwrap(), store, config, 2).unwrap();
    Env {
        server,
        reader,
        operator,
        db,
        _dir: dir,
    }
}

fn http(timeout: Duration) -> Client {
    Client::builder().timeout(timeout).build().unwrap()
}

/// Reads until the server closes the connection; how long after `t` that was.
fn closed_after(mut s: TcpStream, t: Instant, max: Duration) -> Duration {
    s.set_read_timeout(Some(max)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return t.elapsed(),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return t.elapsed(),
            Err(e) => panic!("not closed within {max:?}: {e}"),
        }
    }
}

#[test]
fn a_client_that_never_finishes_its_headers_is_closed_by_the_header_timeout() {
    let e = env(Limits {
        header_read_timeout: Duration::from_millis(500),
        ..Limits::default()
    });
    // Nothing at all, and half a request: both are closed.
    let t = Instant::now();
    let silent = TcpStream::connect(e.server.addr).unwrap();
    let mut half = TcpStream::connect(e.server.addr).unwrap();
    half.write_all(b"GET /v1/index HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    for s in [silent, half] {
        let took = closed_after(s, t, Duration::from_secs(5));
        assert!(took >= Duration::from_millis(400), "closed early: {took:?}");
        assert!(took < Duration::from_secs(3), "closed late: {took:?}");
    }
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let e = env(Limits {
        header_read_timeout: Duration::from_millis(500),
        ..Limits::default()
    });
    let mut s = TcpStream::connect(e.server.addr).unwrap();
    write!(
        s,
        "GET /v1/index HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        e.reader
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    // The answer came; now the connection sits idle and is closed.
    let took = closed_after(s, Instant::now(), Duration::from_secs(5));
    assert!(
        took < Duration::from_secs(3),
        "idle connection kept {took:?}"
    );
}

#[test]
fn connections_beyond_the_cap_wait_until_one_closes() {
    let e = env(Limits {
        max_connections: 2,
        header_read_timeout: Duration::from_secs(30),
        ..Limits::default()
    });
    let a = TcpStream::connect(e.server.addr).unwrap();
    let _b = TcpStream::connect(e.server.addr).unwrap();
    // Give the server a moment to accept both.
    std::thread::sleep(Duration::from_millis(200));
    let url = format!("{}/v1/index", e.server.url());
    let refused = http(Duration::from_millis(500))
        .get(&url)
        .bearer_auth(&e.reader)
        .send();
    assert!(
        refused.is_err(),
        "a third connection was served: {refused:?}"
    );
    // A queued client is served as soon as a slot frees.
    let (reader, u) = (e.reader.clone(), url.clone());
    let waiting = std::thread::spawn(move || {
        let t = Instant::now();
        let r = http(Duration::from_secs(10))
            .get(&u)
            .bearer_auth(&reader)
            .send();
        (r.map(|r| r.status().as_u16()), t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    drop(a);
    let (status, took) = waiting.join().unwrap();
    assert_eq!(status.unwrap(), 200);
    assert!(took >= Duration::from_millis(250), "not queued: {took:?}");
}

#[test]
fn blocking_queries_beyond_the_cap_are_answered_503() {
    let e = env(Limits {
        max_held: 2,
        ..Limits::default()
    });
    let client = http(Duration::from_secs(20));
    let index = client
        .get(format!("{}/v1/index", e.server.url()))
        .bearer_auth(&e.reader)
        .send()
        .unwrap()
        .headers()["x-hostdb-index"]
        .to_str()
        .unwrap()
        .to_string();
    let url = format!("{}/v1/hosts?index={index}&wait=3s", e.server.url());
    let held: Vec<_> = (0..2)
        .map(|_| {
            let (c, u, t) = (client.clone(), url.clone(), e.reader.clone());
            std::thread::spawn(move || c.get(&u).bearer_auth(&t).send().unwrap().status())
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let third = client.get(&url).bearer_auth(&e.reader).send().unwrap();
    assert_eq!(third.status().as_u16(), 503);
    let body: serde_json::Value = third.json().unwrap();
    assert_eq!(body["error"]["code"], "too_many_watchers", "{body}");
    // A plain read is not held and still answers.
    let plain = client
        .get(format!("{}/v1/hosts", e.server.url()))
        .bearer_auth(&e.reader)
        .send()
        .unwrap();
    assert_eq!(plain.status().as_u16(), 200);
    for h in held {
        assert_eq!(h.join().unwrap().as_u16(), 200);
    }
    // Their permits are back: a held query is admitted again.
    let again = client
        .get(format!(
            "{}/v1/hosts?index={index}&wait=100ms",
            e.server.url()
        ))
        .bearer_auth(&e.reader)
        .send()
        .unwrap();
    assert_eq!(again.status().as_u16(), 200);
}

#[test]
fn a_failed_token_lookup_is_cached_and_does_not_reach_the_database_again() {
    let e = env(Limits::default());
    let client = http(Duration::from_secs(20));
    let url = format!("{}/v1/index", e.server.url());
    let status = |token: &str| {
        client
            .get(&url)
            .bearer_auth(token)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(status(&e.reader), 200);
    assert_eq!(status("kl_wrong_token"), 401);
    // Take the tokens table away behind the server's back: a lookup would now fail with a
    // database error; the cached answers do not look.
    let conn = rusqlite::Connection::open(&e.db).unwrap();
    conn.execute_batch("DROP TABLE tokens").unwrap();
    for _ in 0..20 {
        assert_eq!(status("kl_wrong_token"), 401, "negative cache missed");
    }
    assert_eq!(status(&e.reader), 200, "positive cache missed");
    // A token never seen does reach the database (and so fails with its error).
    assert_eq!(status("kl_another_wrong_token"), 500);
}

#[test]
fn a_stuck_call_is_cut_off_by_the_request_timeout() {
    let e = env(Limits {
        request_timeout: Duration::from_millis(500),
        ..Limits::default()
    });
    // Hold SQLite's write lock from another connection: the server's write waits on it.
    let conn = rusqlite::Connection::open(&e.db).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let t = Instant::now();
    let resp = http(Duration::from_secs(20))
        .put(format!("{}/v1/hosts/web-1", e.server.url()))
        .bearer_auth(&e.operator)
        .json(&serde_json::json!({"name": "web-1", "kind": "container", "owner": "t"}))
        .send()
        .unwrap();
    let took = t.elapsed();
    assert_eq!(resp.status().as_u16(), 503);
    let body: serde_json::Value = resp.json().unwrap();
    assert_eq!(body["error"]["code"], "timeout", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("read before retrying"),
        "{body}"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
    conn.execute_batch("ROLLBACK").unwrap();
}
