//! Running a template's `check` and `on_change` commands: `sh -c`, in the config directory,
//! with a time limit.
//!
//! Output goes to an anonymous temporary file rather than a pipe: an `on_change` that starts
//! a daemon (`haproxy -D`) leaves the daemon holding whatever it inherited, and a pipe would
//! then never reach end-of-file. The command runs in a process group of its own, so a command
//! that runs out of time is killed with everything it started in that group.

use std::io::{Read, Seek};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

/// Why a command did not succeed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    #[error("cannot run `{command}`: {reason}")]
    Spawn { command: String, reason: String },
    #[error("`{command}` {status}{}", output_suffix(.output))]
    Failed {
        command: String,
        /// "exited with status 1", "was killed by signal 9".
        status: String,
        /// The last lines of its stdout and stderr.
        output: String,
    },
    #[error("`{command}` did not finish within {} ms and was killed{}", .limit.as_millis(), output_suffix(.output))]
    Timeout {
        command: String,
        limit: Duration,
        output: String,
    },
}

fn output_suffix(output: &str) -> String {
    if output.is_empty() {
        String::new()
    } else {
        format!(": {output}")
    }
}

/// The most of a command's output a message carries.
const OUTPUT_LIMIT: usize = 2000;

/// Run `command` with `sh -c` in `dir`; `Ok` with its output when it exits 0.
pub fn run(command: &str, dir: &Path, limit: Duration) -> Result<String, CommandError> {
    let spawn_error = |e: std::io::Error| CommandError::Spawn {
        command: command.to_string(),
        reason: e.to_string(),
    };
    let mut out = tempfile::tempfile().map_err(spawn_error)?;
    let child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().map_err(spawn_error)?))
        .stderr(Stdio::from(out.try_clone().map_err(spawn_error)?))
        .process_group(0)
        .spawn()
        .map_err(spawn_error)?;
    let status = wait(child, limit).map_err(spawn_error)?;
    let output = read_tail(&mut out);
    match status {
        Some(s) if s.success() => Ok(output),
        Some(s) => Err(CommandError::Failed {
            command: command.to_string(),
            status: describe(s),
            output,
        }),
        None => Err(CommandError::Timeout {
            command: command.to_string(),
            limit,
            output,
        }),
    }
}

/// Wait for `child` at most `limit`; on timeout kill its process group and return `None`.
/// The wait itself blocks on a helper thread, so the answer comes the moment the command ends.
fn wait(mut child: std::process::Child, limit: Duration) -> std::io::Result<Option<ExitStatus>> {
    let pid = libc::pid_t::try_from(child.id()).ok();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::Builder::new()
        .name("template-command".to_string())
        .spawn(move || {
            let _ = tx.send(child.wait());
        })?;
    let status = match rx.recv_timeout(limit) {
        Ok(status) => Some(status?),
        Err(_) => {
            if let Some(pgid) = pid {
                // SAFETY: kill(2) on the process group this child leads (made by
                // `process_group(0)`); it holds only the processes the command started.
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
            }
            None
        }
    };
    // Reaped by the helper (at once after the kill).
    let _ = waiter.join();
    Ok(status)
}

fn describe(s: ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "failed".to_string(),
    }
}

/// The end of what the command wrote, trimmed.
fn read_tail(file: &mut std::fs::File) -> String {
    let mut bytes = Vec::new();
    if file.rewind().is_err() || file.read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim();
    if text.len() <= OUTPUT_LIMIT {
        return text.to_string();
    }
    let mut start = text.len() - OUTPUT_LIMIT;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn success_failure_and_output() {
        let dir = std::env::temp_dir();
        assert_eq!(
            run("echo hi; echo there >&2", &dir, Duration::from_secs(5)).unwrap(),
            "hi\nthere"
        );
        let e = run("echo bad; exit 3", &dir, Duration::from_secs(5)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`echo bad; exit 3` exited with status 3: bad"
        );
    }

    #[test]
    fn a_command_out_of_time_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        // The child of the shell would outlive a kill of the shell alone and touch the file.
        let e = run(
            "sleep 1 && touch late; wait",
            dir.path(),
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(matches!(e, CommandError::Timeout { .. }), "{e}");
        assert!(started.elapsed() < Duration::from_millis(900));
        std::thread::sleep(Duration::from_millis(1200));
        assert!(!dir.path().join("late").exists());
    }

    #[test]
    fn a_daemon_holding_the_output_does_not_block() {
        let dir = std::env::temp_dir();
        let started = Instant::now();
        // The background sleep keeps stdout open after the shell exits.
        run("sleep 3 & echo started", &dir, Duration::from_secs(5)).unwrap();
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
