//! `hblock run --check CMD`: ties the lease to the child's health.
//!
//! While the child runs, CMD is run with `sh -c` every `every` (start to
//! start; never two at once), in a process group of its own, and its group is
//! SIGKILLed when it outlives `timeout`. A non-zero exit, a death by signal or
//! a timeout is a failure; `failures` failures in a row make the child
//! unhealthy: the supervisor stops it as on a lost lease, releases and exits
//! [`EXIT_UNHEALTHY`]. A success resets the count.
//!
//! The counting ([`Failures`]) is pure, the time passed in; [`Checker`] is the
//! thread that runs the checks and reports [`HealthEvent`]s.

use crate::lease::LeaseOptions;
use crate::signals;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// `run` exit code when the child was stopped because its health check failed.
pub const EXIT_UNHEALTHY: i32 = 5;

/// How often a running check is looked at (its exit, its timeout, a stop).
const POLL: Duration = Duration::from_millis(5);
/// The most of a check's output kept for the log line (its last line).
const OUTPUT_MAX: usize = 200;

/// A health check of `hblock run`'s child (`--check CMD`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// Run with `sh -c`; it gets the supervisor's environment plus
    /// `HBLOCK_KEY`, `HBLOCK_OWNER`, `HBLOCK_TOKEN` and `HBLOCK_CHILD_PID`.
    pub command: String,
    /// From the start of one check to the start of the next (the first runs
    /// `every` after the child starts).
    pub every: Duration,
    /// A check still running after this is killed (its whole process group)
    /// and counts as failed.
    pub timeout: Duration,
    /// Failures in a row that stop the child (at least 1).
    pub failures: u32,
}

impl HealthCheck {
    /// The defaults `run` uses: every interval, a timeout of one interval,
    /// and as many failures in a row as the lease allows missed beats.
    pub fn new(command: impl Into<String>, lease: &LeaseOptions) -> HealthCheck {
        HealthCheck {
            command: command.into(),
            every: lease.interval,
            timeout: lease.interval,
            failures: lease.misses.max(1),
        }
    }
}

/// What one check came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    /// Why it failed: `exit status 1: <its last line of output>`,
    /// `timed out after 100 ms`, `killed by SIGSEGV`, `cannot start sh: ...`.
    Failed(String),
}

/// What the supervisor hears of the checks: each condition once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthEvent {
    /// The first failure after a success (or after the start).
    Failing { error: String, limit: u32 },
    /// A check passed after `after` of failures.
    Recovered { after: Duration },
    /// `failures` checks in a row failed, the last with `error`: stop the
    /// child. No check runs after this.
    Unhealthy { error: String, failures: u32 },
}

/// Failures in a row, counted against the limit.
#[derive(Debug)]
pub struct Failures {
    limit: u32,
    in_a_row: u32,
    /// When the current run of failures began.
    since: Option<Instant>,
}

impl Failures {
    pub fn new(limit: u32) -> Failures {
        Failures {
            limit: limit.max(1),
            in_a_row: 0,
            since: None,
        }
    }

    /// Counts one check that ended at `now`; the event to report, if any. A
    /// limit of 1 reports `Unhealthy` alone.
    pub fn record(&mut self, outcome: Outcome, now: Instant) -> Option<HealthEvent> {
        match outcome {
            Outcome::Passed => {
                self.in_a_row = 0;
                let since = self.since.take()?;
                Some(HealthEvent::Recovered {
                    after: now.saturating_duration_since(since),
                })
            }
            Outcome::Failed(error) => {
                self.in_a_row = self.in_a_row.saturating_add(1);
                if self.in_a_row >= self.limit {
                    Some(HealthEvent::Unhealthy {
                        error,
                        failures: self.in_a_row,
                    })
                } else if self.since.is_none() {
                    self.since = Some(now);
                    Some(HealthEvent::Failing {
                        error,
                        limit: self.limit,
                    })
                } else {
                    None
                }
            }
        }
    }
}

/// The thread that runs the checks. Dropping it stops the checks (a running
/// one is killed) and waits for the thread.
pub struct Checker {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checker {
    /// Starts checking; events go to `tx`, wrapped by `wrap`. `env`: the
    /// variables the check gets on top of the supervisor's.
    pub fn start<T: Send + 'static>(
        check: HealthCheck,
        env: Vec<(String, String)>,
        tx: Sender<T>,
        wrap: fn(HealthEvent) -> T,
    ) -> Checker {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut failures = Failures::new(check.failures);
            let mut next = Instant::now() + check.every;
            loop {
                let wait = next.saturating_duration_since(Instant::now());
                if !matches!(stopped.recv_timeout(wait), Err(RecvTimeoutError::Timeout)) {
                    return;
                }
                let started = Instant::now();
                let Some(outcome) = run_once(&check, &env, &stopped) else {
                    return; // stopped while it ran
                };
                if let Some(event) = failures.record(outcome, Instant::now()) {
                    let last = matches!(event, HealthEvent::Unhealthy { .. });
                    if tx.send(wrap(event)).is_err() || last {
                        return;
                    }
                }
                next = (started + check.every).max(Instant::now());
            }
        });
        Checker {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.stop.take(); // disconnects: the thread stops at its next look
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sends SIGKILL to a process group.
fn kill_group(pgid: u32) {
    // SAFETY: kill(2) with a negative pid signals a process group.
    unsafe {
        libc::kill(-(pgid as libc::pid_t), libc::SIGKILL);
    }
}

/// Runs the check once; None when stopped meanwhile (the check is killed).
fn run_once(
    check: &HealthCheck,
    env: &[(String, String)],
    stopped: &Receiver<()>,
) -> Option<Outcome> {
    let output = match std::io::pipe() {
        Ok(pipe) => pipe,
        Err(err) => return Some(Outcome::Failed(format!("cannot start sh: {err}"))),
    };
    let (reader, writer) = output;
    let spawned = {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(&check.command)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .process_group(0);
        match writer.try_clone() {
            Ok(second) => {
                cmd.stdout(second).stderr(writer);
            }
            Err(_) => {
                cmd.stdout(writer).stderr(Stdio::null());
            }
        }
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                signals::unblock_all_in_child();
                #[cfg(target_os = "linux")]
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        cmd.spawn()
        // `cmd` drops here with the parent's copies of the pipe's write end,
        // so the reader sees the end of the output when the check's group
        // closes it.
    };
    let mut child = match spawned {
        Ok(child) => child,
        Err(err) => return Some(Outcome::Failed(format!("cannot start sh: {err}"))),
    };
    let last_line = read_last_line(reader);
    let deadline = Instant::now() + check.timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                kill_group(child.id()); // whatever it left running
                if status.success() {
                    return Some(Outcome::Passed);
                }
                let said = last_line
                    .recv_timeout(Duration::from_millis(50))
                    .unwrap_or_default();
                let status = describe(&status);
                return Some(Outcome::Failed(if said.is_empty() {
                    status
                } else {
                    format!("{status}: {said}")
                }));
            }
            Ok(None) => {}
            Err(err) => {
                kill_group(child.id());
                let _ = child.wait();
                return Some(Outcome::Failed(format!("cannot wait for the check: {err}")));
            }
        }
        let now = Instant::now();
        if now >= deadline {
            kill_group(child.id()); // still unreaped: the group is its own
            let _ = child.wait();
            return Some(Outcome::Failed(format!(
                "timed out after {} ms",
                check.timeout.as_millis()
            )));
        }
        let step = POLL.min(deadline - now);
        if !matches!(stopped.recv_timeout(step), Err(RecvTimeoutError::Timeout)) {
            kill_group(child.id());
            let _ = child.wait();
            return None;
        }
    }
}

/// Reads the check's output in a thread of its own (so a chatty check never
/// blocks on a full pipe); its last non-empty line, shortened, arrives on the
/// channel when the output ends.
fn read_last_line(mut reader: std::io::PipeReader) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tail: Vec<u8> = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    tail.extend_from_slice(buf.get(..n).unwrap_or_default());
                    if tail.len() > 2 * 4096 {
                        tail.drain(..tail.len() - 4096);
                    }
                }
            }
        }
        let _ = tx.send(last_line(&tail));
    });
    rx
}

/// The last non-empty line of `output`, at most `OUTPUT_MAX` bytes of it.
fn last_line(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let line = text
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("");
    let mut end = line.len().min(OUTPUT_MAX);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    match line.get(..end) {
        Some(short) if end < line.len() => format!("{short}..."),
        _ => line.to_string(),
    }
}

fn describe(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by {}", signals::name(sig)),
        (None, None) => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn failed(why: &str) -> Outcome {
        Outcome::Failed(why.to_string())
    }

    #[test]
    fn failures_in_a_row_make_the_child_unhealthy() {
        let t0 = Instant::now();
        let mut f = Failures::new(3);
        assert_eq!(
            f.record(Outcome::Passed, t0),
            None,
            "healthy: nothing to say"
        );
        assert_eq!(
            f.record(failed("exit status 1"), t0 + ms(100)),
            Some(HealthEvent::Failing {
                error: "exit status 1".into(),
                limit: 3
            }),
            "the first failure is reported"
        );
        assert_eq!(
            f.record(failed("exit status 2"), t0 + ms(200)),
            None,
            "once"
        );
        assert_eq!(
            f.record(failed("timed out after 100 ms"), t0 + ms(300)),
            Some(HealthEvent::Unhealthy {
                error: "timed out after 100 ms".into(),
                failures: 3
            })
        );
    }

    #[test]
    fn a_success_resets_the_count_and_reports_the_recovery_once() {
        let t0 = Instant::now();
        let mut f = Failures::new(3);
        assert!(matches!(
            f.record(failed("x"), t0),
            Some(HealthEvent::Failing { .. })
        ));
        assert_eq!(f.record(failed("x"), t0 + ms(100)), None);
        assert_eq!(
            f.record(Outcome::Passed, t0 + ms(1500)),
            Some(HealthEvent::Recovered { after: ms(1500) })
        );
        assert_eq!(f.record(Outcome::Passed, t0 + ms(1600)), None);
        // Two more failures do not reach the limit: the count started over.
        assert!(matches!(
            f.record(failed("y"), t0 + ms(1700)),
            Some(HealthEvent::Failing { .. })
        ));
        assert_eq!(f.record(failed("y"), t0 + ms(1800)), None);
        assert!(matches!(
            f.record(failed("y"), t0 + ms(1900)),
            Some(HealthEvent::Unhealthy { failures: 3, .. })
        ));
    }

    #[test]
    fn a_limit_of_one_stops_at_the_first_failure() {
        let t0 = Instant::now();
        let mut f = Failures::new(1);
        assert_eq!(
            f.record(failed("exit status 1"), t0),
            Some(HealthEvent::Unhealthy {
                error: "exit status 1".into(),
                failures: 1
            })
        );
        // 0 is taken as 1.
        assert!(matches!(
            Failures::new(0).record(failed("z"), t0),
            Some(HealthEvent::Unhealthy { failures: 1, .. })
        ));
    }

    #[test]
    fn the_last_line_of_output_is_kept_short() {
        assert_eq!(last_line(b"one\ntwo\n\n  \n"), "two");
        assert_eq!(last_line(b""), "");
        let long = "\u{e9}".repeat(150); // 300 bytes
        let short = last_line(long.as_bytes());
        assert!(
            short.ends_with("...") && short.len() <= OUTPUT_MAX + 3,
            "{short}"
        );
    }

    #[test]
    fn defaults_follow_the_lease() {
        let lease = LeaseOptions {
            interval: ms(250),
            misses: 4,
            ..LeaseOptions::default()
        };
        let check = HealthCheck::new("true", &lease);
        assert_eq!(
            (check.every, check.timeout, check.failures),
            (ms(250), ms(250), 4)
        );
    }
}
