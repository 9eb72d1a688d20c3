//! The `hblock` CLI and the Python example as real processes against a real
//! server with the module loaded.

use hblock_test_support as support;

/// BIND: kill -9 of a supervisor hands over within the grace, one child at a time.
mod bind;
/// Errors classified once: fatal ones exit 3 with a hint, transient ones
/// are retried and logged once; the Rust `Client`'s classes; connection names.
mod errors;
/// hblock exporter: /metrics over HTTP, up 0, --match, --max-locks, a cluster's node label.
mod exporter;
/// The fault policy: dropped connections, restarts, shared owners, signals,
/// a stopped supervisor, --no-wait/--timeout, help and error texts.
mod faults;
/// The Rust library's Lease::fenced: NotHeld after a takeover, the lease marked lost.
mod fenced;
/// run --check: a hung child is replaced; checks time out; exit 5.
mod health;
/// Grants held back after a failover: what the CLI and the API say.
mod held_back;
/// run --on-hup: pass (the child dies of SIGHUP unless it handles it) and ignore.
mod hup;
/// `hblock info` shows the waiters (HBLOCK.WAITERS); INFO alone when they cannot be read.
mod info_waiters;
/// `hblock ls`: every lock, sorted; other types skipped; --json, --limit; a cluster; 100,000 locks.
mod ls;
/// used_memory stays flat through a minute of `hblock run`, a Python Lease and `hblock watch`.
mod memory;
/// Permits (--limit): run with more supervisors than permits, mismatch,
/// info/ls/exporter holders, a quiet LIMIT 3 heartbeat.
mod permits;
/// A real Prometheus scraping hblock exporter; promtool on the alert rules.
mod prometheus;
/// The Python example and redis-py on a cluster.
mod python;
/// --min-replicas and `hblock run` through a cluster failover.
mod replicas;
/// `hblock run`: hand-over, kill -9, pauses, Redis going away, signals.
mod run;
/// Sentinel: hblock run and Python leases through failovers.
mod sentinel;
/// The thin commands: replies and exit codes.
mod thin;
/// `hblock watch --history`: past leases oldest first, then the changes.
mod watch_history;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::{eventually, Server};

fn hblock(server: &Server, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hblock"))
        .arg("--redis")
        .arg(server.url())
        .args(args)
        .output()
        .expect("run hblock")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// `hblock run` in the background, its stderr kept in a file.
struct Supervisor {
    child: Child,
    log: PathBuf,
}

impl Supervisor {
    fn start(server: &Server, dir: &Path, name: &str, args: &[&str], command: &str) -> Supervisor {
        Supervisor::start_on(&[server.url()], dir, name, args, command)
    }

    /// As `start`, with `--owner owner` instead of the name.
    fn start_named(
        server: &Server,
        dir: &Path,
        name: &str,
        owner: &str,
        args: &[&str],
        command: &str,
    ) -> Supervisor {
        let mut args = args.to_vec();
        args.extend(["--owner", owner]);
        Supervisor::start_on(&[server.url()], dir, name, &args, command)
    }

    /// `urls` of more than one node: a cluster.
    fn start_on(
        urls: &[String],
        dir: &Path,
        name: &str,
        args: &[&str],
        command: &str,
    ) -> Supervisor {
        let log = dir.join(format!("{name}.stderr"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hblock"));
        for url in urls {
            cmd.arg("--redis").arg(url);
        }
        let child = cmd
            .arg("run")
            .arg(default_key())
            .args(args)
            .args(if args.contains(&"--owner") {
                vec![]
            } else {
                vec!["--owner", name]
            })
            .args(["--", "sh", "-c", command])
            .env("DIR", dir)
            .env("NAME", name)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start hblock run");
        Supervisor { child, log }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on a process this test started.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let status = eventually(within, || self.child.try_wait().ok().flatten())?;
        Some(status.code().unwrap_or(-1))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(libc::SIGKILL);
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- hblock run log {} ---\n{}",
                self.log.display(),
                self.log()
            );
        }
    }
}

/// Whether a process runs: an exited child whose parent died stays a zombie
/// until init reaps it, so /proc's state is read instead of kill(pid, 0).
fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z') | Some('X') | None)
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn wait_pid_file(path: &Path, within: Duration) -> Option<i32> {
    eventually(within, || read_pid(path))
}

/// The child of `hblock run` that writes its pid and then sleeps.
const SLEEPER: &str = "echo $$ > \"$DIR/$NAME.pid\"; exec sleep 60";

/// Writes its start time, then a tick every 10 ms (nanoseconds, one a line).
const TICKER: &str = "date +%s%N > \"$DIR/$NAME.start\"; while :; do date +%s%N >> \"$DIR/$NAME.ticks\"; sleep 0.01; done";

fn last_line_ns(path: &Path) -> Option<u128> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .next_back()
}

/// Parses `start|stop TOKEN NANOS` lines written by the children.
fn timeline(path: &Path) -> Vec<(String, i64, u128)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((
                it.next()?.to_string(),
                it.next()?.parse().ok()?,
                it.next()?.parse().ok()?,
            ))
        })
        .collect()
}

/// `hblock run KEY`: the key used by the supervisor tests.
fn default_key() -> &'static str {
    "job"
}

fn python() -> String {
    std::env::var("HBLOCK_PYTHON").unwrap_or_else(|_| {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/venv/bin/python");
        assert!(
            venv.exists(),
            "no Python with redis-py: run `make venv` (make test does)"
        );
        venv.display().to_string()
    })
}
