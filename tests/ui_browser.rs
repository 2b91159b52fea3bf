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
fn quickstart(dir: &std::path::Path, ldap: &str) -> Arc<dyn Store> {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    let main = std::fs::read_to_string(examples.join("main.hcl")).unwrap();
    let hosts = std::fs::read_to_string(examples.join("hosts.hcl")).unwrap();
    let hosts = hosts.split("provider \"").next().unwrap();
    std::fs::write(
        dir.join("main.hcl"),
        format!("{main}\n{}", auth_block(ldap)),
    )
    .unwrap();
    std::fs::write(dir.join("hosts.hcl"), hosts).unwrap();
    let config = kloud::config::load(dir, &Default::default()).unwrap();
    let store: Arc<dyn Store> = Arc::from(kloud::hostdb::open("sqlite:hostdb.db", dir).unwrap());
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
    store: Arc<dyn Store>,
    served: Served,
    driver: WebDriver,
    chromium: String,
    rt: tokio::runtime::Runtime,
}

fn lab() -> Option<Lab> {
    let (chromium, chromedriver) = chromium()?;
    let ldap = ldap_url()?;
    let dir = tempfile::tempdir().unwrap();
    let store = quickstart(dir.path(), &ldap);
    let config = kloud::config::load(dir.path(), &Default::default()).unwrap();
    let served = serve(store.clone(), &config, None);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    Some(Lab {
        _dir: dir,
        store,
        served,
        driver: WebDriver::start(&chromedriver),
        chromium,
        rt,
    })
}

impl Lab {
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

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

async fn texts(c: &Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in c.find_all(Locator::Css(css)).await.unwrap() {
        out.push(e.text().await.unwrap());
    }
    out
}

/// Sign in through the form with the keyboard only: type, Tab, type, Enter.
async fn sign_in(c: &Client, lab: &Lab, user: &str) {
    c.goto(&lab.url("/ui/fleet")).await.unwrap();
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
        sign_in(&c, &lab, "alice").await;
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
        c.find(Locator::Css(".filters button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
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
            let cpu: u32 = on.iter().filter_map(|h| h.cpu).sum();
            let mem: u64 = on.iter().filter_map(|h| h.memory_mib).sum();
            let card = text(&c, &format!("li.machine[data-machine=\"{m}\"]")).await;
            assert!(card.contains(&format!("{cpu}/2")), "{m}: {card}");
            assert!(card.contains(&format!("{mem}/2048 MiB")), "{m}: {card}");
            assert!(card.contains(&format!("{} host", on.len())), "{m}: {card}");
        }
        look(&c, "map").await;
        // A machine's name lists its hosts.
        c.find(Locator::Css(
            "li.machine[data-machine=\"node-b1.qs.kloud.internal\"] > a",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
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
        sign_in(&c, &lab, "bob").await;
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
