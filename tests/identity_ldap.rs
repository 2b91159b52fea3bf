//! Signing in against a real OpenLDAP (scripts/setup/slapd.sh): binds, roles from groups, SSH
//! keys, ldaps and StartTLS with the test CA, one 401 message for every bad credential, LDAP
//! down → 503 while API tokens keep working, session expiry, and logout ending a session on
//! every server sharing the database at once.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kloud::config::auth::AuthConfig;
use kloud::hostdb::{ObjectKind, Role, Store};
use kloud::identity::{Identity, IdentityError, BAD_CREDENTIALS};
use kloud::server::tls;
use reqwest::blocking::Client;
use reqwest::StatusCode;

struct Ldap {
    url: String,
    ldaps_url: String,
    ca: String,
}

/// The test directory's addresses, or `None` (skip) outside CI when slapd is not set up.
fn ldap() -> Option<Ldap> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        get("KLOUD_TEST_LDAP_URL"),
        get("KLOUD_TEST_LDAPS_URL"),
        get("KLOUD_TEST_LDAP_CA"),
    ) {
        (Some(url), Some(ldaps_url), Some(ca)) => Some(Ldap { url, ldaps_url, ca }),
        _ if kloud_provider_api::under_ci() => {
            panic!("CI=true but KLOUD_TEST_LDAP_URL is not set: source scripts/setup/slapd.sh")
        }
        _ => {
            eprintln!("skipping: KLOUD_TEST_LDAP_URL not set (source scripts/setup/slapd.sh)");
            None
        }
    }
}

/// Load a real config directory with an `auth` block for `url`.
fn auth_config(dir: &Path, url: &str, extra_ldap: &str, ttl: &str) -> AuthConfig {
    let text = format!(
        r#"
kloud {{
  domain = "dc1.example"
}}

auth {{
  ldap {{
    url     = "{url}"
    user_dn = "uid={{{{ username }}}},ou=People,dc=example,dc=org"
    groups  = "ou=Groups,dc=example,dc=org"
    ssh_key_attribute = "sshPublicKey"
    timeout = "3s"
    {extra_ldap}
  }}
  roles       = {{ ops = "operator", admins = "admin" }}
  session_ttl = "{ttl}"
  hostdb_v1 {{
    writers = {{ dns = ["dns-editors"] }}
  }}
}}
"#
    );
    std::fs::write(dir.join("main.hcl"), text).unwrap();
    let config = kloud::config::load(dir, &Default::default())
        .unwrap_or_else(|d| panic!("the config does not load: {d:?}"));
    config.auth.expect("an auth block")
}

struct Fixture {
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = kloud::hostdb::sqlite::open(&dir.path().join("hostdb.db")).unwrap();
    Fixture {
        dir,
        store: Arc::new(store),
    }
}

fn identity(f: &Fixture, auth: &AuthConfig) -> Identity {
    Identity::new(f.store.clone(), Some(auth)).unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A `kloud serve`-like HTTPS server: the HostDB API plus the sign-in routes.
struct Served {
    client: Client,
    base: String,
    _running: tls::Running,
}

fn serve(store: Arc<dyn Store>, auth: AuthConfig) -> Served {
    let cert = tls::self_signed(&["localhost".to_string()]).unwrap();
    let config = tls::server_config(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes()).unwrap();
    let running = tls::spawn(
        "127.0.0.1:0".parse().unwrap(),
        move || {
            let identity = Arc::new(Identity::new(store.clone(), Some(&auth)).unwrap());
            kloud::server::router(store, Default::default())
                .merge(kloud::identity::router(identity))
        },
        config,
        tls::Timeouts::default(),
        2,
    )
    .unwrap();
    let client = Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert_pem.as_bytes()).unwrap())
        .resolve("localhost", running.addr)
        .build()
        .unwrap();
    Served {
        client,
        base: format!("https://localhost:{}", running.addr.port()),
        _running: running,
    }
}

impl Served {
    fn login(&self, user: &str, password: &str) -> reqwest::blocking::Response {
        self.client
            .post(format!("{}/v1/auth/login", self.base))
            .json(&serde_json::json!({"username": user, "password": password}))
            .send()
            .unwrap()
    }

    fn whoami(&self, token: &str) -> StatusCode {
        self.client
            .get(format!("{}/v1/whoami", self.base))
            .bearer_auth(token)
            .send()
            .unwrap()
            .status()
    }
}

#[test]
fn the_auth_block_decodes() {
    let Some(l) = ldap() else { return };
    let f = fixture();
    let auth = auth_config(f.dir.path(), &l.url, "start_tls = true", "90m");
    let ldap = auth.ldap.unwrap();
    assert_eq!(
        ldap.user_dn,
        "uid={{ username }},ou=People,dc=example,dc=org"
    );
    assert!(ldap.start_tls);
    assert_eq!(auth.session_ttl, Duration::from_secs(90 * 60));
    assert_eq!(auth.roles["admins"], "admin");
    assert_eq!(auth.hostdb_v1.writers["dns"], vec!["dns-editors"]);
    assert!(auth.hostdb_v1.anonymous_read);
}

#[test]
fn sign_in_gives_roles_from_groups_and_keys_from_the_attribute() {
    let Some(l) = ldap() else { return };
    let f = fixture();
    let auth = auth_config(f.dir.path(), &l.url, "", "8h");
    let id = identity(&f, &auth);
    let rt = rt();
    let alice = rt.block_on(id.login("alice", "alice-secret")).unwrap();
    assert_eq!(alice.role, Role::Operator);
    assert_eq!(alice.groups, vec!["dns-editors", "ops"]);
    assert_eq!(alice.ssh_keys.len(), 2);
    assert!(alice.ssh_keys[0].starts_with("ssh-ed25519 "));
    let bob = rt.block_on(id.login("bob", "bob-secret")).unwrap();
    assert_eq!(bob.role, Role::Admin);
    assert_eq!(bob.ssh_keys.len(), 1);
    let carol = rt.block_on(id.login("carol", "carol-secret")).unwrap();
    assert_eq!(carol.role, Role::User);
    assert!(carol.ssh_keys.is_empty() && carol.groups.is_empty());
    // The session is a token of the store, with its expiry and groups.
    let info = f.store.token_verify(&alice.token).unwrap().unwrap();
    assert_eq!(info.name, "alice");
    assert_eq!(info.groups, vec!["dns-editors", "ops"]);
    assert!(info.expires_ms.unwrap() > kloud::hostdb::util::now_ms() + 7 * 3600 * 1000);
    // Each sign-in is in history with its actor, without the password.
    let history = f.store.history("user:alice").unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].kind, ObjectKind::Event);
    assert_eq!(history[0].actor, "user:alice");
    let text = serde_json::to_string(&history[0]).unwrap();
    assert!(
        !text.contains("alice-secret") && !text.contains(&alice.token),
        "{text}"
    );
}

#[test]
fn every_bad_credential_is_the_same_401() {
    let Some(l) = ldap() else { return };
    let f = fixture();
    let auth = auth_config(f.dir.path(), &l.url, "", "8h");
    let id = identity(&f, &auth);
    let rt = rt();
    for (user, password) in [
        ("alice", "wrong"),
        ("nobody", "alice-secret"),
        ("alice", ""),
        ("alice,ou=People", "x"),
        ("*", "x"),
    ] {
        let e = rt.block_on(id.login(user, password)).unwrap_err();
        assert!(matches!(e, IdentityError::BadCredentials), "{user}: {e}");
    }
    let served = serve(f.store.clone(), auth);
    let wrong = served.login("alice", "wrong");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let wrong: serde_json::Value = wrong.json().unwrap();
    let unknown: serde_json::Value = served.login("nobody", "pw").json().unwrap();
    assert_eq!(
        wrong, unknown,
        "unknown user and wrong password must read the same"
    );
    assert_eq!(wrong["error"]["message"], BAD_CREDENTIALS);
    let good = served.login("alice", "alice-secret");
    assert_eq!(good.status(), StatusCode::OK);
    let good: serde_json::Value = good.json().unwrap();
    assert_eq!(good["user"], "alice");
    assert_eq!(good["role"], "operator");
    assert!(good["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        served.whoami(good["token"].as_str().unwrap()),
        StatusCode::OK
    );
}

#[test]
fn ldap_down_is_a_503_while_api_tokens_keep_working() {
    let Some(_) = ldap() else { return };
    let f = fixture();
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let auth = auth_config(f.dir.path(), &format!("ldap://127.0.0.1:{port}"), "", "8h");
    let (_, api_token) = f.store.token_create("ci", Role::Reader).unwrap();
    let served = serve(f.store.clone(), auth);
    let r = served.login("alice", "alice-secret");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["error"]["code"], "ldap_unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("LDAP server cannot be reached"),
        "{body}"
    );
    assert_eq!(served.whoami(&api_token), StatusCode::OK);
}

#[test]
fn ldaps_and_starttls_with_the_test_ca() {
    let Some(l) = ldap() else { return };
    let f = fixture();
    let rt = rt();
    let ca = format!("ca_file = \"{}\"", l.ca);
    for (url, extra) in [
        (l.ldaps_url.clone(), ca.clone()),
        (l.url.clone(), format!("{ca}\nstart_tls = true")),
    ] {
        let auth = auth_config(f.dir.path(), &url, &extra, "8h");
        let s = rt.block_on(identity(&f, &auth).login("bob", "bob-secret"));
        assert_eq!(s.unwrap().role, Role::Admin, "{url} {extra}");
    }
    // Without the CA the certificate is not trusted: the directory cannot be reached safely.
    let auth = auth_config(f.dir.path(), &l.ldaps_url, "", "8h");
    let e = rt
        .block_on(identity(&f, &auth).login("bob", "bob-secret"))
        .unwrap_err();
    assert!(matches!(e, IdentityError::LdapUnavailable(_)), "{e}");
    // A CA file that is no certificate is refused when the service starts.
    std::fs::write(f.dir.path().join("bad.pem"), "not a certificate").unwrap();
    let auth = auth_config(f.dir.path(), &l.ldaps_url, "ca_file = \"bad.pem\"", "8h");
    assert!(matches!(
        Identity::new(f.store.clone(), Some(&auth)),
        Err(IdentityError::Tls(_))
    ));
}

#[test]
fn sessions_expire_and_logout_ends_them_on_every_replica() {
    let Some(l) = ldap() else { return };
    let f = fixture();
    // Two servers on one database, as two `kloud serve` replicas.
    let auth = auth_config(f.dir.path(), &l.url, "", "8h");
    let one = serve(f.store.clone(), auth.clone());
    let other_store: Arc<dyn Store> =
        Arc::new(kloud::hostdb::sqlite::open(&f.dir.path().join("hostdb.db")).unwrap());
    let two = serve(other_store, auth);
    let s: serde_json::Value = one.login("alice", "alice-secret").json().unwrap();
    let token = s["token"].as_str().unwrap().to_string();
    assert_eq!(one.whoami(&token), StatusCode::OK);
    assert_eq!(two.whoami(&token), StatusCode::OK);
    let r = one
        .client
        .post(format!("{}/v1/auth/logout", one.base))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(one.whoami(&token), StatusCode::UNAUTHORIZED);
    assert_eq!(
        two.whoami(&token),
        StatusCode::UNAUTHORIZED,
        "revocation is instant on a replica"
    );
    // An API token is not a session: logout refuses it.
    let (_, api_token) = f.store.token_create("ci", Role::Reader).unwrap();
    let r = one
        .client
        .post(format!("{}/v1/auth/logout", one.base))
        .bearer_auth(&api_token)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(one.whoami(&api_token), StatusCode::OK);

    // A short session stops working when its TTL passes.
    let short = auth_config(f.dir.path(), &l.url, "", "1s");
    let served = serve(f.store.clone(), short);
    let s: serde_json::Value = served.login("bob", "bob-secret").json().unwrap();
    let token = s["token"].as_str().unwrap().to_string();
    assert_eq!(served.whoami(&token), StatusCode::OK);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(served.whoami(&token), StatusCode::UNAUTHORIZED);
}

#[test]
fn hostdb_v1_sessions_come_from_ldap() {
    let Some(l) = ldap() else { return };
    let f = fixture();
    let auth = auth_config(f.dir.path(), &l.url, "", "8h");
    let access = auth.hostdb_v1.clone();
    let cert = tls::self_signed(&["localhost".to_string()]).unwrap();
    let config = tls::server_config(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes()).unwrap();
    let store = f.store.clone();
    let running = tls::spawn(
        "127.0.0.1:0".parse().unwrap(),
        move || {
            let identity = Arc::new(Identity::new(store.clone(), Some(&auth)).unwrap());
            kloud::server::v1::router(store, identity, access)
        },
        config,
        tls::Timeouts::default(),
        1,
    )
    .unwrap();
    let client = Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert_pem.as_bytes()).unwrap())
        .resolve("localhost", running.addr)
        .build()
        .unwrap();
    let base = format!("https://localhost:{}/hostdb/v1", running.addr.port());
    let r = client
        .post(format!("{base}/auth/session"))
        .form(&[("username", "carol"), ("password", "wrong")])
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["Error"], BAD_CREDENTIALS);
    let r = client
        .post(format!("{base}/auth/session"))
        .form(&[("username", "alice"), ("password", "alice-secret")])
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with("HostDB="));
    let session = r.text().unwrap();
    let user = client
        .get(format!("{base}/auth/session/{session}"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(user, "alice");
    let r = client
        .put(format!("{base}/dns/zone-a"))
        .body(format!("value=ttl%3A+60&log=first+zone&session={session}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let history = f.store.history("dns/zone-a").unwrap();
    assert_eq!(history[0].actor, "user:alice");
    assert_eq!(history[0].message.as_deref(), Some("first zone"));
}
