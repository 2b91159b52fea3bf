//! Benchmark: `kloud plan` end to end (load the config, snapshot HostDB, diff, place, render
//! JSON) against an embedded SQLite HostDB of 100,000 hosts.
//!
//! `cargo bench --bench plan_scale` prints, for 1,000 / 10,000 / 100,000 declared hosts:
//! the time of a plan with no changes (everything already recorded) and of a plan that creates
//! every host (placement included), medians of several runs, and the peak memory of the process.
//! `KLOUD_BENCH_SIZES=1000,10000` limits the sizes. `KLOUD_BENCH_KEEP=1` keeps each size's
//! HostDB and config directory (printed) for profiling `kloud plan` by hand.
//!
//! The same plans are then made by the `kloud` binary itself (`kloud plan DIR --json` with its
//! output discarded), timed from spawn to exit and with the peak resident memory of that process
//! alone (`wait4`), which is what an operator sees; the in-process figures above exclude process
//! start and include this benchmark's own data in the memory figure.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use kloud::apply::records;
use kloud::config::{self, Config, Diagnostics, SourceFile, VarOverrides};
use kloud::hostdb::{self, Actor, Expect, Host, State, Store, Write};
use kloud::plan::{self, Plan};

const HOSTDB_SIZE: usize = 100_000;
const HOSTS_PER_CLASS: usize = 100;

fn config_text(hosts: usize) -> Vec<Arc<SourceFile>> {
    let machines = (hosts / 24).max(40);
    let mut main = String::from(
        "kloud {\n  domain = \"bench.example\"\n}\n\nmachine_class \"app\" {\n  cpu    = 32\n  memory = \"128GiB\"\n  disk   = \"2TiB\"\n}\n\nnetwork \"prod\" {\n  cidr = \"10.0.0.0/8\"\n  gateway = \"10.0.0.1\"\n}\n",
    );
    let per_group = 40;
    for g in 0..machines.div_ceil(per_group) {
        main.push_str(&format!(
            "machines \"g{g}\" {{\n  class = \"app\"\n  count = {per_group}\n  name = \"hw-g{g}-{{{{ index }}}}\"\n  labels = {{ rack = \"r{g}\", switch = \"sw{}\" }}\n}}\n",
            g / 5
        ));
    }
    for c in 0..hosts / HOSTS_PER_CLASS {
        main.push_str(&format!(
            "host_class \"c{c}\" {{\n  count = {HOSTS_PER_CLASS}\n  cpu = 1\n  memory = \"1GiB\"\n  disk = \"10GiB\"\n  image = \"debian-12\"\n  network = \"prod\"\n  properties = {{ team = \"t{c}\" }}\n  placement {{\n    max_per = {{ machine = 4 }}\n  }}\n}}\n"
        ));
    }
    vec![Arc::new(SourceFile::new("main.hcl", main))]
}

fn load(files: Vec<Arc<SourceFile>>) -> Config {
    let mut d = Diagnostics::default();
    let c = config::load_sources(
        Path::new("."),
        files,
        &VarOverrides::new(),
        &BTreeMap::new(),
        &mut d,
    );
    assert!(d.is_empty(), "{d}");
    c.expect("valid config")
}

fn plan_once(files: &[Arc<SourceFile>], store: &dyn Store) -> (Plan, f64) {
    let start = Instant::now();
    let config = load(files.to_vec());
    let snap = store.snapshot(&config.settings.owner).expect("snapshot");
    let used = store.used_ips().expect("used ips");
    let p = plan::diff(
        &config,
        &snap,
        &used,
        "sqlite:bench",
        &plan::Options::default(),
    )
    .expect("plan");
    let json = serde_json::to_string(&p).expect("json");
    assert!(!json.is_empty());
    (p, start.elapsed().as_secs_f64())
}

fn record(config: &Config, store: &dyn Store, p: &Plan) {
    let actor = Actor::new("bench");
    let writes = records::as_applied(p, &config.settings.owner);
    for chunk in writes.chunks(20_000) {
        store.write(chunk.to_vec(), &actor).expect("write");
    }
}

/// Fill HostDB up to `HOSTDB_SIZE` hosts with containers another config owns.
fn fill_foreign(store: &dyn Store, count: usize) {
    let actor = Actor::new("bench");
    let writes: Vec<Write> = (0..count)
        .map(|i| {
            let mut h = Host::container(&format!("other-{i}.elsewhere.example"));
            h.owner = Some("someone-else".into());
            h.class = Some("other".into());
            h.ip = Some(std::net::Ipv4Addr::from(0xAC10_0000u32 + i as u32 + 1).to_string());
            h.state = Some(State::Running);
            Write::PutHost {
                host: h,
                expect: Expect::Any,
            }
        })
        .collect();
    for chunk in writes.chunks(20_000) {
        store.write(chunk.to_vec(), &actor).expect("write");
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Run `kloud plan DIR --json` against `hostdb`: (wall seconds, peak RSS MiB, exit code).
// The child is reaped by `wait4` (for its own resource usage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn plan_binary(dir: &Path, hostdb: &str) -> (f64, f64, i32) {
    let start = Instant::now();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_kloud"))
        .args(["plan", "--json", "--detailed-exitcode", "--hostdb", hostdb])
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn kloud");
    let mut status = 0;
    // SAFETY: `rusage` is a plain C struct that wait4 fills in; the pid is our own child's.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert!(pid > 0, "wait4 failed");
    let secs = start.elapsed().as_secs_f64();
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (secs, usage.ru_maxrss as f64 / 1024.0, code)
}

/// Medians of three binary runs: (seconds, peak MiB).
fn plan_binary_median(dir: &Path, hostdb: &str, expect_code: i32) -> (f64, f64) {
    let runs: Vec<(f64, f64)> = (0..3)
        .map(|_| {
            let (t, rss, code) = plan_binary(dir, hostdb);
            assert_eq!(code, expect_code, "kloud plan exit code");
            (t, rss)
        })
        .collect();
    (
        median(runs.iter().map(|r| r.0).collect()),
        median(runs.iter().map(|r| r.1).collect()),
    )
}

fn main() {
    let sizes: Vec<usize> = std::env::var("KLOUD_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000, 100_000]);
    println!(
        "plan_scale: HostDB of {HOSTDB_SIZE} hosts (embedded SQLite); times are medians of 5 runs"
    );
    println!(
        "{:>9} | {:>14} | {:>18} | {:>10}",
        "declared", "create all (s)", "no changes (s)", "per host"
    );
    let keep = std::env::var_os("KLOUD_BENCH_KEEP").is_some();
    let mut binary = Vec::new();
    for &n in &sizes {
        let dir = tempfile::Builder::new()
            .prefix("plan_scale")
            .disable_cleanup(keep)
            .tempdir()
            .expect("tempdir");
        let store = hostdb::open("sqlite:hostdb.db", dir.path()).expect("store");
        let hostdb_url = format!("sqlite:{}", dir.path().join("hostdb.db").display());
        fill_foreign(store.as_ref(), HOSTDB_SIZE.saturating_sub(n));
        let files = config_text(n);
        let config_dir = dir.path().join("config");
        std::fs::create_dir_all(&config_dir).expect("config dir");
        std::fs::write(config_dir.join("main.hcl"), files[0].text.as_bytes())
            .expect("write config");
        let create: Vec<f64> = (0..5)
            .map(|_| plan_once(&files, store.as_ref()).1)
            .collect();
        let create_binary = plan_binary_median(&config_dir, &hostdb_url, 2);
        let (p, _) = plan_once(&files, store.as_ref());
        assert_eq!(p.summary.create, n, "every host is placed");
        record(&load(files.clone()), store.as_ref(), &p);
        let noop_binary = plan_binary_median(&config_dir, &hostdb_url, 0);
        if keep {
            println!(
                "kept: kloud plan --hostdb {hostdb_url} {}",
                config_dir.display()
            );
        }
        binary.push((n, create_binary, noop_binary));
        let noop: Vec<f64> = (0..5)
            .map(|_| {
                let (p, t) = plan_once(&files, store.as_ref());
                assert!(!p.has_changes(), "no changes after recording");
                t
            })
            .collect();
        let m = median(noop);
        println!(
            "{n:>9} | {:>14.3} | {:>18.3} | {:>7.1} µs",
            median(create),
            m,
            m / n as f64 * 1e6
        );
    }
    println!(
        "peak memory of this benchmark process (VmHWM, includes its own fill data): {:.0} MiB",
        peak_rss_mib()
    );
    println!("\n`kloud plan DIR --json` as a process (medians of 3 runs):");
    println!(
        "{:>9} | {:>14} | {:>12} | {:>14} | {:>12}",
        "declared", "create all (s)", "peak (MiB)", "no changes (s)", "peak (MiB)"
    );
    for (n, (ct, cm), (nt, nm)) in binary {
        println!("{n:>9} | {ct:>14.3} | {cm:>12.0} | {nt:>14.3} | {nm:>12.0}");
    }
}
