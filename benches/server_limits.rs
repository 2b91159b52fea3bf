//! 2,000 slow clients against `kloud hostdb serve`: each opens a connection and sends half a
//! request's headers, then nothing. Meanwhile a normal client's GETs must still answer quickly
//! (target p99 < 100 ms), and the slow connections must be closed by the header-read timeout.
//!
//! Run: `cargo bench --bench server_limits` (env: `SLOW=2000`, `GETS=500`,
//! `HEADER_TIMEOUT_MS=15000`). Prints p50/p99 of the GETs and how many slow connections the
//! server closed within the header timeout plus 2 s.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kloud::hostdb::{Role, Store};
use kloud::server::{spawn, Limits, ServerConfig};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Raise the soft open-files limit to the hard one (the slow sockets, both ends, are fds here).
fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we pass and nothing else.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    raise_nofile();
    let slow_n = env_num("SLOW", 2000) as usize;
    let gets = env_num("GETS", 500) as usize;
    let header_timeout = Duration::from_millis(env_num("HEADER_TIMEOUT_MS", 15000));
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn Store> =
        Arc::new(kloud::hostdb::sqlite::open(&dir.path().join("h.db")).expect("sqlite"));
    let (_, token) = store.token_create("bench", Role::Reader).expect("token");
    let config = ServerConfig {
        limits: Limits {
            header_read_timeout: header_timeout,
            ..Limits::default()
        },
        ..ServerConfig::default()
    };
    let server = spawn("127.0.0.1:0".parse().unwrap(), store, config, 2).expect("server");

    let opened = Instant::now();
    let mut slow: Vec<(TcpStream, Instant)> = Vec::with_capacity(slow_n);
    for _ in 0..slow_n {
        let mut s = TcpStream::connect(server.addr).expect("connect slow client");
        s.write_all(b"GET /v1/index HTTP/1.1\r\nHost: bench\r\n")
            .expect("half a request");
        slow.push((s, Instant::now()));
    }
    println!("opened {slow_n} slow connections in {:?}", opened.elapsed());

    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let url = format!("{}/v1/index", server.url());
    let mut lat = Vec::with_capacity(gets);
    for _ in 0..gets {
        let t = Instant::now();
        let r = client.get(&url).bearer_auth(&token).send().expect("GET");
        assert!(r.status().is_success(), "GET answered {}", r.status());
        let _ = r.bytes();
        lat.push(t.elapsed());
    }
    let while_open = opened.elapsed();
    lat.sort();
    println!(
        "{gets} GETs while the slow connections were open: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat[lat.len() - 1].as_secs_f64() * 1e3,
    );
    if while_open > header_timeout {
        println!(
            "note: the GETs ended {while_open:?} after the first slow connection opened \
             (header timeout {header_timeout:?}): raise HEADER_TIMEOUT_MS to keep them all open"
        );
    }

    // Every slow connection must be closed by the server within the timeout (+2 s) of its
    // own opening.
    let mut closed = 0;
    let mut buf = [0u8; 512];
    for (s, at) in &mut slow {
        let deadline = *at + header_timeout + Duration::from_secs(2);
        let left = deadline.saturating_duration_since(Instant::now());
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("read timeout");
        loop {
            match s.read(&mut buf) {
                Ok(0) => {
                    closed += 1;
                    break;
                }
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    closed += 1;
                    break;
                }
                Err(_) => break,
            }
        }
    }
    println!(
        "{closed}/{slow_n} slow connections closed by the server within the header timeout \
         ({header_timeout:?}) + 2 s of their opening"
    );
    assert_eq!(closed, slow_n, "some slow connections were kept open");
}
