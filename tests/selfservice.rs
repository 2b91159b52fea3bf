//! Self-service through `kloud serve` (design §10) on real LXC containers: offers and quotas
//! under concurrent requests, a person sees and touches only their own hosts, request →
//! running → recreate → release, requests that wait for a config apply's lock, and a
//! `debian-12` host a person signed in with LDAP logs into by ssh with sudo.
//!
//! Needs root and LXC (scripts/setup/lxc.sh), slapd (scripts/setup/slapd.sh) for sign-in, and
//! debootstrap and ssh for the Debian host. Without them the tests skip, except under
//! `CI=true`, where they fail.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kloud::hostdb::{self, Role, Store};
use reqwest::blocking::Client;
use serde_json::{json, Value};

mod ops_support;

fn ready(test: &str, debian: bool) -> bool {
    let have = |prog: &str, arg: &str| {
        Command::new(prog)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    let mut ok = std::env::var_os("KLOUD_TEST_LXC").is_some() && have("lxc-create", "--version");
    if debian {
        ok = ok
            && Path::new("/usr/sbin/debootstrap").exists()
            && have("ssh", "-V")
            && std::env::var_os("KLOUD_TEST_LDAP_URL").is_some();
    }
    if !ok {
        let why = "LXC (and for Debian hosts debootstrap, ssh, slapd) is missing: source scripts/setup/lxc.sh and slapd.sh as root";
        if kloud_provider_api::under_ci() {
            panic!("{test}: {why}");
        }
        eprintln!("{test}: skipped, {why}");
    }
    ok
}

/// A config directory with machines recorded, offers, its own LXC root and bridge, and a
/// `kloud serve` over it; everything removed on drop.
struct Lab {
    dir: tempfile::TempDir,
    lxc_root: PathBuf,
    bridge: String,
    net: u8,
    serve: Option<Child>,
    base: String,
    http: Client,
    /// A HostDB URL (PostgreSQL) instead of the config's SQLite file.
    hostdb: Option<String>,
}

const OFFERS: &str = r#"
offer "small" {
  cpu      = 1
  memory   = "32MiB"
  disk     = "1GiB"
  image    = "busybox"
  network  = "NET"
  per_user = 3
  placement { max_per = { machine = 2 } }
}

offer "huge" {
  cpu      = 64
  memory   = "1GiB"
  disk     = "1GiB"
  image    = "busybox"
  network  = "NET"
  per_user = 1
}

offer "deb" {
  cpu      = 1
  memory   = "256MiB"
  disk     = "2GiB"
  image    = "debian-12"
  network  = "NET"
  per_user = 1
  login { sudo = true }
}
"#;

impl Lab {
    fn new(n: u8) -> Lab {
        Lab::with_hostdb(n, None)
    }

    fn with_hostdb(n: u8, hostdb: Option<String>) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let lxc_root = PathBuf::from(format!(
            "/var/lib/kloud/test-lxc/self-{n}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&lxc_root).unwrap();
        let ldap =
            std::env::var("KLOUD_TEST_LDAP_URL").unwrap_or_else(|_| "ldap://127.0.0.1:1".into());
        let main = format!(
            r#"kloud {{
  domain = "s{n}.kloud.test"
}}

machine_class "box" {{
  cpu    = 8
  memory = "8GiB"
  disk   = "100GiB"
}}

machines "m" {{
  class   = "box"
  count   = 2
  name    = "sm{{{{ index }}}}"
  labels  = {{ rack = "r1", switch = "s1" }}
  connect = "local"
}}

network "ss{n}" {{
  cidr    = "10.251.{n}.0/24"
  gateway = "10.251.{n}.1"
  dns     = ["10.251.{n}.1"]
}}

auth {{
  ldap {{
    url     = "{ldap}"
    user_dn = "uid={{{{ username }}}},ou=People,dc=example,dc=org"
    groups  = "ou=Groups,dc=example,dc=org"
    ssh_key_attribute = "sshPublicKey"
    timeout = "3s"
  }}
  roles = {{ ops = "operator", admins = "admin" }}
}}
{}"#,
            OFFERS.replace("NET", &format!("ss{n}"))
        );
        std::fs::write(dir.path().join("main.hcl"), main).unwrap();
        let mut lab = Lab {
            dir,
            lxc_root,
            bridge: format!("kl-ss{n}"),
            net: n,
            serve: None,
            hostdb,
            base: String::new(),
            http: Client::builder()
                .timeout(Duration::from_secs(180))
                .build()
                .unwrap(),
        };
        // The operators' apply records the machines (no host classes: nothing else).
        let out = lab
            .kloud()
            .args(["apply", ".", "--auto-approve"])
            .output()
            .unwrap();
        assert!(out.status.success(), "apply: {}", text(&out));
        lab.start_serve();
        lab
    }

    fn kloud(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kloud"));
        c.current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env("KLOUD_LXC_ROOT", &self.lxc_root)
            .env_remove("KLOUD_HOSTDB");
        if let Some(url) = &self.hostdb {
            c.env("KLOUD_HOSTDB", url);
        }
        c
    }

    fn start_serve(&mut self) {
        self.start_serve_with(&[]);
    }

    /// Serve https with a certificate for `localhost` written beside the config (`cert.pem`).
    fn start_serve_tls(&mut self) {
        if let Some(mut c) = self.serve.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let cert = kloud::server::tls::self_signed(&["localhost".to_string()]).unwrap();
        std::fs::write(self.dir.path().join("cert.pem"), &cert.cert_pem).unwrap();
        std::fs::write(self.dir.path().join("key.pem"), &cert.key_pem).unwrap();
        self.start_serve_with(&["--tls-cert", "cert.pem", "--tls-key", "key.pem"]);
        let port = self.base.rsplit(':').next().unwrap().to_string();
        self.base = format!("https://localhost:{port}");
        self.http = Client::builder()
            .timeout(Duration::from_secs(180))
            .add_root_certificate(reqwest::Certificate::from_pem(cert.cert_pem.as_bytes()).unwrap())
            .build()
            .unwrap();
    }

    fn start_serve_with(&mut self, extra: &[&str]) {
        let mut child = self
            .kloud()
            .args(["serve", ".", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("kloud serve says where it listens")
                .unwrap();
            if let Some(at) = line
                .find("://")
                .filter(|_| line.contains("kloud serve: http"))
            {
                let at = line[..at].rfind(' ').map_or(0, |i| i + 1);
                break line[at..].split_whitespace().next().unwrap().to_string();
            }
        };
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                eprintln!("serve: {line}");
            }
        });
        self.serve = Some(child);
        self.base = addr;
    }

    fn store(&self) -> Box<dyn Store> {
        let url = self.hostdb.as_deref().unwrap_or("sqlite:.kloud/hostdb.db");
        hostdb::open(url, self.dir.path()).unwrap()
    }

    /// An API token for `name` with `role` (a person without LDAP).
    fn token(&self, name: &str, role: Role) -> String {
        self.store().token_create(name, role).unwrap().1
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut req = match method {
            "GET" => self.http.get(url),
            "POST" => self.http.post(url),
            "DELETE" => self.http.delete(url),
            other => panic!("{other}"),
        };
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Poll `GET /v1/self/hosts/NAME` until `done` says so; the last answer.
    fn wait_for(
        &self,
        token: &str,
        name: &str,
        what: &str,
        done: impl Fn(u16, &Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            let (status, body) =
                self.call("GET", &format!("/v1/self/hosts/{name}"), Some(token), None);
            if done(status, &body) {
                return body;
            }
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "{name} never became {what}: {status} {body}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn wait_running(&self, token: &str, name: &str) -> Value {
        let body = self.wait_for(token, name, "running", |s, b| {
            s == 200 && (b["state"] == "running" || b["state"] == "failed")
        });
        assert_eq!(body["state"], "running", "{body}");
        body
    }

    /// The containers LXC really has on every machine of the lab.
    fn containers(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Ok(entries) = std::fs::read_dir(&self.lxc_root) else {
            return out;
        };
        for e in entries.flatten() {
            let ls = Command::new("lxc-ls")
                .arg("-1")
                .arg("-P")
                .arg(e.path())
                .output()
                .unwrap();
            for n in String::from_utf8_lossy(&ls.stdout).split_whitespace() {
                out.insert(n.to_string(), e.file_name().to_string_lossy().into_owned());
            }
        }
        out
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut c) = self.serve.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for (name, machine) in self.containers() {
            let _ = Command::new("lxc-destroy")
                .arg("-P")
                .arg(self.lxc_root.join(machine))
                .args(["-f", "-n", &name])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.lxc_root);
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
    }
}

fn names(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap().to_string())
        .collect()
}

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKloudTestSelfServiceKey00000000000000000000 t@kloud";

/// Ten requests at once against a quota of three: exactly three hosts and seven
/// `409 quota_exceeded`; every host placed within the offer's rule (two per machine at most);
/// another person sees none of them and cannot touch them; no token, no answer.
#[test]
fn the_quota_holds_under_concurrent_requests_and_people_see_only_their_own() {
    if !ready("quota", false) {
        return;
    }
    let lab = Lab::new(11);
    let dave = lab.token("dave", Role::User);
    let erin = lab.token("erin", Role::User);

    let answers: Vec<(u16, Value)> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..10)
            .map(|_| {
                s.spawn(|| {
                    lab.call(
                        "POST",
                        "/v1/self/hosts",
                        Some(&dave),
                        Some(json!({"offer": "small", "ssh_keys": [KEY]})),
                    )
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let accepted: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 202)
        .map(|(_, b)| b)
        .collect();
    let refused: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 409)
        .map(|(_, b)| b)
        .collect();
    assert_eq!((accepted.len(), refused.len()), (3, 7), "{answers:?}");
    for r in &refused {
        assert_eq!(r["error"]["code"], "quota_exceeded", "{r}");
        assert_eq!(r["error"]["details"]["per_user"], 3, "{r}");
    }
    let mut made: Vec<String> = accepted
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_string())
        .collect();
    made.sort();
    assert_eq!(
        made,
        [
            "small-dave-1.s11.kloud.test",
            "small-dave-2.s11.kloud.test",
            "small-dave-3.s11.kloud.test"
        ]
    );
    for b in &accepted {
        assert_eq!(b["owner"], "user:dave");
        assert_eq!(b["offer"], "small");
        assert!(b["ip"].as_str().unwrap().starts_with("10.251.11."), "{b}");
    }

    // The offers say what the caller holds.
    let (s, offers) = lab.call("GET", "/v1/offers", Some(&dave), None);
    assert_eq!(s, 200);
    let small = offers["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "small")
        .unwrap();
    assert_eq!(
        (small["used"].as_u64(), small["per_user"].as_u64()),
        (Some(3), Some(3))
    );
    let (_, theirs) = lab.call("GET", "/v1/offers", Some(&erin), None);
    assert!(
        theirs["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["used"] == 0),
        "{theirs}"
    );

    // Another person: nothing listed, 404 for each of dave's, and no way to touch them.
    let (s, list) = lab.call("GET", "/v1/self/hosts", Some(&erin), None);
    assert_eq!((s, names(&list).len()), (200, 0), "{list}");
    let first = &made[0];
    for (method, path) in [
        ("GET", format!("/v1/self/hosts/{first}")),
        ("DELETE", format!("/v1/self/hosts/{first}")),
        ("POST", format!("/v1/self/hosts/{first}/recreate")),
    ] {
        let (s, b) = lab.call(method, &path, Some(&erin), None);
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{method} {path}: {b}"
        );
    }
    // An operator sees everyone's.
    let ops = lab.token("ops", Role::Operator);
    let (_, all) = lab.call("GET", "/v1/self/hosts", Some(&ops), None);
    if names(&all).len() != 3 {
        for m in &made {
            eprintln!("{m}: {:#?}", lab.store().history(m).unwrap());
        }
    }
    assert_eq!(names(&all).len(), 3, "{all}");
    // No token, a bad token: 401 on every route.
    for path in [
        "/v1/offers",
        "/v1/self/hosts",
        &format!("/v1/self/hosts/{first}"),
    ] {
        assert_eq!(lab.call("GET", path, None, None).0, 401, "{path}");
        assert_eq!(
            lab.call("GET", path, Some("kloud_bogus"), None).0,
            401,
            "{path}"
        );
    }
    // Bad requests get their own codes.
    let (s, b) = lab.call(
        "POST",
        "/v1/self/hosts",
        Some(&erin),
        Some(json!({"offer": "nope"})),
    );
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (404, Some("unknown_offer")),
        "{b}"
    );
    let (s, b) = lab.call(
        "POST",
        "/v1/self/hosts",
        Some(&erin),
        Some(json!({"offer": "huge", "ssh_keys": [KEY]})),
    );
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (503, Some("no_capacity")),
        "{b}"
    );
    assert!(
        b["error"]["details"]["explanation"]
            .as_str()
            .unwrap()
            .contains("cpu"),
        "{b}"
    );
    let (s, b) = lab.call(
        "POST",
        "/v1/self/hosts",
        Some(&erin),
        Some(json!({"offer": "small"})),
    );
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("bad_request")),
        "no key: {b}"
    );

    // All three come up, two per machine at most (the offer's rule), as real containers.
    let mut per_machine: BTreeMap<String, usize> = BTreeMap::new();
    for name in &made {
        let h = lab.wait_running(&dave, name);
        *per_machine
            .entry(h["machine"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert!(per_machine.values().all(|n| *n <= 2), "{per_machine:?}");
    let containers = lab.containers();
    for name in &made {
        assert!(
            containers.contains_key(name),
            "{name} has no container: {containers:?}"
        );
    }
    // HostDB history names the person who asked.
    let history = lab.store().history(first).unwrap();
    assert!(
        history.iter().any(|c| c.actor == "user:dave"),
        "{history:?}"
    );
}

/// Request → running → recreate (a new container under the same name) → release (container
/// and record gone).
#[test]
fn a_host_is_recreated_and_released() {
    if !ready("recreate", false) {
        return;
    }
    let lab = Lab::new(12);
    let frank = lab.token("frank", Role::User);
    let (s, b) = lab.call(
        "POST",
        "/v1/self/hosts",
        Some(&frank),
        Some(json!({"offer": "small", "ssh_keys": [KEY]})),
    );
    assert_eq!(s, 202, "{b}");
    let name = b["name"].as_str().unwrap().to_string();
    let h = lab.wait_running(&frank, &name);
    let machine = h["machine"].as_str().unwrap().to_string();
    let marker = lab
        .lxc_root
        .join(&machine)
        .join(&name)
        .join("rootfs/marker");
    std::fs::write(&marker, "old").unwrap();

    let (s, b) = lab.call(
        "POST",
        &format!("/v1/self/hosts/{name}/recreate"),
        Some(&frank),
        None,
    );
    assert_eq!((s, b["state"].as_str()), (202, Some("recreating")), "{b}");
    lab.wait_for(&frank, &name, "recreated", |s, b| {
        s == 200 && b["state"] == "running" && !marker.exists()
    });
    assert!(lab.containers().contains_key(&name));

    let (s, b) = lab.call(
        "DELETE",
        &format!("/v1/self/hosts/{name}"),
        Some(&frank),
        None,
    );
    assert_eq!((s, b["state"].as_str()), (202, Some("deleting")), "{b}");
    lab.wait_for(&frank, &name, "gone", |s, _| s == 404);
    assert!(
        !lab.containers().contains_key(&name),
        "the container is still there"
    );
    assert!(lab.store().get_host(&name).unwrap().is_none());
    // The quota is free again: the same name comes back.
    let (s, b) = lab.call(
        "POST",
        "/v1/self/hosts",
        Some(&frank),
        Some(json!({"offer": "small", "ssh_keys": [KEY]})),
    );
    assert_eq!((s, b["name"].as_str()), (202, Some(name.as_str())), "{b}");
}

/// While a config apply holds the lock, a request waits; it is answered once the lock is free.
#[test]
fn a_request_waits_for_the_apply_lock() {
    if !ready("lock", false) {
        return;
    }
    let lab = Lab::new(13);
    let gina = lab.token("gina", Role::User);
    let store = lab.store();
    let lease = store
        .lock_acquire(
            "apply",
            "an operator's kloud apply",
            Duration::from_secs(60),
        )
        .unwrap();
    let answered = std::thread::scope(|s| {
        let call = s.spawn(|| {
            let r = lab.call(
                "POST",
                "/v1/self/hosts",
                Some(&gina),
                Some(json!({"offer": "small", "ssh_keys": [KEY]})),
            );
            (r, Instant::now())
        });
        std::thread::sleep(Duration::from_secs(2));
        assert!(!call.is_finished(), "the request did not wait for the lock");
        let freed = Instant::now();
        store.lock_release(&lease).unwrap();
        let ((status, body), at) = call.join().unwrap();
        assert_eq!(status, 202, "{body}");
        at.duration_since(freed)
    });
    assert!(
        answered < Duration::from_secs(5),
        "answered {answered:?} after the lock was freed"
    );
}

/// A person signed in with LDAP (no key in the directory) asks for a Debian host with their
/// key, and logs in by ssh with their own name and passwordless sudo.
#[test]
fn a_person_signs_in_and_logs_into_their_debian_host_with_sudo() {
    if !ready("debian", true) {
        return;
    }
    let lab = Lab::new(14);
    let key = lab.dir.path().join("id_ed25519");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "carol@laptop", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();

    let (s, session) = lab.call(
        "POST",
        "/v1/auth/login",
        None,
        Some(json!({"username": "carol", "password": "carol-secret"})),
    );
    assert_eq!(
        (s, session["role"].as_str()),
        (200, Some("user")),
        "{session}"
    );
    let token = session["token"].as_str().unwrap().to_string();
    let (s, b) = lab.call(
        "POST",
        "/v1/self/hosts",
        Some(&token),
        Some(json!({"offer": "deb", "ssh_keys": [public.trim()]})),
    );
    assert_eq!(s, 202, "{b}");
    let name = b["name"].as_str().unwrap().to_string();
    assert_eq!(name, "deb-carol-1.s14.kloud.test");
    let h = lab.wait_running(&token, &name);
    let ip = h["ip"].as_str().unwrap();
    let out = Command::new("ssh")
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args([
            "-o",
            "ConnectTimeout=5",
            "-o",
            "LogLevel=ERROR",
            "-F",
            "/dev/null",
            "-o",
            "IdentitiesOnly=yes",
            "-i",
        ])
        .arg(&key)
        .arg(format!("carol@{ip}"))
        .arg("id -un; hostname -f; sudo -n id -un")
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh: {}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .collect::<Vec<_>>(),
        ["carol", name.as_str(), "root"]
    );
    // The second request of a quota of one is refused; the host is released.
    let (s, _) = lab.call(
        "POST",
        "/v1/self/hosts",
        Some(&token),
        Some(json!({"offer": "deb", "ssh_keys": [public.trim()]})),
    );
    assert_eq!(s, 409);
    let (s, _) = lab.call(
        "DELETE",
        &format!("/v1/self/hosts/{name}"),
        Some(&token),
        None,
    );
    assert_eq!(s, 202);
    lab.wait_for(&token, &name, "gone", |s, _| s == 404);
    let _ = lab.net;
}

/// The people's CLI over https: `kloud login` keeps the session in a 0600 file, then
/// `offers`, `request --wait`, `mine`, `recreate --wait`, `release --wait` and `logout`.
#[test]
fn a_person_uses_the_cli_over_https() {
    if !ready("cli", true) {
        return;
    }
    let mut lab = Lab::new(15);
    lab.start_serve_tls();
    let home = tempfile::tempdir().unwrap();
    let key = home.path().join("key.pub");
    std::fs::write(&key, format!("{KEY}\n")).unwrap();
    let person = |args: &[&str], stdin: &str| -> Output {
        let mut c = lab.kloud();
        c.env("XDG_CONFIG_HOME", home.path())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let ok = |args: &[&str]| -> String {
        let out = person(args, "");
        assert!(
            out.status.success(),
            "kloud {}: {}",
            args.join(" "),
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let ca = lab.dir.path().join("cert.pem");
    // A wrong password: refused, nothing kept.
    let out = person(
        &[
            "login",
            &lab.base,
            "--user",
            "carol",
            "--ca-file",
            ca.to_str().unwrap(),
        ],
        "wrong\n",
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("unknown user or wrong password"),
        "{}",
        text(&out)
    );
    let session_file = home.path().join("kloud/session.json");
    assert!(!session_file.exists());
    // The right one: the session is kept, for its owner only, and the token is not printed.
    let out = person(
        &[
            "login",
            &lab.base,
            "--user",
            "carol",
            "--ca-file",
            ca.to_str().unwrap(),
        ],
        "carol-secret\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&session_file)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let saved: Value = serde_json::from_slice(&std::fs::read(&session_file).unwrap()).unwrap();
    assert!(
        !text(&out).contains(saved["token"].as_str().unwrap()),
        "the token was printed"
    );

    let offers = ok(&["offers"]);
    assert!(
        offers
            .lines()
            .any(|l| l.starts_with("small") && l.contains("0 of 3")),
        "{offers}"
    );
    let made = ok(&[
        "request",
        "small",
        "--ssh-key",
        key.to_str().unwrap(),
        "--wait",
    ]);
    assert!(
        made.starts_with("small-carol-1.s15.kloud.test: running"),
        "{made}"
    );
    assert!(made.contains("ssh carol@10.251.15."), "{made}");
    let mine = ok(&["mine"]);
    assert!(
        mine.lines()
            .any(|l| l.starts_with("small-carol-1.s15.kloud.test") && l.contains("running")),
        "{mine}"
    );
    let again = ok(&["recreate", "small-carol-1", "--wait"]);
    assert!(again.contains("running"), "{again}");
    ok(&["release", "small-carol-1", "--wait"]);
    assert!(!ok(&["mine"]).contains("small-carol-1"));
    // Quota and unknown offers are errors with a hint and a non-zero exit.
    let out = person(&["request", "nope"], "");
    assert!(!out.status.success());
    assert!(text(&out).contains("kloud offers"), "{}", text(&out));
    ok(&["logout"]);
    assert!(!session_file.exists());
    let out = person(&["mine"], "");
    assert!(!out.status.success());
    assert!(text(&out).contains("kloud login"), "{}", text(&out));
}

/// Two `kloud serve` on one PostgreSQL HostDB: requests to either count against one quota; a
/// watch on one wakes for a write through the other; one killed with -9 in the middle of
/// requests leaves nothing orphaned — the other repairs what it left, every record gets its
/// container and no container is without a record.
#[test]
fn two_servers_on_one_postgres_share_the_quota_and_repair_a_killed_ones_work() {
    if !ready("replicas", false) {
        return;
    }
    let Some((url, _schema)) = ops_support::pg_schema_url() else {
        return;
    };
    let mut a = Lab::with_hostdb(16, Some(url));
    let a_base = a.base.clone();
    let a_child = a.serve.take().unwrap();
    a.start_serve();
    let b_base = a.base.clone();
    let lab = a;
    let hana = lab.token("hana", Role::User);
    let admin = lab.token("watcher", Role::Admin);
    let at = |base: &str, method: &str, path: &str, body: Option<Value>| -> (u16, Value) {
        let url = format!("{base}{path}");
        let req = match method {
            "POST" => lab.http.post(url),
            _ => lab.http.get(url),
        };
        let req = req.bearer_auth(&hana);
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        match req.send() {
            Ok(r) => {
                let s = r.status().as_u16();
                (s, r.json().unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    };

    // A watch on B wakes for a request through A.
    let index: u64 = lab
        .http
        .get(format!("{b_base}/v1/index"))
        .bearer_auth(&admin)
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap()["index"]
        .as_u64()
        .unwrap();
    let watched = std::thread::scope(|s| {
        let watch = s.spawn(|| {
            let started = Instant::now();
            let r: Value = lab
                .http
                .get(format!("{b_base}/v1/index?index={index}&wait=20s"))
                .bearer_auth(&admin)
                .send()
                .unwrap()
                .json()
                .unwrap();
            (r["index"].as_u64().unwrap(), started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(300));
        let (s1, b1) = at(
            &a_base,
            "POST",
            "/v1/self/hosts",
            Some(json!({"offer": "small", "ssh_keys": [KEY]})),
        );
        assert_eq!(s1, 202, "{b1}");
        watch.join().unwrap()
    });
    assert!(
        watched.0 > index && watched.1 < Duration::from_secs(10),
        "{watched:?}"
    );

    // Five more at once, to both servers: two more fit the quota of three.
    let answers: Vec<u16> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..5)
            .map(|i| {
                let base = if i % 2 == 0 {
                    a_base.clone()
                } else {
                    b_base.clone()
                };
                let at = &at;
                s.spawn(move || {
                    at(
                        &base,
                        "POST",
                        "/v1/self/hosts",
                        Some(json!({"offer": "small", "ssh_keys": [KEY]})),
                    )
                    .0
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let count = |code: u16| answers.iter().filter(|s| **s == code).count();
    assert_eq!((count(202), count(409)), (2, 3), "{answers:?}");

    // Kill A with -9 while its worker is at the containers; B finishes and repairs.
    let mut a_child = a_child;
    std::thread::sleep(Duration::from_millis(150));
    let _ = a_child.kill();
    let _ = a_child.wait();
    let (_, mine) = at(&b_base, "GET", "/v1/self/hosts", None);
    let made = names(&mine);
    assert_eq!(made.len(), 3, "{mine}");
    for name in &made {
        lab.wait_running(&hana, name);
    }
    let containers = lab.containers();
    let recorded: std::collections::BTreeSet<&String> = made.iter().collect();
    // Hosts are FQDNs; the driver's cached image bases (`busybox-HASH`) are not hosts.
    let real: std::collections::BTreeSet<&String> = containers
        .keys()
        .filter(|n| n.ends_with(".s16.kloud.test"))
        .collect();
    assert_eq!(recorded, real, "records and containers differ");
}
