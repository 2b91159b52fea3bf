//! Web UI figures (release build; `cargo bench --bench ui`), medians:
//! - the fleet page over 100,000 hosts: time to the first byte of `GET /ui/fleet` (the
//!   first page, a later page, a class filter, a state filter and a name search), 21 runs each;
//! - the machine map of 5,000 machines (10 switches × 25 racks × 20 machines, 20,000
//!   containers on them): the server's answer, and Chromium drawing it (from navigation start
//!   to the second animation frame after `load`), 5 runs, when scripts/setup/chromium.sh has
//!   been sourced.
//!
//! SQLite in a temporary directory; a session made straight in the store (no LDAP needed).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kloud::hostdb::{Actor, Expect, Host, Role, State, Store, Write};
use kloud::identity::Identity;
use kloud::Cpu;

const HOSTS: usize = 100_000;
const SWITCHES: usize = 10;
const RACKS: usize = 25;
const PER_RACK: usize = 20;
const CONTAINERS_PER_MACHINE: usize = 4;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn write_all(store: &dyn Store, writes: Vec<Write>) {
    let actor = Actor::new("bench");
    for chunk in writes.chunks(2000) {
        store.write(chunk.to_vec(), &actor).unwrap();
    }
}

/// 100,000 containers: classes web/db/cache, one in ten creating, on no machine.
fn fleet(store: &dyn Store) {
    let writes = (0..HOSTS)
        .map(|i| {
            let mut h = Host::container(&format!("host-{i:06}.dc1.example"));
            h.class = Some(["web", "db", "cache"][i % 3].to_string());
            h.owner = Some("dc1".into());
            h.state = Some(if i % 10 == 0 {
                State::Creating
            } else {
                State::Running
            });
            h.ip = Some(format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256));
            h.cpu = Some(Cpu::from_cores(1));
            h.memory_mib = Some(512);
            h.disk_gib = Some(10);
            h.properties
                .insert("team".into(), serde_json::json!("fleet"));
            Write::PutHost {
                host: h,
                expect: Expect::Absent,
            }
        })
        .collect();
    write_all(store, writes);
}

/// 5,000 machines by switch and rack, each with a few containers.
fn machines(store: &dyn Store) {
    let mut writes = Vec::new();
    for s in 0..SWITCHES {
        for r in 0..RACKS {
            for m in 0..PER_RACK {
                let name = format!("hw-s{s:02}-r{r:02}-{m:02}.dc1.example");
                let mut h = Host::machine(&name);
                h.cpu = Some(Cpu::from_cores(32));
                h.memory_mib = Some(128 * 1024);
                h.disk_gib = Some(2048);
                h.class = Some("app".into());
                h.labels.insert("switch".into(), format!("sw-{s:02}"));
                h.labels.insert("rack".into(), format!("r{s:02}-{r:02}"));
                for c in 0..CONTAINERS_PER_MACHINE {
                    let mut ct = Host::container(&format!("c{c}-{name}"));
                    ct.machine = Some(name.clone());
                    ct.owner = Some(if c == 0 {
                        "user:carol".into()
                    } else {
                        "dc1".into()
                    });
                    ct.cpu = Some(Cpu::from_cores(4));
                    ct.memory_mib = Some(8192);
                    ct.disk_gib = Some(100);
                    ct.state = Some(State::Running);
                    writes.push(Write::PutHost {
                        host: ct,
                        expect: Expect::Absent,
                    });
                }
                writes.push(Write::PutHost {
                    host: h,
                    expect: Expect::Absent,
                });
            }
        }
    }
    write_all(store, writes);
}

/// The UI on a free port, on its own runtime thread (kept until the process ends).
fn serve(store: Arc<dyn Store>) -> std::net::SocketAddr {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = {
        let _context = rt.enter();
        let identity = Arc::new(Identity::new(store.clone(), None).unwrap());
        let web = kloud::ui::Ui::new(store, identity, None, kloud::ui::Options::default());
        kloud::ui::router(web)
    };
    std::thread::spawn(move || {
        let limits = kloud::server::Limits::default();
        let _ = rt.block_on(kloud::server::limits::serve(
            listener,
            app,
            &limits,
            std::future::pending(),
        ));
    });
    addr
}

/// Milliseconds to the answer's status line and headers (the first byte), and the status.
fn first_byte(client: &reqwest::blocking::Client, url: &str, cookie: &str) -> (f64, u16) {
    let t = Instant::now();
    let resp = client.get(url).header("cookie", cookie).send().unwrap();
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    let status = resp.status().as_u16();
    let _ = resp.bytes();
    (ms, status)
}

fn session(store: &dyn Store) -> String {
    let (_, token) = store
        .session_create("bench", Role::Admin, &[], Duration::from_secs(3600))
        .unwrap();
    format!("kloud_session={token}")
}

fn fleet_figures() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(kloud::hostdb::sqlite::open(&dir.path().join("h.db")).unwrap());
    let t = Instant::now();
    fleet(store.as_ref());
    eprintln!("loaded {HOSTS} hosts in {:.1} s", t.elapsed().as_secs_f64());
    let cookie = session(store.as_ref());
    let addr = serve(store);
    let client = reqwest::blocking::Client::new();
    for (what, path) in [
        ("first page", "/ui/fleet"),
        (
            "page after host-050000",
            "/ui/fleet?after=host-050000.dc1.example",
        ),
        ("class=db", "/ui/fleet?class=db"),
        ("state=creating (scanned)", "/ui/fleet?state=creating"),
        ("name contains 99 (scanned)", "/ui/fleet?q=99"),
        (
            "name contains zzz (no match: one scan budget)",
            "/ui/fleet?q=zzz",
        ),
    ] {
        let url = format!("http://{addr}{path}");
        let _ = first_byte(&client, &url, &cookie);
        let runs: Vec<(f64, u16)> = (0..21)
            .map(|_| first_byte(&client, &url, &cookie))
            .collect();
        assert!(runs.iter().all(|r| r.1 == 200), "{path}: {:?}", runs[0]);
        let ms = median(runs.iter().map(|r| r.0).collect());
        println!("fleet over {HOSTS} hosts, {what}: first byte median {ms:.1} ms");
    }
}

/// A chromedriver we started; stopped by its pid when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn map_figures() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(kloud::hostdb::sqlite::open(&dir.path().join("m.db")).unwrap());
    machines(store.as_ref());
    let cookie = session(store.as_ref());
    let addr = serve(store);
    let client = reqwest::blocking::Client::new();
    let url = format!("http://{addr}/ui/map");
    let (cold, status) = first_byte(&client, &url, &cookie);
    assert_eq!(status, 200);
    let warm: Vec<f64> = (0..11)
        .map(|_| first_byte(&client, &url, &cookie).0)
        .collect();
    let size = client
        .get(&url)
        .header("cookie", &cookie)
        .send()
        .unwrap()
        .bytes()
        .unwrap()
        .len();
    println!(
        "map of {} machines: server answer {cold:.0} ms building the map, {:.0} ms from the per-index cache (median), {} KiB of HTML",
        SWITCHES * RACKS * PER_RACK,
        median(warm),
        size / 1024
    );
    let (Ok(chromium), Ok(chromedriver)) = (
        std::env::var("KLOUD_TEST_CHROMIUM"),
        std::env::var("KLOUD_TEST_CHROMEDRIVER"),
    ) else {
        println!("map drawn by Chromium: skipped (source scripts/setup/chromium.sh)");
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _driver = Driver(
        Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let token = cookie.trim_start_matches("kloud_session=").to_string();
    let drawn = rt.block_on(async move {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({"binary": chromium, "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"]}),
        );
        let c = fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap();
        // The session cookie, set from a page of the server's origin (not HttpOnly this way;
        // the server only reads it).
        c.goto(&format!("http://{addr}/ui/login")).await.unwrap();
        c.execute(
            "document.cookie = 'kloud_session=' + arguments[0] + '; path=/ui'; return 0;",
            vec![serde_json::json!(token)],
        )
        .await
        .unwrap();
        let mut runs = Vec::new();
        for _ in 0..6 {
            c.goto(&format!("http://{addr}/ui/map")).await.unwrap();
            let ms = c
                .execute_async(
                    "const done = arguments[arguments.length - 1];
                     const after = () => requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now())));
                     if (document.readyState === 'complete') after(); else addEventListener('load', after);",
                    vec![],
                )
                .await
                .unwrap();
            let n = c.find_all(fantoccini::Locator::Css("li.machine")).await.unwrap().len();
            assert_eq!(n, SWITCHES * RACKS * PER_RACK);
            runs.push(ms.as_f64().unwrap());
        }
        c.close().await.unwrap();
        runs.remove(0);
        median(runs)
    });
    println!(
        "map of {} machines drawn by Chromium: {drawn:.0} ms median (navigation start to the second frame after load)",
        SWITCHES * RACKS * PER_RACK
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // `cargo bench --bench ui -- map` runs only the map figures.
    let only = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    if only.as_deref() != Some("map") {
        fleet_figures();
    }
    map_figures();
}
