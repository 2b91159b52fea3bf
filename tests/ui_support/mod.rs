//! What the web UI tests share: the test directory (scripts/setup/slapd.sh), a config
//! directory with an `auth` block, and a `kloud serve`-like server (the HostDB API, sign-in
//! and `/ui/`) on a free loopback port.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kloud::hostdb::Store;
use kloud::identity::Identity;
use kloud::selfservice::SelfService;
use kloud::ui;

/// The test directory's ldap:// URL, or `None` (skip) outside CI when slapd is not set up.
pub fn ldap_url() -> Option<String> {
    match std::env::var("KLOUD_TEST_LDAP_URL")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(url) => Some(url),
        None if kloud_provider_api::under_ci() => {
            panic!("CI=true but KLOUD_TEST_LDAP_URL is not set: source scripts/setup/slapd.sh")
        }
        None => {
            eprintln!("skipping: KLOUD_TEST_LDAP_URL not set (source scripts/setup/slapd.sh)");
            None
        }
    }
}

/// The `auth` block for the test directory: alice is an operator (group ops), bob an admin,
/// carol a plain user.
pub fn auth_block(url: &str) -> String {
    format!(
        r#"
auth {{
  ldap {{
    url     = "{url}"
    user_dn = "uid={{{{ username }}}},ou=People,dc=example,dc=org"
    groups  = "ou=Groups,dc=example,dc=org"
    ssh_key_attribute = "sshPublicKey"
    timeout = "3s"
  }}
  roles       = {{ ops = "operator", admins = "admin" }}
  session_ttl = "1h"
}}
"#
    )
}

/// Write a minimal config with the auth block into `dir` and load it.
pub fn minimal_config(dir: &Path, url: &str) -> kloud::config::Config {
    let text = format!(
        "kloud {{\n  domain = \"ui.example\"\n}}\n{}",
        auth_block(url)
    );
    std::fs::write(dir.join("main.hcl"), text).unwrap();
    kloud::config::load(dir, &Default::default())
        .unwrap_or_else(|d| panic!("the config does not load: {d:?}"))
}

/// A server running on its own thread; stops (ending the UI's live streams) when dropped.
pub struct Served {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Served {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The routes `kloud serve` serves, over `store` with `auth` (and self-service with its
/// worker, when given). Inside a tokio runtime; HostDB's `index` is read before entering it
/// (a PostgreSQL store cannot be read from inside one), `None` reads it here (SQLite).
pub fn app(
    store: Arc<dyn Store>,
    config: &kloud::config::Config,
    selfservice: Option<Arc<SelfService>>,
    tls: bool,
    index: Option<u64>,
) -> (axum::Router, ui::Closer) {
    let index = index.unwrap_or_else(|| store.index().unwrap());
    let identity = Arc::new(Identity::new(store.clone(), config.auth.as_ref()).unwrap());
    let web = ui::Ui::new(
        store.clone(),
        identity.clone(),
        selfservice.clone(),
        ui::Options {
            tls,
            index: Some(index),
        },
    );
    let closer = web.closer();
    let mut app = kloud::server::router_at(store, Default::default(), index)
        .merge(kloud::identity::router(identity.clone()))
        .merge(ui::router(web));
    if let Some(service) = selfservice {
        // The worker ends with the server's runtime.
        service.start_worker(Arc::new(std::sync::atomic::AtomicBool::new(false)));
        app = app.merge(kloud::selfservice::router(service, identity));
    }
    (app, closer)
}

/// Serve over plain HTTP on a free loopback port.
pub fn serve(
    store: Arc<dyn Store>,
    config: &kloud::config::Config,
    selfservice: Option<Arc<SelfService>>,
) -> Served {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let index = store.index().unwrap();
    let (app, closer) = {
        let _context = rt.enter();
        app(store, config, selfservice, false, Some(index))
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let limits = kloud::server::Limits::default();
        let _ = rt.block_on(kloud::server::limits::serve(
            listener,
            app,
            &limits,
            async move {
                let _ = rx.await;
                closer.close();
            },
        ));
        rt.shutdown_timeout(Duration::from_secs(2));
    });
    Served {
        addr,
        stop: Some(tx),
        thread: Some(thread),
    }
}

/// A client that does not follow redirects and keeps no cookies (tests read them).
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of cookie `name` among a response's `Set-Cookie` headers, and the whole header.
pub fn set_cookie(resp: &reqwest::blocking::Response, name: &str) -> Option<(String, String)> {
    resp.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            let value = v[name.len() + 1..]
                .split(';')
                .next()
                .unwrap_or("")
                .to_string();
            (value, v.to_string())
        })
}

/// The value of the hidden `csrf` field of a page.
pub fn csrf_field(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..].split('"').next().unwrap().to_string()
}

/// Sign in through the form; the session cookie's value.
pub fn sign_in(client: &reqwest::blocking::Client, s: &Served, user: &str) -> String {
    let form = client.get(s.url("/ui/login")).send().unwrap();
    let (login_cookie, _) = set_cookie(&form, "kloud_login").expect("a sign-in cookie");
    let csrf = csrf_field(&form.text().unwrap());
    let resp = client
        .post(s.url("/ui/login"))
        .header("cookie", format!("kloud_login={login_cookie}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("next", "/ui/"),
            ("username", user),
            ("password", &format!("{user}-secret")),
        ])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 303, "signing in as {user}");
    set_cookie(&resp, "kloud_session")
        .expect("a session cookie")
        .0
}
