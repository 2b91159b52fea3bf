//! The HostDB v1 API over HTTPS (the TLS helper with a self-signed certificate the client
//! trusts), exercising every call the original's Perl and Go clients make, against SQLite and
//! PostgreSQL. Requests are shaped as those clients send them: form bodies without a content
//! type, `log` and `session` in the query string of a DELETE.

use std::sync::Arc;
use std::time::Duration;

use kloud::config::auth::HostDbV1Access;
use kloud::hostdb::{Actor, Expect, Host, Role, Store, Tag};
use kloud::identity::Identity;
use kloud::server::tls;
use reqwest::blocking::{Client, Response};
use reqwest::StatusCode;

/// The server under test: in this process, or a `kloud serve` process.
enum Running {
    InProcess(#[allow(dead_code)] tls::Running),
    Binary(std::process::Child, #[allow(dead_code)] tempfile::TempDir),
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Running::Binary(child, _) = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub struct Server {
    /// First, so the server stops before the test's own handle on the store is dropped: the
    /// PostgreSQL client must not be dropped on one of the server's runtime threads.
    _running: Running,
    pub base: String,
    pub client: Client,
    pub store: Arc<dyn Store>,
    /// A person's session that may write everything (operator).
    pub session: String,
    /// A token for kloud's own API (`/v1`), where reads are not anonymous.
    pub api_token: String,
}

impl Server {
    pub fn start(store: Arc<dyn Store>, access: HostDbV1Access) -> Server {
        let cert = tls::self_signed(&["localhost".to_string()]).unwrap();
        let config = tls::server_config(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes()).unwrap();
        let app_store = store.clone();
        let running = tls::spawn(
            "127.0.0.1:0".parse().unwrap(),
            move || {
                let identity = Arc::new(Identity::new(app_store.clone(), None).unwrap());
                let api = kloud::server::router(
                    app_store.clone(),
                    kloud::server::ServerConfig {
                        anonymous_read: true,
                        ..Default::default()
                    },
                );
                api.merge(kloud::server::v1::router(app_store, identity, access))
            },
            config,
            tls::Timeouts::default(),
            2,
        )
        .unwrap();
        let client = Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(cert.cert_pem.as_bytes()).unwrap())
            .resolve("localhost", running.addr)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let (_, session) = store
            .session_create("olivia", Role::Operator, &[], Duration::from_secs(3600))
            .unwrap();
        let api_token = store.token_create("suite-reader", Role::Reader).unwrap().1;
        Server {
            base: format!("https://localhost:{}/hostdb/v1", running.addr.port()),
            client,
            store,
            session,
            api_token,
            _running: Running::InProcess(running),
        }
    }

    /// A real `kloud serve` process with TLS over the HostDB at `url` (the one `store` opens),
    /// its `auth { hostdb_v1 { } }` block saying what `access` says.
    pub fn start_binary(store: Arc<dyn Store>, url: &str, access: HostDbV1Access) -> Server {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let cert = tls::self_signed(&["localhost".to_string()]).unwrap();
        std::fs::write(dir.path().join("cert.pem"), &cert.cert_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), &cert.key_pem).unwrap();
        let writers: Vec<String> = access
            .writers
            .iter()
            .map(|(ns, groups)| format!("{ns} = {groups:?}"))
            .collect();
        std::fs::write(
            dir.path().join("main.hcl"),
            format!(
                "kloud {{\n  domain = \"v1.test\"\n}}\n\nauth {{\n  hostdb_v1 {{\n    anonymous_read = {}\n    writers = {{ {} }}\n  }}\n}}\n",
                access.anonymous_read,
                writers.join(", ")
            ),
        )
        .unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kloud"))
            .args([
                "serve",
                ".",
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                "cert.pem",
                "--tls-key",
                "key.pem",
            ])
            .env("KLOUD_HOSTDB", url)
            .current_dir(dir.path())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let addr: std::net::SocketAddr = loop {
            let line = lines
                .next()
                .expect("kloud serve says where it listens")
                .unwrap();
            if let Some(rest) = line.strip_prefix("kloud serve: https://") {
                break rest.trim().parse().unwrap();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        let client = Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(cert.cert_pem.as_bytes()).unwrap())
            .resolve("localhost", addr)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let (_, session) = store
            .session_create("olivia", Role::Operator, &[], Duration::from_secs(3600))
            .unwrap();
        let api_token = store.token_create("suite-reader", Role::Reader).unwrap().1;
        Server {
            base: format!("https://localhost:{}/hostdb/v1", addr.port()),
            client,
            store,
            session,
            api_token,
            _running: Running::Binary(child, dir),
        }
    }

    pub fn get(&self, id: &str) -> Response {
        self.client
            .get(format!("{}/{id}", self.base))
            .send()
            .unwrap()
    }

    pub fn text(&self, id: &str) -> String {
        let r = self.get(id);
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "GET {id}: {:?}",
            r.headers().get("Error")
        );
        r.text().unwrap()
    }

    /// A form body as the Go client's PUT sends it: no Content-Type header.
    fn form(pairs: &[(&str, &str)]) -> String {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    }

    pub fn put_as(&self, id: &str, value: &str, log: &str, session: &str) -> Response {
        let body = Self::form(&[("value", value), ("log", log), ("session", session)]);
        self.client
            .put(format!("{}/{id}", self.base))
            .body(body)
            .send()
            .unwrap()
    }

    pub fn put(&self, id: &str, value: &str) -> Response {
        self.put_as(id, value, "test change", &self.session)
    }

    pub fn ok_put(&self, id: &str, value: &str) {
        let r = self.put(id, value);
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "PUT {id}: {:?}",
            r.headers().get("Error")
        );
    }

    pub fn post(&self, id: &str, newname: &str) -> Response {
        self.client
            .post(format!("{}/{id}", self.base))
            .form(&[
                ("newname", newname),
                ("log", "rename"),
                ("session", &self.session),
            ])
            .send()
            .unwrap()
    }

    pub fn delete(&self, id: &str) -> Response {
        self.client
            .delete(format!(
                "{}/{id}?log=remove_it&session={}",
                self.base, self.session
            ))
            .send()
            .unwrap()
    }
}

fn error_of(r: &Response) -> String {
    r.headers()
        .get("Error")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

fn seed(store: &dyn Store) {
    let actor = Actor::new("seed");
    let mut web = Tag::new("web");
    web.properties.insert("port".into(), serde_json::json!(80));
    store.put_tag(web, Expect::Absent, &actor).unwrap();
    let mut frontend = Tag::new("frontend");
    frontend
        .properties
        .insert("tier".into(), serde_json::json!("front"));
    store.put_tag(frontend, Expect::Absent, &actor).unwrap();
    // A container kloud manages: its machine, ip, class, state and owner are read-only.
    let mut managed = Host::container("app-1.dc1.example");
    managed.class = Some("app".into());
    managed.owner = Some("dc1.example".into());
    managed.ip = Some("10.0.0.7".into());
    managed.machine = Some("hw-1.dc1.example".into());
    managed.state = Some(kloud::hostdb::State::Running);
    managed.tags = vec!["web".into()];
    store.put_host(managed, Expect::Absent, &actor).unwrap();
}

pub fn namespaces_keys_and_values(s: &Server) {
    seed(&*s.store);
    assert_eq!(s.text(""), "hosts\ntags");
    s.ok_put(
        "hosts/db-1.dc1.example",
        "---\nNetwork:\n  CNAME: db.example.com\n  IP: 1.2.3.4\nrole: db\n",
    );
    assert_eq!(s.text("hosts"), "app-1.dc1.example\ndb-1.dc1.example");
    let yaml: serde_json::Value =
        serde_norway::from_str(&s.text("hosts/db-1.dc1.example")).unwrap();
    assert_eq!(yaml["Network"]["IP"], "1.2.3.4");
    // Paths into a value: read, set, rename, delete.
    assert_eq!(
        s.text("hosts/db-1.dc1.example/Network/IP").trim(),
        "1.2.3.4"
    );
    s.ok_put("hosts/db-1.dc1.example/Network/IP", "5.6.7.8");
    assert_eq!(
        s.text("hosts/db-1.dc1.example/Network/IP").trim(),
        "5.6.7.8"
    );
    assert_eq!(
        s.post("hosts/db-1.dc1.example/Network/CNAME", "cname")
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        s.text("hosts/db-1.dc1.example/Network/cname").trim(),
        "db.example.com"
    );
    assert_eq!(
        s.delete("hosts/db-1.dc1.example/Network/IP").status(),
        StatusCode::OK
    );
    let r = s.get("hosts/db-1.dc1.example/Network/IP");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // The same record through kloud's own model: the YAML is its properties.
    let host = s.store.get_host("db-1.dc1.example").unwrap().unwrap();
    assert_eq!(host.properties["role"], "db");
    assert_eq!(host.properties["Network"]["cname"], "db.example.com");
    // Unknown objects are 404 with the message in the Error header.
    let r = s.get("hosts/nope.example");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(error_of(&r).contains("does not exist"), "{}", error_of(&r));
    assert!(r.headers().get("CallTrace").is_some());
    // Bad YAML is a 400.
    let r = s.put("hosts/db-1.dc1.example", "a: [unclosed");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(error_of(&r).contains("YAML"));
    // Not supported on the namespace itself.
    assert_eq!(s.put("hosts", "x").status(), StatusCode::METHOD_NOT_ALLOWED);
}

pub fn managed_fields_are_read_only(s: &Server) {
    seed(&*s.store);
    let yaml = s.text("hosts/app-1.dc1.example");
    assert!(yaml.contains("ip: 10.0.0.7"), "{yaml}");
    // Edited and put back unchanged: fine, and it lands in the properties only.
    s.ok_put(
        "hosts/app-1.dc1.example",
        &format!("{yaml}team: payments\n"),
    );
    let host = s.store.get_host("app-1.dc1.example").unwrap().unwrap();
    assert_eq!(host.properties["team"], "payments");
    assert_eq!(host.ip.as_deref(), Some("10.0.0.7"));
    assert!(!host.properties.contains_key("ip"));
    for (id, value) in [
        ("hosts/app-1.dc1.example", "ip: 10.0.0.99\n"),
        ("hosts/app-1.dc1.example/owner", "someone-else"),
        ("hosts/app-1.dc1.example/state", "failed"),
    ] {
        let r = s.put(id, value);
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{id}");
        assert!(error_of(&r).contains("read-only"), "{}", error_of(&r));
    }
    for r in [
        s.post("hosts/app-1.dc1.example", "renamed.example"),
        s.delete("hosts/app-1.dc1.example"),
    ] {
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(
            error_of(&r).contains("managed by kloud"),
            "{}",
            error_of(&r)
        );
    }
}

pub fn members_nesting_and_cycles(s: &Server) {
    seed(&*s.store);
    s.ok_put("hosts/web-1.example", "a: 1");
    s.ok_put("hosts/web-2.example", "a: 2");
    s.ok_put("tags/lb", "vip: 10.0.0.1");
    // Set members (raw list with a nested tag and a comment), add one, read raw and expanded.
    s.ok_put("tags/frontend/members", "web-1.example\n# comment\n@web\n");
    s.ok_put("tags/frontend/members/web-2.example", "");
    assert_eq!(
        s.text("tags/frontend/members?raw=true"),
        "web-1.example\nweb-2.example\n@web"
    );
    assert_eq!(
        s.text("tags/frontend/members"),
        "app-1.dc1.example\nweb-1.example\nweb-2.example"
    );
    assert_eq!(
        s.text("tags/frontend/members/web-1.example"),
        "web-1.example"
    );
    assert_eq!(
        s.get("tags/frontend/members/web-9.example").status(),
        StatusCode::NOT_FOUND
    );
    // A member that does not exist, and a cycle, are refused.
    let r = s.put("tags/frontend/members/nope.example", "");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    s.ok_put("tags/web/members/@lb", "");
    let r = s.put("tags/lb/members/@frontend", "");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{}", error_of(&r));
    assert!(error_of(&r).contains("cycle"), "{}", error_of(&r));
    // Rename and delete a member.
    assert_eq!(
        s.post("tags/frontend/members/web-2.example", "web-1.example")
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        s.text("tags/frontend/members?raw=true"),
        "web-1.example\n@web"
    );
    assert_eq!(
        s.delete("tags/frontend/members/@web").status(),
        StatusCode::OK
    );
    assert_eq!(s.text("tags/frontend/members?raw=true"), "web-1.example");
    // kloud's own view agrees.
    assert_eq!(
        s.store.get_host("web-1.example").unwrap().unwrap().tags,
        vec!["frontend"]
    );
    // Delete all members.
    assert_eq!(s.delete("tags/frontend/members").status(), StatusCode::OK);
    assert_eq!(s.text("tags/frontend/members?raw=true"), "");
}

pub fn renames_follow_memberships(s: &Server) {
    seed(&*s.store);
    s.ok_put("hosts/old.example", "x: 1");
    s.ok_put("tags/frontend/members", "old.example\n@web");
    assert_eq!(
        s.post("hosts/old.example", "new.example").status(),
        StatusCode::CREATED
    );
    assert_eq!(s.get("hosts/old.example").status(), StatusCode::NOT_FOUND);
    assert_eq!(
        s.text("tags/frontend/members?raw=true"),
        "new.example\n@web"
    );
    // A tag rename renames it in every members list (its parents' and its members' records).
    assert_eq!(
        s.post("tags/web", "webservers").status(),
        StatusCode::CREATED
    );
    assert_eq!(
        s.text("tags/frontend/members?raw=true"),
        "new.example\n@webservers"
    );
    assert_eq!(s.text("tags/webservers/members"), "app-1.dc1.example");
    assert!(s.text("tags/webservers").contains("port: 80"));
    // Renaming onto an existing object is a conflict.
    s.ok_put("hosts/other.example", "");
    assert_eq!(
        s.post("hosts/new.example", "other.example").status(),
        StatusCode::CONFLICT
    );
    // Deleting a tag removes its memberships.
    assert_eq!(s.delete("tags/frontend").status(), StatusCode::OK);
    assert!(s
        .store
        .get_host("new.example")
        .unwrap()
        .unwrap()
        .tags
        .is_empty());
    assert!(s
        .store
        .get_tag("webservers")
        .unwrap()
        .unwrap()
        .tags
        .is_empty());
}

pub fn revisions_and_rollback(s: &Server) {
    seed(&*s.store);
    s.ok_put("hosts/r.example", "v: 1");
    s.ok_put("hosts/r.example", "v: 2");
    s.ok_put("hosts/r.example", "v: 3");
    let revs = s.text("hosts/r.example?meta=revisions&limit=2");
    let lines: Vec<&str> = revs.lines().collect();
    assert_eq!(lines.len(), 2, "{revs}");
    let newest: u64 = lines[0].split(' ').next().unwrap().parse().unwrap();
    let older: u64 = lines[1].split(' ').next().unwrap().parse().unwrap();
    assert!(newest > older, "{revs}");
    assert!(lines[0].contains("user:olivia test change"), "{revs}");
    let all = s.text("hosts/r.example?meta=revisions");
    assert_eq!(all.lines().count(), 3);
    let first: u64 = all
        .lines()
        .last()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let old = s.text(&format!("hosts/r.example?revision={first}"));
    assert_eq!(old.trim(), "v: 1");
    // Rollback: PUT what an old revision was.
    s.ok_put("hosts/r.example", &old);
    assert_eq!(s.text("hosts/r.example").trim(), "v: 1");
    assert_eq!(
        s.get("hosts/r.example?revision=0").status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get("hosts/r.example?revision=abc").status(),
        StatusCode::BAD_REQUEST
    );
}

/// A host and a tag may share a name, and so a change-log object: each namespace's revisions
/// are its own (`hosts/web?meta=revisions` listed tag web's changes too, and
/// `hosts/web?revision=` of one was a 500).
pub fn revisions_of_a_host_and_a_tag_of_one_name(s: &Server) {
    seed(&*s.store);
    s.ok_put("hosts/web", "v: host");
    s.ok_put("tags/web", "v: tag");
    let host_revs = s.text("hosts/web?meta=revisions");
    assert_eq!(host_revs.lines().count(), 1, "{host_revs}");
    let tag_revs = s.text("tags/web?meta=revisions");
    // seed made the tag, the PUT changed it.
    assert_eq!(tag_revs.lines().count(), 2, "{tag_revs}");
    let newest: u64 = tag_revs.split(' ').next().unwrap().parse().unwrap();
    // The tag's change is the newest: the host as of then is the host.
    assert_eq!(
        s.text(&format!("hosts/web?revision={newest}")).trim(),
        "v: host"
    );
    assert_eq!(
        s.text(&format!("tags/web?revision={newest}")).trim(),
        "v: tag"
    );
    // A host that never existed has no revisions, whatever tag has its name.
    assert_eq!(
        s.get("hosts/frontend?meta=revisions").status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get(&format!("hosts/frontend?revision={newest}")).status(),
        StatusCode::NOT_FOUND
    );
}

/// A NUL in an id or a parameter is 400 before the store is asked: PostgreSQL can neither store
/// nor look up text holding one (they were 500s on PostgreSQL).
pub fn nul_characters_are_refused(s: &Server) {
    seed(&*s.store);
    let r = s.put_as("dns/k", "a: b", "a\0b", &s.session);
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&r), "parameter `log` holds a NUL character");
    for id in [
        "hosts/a%00b",
        "dns/a%00b",
        "tags/web%00/members?raw=true",
        "hosts/*/x?foreach=tags/a%00b/members",
    ] {
        let r = s.get(id);
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "GET {id}");
        assert!(error_of(&r).contains("NUL"), "GET {id}: {}", error_of(&r));
    }
    let r = s.put("tags/web/members", "web-1.example\0");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Nothing was written.
    assert_eq!(s.get("dns/k").status(), StatusCode::NOT_FOUND);
}

/// A method an id has no call for is 405 with `Allow`, session or not (it was 401 without a
/// session, then 400 without a log, as if it were a write), and every 405 says `Allow`.
pub fn other_methods_are_405(s: &Server) {
    seed(&*s.store);
    let cases = [
        (
            "PATCH",
            "hosts/app-1.dc1.example",
            "GET, HEAD, PUT, POST, DELETE",
        ),
        (
            "OPTIONS",
            "hosts/app-1.dc1.example",
            "GET, HEAD, PUT, POST, DELETE",
        ),
        ("TRACE", "tags/web", "GET, HEAD, PUT, POST, DELETE"),
        ("PUT", "", "GET, HEAD"),
        ("DELETE", "hosts", "GET, HEAD"),
        ("POST", "tags/web/members", "GET, HEAD, PUT, DELETE"),
        ("PUT", "auth/session", "GET, HEAD, POST"),
        ("POST", "auth/can_modify", "GET, HEAD"),
    ];
    for (method, id, allow) in cases {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = s
            .client
            .request(method.clone(), format!("{}/{id}", s.base))
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {id}");
        assert_eq!(error_of(&r), "Not Supported", "{method} {id}");
        assert_eq!(r.headers().get("Allow").unwrap(), allow, "{method} {id}");
    }
    // The original's 405 for parents of another namespace than hosts says Allow too.
    let r = s.get("tags/web?meta=parents&from=tags");
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        r.headers().get("Allow").unwrap(),
        "GET, HEAD, PUT, POST, DELETE"
    );
}

pub fn search_parents_derived_foreach(s: &Server) {
    seed(&*s.store);
    for i in 1..=3 {
        s.ok_put(
            &format!("hosts/web-{i}.example"),
            &format!("Network:\n  IP: 10.1.0.{i}\n"),
        );
    }
    s.ok_put("tags/web/members", "web-1.example\nweb-2.example\n");
    s.ok_put("tags/frontend/members", "@web\nweb-3.example");
    assert_eq!(
        s.text("tags/web/members?raw=true"),
        "web-1.example\nweb-2.example"
    );
    assert_eq!(
        s.text("hosts?search=^web-[12]"),
        "web-1.example\nweb-2.example"
    );
    assert_eq!(
        s.text("hosts/web-1.example?meta=parents&from=tags"),
        "frontend\nweb"
    );
    // The Go client says `meta=parent`.
    assert_eq!(
        s.text("hosts/web-1.example?meta=parent&from=tags"),
        "frontend\nweb"
    );
    let derived: serde_json::Value =
        serde_norway::from_str(&s.text("hosts/web-1.example?meta=derived&from=tags")).unwrap();
    assert_eq!(derived["web"]["port"], 80);
    assert_eq!(derived["frontend"]["tier"], "front");
    assert_eq!(
        s.get("tags/web?meta=parents&from=tags").status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
    let ips: serde_json::Value =
        serde_norway::from_str(&s.text("hosts/*/Network/IP?foreach=tags/frontend/members"))
            .unwrap();
    assert_eq!(ips["web-1.example"], "10.1.0.1");
    assert_eq!(ips["web-3.example"], "10.1.0.3");
    assert!(ips["app-1.dc1.example"].is_null());
    let members: serde_json::Value =
        serde_norway::from_str(&s.text("tags/*/members?foreach=tags")).unwrap();
    assert_eq!(s.text("tags/web/members"), "web-1.example\nweb-2.example");
    assert_eq!(members["web"], "web-1.example web-2.example");
    assert_eq!(
        members["frontend"],
        "web-1.example web-2.example web-3.example"
    );
}

pub fn documents_in_other_namespaces(s: &Server) {
    s.ok_put("dns/zone-a", "ttl: 300\nrecords:\n  - a\n  - b\n");
    s.ok_put("dns/zone-b", "ttl: 60");
    assert_eq!(s.text(""), "hosts\ntags\ndns");
    assert_eq!(s.text("dns"), "zone-a\nzone-b");
    assert_eq!(s.text("dns/zone-a/records/1").trim(), "b");
    assert_eq!(s.post("dns/zone-b", "zone-c").status(), StatusCode::CREATED);
    assert_eq!(s.text("dns"), "zone-a\nzone-c");
    assert_eq!(s.text("dns/zone-c?meta=revisions").lines().count(), 1);
    assert_eq!(s.delete("dns/zone-c").status(), StatusCode::OK);
    assert_eq!(s.get("dns/zone-c").status(), StatusCode::NOT_FOUND);
    let history = s.store.history("dns/zone-a").unwrap();
    assert_eq!(history.last().unwrap().actor, "user:olivia");
    assert_eq!(
        history.last().unwrap().message.as_deref(),
        Some("test change")
    );
    assert_eq!(s.get("dns/zone-a/members").status(), StatusCode::NOT_FOUND);
}

pub fn writes_need_a_session_log_and_permission(s: &Server) {
    seed(&*s.store);
    let before = s.store.index().unwrap();
    // No session, an unknown session, no log.
    let r = s
        .client
        .put(format!("{}/hosts/x.example", s.base))
        .body("value=a%3A+1&log=x")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        s.put_as("hosts/x.example", "a: 1", "x", "hdb_nope")
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let r = s.put_as("hosts/x.example", "a: 1", "", &s.session);
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(error_of(&r).contains("log"));
    // A person with role user may write only where a group of theirs is a writer.
    let (_, user) = s
        .store
        .session_create(
            "ursula",
            Role::User,
            &["dns-editors".into()],
            Duration::from_secs(60),
        )
        .unwrap();
    let r = s.put_as("hosts/x.example", "a: 1", "x", &user);
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(error_of(&r).contains("ursula"), "{}", error_of(&r));
    assert_eq!(
        s.put_as("dns/zone", "a: 1", "x", &user).status(),
        StatusCode::CREATED
    );
    // The cookie the original's sign-in sets works as the session too.
    let r = s
        .client
        .put(format!("{}/dns/zone2", s.base))
        .header("Cookie", format!("HostDB={user}"))
        .body("value=b&log=cookie")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        s.store.index().unwrap(),
        before + 2,
        "each accepted write bumps the index once"
    );
    // Session checks and can_modify.
    assert_eq!(s.text(&format!("auth/session/{user}")), "ursula");
    assert_eq!(
        s.get("auth/session/hdb_nope").status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(s.text("auth/can_modify?user=ursula&id=dns/zone"), "1");
    assert_eq!(
        s.text("auth/can_modify?user=ursula&id=hosts/x.example"),
        "0"
    );
    assert_eq!(
        s.text("auth/can_modify?user=olivia&id=hosts/x.example"),
        "1"
    );
    // A logged-out (deleted) session stops at once.
    let id = s.store.token_verify(&user).unwrap().unwrap().id;
    s.store.token_delete(&id).unwrap();
    assert_eq!(
        s.put_as("dns/zone", "a: 2", "x", &user).status(),
        StatusCode::UNAUTHORIZED
    );
}

pub fn v1_writes_show_in_kloud_api_and_wake_watchers(s: &Server) {
    seed(&*s.store);
    let index = s.store.index().unwrap();
    let api = s.base.replace("/hostdb/v1", "/v1");
    let url = format!("{api}/hosts?index={index}&wait=20s");
    let client = s.client.clone();
    let token = s.api_token.clone();
    let watcher = std::thread::spawn(move || {
        let t = std::time::Instant::now();
        let r = client.get(url).bearer_auth(token).send().unwrap();
        (
            r.status(),
            r.headers().get("x-hostdb-index").cloned(),
            t.elapsed(),
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    s.ok_put("hosts/watched.example", "a: 1");
    let (status, header, waited) = watcher.join().unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(
        waited < Duration::from_secs(10),
        "the watcher woke late: {waited:?}"
    );
    let woke_at: u64 = header
        .expect("index header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(woke_at > index);
    let history: serde_json::Value = s
        .client
        .get(format!("{api}/history/watched.example"))
        .bearer_auth(&s.api_token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let text = history.to_string();
    assert!(
        text.contains("user:olivia") && text.contains("test change"),
        "{text}"
    );
}

pub fn anonymous_reads_can_be_refused(store: Arc<dyn Store>) {
    let s = Server::start(
        store,
        HostDbV1Access {
            anonymous_read: false,
            writers: Default::default(),
        },
    );
    assert_eq!(s.get("hosts").status(), StatusCode::UNAUTHORIZED);
    let r = s
        .client
        .get(format!("{}/hosts?session={}", s.base, s.session))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

fn access() -> HostDbV1Access {
    let mut a = HostDbV1Access::default();
    a.writers.insert("dns".into(), vec!["dns-editors".into()]);
    a
}

macro_rules! v1_suite {
    ($open:expr) => {
        v1_suite!($open, |store, _url| crate::Server::start(
            store,
            crate::access()
        ));

        #[test]
        fn anonymous_reads_refused_when_configured() {
            let Some((store, _url, _keep)) = $open else {
                return;
            };
            crate::anonymous_reads_can_be_refused(store);
        }
    };
    ($open:expr, $start:expr) => {
        macro_rules! case {
            ($name:ident) => {
                #[test]
                fn $name() {
                    let Some((store, url, _keep)) = $open else {
                        return;
                    };
                    let start: fn(Arc<dyn Store>, String) -> crate::Server = $start;
                    let s = start(store, url);
                    crate::$name(&s);
                }
            };
        }
        case!(namespaces_keys_and_values);
        case!(managed_fields_are_read_only);
        case!(members_nesting_and_cycles);
        case!(renames_follow_memberships);
        case!(revisions_and_rollback);
        case!(revisions_of_a_host_and_a_tag_of_one_name);
        case!(nul_characters_are_refused);
        case!(other_methods_are_405);
        case!(search_parents_derived_foreach);
        case!(documents_in_other_namespaces);
        case!(writes_need_a_session_log_and_permission);
        case!(v1_writes_show_in_kloud_api_and_wake_watchers);
    };
}

mod sqlite {
    use super::*;

    pub fn open() -> Option<(Arc<dyn Store>, String, tempfile::TempDir)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hostdb.db");
        let store = kloud::hostdb::sqlite::open(&path).unwrap();
        Some((Arc::new(store), format!("sqlite:{}", path.display()), dir))
    }

    v1_suite!(open());
}

/// The same suite against a `kloud serve` process, on SQLite and on PostgreSQL.
mod serve_sqlite {
    use super::*;
    v1_suite!(super::sqlite::open(), |store, url| {
        crate::Server::start_binary(store, &url, crate::access())
    });
}

mod serve_pg {
    use super::*;
    v1_suite!(super::pg::open(), |store, url| crate::Server::start_binary(
        store,
        &url,
        crate::access()
    ));
}

mod pg {
    use super::*;

    pub struct Schema {
        admin_url: String,
        schema: String,
    }

    impl Drop for Schema {
        fn drop(&mut self) {
            if let Ok(mut c) = postgres::Client::connect(&self.admin_url, postgres::NoTls) {
                let _ = c.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema));
            }
        }
    }

    pub fn open() -> Option<(Arc<dyn Store>, String, Schema)> {
        let admin_url = match std::env::var("KLOUD_TEST_PG_URL") {
            Ok(u) if !u.is_empty() => u,
            _ if kloud_provider_api::under_ci() => {
                panic!("CI=true but KLOUD_TEST_PG_URL is not set: source scripts/setup/postgres.sh")
            }
            _ => {
                eprintln!("skipping: KLOUD_TEST_PG_URL not set (source scripts/setup/postgres.sh)");
                return None;
            }
        };
        let schema = format!("v1_{}", kloud::hostdb::util::random_hex(8).unwrap());
        let mut c = postgres::Client::connect(&admin_url, postgres::NoTls).unwrap();
        c.batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap();
        let url = format!("{admin_url}?options=-c%20search_path%3D{schema}");
        let store = kloud::hostdb::postgres::open(&url).unwrap();
        Some((Arc::new(store), url, Schema { admin_url, schema }))
    }

    v1_suite!(open());
}

/// The TLS helper: a certificate from PEM files, HSTS on every answer, the fingerprint as
/// openssl prints it, plain http refused, and a connection that sends nothing is closed.
#[test]
fn tls_serving_from_pem_files_with_hsts_and_timeouts() {
    use std::io::{Read, Write as _};
    let dir = tempfile::tempdir().unwrap();
    let cert = tls::self_signed(&["localhost".to_string()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, &cert.cert_pem).unwrap();
    std::fs::write(&key_path, &cert.key_pem).unwrap();
    if let Ok(out) = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert_path)
        .output()
    {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.trim().ends_with(&cert.fingerprint),
            "{text} vs {}",
            cert.fingerprint
        );
    }
    assert!(
        tls::load_pem_files(&key_path, &key_path).is_err(),
        "a key is no certificate"
    );
    let config = tls::load_pem_files(&cert_path, &key_path).unwrap();
    let timeouts = tls::Timeouts {
        handshake: Duration::from_secs(2),
        header_read: Duration::from_secs(1),
    };
    let running = tls::spawn(
        "127.0.0.1:0".parse().unwrap(),
        || axum::Router::new().route("/", axum::routing::get(|| async { "hello" })),
        config,
        timeouts,
        1,
    )
    .unwrap();
    let client = Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert_pem.as_bytes()).unwrap())
        .resolve("localhost", running.addr)
        .build()
        .unwrap();
    let r = client
        .get(format!("https://localhost:{}/", running.addr.port()))
        .send()
        .unwrap();
    assert_eq!(r.headers()["strict-transport-security"], tls::HSTS);
    assert_eq!(r.text().unwrap(), "hello");
    // Plain http to the TLS port gets no HTTP answer.
    let plain = reqwest::blocking::get(format!("http://127.0.0.1:{}/", running.addr.port()));
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    // A client that connects and sends nothing is cut off by the handshake timeout.
    let mut idle = std::net::TcpStream::connect(running.addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let t = std::time::Instant::now();
    let mut buf = [0u8; 16];
    let n = idle.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the server closes the connection");
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "closed after {:?}",
        t.elapsed()
    );
    let _ = idle.write_all(b"x");
}
