//! Command time limits: how long one command may run before it is killed.
//!
//! A command runs in a process group of its own; when its limit passes, the whole group gets
//! SIGKILL (a shell's children too, and for ssh the local client, which drops the remote
//! session), and the call fails with a timeout error for that machine — the host fails, the
//! apply goes on with the others.

use std::io::Read;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// The limit when neither `KLOUD_COMMAND_TIMEOUT` nor a driver's setting says otherwise: long
/// enough for an image download in `lxc-create`, short enough that a hung command cannot
/// hold an apply's lock for an afternoon.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(900);

/// The environment variable holding the limit: seconds (`90`), or with a unit (`90s`,
/// `15m`, `1h`); `0` or `off` means no limit.
pub const COMMAND_TIMEOUT_ENV: &str = "KLOUD_COMMAND_TIMEOUT";

/// The limit from [`COMMAND_TIMEOUT_ENV`], else [`DEFAULT_COMMAND_TIMEOUT`]. An unreadable
/// value keeps the default (and says so on stderr) rather than running without a limit.
pub fn timeout_from_env() -> Option<Duration> {
    match std::env::var(COMMAND_TIMEOUT_ENV) {
        Ok(v) => parse_timeout(&v).unwrap_or_else(|| {
            eprintln!(
                "warning: {COMMAND_TIMEOUT_ENV}={v:?} is not a duration (e.g. 90, 90s, 15m); \
                 using {}s",
                DEFAULT_COMMAND_TIMEOUT.as_secs()
            );
            Some(DEFAULT_COMMAND_TIMEOUT)
        }),
        Err(_) => Some(DEFAULT_COMMAND_TIMEOUT),
    }
}

/// `90`, `90s`, `15m`, `1h` → a limit; `0` / `off` / `none` → no limit; else `None`.
pub fn parse_timeout(s: &str) -> Option<Option<Duration>> {
    let s = s.trim();
    if matches!(s, "off" | "none") {
        return Some(None);
    }
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some((secs > 0.0).then(|| Duration::from_secs_f64(secs)))
}

/// What waiting for a child gave.
pub(crate) struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Waits for `child` (spawned as the leader of its own process group) with its stdout and
/// stderr read on threads; past `limit` the group is killed and `Err(None)` is returned.
pub(crate) fn wait(
    mut child: Child,
    limit: Option<Duration>,
) -> Result<Finished, Option<std::io::Error>> {
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    let status = match limit {
        None => child.wait().map_err(Some)?,
        Some(limit) => match wait_until(&mut child, Instant::now() + limit).map_err(Some)? {
            Some(s) => s,
            None => {
                kill_group(&mut child);
                return Err(None);
            }
        },
    };
    let join = |h: Option<std::thread::JoinHandle<Vec<u8>>>| {
        h.and_then(|h| h.join().ok()).unwrap_or_default()
    };
    Ok(Finished {
        status,
        stdout: join(out),
        stderr: join(err),
    })
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Polls the child until it exits or `deadline` passes (`Ok(None)`). The step grows from
/// 1 ms to 50 ms, so quick commands return quickly and long ones cost little.
fn wait_until(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    let mut step = Duration::from_millis(1);
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(Some(s));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::sleep(step.min(deadline - now));
        step = (step * 2).min(Duration::from_millis(50));
    }
}

/// SIGKILL to the child's whole process group, then reap the child. The output readers are
/// left to finish on their own (a grandchild that escaped the group may hold a pipe open).
fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals the process group we created for the
        // child (`process_group(0)`); it touches no memory of ours.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_timeout("90"), Some(Some(Duration::from_secs(90))));
        assert_eq!(parse_timeout("15m"), Some(Some(Duration::from_secs(900))));
        assert_eq!(parse_timeout("1h"), Some(Some(Duration::from_secs(3600))));
        assert_eq!(
            parse_timeout("250ms"),
            Some(Some(Duration::from_millis(250)))
        );
        assert_eq!(parse_timeout("0"), Some(None));
        assert_eq!(parse_timeout("off"), Some(None));
        assert_eq!(parse_timeout("soon"), None);
        assert_eq!(parse_timeout("5d"), None);
    }
}
