//! The web UI in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`,
//! scripts/setup/chromium.sh) driven over WebDriver with fantoccini, against a real server, a
//! real SQLite HostDB holding the quickstart (planned and applied by the real engine with the
//! in-memory driver of `ops_support`) and real LDAP sign-in (scripts/setup/slapd.sh).
//!
//! Every page visited is screenshotted under `target/ui-screenshots/` and checked for errors
//! in the browser's console (the driver's browser log: script errors, CSP violations, failed
//! loads).

mod ops_support;
mod ui_support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use kloud::hostdb::{Actor, Expect, Host, State, Store, Tag};
use kloud::ops::{self, events::Recorded, ApplyRequest, PlanRequest};
use kloud_provider_api::compute::{
    ComputeDriver, ContainerSpec, CreateResponse, DriverError, ListResponse, MachineRef, Response,
};
use ops_support::{FakeDriver, FakeDrivers};
use serde_json::{json, Value};
use ui_support::{auth_block, ldap_url, serve, Served};

/// The browser and its WebDriver server, or `None` (skip) outside CI when not installed.
fn chromium() -> Option<(String, String)> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (get("KLOUD_TEST_CHROMIUM"), get("KLOUD_TEST_CHROMEDRIVER")) {
        (Some(b), Some(d)) => Some((b, d)),
        _ if kloud_provider_api::under_ci() => {
            panic!("CI=true but KLOUD_TEST_CHROMIUM is not set: source scripts/setup/chromium.sh")
        }
        _ => {
            eprintln!("skipping: KLOUD_TEST_CHROMIUM not set (source scripts/setup/chromium.sh)");
            None
        }
    }
}

/// A chromedriver we started on a free port; stopped by its pid when dropped.
struct WebDriver {
    child: Child,
    port: u16,
}

impl WebDriver {
    fn start(binary: &str) -> WebDriver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        WebDriver { child, port }
    }
}

impl Drop for WebDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The quickstart (its machines, web and lb hosts, without the provider blocks: no
/// Prometheus or Puppet here) with the test directory's `auth` block, applied to a SQLite
/// HostDB by the real engine.
fn quickstart(dir: &std::path::Path, ldap: &str, extra: &str, hostdb: &str) -> Arc<dyn Store> {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    let main = std::fs::read_to_string(examples.join("main.hcl")).unwrap();
    let hosts = std::fs::read_to_string(examples.join("hosts.hcl")).unwrap();
    let hosts = hosts.split("provider \"").next().unwrap();
    // With self-service (an `extra` offer), one web server, so the quickstart's machines
    // have room for a person's three small hosts.
    let main = if extra.is_empty() {
        main
    } else {
        main.replace("default     = 3", "default     = 1") + extra
    };
    std::fs::write(
        dir.join("main.hcl"),
        format!("{main}\n{}", auth_block(ldap)),
    )
    .unwrap();
    std::fs::write(dir.join("hosts.hcl"), hosts).unwrap();
    let config = kloud::config::load(dir, &Default::default()).unwrap();
    let store: Arc<dyn Store> = Arc::from(kloud::hostdb::open(hostdb, dir).unwrap());
    let drivers = FakeDrivers(Arc::new(FakeDriver::default()));
    let events = Recorded::default();
    let plan = ops::plan(
        &config,
        store.as_ref(),
        &drivers,
        &PlanRequest::default(),
        &events,
    )
    .unwrap();
    let req = ApplyRequest {
        parallelism: 2,
        actor: "quickstart".into(),
        cancel: Arc::new(AtomicBool::new(false)),
        lock_ttl: kloud::apply::TTL,
    };
    ops::apply(&plan, &config, store.as_ref(), &drivers, &req, &events).unwrap();
    // Tags are HostDB records of their own (`kloud tags`): web inside site.
    let actor = Actor::new("test");
    let mut site = Tag::new("site");
    site.properties.insert("dc".into(), json!("lab"));
    store.put_tag(site, Expect::Absent, &actor).unwrap();
    let mut web = Tag::new("web");
    web.tags = vec!["site".into()];
    web.properties.insert("team".into(), json!("web-team"));
    web.properties.insert("env".into(), json!("from-tag"));
    store.put_tag(web, Expect::Absent, &actor).unwrap();
    store
}

struct Lab {
    _dir: tempfile::TempDir,
    /// The PostgreSQL schema the HostDB is in, dropped last.
    _pg: Option<ops_support::PgSchema>,
    store: Arc<dyn Store>,
    served: Served,
    driver: WebDriver,
    chromium: String,
    rt: tokio::runtime::Runtime,
}

fn lab() -> Option<Lab> {
    lab_with("", false)
}

/// The offer of design §10, for people to request hosts from.
const OFFER: &str = r#"
offer "small" {
  cpu      = 1
  memory   = "256MiB"
  disk     = "2GiB"
  image    = "debian-12"
  network  = "lab"
  per_user = 3
  login { sudo = true }
  placement { max_per = { machine = 2 } }
}
"#;

/// The lab with `extra` config, and self-service (with a driver whose creates take a while,
/// so a page can be seen following a host from `creating` to `running`).
fn lab_with(extra: &str, selfservice: bool) -> Option<Lab> {
    lab_on(extra, selfservice, false)
}

/// [`lab_with`], with its HostDB on the test PostgreSQL server when `postgres`.
fn lab_on(extra: &str, selfservice: bool, postgres: bool) -> Option<Lab> {
    let (chromium, chromedriver) = chromium()?;
    let ldap = ldap_url()?;
    let (hostdb, pg) = if postgres {
        let (url, schema) = ops_support::pg_schema_url()?;
        (url, Some(schema))
    } else {
        ("sqlite:hostdb.db".to_string(), None)
    };
    let dir = tempfile::tempdir().unwrap();
    let store = quickstart(dir.path(), &ldap, extra, &hostdb);
    let config = kloud::config::load(dir.path(), &Default::default()).unwrap();
    let service = selfservice.then(|| {
        let settings = kloud::selfservice::Settings {
            poll_every: Duration::from_millis(200),
            ..Default::default()
        };
        let drivers: Arc<dyn kloud::apply::DriverSet + Send> =
            Arc::new(SlowCreateDrivers(SlowCreateDriver(FakeDriver::default())));
        kloud::selfservice::SelfService::new(
            store.clone(),
            Arc::new(config.clone()),
            drivers,
            settings,
        )
    });
    let served = serve(store.clone(), &config, service);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    Some(Lab {
        _dir: dir,
        _pg: pg,
        store,
        served,
        driver: WebDriver::start(&chromedriver),
        chromium,
        rt,
    })
}

impl Lab {
    /// `read` of the store, on a thread of its own: a PostgreSQL store cannot be used from
    /// inside the test's async runtime.
    fn read<T: Send>(&self, read: impl FnOnce(&dyn Store) -> T + Send) -> T {
        let store = self.store.as_ref();
        std::thread::scope(|s| s.spawn(move || read(store)).join().unwrap())
    }

    async fn browser(&self) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": self.chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1400,1000", "--no-first-run", "--disable-extensions"],
            }),
        );
        caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        // chromedriver is on loopback over plain http: no TLS stack needed (fantoccini's
        // rustls feature would bring aws-lc-rs next to ring).
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.driver.port))
            .await
            .expect("a WebDriver session")
    }

    fn url(&self, path: &str) -> String {
        self.served.url(path)
    }
}

/// The browser log command (`POST /session/{id}/se/log`), which chromedriver answers with
/// the console's entries since the last call.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or("")))
    }
    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        (
            axum::http::Method::POST,
            Some(r#"{"type":"browser"}"#.to_string()),
        )
    }
}

/// Errors in the browser's console since the last look.
async fn console_errors(c: &Client) -> Vec<String> {
    let entries = c.issue_cmd(BrowserLog).await.expect("the browser log");
    entries
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING")
        .map(|e| e["message"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Save a screenshot as `target/ui-screenshots/NAME.png`, and check the console is clean.
async fn look(c: &Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = c.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    let errors = console_errors(c).await;
    assert!(errors.is_empty(), "console errors on {name}: {errors:#?}");
}

/// The text of the element at `css`. The live page replaces parts of itself (server-sent
/// events), so an element found a moment ago can be gone: look again, up to 10 s.
async fn text(c: &Client, css: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = c.find(Locator::Css(css)).await;
        let error = match found {
            Ok(e) => match e.text().await {
                Ok(t) => return t,
                Err(err) => err,
            },
            Err(err) => err,
        };
        assert!(Instant::now() < deadline, "{css}: {error}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The texts of every element at `css`, read again whole if the page replaced one meanwhile.
async fn texts(c: &Client, css: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    'again: loop {
        let mut out = Vec::new();
        for e in c.find_all(Locator::Css(css)).await.unwrap() {
            match e.text().await {
                Ok(t) => out.push(t),
                Err(err) => {
                    assert!(Instant::now() < deadline, "{css}: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue 'again;
                }
            }
        }
        return out;
    }
}

/// Click the element at `css`, found again if the live page replaced it before the click.
async fn click(c: &Client, css: &str) {
    press(c, css, None).await
}

/// Click the element at `css` (no `keys`) or type `keys` into it, found again if the live page
/// replaced it meanwhile (a stale element took no click and no keys: trying again is safe).
async fn press(c: &Client, css: &str, keys: Option<&str>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let error = match c.find(Locator::Css(css)).await {
            Ok(e) => {
                let done = match keys {
                    Some(k) => e.send_keys(k).await,
                    None => e.click().await,
                };
                match done {
                    Ok(()) => return,
                    Err(err) => err,
                }
            }
            Err(err) => err,
        };
        assert!(Instant::now() < deadline, "{css}: {error}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sign in through the form with the keyboard only: type, Tab, type, Enter.
async fn sign_in(c: &Client, lab: &Lab, user: &str, start: &str) {
    c.goto(&lab.url(start)).await.unwrap();
    assert!(
        c.current_url().await.unwrap().path().ends_with("/ui/login"),
        "sent to sign in"
    );
    let name = c.find(Locator::Css("#username")).await.unwrap();
    name.send_keys(user).await.unwrap();
    let tab = char::from(fantoccini::key::Key::Tab).to_string();
    let enter = char::from(fantoccini::key::Key::Enter).to_string();
    c.active_element()
        .await
        .unwrap()
        .send_keys(&tab)
        .await
        .unwrap();
    let focused = c.active_element().await.unwrap();
    assert_eq!(
        focused.attr("id").await.unwrap().as_deref(),
        Some("password"),
        "Tab reaches the password"
    );
    focused
        .send_keys(&format!("{user}-secret{enter}"))
        .await
        .unwrap();
    if c.wait()
        .for_element(Locator::Css("form.whoami"))
        .await
        .is_err()
    {
        let page = c.source().await.unwrap_or_default();
        panic!("not signed in as {user}: {page}");
    }
}

#[test]
fn sign_in_fleet_filter_machine_map_host_and_tags_in_a_browser() {
    let Some(lab) = lab() else { return };
    lab.rt.block_on(async {
        let c = lab.browser().await;
        c.goto(&lab.url("/ui/login")).await.unwrap();
        look(&c, "login").await;
        sign_in(&c, &lab, "alice", "/ui/fleet").await;
        assert_eq!(
            c.current_url().await.unwrap().path(),
            "/ui/fleet",
            "back where we started"
        );
        assert!(text(&c, "form.whoami").await.contains("alice (operator)"));
        // Every host of the quickstart: 3 machines, 3 web, 2 lb.
        let rows = texts(&c, "table.hosts tbody th").await;
        assert_eq!(rows.len(), 8, "{rows:?}");
        look(&c, "fleet").await;

        // Filter by class through the form.
        let class = c.find(Locator::Css("#f-class")).await.unwrap();
        class.send_keys("web").await.unwrap();
        click(&c, ".filters button[type=submit]").await;
        c.wait()
            .for_element(Locator::Css("table.hosts"))
            .await
            .unwrap();
        let rows = texts(&c, "table.hosts tbody th").await;
        assert_eq!(
            rows,
            [
                "web-1.qs.kloud.internal",
                "web-2.qs.kloud.internal",
                "web-3.qs.kloud.internal"
            ]
        );
        assert!(c
            .current_url()
            .await
            .unwrap()
            .query()
            .unwrap()
            .contains("class=web"));
        // And by state and name.
        c.goto(&lab.url("/ui/fleet?state=running&q=LB"))
            .await
            .unwrap();
        let rows = texts(&c, "table.hosts tbody th").await;
        assert_eq!(rows, ["lb-1.qs.kloud.internal", "lb-2.qs.kloud.internal"]);
        look(&c, "fleet-filtered").await;

        // The machine map: the quickstart's three machines under their switches and racks,
        // each with what its containers use.
        c.goto(&lab.url("/ui/map")).await.unwrap();
        let switches = texts(&c, "section.switch > h2").await;
        assert_eq!(switches, ["Switch sw-a", "Switch sw-b"]);
        let machines = texts(&c, "li.machine > a").await;
        let qs = |m: &str| format!("{m}.qs.kloud.internal");
        assert_eq!(machines, [qs("node-a1"), qs("node-a2"), qs("node-b1")]);
        let used = lab
            .store
            .all_hosts(&kloud::hostdb::HostQuery {
                kind: Some(kloud::hostdb::Kind::Container),
                ..Default::default()
            })
            .unwrap();
        for m in [qs("node-a1"), qs("node-a2"), qs("node-b1")] {
            let m = m.as_str();
            let on: Vec<&Host> = used
                .iter()
                .filter(|h| h.machine.as_deref() == Some(m))
                .collect();
            let cpu: kloud::Cpu = on.iter().filter_map(|h| h.cpu).sum();
            let mem: u64 = on.iter().filter_map(|h| h.memory_mib).sum();
            let card = text(&c, &format!("li.machine[data-machine=\"{m}\"]")).await;
            assert!(card.contains(&format!("{cpu}/2")), "{m}: {card}");
            assert!(card.contains(&format!("{mem}/2048 MiB")), "{m}: {card}");
            assert!(card.contains(&format!("{} host", on.len())), "{m}: {card}");
        }
        look(&c, "map").await;
        // A machine's name lists its hosts.
        click(
            &c,
            "li.machine[data-machine=\"node-b1.qs.kloud.internal\"] > a",
        )
        .await;
        c.wait()
            .for_element(Locator::Css("#f-machine"))
            .await
            .unwrap();
        let on_b1 = texts(&c, "table.hosts tbody th").await;
        let expected: Vec<String> = used
            .iter()
            .filter(|h| h.machine.as_deref() == Some("node-b1.qs.kloud.internal"))
            .map(|h| h.name.clone())
            .collect();
        assert_eq!(on_b1, expected);

        // A host page: record, derived config with where each key comes from, history.
        c.goto(&lab.url("/ui/hosts/web-1.qs.kloud.internal"))
            .await
            .unwrap();
        let derived = texts(&c, "table.derived tbody tr").await;
        // The host's own `env` wins over the tag's; `team` comes from web, `dc` from site.
        assert_eq!(
            derived,
            [
                "dc lab tag site",
                "env quickstart own",
                "team web-team tag web"
            ]
        );
        let history = texts(&c, "ol.history > li").await;
        assert!(
            !history.is_empty() && history.last().unwrap().contains("created"),
            "{history:?}"
        );
        assert!(text(&c, "ol.history pre.diff")
            .await
            .contains("\"name\": \"web-1.qs.kloud.internal\""));
        look(&c, "host").await;

        c.goto(&lab.url("/ui/tags")).await.unwrap();
        let tags = texts(&c, "table.tags tbody th").await;
        assert_eq!(tags, ["site", "web"]);
        look(&c, "tags").await;
        c.close().await.unwrap();
    });
}

#[test]
fn a_host_turning_running_appears_without_a_reload() {
    let Some(lab) = lab() else { return };
    lab.rt.block_on(async {
        let c = lab.browser().await;
        sign_in(&c, &lab, "bob", "/ui/fleet").await;
        c.goto(&lab.url("/ui/fleet?class=extra")).await.unwrap();
        assert!(text(&c, "#live").await.contains("No hosts"));
        // A marker that a reload would lose.
        c.execute("window.kloudMarker = 42; return 0;", vec![])
            .await
            .unwrap();
        // Give the page a moment to open its event stream.
        c.wait()
            .for_element(Locator::Css("#live-state:not([hidden])"))
            .await
            .unwrap();
        let mut h = Host::container("extra-1.qs.kloud.internal");
        h.class = Some("extra".into());
        h.state = Some(State::Creating);
        let actor = Actor::new("test");
        lab.store
            .put_host(h.clone(), Expect::Absent, &actor)
            .unwrap();
        let state = "table.hosts tbody tr[data-host=\"extra-1.qs.kloud.internal\"] .state";
        wait_text(&c, state, "creating").await;
        h.state = Some(State::Running);
        lab.store.put_host(h, Expect::Any, &actor).unwrap();
        wait_text(&c, state, "running").await;
        let marker: Value = c
            .execute("return window.kloudMarker;", vec![])
            .await
            .unwrap();
        assert_eq!(marker, json!(42), "the page was not reloaded");
        look(&c, "fleet-live").await;
        c.close().await.unwrap();
    });
}

/// Wait (up to 10 s) until the element at `css` says `want`.
async fn wait_text(c: &Client, css: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if e.text().await.map(|t| t == want).unwrap_or(false) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{css} never said {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How long [`SlowCreateDriver`] takes to create a container.
const CREATE_TAKES: Duration = Duration::from_millis(1500);

/// The in-memory driver, with creates that take [`CREATE_TAKES`]: a double that lets a page
/// be seen in `creating` before `running`.
struct SlowCreateDriver(FakeDriver);

impl ComputeDriver for SlowCreateDriver {
    fn kind(&self) -> &'static str {
        self.0.kind()
    }
    fn create(&self, m: &MachineRef, spec: &ContainerSpec) -> Result<CreateResponse, DriverError> {
        std::thread::sleep(CREATE_TAKES);
        self.0.create(m, spec)
    }
    fn can_resize_live(&self) -> bool {
        self.0.can_resize_live()
    }
    fn resize(
        &self,
        m: &MachineRef,
        name: &str,
        cpu: kloud::Cpu,
        mem: u64,
        disk: u64,
    ) -> Result<Response, DriverError> {
        self.0.resize(m, name, cpu, mem, disk)
    }
    fn start(&self, m: &MachineRef, name: &str) -> Result<Response, DriverError> {
        self.0.start(m, name)
    }
    fn stop(&self, m: &MachineRef, name: &str) -> Result<Response, DriverError> {
        self.0.stop(m, name)
    }
    fn destroy(&self, m: &MachineRef, name: &str) -> Result<Response, DriverError> {
        self.0.destroy(m, name)
    }
    fn list(&self, m: &MachineRef) -> Result<ListResponse, DriverError> {
        self.0.list(m)
    }
    fn images(&self) -> Vec<String> {
        self.0.images()
    }
}

struct SlowCreateDrivers(SlowCreateDriver);

impl kloud::apply::DriverSet for SlowCreateDrivers {
    fn get(&self, kind: &str) -> Result<&dyn ComputeDriver, String> {
        match kind {
            "lxc" => Ok(&self.0),
            _ => Err(format!("no driver `{kind}`")),
        }
    }
}

const CAROL_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKloudTestCarolKey0000000000000000000000 carol@test";

#[test]
fn my_hosts_request_until_the_quota_delete_and_recreate_without_reloads() {
    if let Some(lab) = lab_with(OFFER, true) {
        my_hosts(&lab);
    }
}

/// The same on a PostgreSQL HostDB (what `kloud serve` replicas share).
#[test]
fn my_hosts_on_a_postgres_hostdb() {
    if let Some(lab) = lab_on(OFFER, true, true) {
        my_hosts(&lab);
    }
}

/// Request hosts until the quota, delete one and recreate another, on one page that follows
/// each change live.
fn my_hosts(lab: &Lab) {
    lab.rt.block_on(async {
        let c = lab.browser().await;
        sign_in(&c, lab, "carol", "/ui/").await;
        // A plain user lands on their hosts and sees no fleet.
        assert_eq!(c.current_url().await.unwrap().path(), "/ui/my");
        assert!(texts(&c, "header nav a").await == ["My hosts"]);
        assert_eq!(text(&c, "tr[data-offer=small] td.left").await, "3");
        look(&c, "my-empty").await;

        let small = |n: u32| format!("small-carol-{n}.qs.kloud.internal");
        for n in 1..=3 {
            c.find(Locator::Css("#ssh-keys"))
                .await
                .unwrap()
                .send_keys(CAROL_KEY)
                .await
                .unwrap();
            click(&c, "button[name=offer][value=small]").await;
            let row = format!("tr[data-host=\"{}\"] .state", small(n));
            c.wait().for_element(Locator::Css(&row)).await.unwrap();
            assert!(text(&c, ".notice").await.contains(&small(n)));
            // Drawn while the host is being created; it turns running on this same page.
            c.execute("window.kloudMarker = 7; return 0;", vec![])
                .await
                .unwrap();
            let first = text(&c, &row).await;
            if n == 1 {
                assert_eq!(first, "creating", "the slow driver is still creating it");
                look(&c, "my-creating").await;
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let st = lab.read(|s| s.get_host(&small(n)).unwrap().and_then(|h| h.state));
                if st == Some(State::Running) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "store state of {} is {st:?}; locks {:?}",
                    small(n),
                    lab.read(|s| s.list_locks().unwrap())
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            wait_text(&c, &row, "running").await;
            let marker: Value = c
                .execute("return window.kloudMarker;", vec![])
                .await
                .unwrap();
            assert_eq!(marker, json!(7), "the page was not reloaded");
            wait_text(&c, "tr[data-offer=small] td.left", &(3 - n).to_string()).await;
        }
        let ssh = text(&c, &format!("tr[data-host=\"{}\"] code.ssh", small(1))).await;
        assert!(ssh.starts_with("ssh carol@10.251.0."), "{ssh}");
        look(&c, "my-three").await;

        // The fourth: the quota's message, and no host.
        c.find(Locator::Css("#ssh-keys"))
            .await
            .unwrap()
            .send_keys(CAROL_KEY)
            .await
            .unwrap();
        click(&c, "button[name=offer][value=small]").await;
        let error = c
            .wait()
            .for_element(Locator::Css("#error"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            error.contains("you hold 3 of 3 hosts of offer `small`"),
            "{error}"
        );
        assert_eq!(
            c.find_all(Locator::Css("table.mine tbody tr"))
                .await
                .unwrap()
                .len(),
            3
        );
        // A 409 answer logs a failed load in the console; that one is expected.
        let logged = console_errors(&c).await;
        assert!(logged.iter().all(|e| e.contains("409")), "{logged:#?}");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
        std::fs::write(dir.join("my-quota.png"), c.screenshot().await.unwrap()).unwrap();

        // Delete the second with the keyboard: focus its button, Enter.
        c.goto(&lab.url("/ui/my")).await.unwrap();
        let enter = char::from(fantoccini::key::Key::Enter).to_string();
        let delete = format!("button[aria-label=\"Delete {}\"]", small(2));
        press(&c, &delete, Some(&enter)).await;
        c.wait().for_element(Locator::Css(".notice")).await.unwrap();
        c.execute("window.kloudMarker = 8; return 0;", vec![])
            .await
            .unwrap();
        // It goes away on this page when the worker has removed it.
        let gone = format!("tr[data-host=\"{}\"]", small(2));
        let deadline = Instant::now() + Duration::from_secs(15);
        while c.find(Locator::Css(&gone)).await.is_ok() {
            assert!(Instant::now() < deadline, "{} never went away", small(2));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let marker: Value = c
            .execute("return window.kloudMarker;", vec![])
            .await
            .unwrap();
        assert_eq!(marker, json!(8), "the page was not reloaded");
        wait_text(&c, "tr[data-offer=small] td.left", "1").await;
        assert!(
            lab.read(|s| s.get_host(&small(2)).unwrap().is_none()),
            "the record is removed"
        );
        look(&c, "my-deleted").await;

        // Recreate the first: it is destroyed and made again under the same name, followed
        // on this page.
        let recreate = format!("button[aria-label=\"Recreate {}\"]", small(1));
        click(&c, &recreate).await;
        c.wait().for_element(Locator::Css(".notice")).await.unwrap();
        c.execute("window.kloudMarker = 9; return 0;", vec![])
            .await
            .unwrap();
        let row = format!("tr[data-host=\"{}\"] .state", small(1));
        // Marked for recreation, or already destroyed and being created again.
        let state = text(&c, &row).await;
        assert!(state == "recreating" || state == "creating", "{state}");
        wait_text(&c, &row, "running").await;
        let marker: Value = c
            .execute("return window.kloudMarker;", vec![])
            .await
            .unwrap();
        assert_eq!(marker, json!(9), "the page was not reloaded");
        look(&c, "my-recreated").await;

        c.close().await.unwrap();
    });
}
