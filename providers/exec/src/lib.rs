//! Running commands on a machine, for compute drivers.
//!
//! A driver describes a command as an argument vector; [`Runner`] runs it on this computer
//! (`connect = "local"`) or on a remote machine through the OpenSSH client, quoting it for the
//! remote shell. Failures come back as [`DriverError`]s that say which machine, which command
//! and what it printed, so an operator can rerun the command by hand.

mod quote;
mod timeout;

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use kloud_provider_api::compute::{Connect, DriverError, MachineRef};

pub use quote::{quote, quote_argv};
pub use timeout::{parse_timeout, timeout_from_env, COMMAND_TIMEOUT_ENV, DEFAULT_COMMAND_TIMEOUT};

/// How much of a failed command's stderr an error keeps: the end is where the reason is.
const STDERR_TAIL_LINES: usize = 8;

/// What a finished command printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Exit code; `None` when a signal killed it.
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

/// OpenSSH client settings shared by every remote call.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// The `ssh` program.
    pub program: PathBuf,
    /// An ssh_config(5) file passed with `-F` (known hosts, jump hosts and the like).
    pub config_file: Option<PathBuf>,
    /// Extra `-o` options, e.g. `UserKnownHostsFile=/path`.
    pub options: Vec<String>,
    /// Seconds to wait for the TCP connection.
    pub connect_timeout_s: u32,
    /// When set, calls to one machine share one SSH connection (OpenSSH `ControlMaster`),
    /// with its socket in this directory; the connection lingers `ControlPersist` seconds
    /// after the last call. Saves the handshake on every one of a create's several calls.
    pub control_dir: Option<PathBuf>,
    pub control_persist_s: u32,
    /// ssh keep-alives (`ServerAliveInterval` / `ServerAliveCountMax`): a connection whose
    /// machine stops answering is dropped after about interval × count seconds instead of
    /// hanging the command. `0` leaves ssh's own setting.
    pub server_alive_interval_s: u32,
    pub server_alive_count_max: u32,
}

impl Default for SshOptions {
    fn default() -> Self {
        Self {
            program: PathBuf::from("ssh"),
            config_file: None,
            options: Vec::new(),
            connect_timeout_s: 10,
            control_dir: None,
            control_persist_s: 60,
            server_alive_interval_s: 15,
            server_alive_count_max: 3,
        }
    }
}

impl SshOptions {
    /// Defaults changed by `KLOUD_SSH_CONFIG` (an ssh_config file), `KLOUD_SSH_CONTROL_DIR`
    /// (share one connection per machine, sockets there) and `KLOUD_SSH_OPTIONS` (extra `-o`
    /// options separated by `;`, e.g. `UserKnownHostsFile=/k/known;StrictHostKeyChecking=yes`).
    pub fn from_env() -> Self {
        let mut o = Self::default();
        if let Some(cfg) = std::env::var_os("KLOUD_SSH_CONFIG") {
            o.config_file = Some(PathBuf::from(cfg));
        }
        if let Some(dir) = std::env::var_os("KLOUD_SSH_CONTROL_DIR") {
            o.control_dir = Some(PathBuf::from(dir));
        }
        if let Ok(extra) = std::env::var("KLOUD_SSH_OPTIONS") {
            o.options = extra
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
        }
        o
    }
}

/// Runs argument vectors on machines.
#[derive(Debug, Clone)]
pub struct Runner {
    pub ssh: SshOptions,
    /// How long one command may run; `None`: no limit. See [`timeout_from_env`].
    pub timeout: Option<Duration>,
}

impl Default for Runner {
    fn default() -> Self {
        Self::new(SshOptions::default())
    }
}

impl Runner {
    /// A runner with the command time limit from `KLOUD_COMMAND_TIMEOUT` (default
    /// [`DEFAULT_COMMAND_TIMEOUT`]).
    pub fn new(ssh: SshOptions) -> Self {
        Self {
            ssh,
            timeout: timeout_from_env(),
        }
    }

    /// The same runner with another command time limit (`None`: none).
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs `argv` on the machine and returns what it printed, whatever its exit status.
    /// Errors only when the command could not be run at all: a local spawn failure, or ssh
    /// failing to reach the machine.
    pub fn run(
        &self,
        m: &MachineRef,
        argv: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<Output, DriverError> {
        let Some((prog, args)) = argv.split_first() else {
            return Err(DriverError::Invalid {
                machine: m.name.clone(),
                name: String::new(),
                reason: "empty command".into(),
            });
        };
        let mut cmd = match &m.connect {
            Connect::Local => {
                let mut c = Command::new(prog);
                c.args(args);
                c
            }
            Connect::Ssh { .. } => self.ssh_command(&m.connect, argv),
        };
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout kills what it started too.
        .process_group(0);
        let io_err = |context: String, source| DriverError::Io {
            machine: m.name.clone(),
            context,
            source,
        };
        let mut child = cmd
            .spawn()
            .map_err(|e| io_err(format!("cannot run `{}`", self.display_program(m, prog)), e))?;
        if let Some(input) = stdin {
            if let Some(mut pipe) = child.stdin.take() {
                // A command that exits without reading its input is reported by its status,
                // so a broken pipe here is not an error of its own.
                let _ = pipe.write_all(input);
            }
        }
        let out = timeout::wait(child, self.timeout).map_err(|e| match e {
            Some(e) => io_err(format!("waiting for `{prog}`"), e),
            None => io_err(
                format!(
                    "`{}` did not finish within {}; killed it and its process group",
                    quote_argv(argv),
                    self.timeout.map(show_duration).unwrap_or_default()
                ),
                std::io::Error::from(std::io::ErrorKind::TimedOut),
            ),
        })?;
        let output = Output {
            status: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        // ssh reserves 255 for its own failures (refused, unknown host, authentication).
        if matches!(m.connect, Connect::Ssh { .. }) && output.status == Some(255) {
            return Err(DriverError::Connection {
                machine: m.name.clone(),
                connect: m.connect.to_string(),
                reason: tail(&output.stderr, STDERR_TAIL_LINES),
            });
        }
        Ok(output)
    }

    /// Runs `argv` and returns its stdout; a non-zero exit is [`DriverError::CommandFailed`].
    pub fn check(
        &self,
        m: &MachineRef,
        argv: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<String, DriverError> {
        let out = self.run(m, argv, stdin)?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(failed(m, argv, &out))
        }
    }

    /// Runs a POSIX shell script on the machine (`sh -c SCRIPT`), with `args` as `$1`...
    pub fn script(
        &self,
        m: &MachineRef,
        script: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<Output, DriverError> {
        let mut argv = vec!["sh", "-c", script, "kloud"];
        argv.extend_from_slice(args);
        self.run(m, &argv, stdin)
    }

    /// Ends the shared SSH connection to a machine, if [`SshOptions::control_dir`] made one.
    pub fn close(&self, m: &MachineRef) {
        if self.ssh.control_dir.is_none() {
            return;
        }
        if let Some((opts, host)) = self.ssh_args(&m.connect) {
            let _ = Command::new(&self.ssh.program)
                .args(opts)
                .args(["-O", "exit", "--", &host])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    fn ssh_command(&self, connect: &Connect, argv: &[&str]) -> Command {
        let mut c = Command::new(&self.ssh.program);
        if let Some((opts, host)) = self.ssh_args(connect) {
            c.args(opts).arg("--").arg(host).arg(quote_argv(argv));
        }
        c
    }

    /// ssh's options for a machine, and the host to put after them.
    fn ssh_args(&self, connect: &Connect) -> Option<(Vec<String>, String)> {
        let Connect::Ssh {
            user,
            host,
            port,
            identity,
        } = connect
        else {
            return None;
        };
        let mut a: Vec<String> = Vec::new();
        let mut opt = |o: String| a.extend(["-o".to_string(), o]);
        // BatchMode: never stop for a password or a host-key question in the middle of an
        // apply; fail and say so instead.
        opt("BatchMode=yes".into());
        opt(format!("ConnectTimeout={}", self.ssh.connect_timeout_s));
        if self.ssh.server_alive_interval_s > 0 {
            opt(format!(
                "ServerAliveInterval={}",
                self.ssh.server_alive_interval_s
            ));
            opt(format!(
                "ServerAliveCountMax={}",
                self.ssh.server_alive_count_max
            ));
        }
        if let Some(dir) = &self.ssh.control_dir {
            opt("ControlMaster=auto".into());
            opt(format!("ControlPath={}/%C", dir.display()));
            opt(format!("ControlPersist={}", self.ssh.control_persist_s));
        }
        for o in &self.ssh.options {
            opt(o.clone());
        }
        if let Some(cfg) = &self.ssh.config_file {
            a.extend(["-F".into(), cfg.display().to_string()]);
        }
        if let Some(id) = identity {
            a.extend(["-i".into(), id.display().to_string()]);
        }
        a.extend(["-p".into(), port.to_string(), "-l".into(), user.clone()]);
        Some((a, host.clone()))
    }

    fn display_program(&self, m: &MachineRef, prog: &str) -> String {
        match m.connect {
            Connect::Local => prog.to_string(),
            Connect::Ssh { .. } => self.ssh.program.display().to_string(),
        }
    }
}

/// `90s`, `1.5s`, `250ms`: how a limit is named in an error.
fn show_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// The error for a command that ran and failed.
pub fn failed(m: &MachineRef, argv: &[&str], out: &Output) -> DriverError {
    DriverError::CommandFailed {
        machine: m.name.clone(),
        command: quote_argv(argv),
        status: out.status,
        stderr: tail(
            if out.stderr.trim().is_empty() {
                &out.stdout
            } else {
                &out.stderr
            },
            STDERR_TAIL_LINES,
        ),
    }
}

/// The last `n` non-empty lines of `s`, joined with `; ` so an error stays on one line.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> MachineRef {
        MachineRef::new("this-computer", Connect::Local)
    }

    #[test]
    fn runs_local_commands_with_stdin_and_status() {
        let r = Runner::default();
        let out = r.run(&local(), &["cat"], Some(b"hello")).unwrap();
        assert_eq!(out.stdout, "hello");
        assert!(out.success());
        let out = r
            .script(&local(), "echo \"$1\" >&2; exit 3", &["a b"], None)
            .unwrap();
        assert_eq!(out.status, Some(3));
        assert_eq!(out.stderr, "a b\n");
    }

    #[test]
    fn check_reports_command_line_status_and_stderr_tail() {
        let r = Runner::default();
        let err = r
            .check(&local(), &["sh", "-c", "seq 1 20 >&2; exit 7"], None)
            .unwrap_err();
        match err {
            DriverError::CommandFailed {
                machine,
                command,
                status,
                stderr,
            } => {
                assert_eq!(machine, "this-computer");
                assert_eq!(command, "sh -c 'seq 1 20 >&2; exit 7'");
                assert_eq!(status, Some(7));
                assert_eq!(stderr, "13; 14; 15; 16; 17; 18; 19; 20");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_hung_command_is_killed_with_its_process_group_at_its_limit() {
        let dir = std::env::temp_dir().join(format!("kloud-exec-timeout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("child.pid");
        let r = Runner::default().with_timeout(Some(Duration::from_millis(300)));
        let t = std::time::Instant::now();
        // The shell starts a child `sleep` (same process group) and waits for it.
        let err = r
            .script(
                &local(),
                "sleep 30 & echo $! > \"$1\"; wait",
                &[pidfile.to_str().unwrap()],
                None,
            )
            .unwrap_err();
        let took = t.elapsed();
        assert!(took < Duration::from_secs(5), "took {took:?}");
        assert!(took >= Duration::from_millis(300), "took {took:?}");
        match &err {
            DriverError::Io {
                machine,
                context,
                source,
            } => {
                assert_eq!(machine, "this-computer");
                assert!(context.contains("did not finish within 300ms"), "{context}");
                assert_eq!(source.kind(), std::io::ErrorKind::TimedOut);
            }
            other => panic!("unexpected {other:?}"),
        }
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The grandchild got SIGKILL too: give the kernel a moment, then it is gone.
        let mut alive = true;
        for _ in 0..100 {
            // SAFETY: signal 0 only checks that the process exists.
            alive = unsafe { libc::kill(pid, 0) } == 0
                && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|s| s.contains(") Z "))
                    .unwrap_or(true);
            if !alive {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive, "sleep {pid} survived the timeout");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_quick_command_under_a_limit_returns_its_output() {
        let r = Runner::default().with_timeout(Some(Duration::from_secs(5)));
        let out = r
            .run(&local(), &["sh", "-c", "echo hi; echo err >&2"], None)
            .unwrap();
        assert_eq!(out.stdout, "hi\n");
        assert_eq!(out.stderr, "err\n");
    }

    #[test]
    fn missing_local_program_is_an_io_error() {
        let err = Runner::default()
            .run(&local(), &["/nonexistent/kloud-no-such-tool"], None)
            .unwrap_err();
        assert!(matches!(err, DriverError::Io { .. }), "{err:?}");
    }

    #[test]
    fn ssh_to_a_closed_port_is_a_connection_error() {
        // A port we bound and released: nothing listens there, so the refusal is real.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let m = MachineRef::new(
            "hw-closed",
            format!("ssh://root@127.0.0.1:{port}").parse().unwrap(),
        );
        let err = Runner::default().run(&m, &["true"], None).unwrap_err();
        match err {
            DriverError::Connection {
                machine, reason, ..
            } => {
                assert_eq!(machine, "hw-closed");
                assert!(reason.contains("refused"), "{reason}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
