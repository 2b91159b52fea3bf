//! `kloud serve` as a process: https only when TLS is configured, the HostDB API behind its
//! tokens, the HostDB v1 API's anonymous reads, and plain http refused on the TLS port.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use kloud::server::tls;

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `kloud serve` over a small config with `extra` flags; its address from stderr.
fn serve(dir: &std::path::Path, extra: &[&str]) -> (Serve, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kloud"))
        .args(["serve", ".", "--listen", "127.0.0.1:0"])
        .args(extra)
        .current_dir(dir)
        .env_remove("KLOUD_HOSTDB")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("kloud serve says where it listens")
            .unwrap();
        if let Some(at) = line.find("://") {
            let rest = &line[at + 3..];
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (Serve(child), addr)
}

fn config(dir: &std::path::Path) {
    std::fs::write(
        dir.join("main.hcl"),
        "kloud {\n  domain = \"t.internal\"\n  hostdb = \"sqlite:hostdb.db\"\n}\n",
    )
    .unwrap();
}

#[test]
fn serves_https_only_with_the_hostdb_and_v1_apis() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path());
    let cert = tls::self_signed(&["localhost".to_string()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), &cert.cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &cert.key_pem).unwrap();
    let (_server, addr) = serve(
        dir.path(),
        &["--tls-cert", "cert.pem", "--tls-key", "key.pem"],
    );
    let port = addr.rsplit(':').next().unwrap();
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let base = format!("https://localhost:{port}");
    // The HostDB API wants a token.
    let r = client.get(format!("{base}/v1/index")).send().unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().contains_key("strict-transport-security"));
    // The v1 API reads anonymously, as the original did: no hosts yet, an empty list.
    let r = client
        .get(format!("{base}/hostdb/v1/hosts"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text());
    // Plain http on the TLS port gets no HTTP answer.
    let plain = reqwest::blocking::Client::new()
        .get(format!("http://127.0.0.1:{port}/v1/index"))
        .timeout(std::time::Duration::from_secs(5))
        .send();
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
}

#[test]
fn a_self_signed_certificate_is_generated_and_its_fingerprint_printed() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_kloud"))
        .args(["serve", ".", "--listen", "127.0.0.1:0", "--tls-self-signed"])
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let second = lines.next().unwrap().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(first.contains("SHA-256 fingerprint"), "{first}");
    let hex = first.rsplit(' ').next().unwrap();
    assert_eq!(hex.split(':').count(), 32, "{hex}");
    assert!(second.contains("https://127.0.0.1:"), "{second}");
}
