//! The HTTP client of the people's commands: JSON in and out, the server's error codes turned
//! into diagnostics with a hint, the session's bearer token on every call.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use miette::{miette, IntoDiagnostic};
use reqwest::blocking::{RequestBuilder, Response};
use serde_json::Value;

use super::credentials::Saved;

pub struct Client {
    http: reqwest::blocking::Client,
    url: String,
    token: Option<String>,
}

impl Client {
    pub fn new(url: &str, token: Option<String>, ca_file: Option<&Path>) -> miette::Result<Client> {
        let mut b = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(150))
            .connect_timeout(Duration::from_secs(10));
        if let Some(ca) = ca_file {
            let pem = std::fs::read(ca).map_err(|e| miette!("reading {}: {e}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| miette!("{} is not a PEM certificate: {e}", ca.display()))?;
            b = b.add_root_certificate(cert);
        }
        Ok(Client {
            http: b.build().into_diagnostic()?,
            url: url.trim_end_matches('/').to_string(),
            token,
        })
    }

    pub fn signed_in(saved: &Saved) -> miette::Result<Client> {
        Client::new(
            &saved.url,
            Some(saved.token.clone()),
            saved.ca_file.as_deref(),
        )
    }

    fn send(&self, req: RequestBuilder) -> miette::Result<Value> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().map_err(|e| {
            miette!(
                code = "kloud::people::unreachable",
                help = "is `kloud serve` running there? (https needs --ca-file for a private CA)",
                "cannot reach {}: {e}",
                self.url
            )
        })?;
        answer(resp)
    }

    pub fn get(&self, path: &str) -> miette::Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.url)))
    }

    pub fn post(&self, path: &str, body: Value) -> miette::Result<Value> {
        let req = self.http.post(format!("{}{path}", self.url));
        self.send(if body.is_null() { req } else { req.json(&body) })
    }

    pub fn delete(&self, path: &str) -> miette::Result<Value> {
        self.send(self.http.delete(format!("{}{path}", self.url)))
    }

    /// Poll `path` until it answers 404.
    pub fn wait_gone(&self, path: &str, timeout: Duration) -> miette::Result<()> {
        let started = Instant::now();
        loop {
            let mut req = self.http.get(format!("{}{path}", self.url));
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            let status = req.send().into_diagnostic()?.status();
            if status == reqwest::StatusCode::NOT_FOUND {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(miette!("{path} is still there after {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// A success's JSON, or the server's error as a diagnostic.
fn answer(resp: Response) -> miette::Result<Value> {
    let status = resp.status();
    let text = resp.text().unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or("error")
        .to_string();
    let message = body["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{status}: {}", text.chars().take(200).collect::<String>()));
    let help = match code.as_str() {
        "unauthorized" | "bad_credentials" => "sign in again with `kloud login URL`",
        "quota_exceeded" => "`kloud mine` lists your hosts; `kloud release NAME` gives one back",
        "unknown_offer" => "`kloud offers` lists the offers",
        "no_capacity" => "ask your operators for more machines, or try a smaller offer",
        "busy" => "an operator's apply holds the lock; try again in a minute",
        _ => "",
    };
    let details = body["error"]["details"]["explanation"]
        .as_str()
        .map(|e| format!("\n{e}"))
        .unwrap_or_default();
    Err(miette!(
        code = format!("kloud::serve::{code}"),
        help = help.to_string(),
        "{message}{details}"
    ))
}

/// Read a password: without echo on a terminal, else one line of standard input.
pub fn read_password(prompt: &str, from_stdin: bool) -> miette::Result<String> {
    let stdin = std::io::stdin();
    if from_stdin || !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line).into_diagnostic()?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    eprint!("{prompt}");
    std::io::stderr().flush().into_diagnostic()?;
    let _echo = EchoOff::new();
    let mut line = String::new();
    stdin.lock().read_line(&mut line).into_diagnostic()?;
    eprintln!();
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Turns terminal echo off until dropped.
struct EchoOff(Option<libc::termios>);

impl EchoOff {
    fn new() -> EchoOff {
        // SAFETY: termios is plain data; tcgetattr fills it for fd 0, a terminal here.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return EchoOff(None);
            }
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            libc::tcsetattr(0, libc::TCSANOW, &t);
            EchoOff(Some(saved))
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(t) = self.0 {
            // SAFETY: restoring the attributes read in `new`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &t);
            }
        }
    }
}
