//! First boot (design §9), shared by the compute drivers: the shell script a driver runs inside
//! a new container (through `lxc-attach`, `vzctl exec`...), and reading back what it did.
//!
//! The script is `first-boot.sh` with the host's values and its list of steps put around it.
//! Every step has an id made of its name and a hash of what it does; a step that finished
//! leaves `/var/lib/kloud/first-boot/<id>.done` in the container, so running the script again
//! (the next apply, after a failure or a `kill -9`) finishes what did not finish and never
//! runs again a step that did. A first-boot command that is changed in the config is a new
//! step and runs; one that ran stays run.

use std::fmt::Write as _;

use crate::compute::{BootFailure, ContainerSpec, FirstBoot};

/// The body of the script: the step functions and `run_step`.
const BODY: &str = include_str!("first-boot.sh");

/// Lines of output kept from a failed step.
pub const OUTPUT_LINES: usize = 20;

/// Quotes a word for a POSIX shell.
fn q(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// FNV-1a, stable across releases (marker ids must not change between kloud versions).
fn hash(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{:012x}", h & 0xffff_ffff_ffff)
}

/// One step: its marker id, the name reports show, and the shell function call that does it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub id: String,
    pub name: String,
    pub call: String,
}

/// The steps of a container's first boot, in order.
pub fn steps(spec: &ContainerSpec) -> Vec<Step> {
    let b = &spec.boot;
    let address = spec.network.address.to_string();
    let mut out = vec![Step {
        id: format!("hostname-{}", hash(&[&spec.name, &address])),
        name: "hostname".into(),
        call: "step_hostname".into(),
    }];
    if !b.dns.is_empty() {
        let dns: Vec<String> = b.dns.iter().map(ToString::to_string).collect();
        out.push(Step {
            id: format!("resolver-{}", hash(&[&dns.join(" ")])),
            name: "resolver".into(),
            call: "step_resolver".into(),
        });
    }
    if let Some(l) = &b.login {
        let mut parts: Vec<&str> = vec![&l.user, if l.sudo { "sudo" } else { "-" }];
        parts.extend(l.ssh_keys.iter().map(String::as_str));
        out.push(Step {
            id: format!("login-{}", hash(&parts)),
            name: "login".into(),
            call: "step_login".into(),
        });
    }
    out.push(Step {
        id: "sshd".into(),
        name: "sshd".into(),
        call: "step_sshd".into(),
    });
    for (i, c) in b.commands.iter().enumerate() {
        let n = i + 1;
        out.push(Step {
            id: format!("command-{n}-{}", hash(&[c])),
            name: format!("command {n}"),
            call: format!("step_command {}", q(c)),
        });
    }
    if let Some(server) = &b.puppet_server {
        out.push(Step {
            id: format!("puppet-{}", hash(&[server])),
            name: "puppet".into(),
            call: "step_puppet".into(),
        });
    }
    out
}

/// The shell command a driver runs inside the container with [`script`] on its standard
/// input: the script is read whole into memory, then run with its input closed, so no command
/// in it can read the rest. Nothing is written to a file first: early in a container's boot
/// its init may still mount a fresh tmpfs over `/run`, which made a script written there vanish
/// before it ran ("cannot open /run/kloud-first-boot.sh", seen under load).
pub const RUN_FROM_STDIN: &str =
    "script=$(cat) && exec /bin/sh -c \"$script\" kloud-first-boot </dev/null";

/// The whole script for `spec`: values, the body, then one `run_step` per step.
pub fn script(spec: &ContainerSpec) -> String {
    let b = &spec.boot;
    let mut s = String::from("#!/bin/sh\n");
    let mut var = |k: &str, v: &str| {
        let _ = writeln!(s, "{k}={}", q(v));
    };
    var("FQDN", &spec.name);
    var("ADDR", &spec.network.address.to_string());
    var("CLASS", &b.class);
    var("ROLES", &b.roles.join(","));
    let dns: Vec<String> = b.dns.iter().map(ToString::to_string).collect();
    var("DNS", &dns.join(" "));
    var("PUPPET", b.puppet_server.as_deref().unwrap_or(""));
    if let Some(l) = &b.login {
        var("LOGIN_USER", &l.user);
        var("LOGIN_KEYS", &l.ssh_keys.join("\n"));
        var("LOGIN_SUDO", if l.sudo { "yes" } else { "no" });
    }
    s.push_str(BODY);
    for st in steps(spec) {
        let _ = writeln!(s, "run_step {} {} {}", q(&st.id), q(&st.name), st.call);
    }
    s.push_str("echo 'kloud-fb: done'\n");
    s
}

/// What a run of the script did, from its output. `status` is the exit status of the whole
/// call and `stderr` what it printed there: a run that stopped before `done` or `fail` (killed,
/// the container gone) is a failure of the step it was in.
pub fn parse(stdout: &str, stderr: &str, status: Option<i32>) -> FirstBoot {
    let mut fb = FirstBoot::default();
    let mut lines = stdout.lines();
    let mut current: Option<String> = None;
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix("kloud-fb: ") else {
            continue;
        };
        if let Some(name) = rest.strip_prefix("run ") {
            fb.ran.push(name.to_string());
            current = Some(name.to_string());
        } else if let Some(name) = rest.strip_prefix("skip ") {
            fb.skipped.push(name.to_string());
        } else if let Some(fail) = rest.strip_prefix("fail ") {
            let (code, name) = fail.split_once(' ').unwrap_or((fail, ""));
            let output: Vec<&str> = lines.by_ref().collect();
            fb.failure = Some(BootFailure {
                step: name.to_string(),
                exit: code.parse().ok(),
                output: tail(&output.join("\n"), OUTPUT_LINES),
            });
            return fb;
        } else if rest == "done" {
            return fb;
        }
    }
    fb.failure = Some(BootFailure {
        step: current.unwrap_or_else(|| "start".into()),
        exit: status.filter(|c| *c != 0),
        output: tail(
            &format!(
                "first boot stopped before it finished (exit {}){}{}",
                status.map_or_else(|| "by a signal".to_string(), |c| c.to_string()),
                if stderr.trim().is_empty() { "" } else { ": " },
                stderr.trim()
            ),
            OUTPUT_LINES,
        ),
    });
    fb
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::compute::{BootSpec, LoginSpec, NetworkSpec};

    fn spec(commands: &[&str]) -> ContainerSpec {
        ContainerSpec {
            name: "web-1.dc1.test".into(),
            hostname: "web-1".into(),
            image: "debian-12".into(),
            cpu: crate::Cpu::from_cores(1),
            memory_mib: 256,
            disk_gib: 1,
            network: NetworkSpec {
                name: "prod".into(),
                cidr: "10.9.0.0/24".into(),
                gateway: IpAddr::V4(Ipv4Addr::new(10, 9, 0, 1)),
                address: IpAddr::V4(Ipv4Addr::new(10, 9, 0, 7)),
                prefix_len: 24,
            },
            driver_id: None,
            boot: BootSpec {
                class: "web".into(),
                roles: vec!["role::nginx".into()],
                login: Some(LoginSpec {
                    user: "ops".into(),
                    ssh_keys: vec!["ssh-ed25519 AAAA ops@x".into()],
                    sudo: true,
                }),
                commands: commands.iter().map(|c| c.to_string()).collect(),
                dns: vec![IpAddr::V4(Ipv4Addr::new(10, 9, 0, 1))],
                puppet_server: Some("puppet.dc1.test:8140".into()),
            },
            owner: "dc1.test".into(),
        }
    }

    #[test]
    fn steps_come_in_the_order_of_the_design() {
        let names: Vec<String> = steps(&spec(&["echo a", "echo b"]))
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(
            names,
            [
                "hostname",
                "resolver",
                "login",
                "sshd",
                "command 1",
                "command 2",
                "puppet"
            ]
        );
        let mut bare = spec(&[]);
        bare.boot = BootSpec::default();
        let names: Vec<String> = steps(&bare).into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["hostname", "sshd"]);
    }

    #[test]
    fn a_changed_command_is_a_new_step_and_an_unchanged_one_keeps_its_id() {
        let a = steps(&spec(&["echo a", "echo b"]));
        let b = steps(&spec(&["echo a", "echo fixed"]));
        assert_eq!(a[4].id, b[4].id);
        assert_ne!(a[5].id, b[5].id);
        // Ids are file names: no slashes or spaces.
        for s in a {
            assert!(
                s.id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'),
                "{}",
                s.id
            );
        }
    }

    #[test]
    fn the_script_is_valid_shell_with_odd_commands_quoted() {
        let s = script(&spec(&["echo 'it''s' \"$KLOUD_FQDN\" > /tmp/x", "a\nb"]));
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", &s])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(s.contains("FQDN='web-1.dc1.test'"));
        assert!(s.contains("ROLES='role::nginx'"));
        assert!(s.trim_end().ends_with("echo 'kloud-fb: done'"));
    }

    #[test]
    fn parse_reads_runs_skips_and_failures() {
        let ok = parse(
            "kloud-fb: skip hostname\nkloud-fb: run sshd\nkloud-fb: done\n",
            "",
            Some(0),
        );
        assert!(ok.succeeded());
        assert_eq!(ok.skipped, ["hostname"]);
        assert_eq!(ok.ran, ["sshd"]);

        let bad = parse(
            "kloud-fb: run command 1\nkloud-fb: fail 3 command 1\nE: no nginx\nlast line\n",
            "",
            Some(0),
        );
        let f = bad.failure.unwrap();
        assert_eq!((f.step.as_str(), f.exit), ("command 1", Some(3)));
        assert_eq!(f.output, "E: no nginx\nlast line");

        let killed = parse("kloud-fb: run command 2\n", "attach: lost", None);
        let f = killed.failure.unwrap();
        assert_eq!((f.step.as_str(), f.exit), ("command 2", None));
        assert!(f.output.contains("attach: lost"), "{}", f.output);
    }

    /// The real script, run by `sh` on this computer against a scratch directory instead of a
    /// container: each command once, in order, with the KLOUD_* variables, and a failed step
    /// re-run by the next call while finished ones are skipped.
    #[test]
    fn the_body_runs_commands_once_in_order_with_markers() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let log = format!("{d}/log");
        let flag = format!("{d}/fixed");
        let mut s = spec(&[
            &format!("echo \"1 $KLOUD_FQDN $KLOUD_CLASS $KLOUD_ROLES\" >> {log}"),
            &format!("echo 2 >> {log}; test -f {flag}"),
            &format!("echo 3 >> {log}"),
        ]);
        s.boot.login = None;
        s.boot.dns.clear();
        s.boot.puppet_server = None;
        // Only the command steps: hostname and sshd need a container.
        let body = BODY.replace("D=/var/lib/kloud/first-boot", &format!("D={d}/fb"));
        let mut text = script(&s).replace(BODY, &body);
        text = text
            .lines()
            .filter(|l| !l.contains("step_hostname") || !l.starts_with("run_step"))
            .filter(|l| !l.contains("step_sshd") || !l.starts_with("run_step"))
            .collect::<Vec<_>>()
            .join("\n");
        // No systemd here: make the wait loop end at once.
        text = text.replace("i=0\nwhile [ $i -lt 600 ]", "i=600\nwhile [ $i -lt 600 ]");
        let run = || {
            let out = std::process::Command::new("sh")
                .args(["-c", &text])
                .output()
                .unwrap();
            parse(
                &String::from_utf8_lossy(&out.stdout),
                &String::from_utf8_lossy(&out.stderr),
                out.status.code(),
            )
        };
        let first = run();
        let f = first.failure.clone().expect("command 2 fails");
        assert_eq!(f.step, "command 2");
        assert_eq!(f.exit, Some(1));
        std::fs::write(&flag, "").unwrap();
        let second = run();
        assert!(second.succeeded(), "{second:?}");
        assert_eq!(second.skipped, ["command 1"]);
        assert_eq!(second.ran, ["command 2", "command 3"]);
        let third = run();
        assert!(third.ran.is_empty(), "{third:?}");
        let got = std::fs::read_to_string(&log).unwrap();
        assert_eq!(got, "1 web-1.dc1.test web role::nginx\n2\n2\n3\n");
    }
}
