//! Benchmark: N busybox containers created through the LXC driver by W parallel workers, timed
//! from the first create to the last container answering ping from the host (the talk's "60
//! servers"). Each parallelism is run several times on a fresh machine directory and bridge,
//! and the median is printed. Containers are destroyed (and timed) after each run.
//!
//! Run as root: `cargo bench -p kloud-provider-lxc --bench containers -- [COUNT] [W,W,...] [RUNS]`
//! (defaults: 60, 5,10,15,20,30, 3). `scripts/bench-containers.sh` wraps it. The machine is
//! this computer; `KLOUD_BENCH_CONNECT=ssh://...` reaches it through ssh instead (ssh settings
//! from `KLOUD_SSH_OPTIONS` / `KLOUD_SSH_CONTROL_DIR`).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kloud_provider_api::compute::{ComputeDriver, Connect, ContainerSpec, MachineRef, NetworkSpec};
use kloud_provider_exec::SshOptions;
use kloud_provider_lxc::{bridge_name, LxcConfig, LxcDriver};

/// The machine's connect string: `KLOUD_BENCH_CONNECT` (e.g. the loopback sshd of
/// scripts/setup/sshd.sh, with `KLOUD_SSH_OPTIONS` for its known_hosts), default `local`.
fn connect() -> Result<Connect, String> {
    match std::env::var("KLOUD_BENCH_CONNECT") {
        Ok(c) => c.parse().map_err(|e| format!("KLOUD_BENCH_CONNECT: {e}")),
        Err(_) => Ok(Connect::Local),
    }
}

/// Removes the run's containers, machine directory and bridge, also when a run panics.
struct Cleanup {
    root: PathBuf,
    bridge: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(machines) = std::fs::read_dir(&self.root) {
            // Image bases last: overlay containers are snapshots of them.
            let mut paths: Vec<PathBuf> = machines.flatten().map(|m| m.path()).collect();
            paths.sort_by_key(|p| p.ends_with(".images"));
            for path in paths {
                if let Ok(cs) = std::fs::read_dir(&path) {
                    for c in cs.flatten() {
                        if c.path().join("config").exists() {
                            let _ = Command::new("lxc-destroy")
                                .arg("-P")
                                .arg(&path)
                                .arg("-n")
                                .arg(c.file_name())
                                .arg("-f")
                                .output();
                        }
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
    }
}

fn pings(ip: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        let ok = Command::new("ping")
            .args(["-c1", "-W1", "-n", "-q", ip])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Figures {
    up: Duration,
    destroy: Duration,
}

/// One run on a fresh root. `warm`: the image's base container is built (by creating and
/// destroying one container) before the clock starts, as on a machine that already ran
/// kloud; cold runs include building it.
fn run(count: usize, workers: usize, run_id: usize, warm: bool) -> Result<Figures, String> {
    let tag = format!("{}-{workers}-{run_id}", std::process::id());
    let net_name = format!("bench{}", run_id % 10);
    let guard = Cleanup {
        root: PathBuf::from(format!("/var/lib/kloud/bench-lxc/{tag}")),
        bridge: bridge_name(&net_name),
    };
    let driver = LxcDriver::new(LxcConfig {
        root: guard.root.clone(),
        stop_timeout_s: 5,
        ssh: SshOptions::from_env(),
        ..LxcConfig::default()
    });
    let machine = MachineRef::new("hw-bench.test", connect()?);
    let net = NetworkSpec {
        name: net_name,
        cidr: "10.232.0.0/22".into(),
        gateway: IpAddr::V4(Ipv4Addr::new(10, 232, 0, 1)),
        address: IpAddr::V4(Ipv4Addr::new(10, 232, 0, 1)),
        prefix_len: 22,
    };
    let specs: Vec<ContainerSpec> = (0..count)
        .map(|i| {
            let name = format!("b{i}-{tag}.test");
            ContainerSpec {
                hostname: name.clone(),
                name,
                image: "busybox".into(),
                cpu: kloud_provider_api::Cpu::from_cores(1),
                memory_mib: 64,
                disk_gib: 1,
                network: NetworkSpec {
                    address: IpAddr::V4(Ipv4Addr::new(
                        10,
                        232,
                        1 + (i / 250) as u8,
                        (i % 250) as u8 + 2,
                    )),
                    ..net.clone()
                },
                driver_id: None,
                boot: Default::default(),
                owner: "kloud-test".into(),
            }
        })
        .collect();

    if warm {
        let mut first = specs[0].clone();
        first.name = format!("warmup-{tag}.test");
        first.hostname = first.name.clone();
        driver.create(&machine, &first).map_err(|e| e.to_string())?;
        driver
            .destroy(&machine, &first.name)
            .map_err(|e| e.to_string())?;
    }

    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut errs = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(spec) = specs.get(i) else { break };
                        match driver.create(&machine, spec) {
                            Ok(_) => {
                                let ip = spec.network.address.to_string();
                                if !pings(&ip, Duration::from_secs(20)) {
                                    errs.push(format!("{} does not answer on {ip}", spec.name));
                                }
                            }
                            Err(e) => errs.push(e.to_string()),
                        }
                    }
                    errs
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let up = started.elapsed();
    if !failures.is_empty() {
        return Err(failures.join("\n"));
    }
    let listed = driver.list(&machine).map_err(|e| e.to_string())?.containers;
    if listed.len() != count {
        return Err(format!(
            "list shows {} containers, expected {count}",
            listed.len()
        ));
    }

    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(spec) = specs.get(i) else { break };
                let _ = driver.destroy(&machine, &spec.name);
            });
        }
    });
    let destroy = started.elapsed();
    drop(guard);
    Ok(Figures { up, destroy })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let count: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(60);
    let workers: Vec<usize> = args
        .get(1)
        .map(|a| a.split(',').filter_map(|w| w.parse().ok()).collect())
        .unwrap_or_else(|| vec![5, 10, 15, 20, 30]);
    let runs: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);

    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let lxc = Command::new("lxc-create")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !root || !lxc {
        eprintln!("containers bench: needs root and LXC (source scripts/setup/lxc.sh); skipped");
        return;
    }
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "LXC driver: {count} busybox containers created and answering ping, {cpus} CPUs, {runs} runs each, median (min-max) seconds, connect {}",
        connect().map_or_else(|e| e, |c| c.to_string())
    );
    println!(
        "{:>8} {:>22} {:>22} {:>10}",
        "workers", "cold (builds image)", "warm (image built)", "destroy"
    );
    let mut run_id = 0;
    for w in workers {
        let mut cells = Vec::new();
        let mut downs = Vec::new();
        for warm in [false, true] {
            let mut ups = Vec::new();
            for _ in 0..runs {
                run_id += 1;
                match run(count, w, run_id, warm) {
                    Ok(f) => {
                        ups.push(f.up.as_secs_f64());
                        downs.push(f.destroy.as_secs_f64());
                    }
                    Err(e) => eprintln!("workers {w}: run failed:\n{e}"),
                }
            }
            cells.push(if ups.is_empty() {
                "failed".to_string()
            } else {
                let min = ups.iter().copied().fold(f64::INFINITY, f64::min);
                let max = ups.iter().copied().fold(0.0, f64::max);
                format!("{:.2} ({min:.2}-{max:.2})", median(ups))
            });
        }
        let destroy = if downs.is_empty() {
            "-".to_string()
        } else {
            format!("{:.2}", median(downs))
        };
        println!("{w:>8} {:>22} {:>22} {destroy:>10}", cells[0], cells[1]);
    }
}
