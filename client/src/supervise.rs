//! `hblock run KEY -- CMD`: run CMD only while holding the lease.
//!
//! 1. Wait for the lease with one blocking `ACQUIRE ... WAIT 0` on a dedicated
//!    connection (keeps this standby's place in the queue).
//! 2. Run CMD in its own process group, with HBLOCK_KEY / HBLOCK_OWNER /
//!    HBLOCK_TOKEN, and a parent-death signal (SIGKILL) on Linux.
//! 3. Beat every interval. On NOTHELD: SIGTERM the group at once, SIGKILL after
//!    `grace`. When beats fail (Redis unreachable): SIGTERM at
//!    `max(first failure, lease end - grace - margin)` and SIGKILL at
//!    `lease end - margin`, so the child is dead before the lease can end on
//!    the server and a standby starts.
//! 4. When CMD exits: RELEASE at once (a standby takes over) and exit with its
//!    status. SIGINT/SIGTERM are forwarded to CMD; then the same.

use crate::lease::{Client, LeaseEvent, LeaseOptions, LostReason};
use std::process::{Command, ExitStatus};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// `run` exit code when the lease was lost and the child stopped for it.
pub const EXIT_LOST: i32 = 4;
/// Exit code when Redis could not be reached or answered an error.
pub const EXIT_REDIS: i32 = 3;

pub struct RunOptions {
    pub key: String,
    pub owner: String,
    pub lease: LeaseOptions,
    pub grace: Duration,
    pub command: Vec<String>,
}

enum Msg {
    Signal(i32),
    Acquired(Box<redis::RedisResult<Option<crate::Lease>>>),
    ChildExited(std::io::Result<ExitStatus>),
    Lease(LeaseEvent),
}

fn log(message: &str) {
    eprintln!("hblock: {message}");
}

/// Blocks SIGINT and SIGTERM in every thread and delivers them as messages.
/// Must run before any other thread is started.
fn catch_signals(tx: Sender<Msg>) {
    // SAFETY: plain libc calls on a local signal set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        std::thread::spawn(move || loop {
            let mut sig: libc::c_int = 0;
            if libc::sigwait(&set, &mut sig) == 0 && tx.send(Msg::Signal(sig)).is_err() {
                return;
            }
        });
    }
}

/// Sends `sig` to the child's whole process group (its pgid is its pid).
fn signal_group(pgid: u32, sig: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group.
    unsafe {
        libc::kill(-(pgid as libc::pid_t), sig);
    }
}

fn spawn_child(opts: &RunOptions, token: i64) -> std::io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    let (program, args) = opts.command.split_first().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no command to run")
    })?;
    let parent = std::process::id() as libc::pid_t;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("HBLOCK_KEY", &opts.key)
        .env("HBLOCK_OWNER", &opts.owner)
        .env("HBLOCK_TOKEN", token.to_string())
        .process_group(0);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            #[cfg(target_os = "linux")]
            {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent {
                    libc::_exit(EXIT_LOST); // the supervisor already died
                }
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// How the child ended, as a shell reports it: its code, or 128 + signal.
pub fn status_code(status: &ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Runs the supervisor; returns the process exit code.
pub fn run(client: &Client, opts: RunOptions) -> i32 {
    let (tx, rx) = mpsc::channel();
    catch_signals(tx.clone());

    log(&format!("waiting for {} as {}", opts.key, opts.owner));
    {
        let (client, key, owner, tx) = (
            client.clone(),
            opts.key.clone(),
            opts.owner.clone(),
            tx.clone(),
        );
        let lease_options = LeaseOptions {
            wait: Some(Duration::ZERO),
            ..opts.lease.clone()
        };
        std::thread::spawn(move || {
            let acquired = client.acquire(&key, owner.as_bytes(), &lease_options);
            let _ = tx.send(Msg::Acquired(Box::new(acquired)));
        });
    }
    let lease = loop {
        match rx.recv() {
            Ok(Msg::Signal(sig)) => {
                log(&format!(
                    "signal {sig} while waiting for {}: exiting",
                    opts.key
                ));
                return 128 + sig; // exiting closes the waiting connection
            }
            Ok(Msg::Acquired(acquired)) => match *acquired {
                Ok(Some(lease)) => break lease,
                Ok(None) => {
                    log(&format!("not acquired {}", opts.key));
                    return 1;
                }
                Err(err) => {
                    log(&format!("cannot acquire {}: {err}", opts.key));
                    return EXIT_REDIS;
                }
            },
            Ok(_) => {}
            Err(_) => return EXIT_REDIS,
        }
    };
    log(&format!("acquired {} token={}", opts.key, lease.token()));

    let mut child = match spawn_child(&opts, lease.token()) {
        Ok(child) => child,
        Err(err) => {
            log(&format!("cannot start {:?}: {err}", opts.command));
            let _ = lease.release();
            return 127;
        }
    };
    let pgid = child.id();
    log(&format!("started {:?} pid={pgid}", opts.command));
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let _ = tx.send(Msg::ChildExited(child.wait()));
        });
    }
    let interval = opts.lease.interval;
    let margin = (interval / 4).min(Duration::from_millis(200));
    let mut lost: Option<String> = None;
    let mut term_at: Option<Instant> = None;
    let mut kill_at: Option<Instant> = None;
    let mut termed = false;
    loop {
        // The lease's events join the one loop (checked at least every 20 ms).
        while let Ok(event) = lease.events().try_recv() {
            let _ = tx.send(Msg::Lease(event));
        }
        let wake = [term_at, kill_at].into_iter().flatten().min().map_or(
            Duration::from_millis(20),
            |at| {
                at.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(20))
            },
        );
        match rx.recv_timeout(wake) {
            Ok(Msg::ChildExited(status)) => {
                signal_group(pgid, libc::SIGKILL); // whatever it left behind
                let code = match &status {
                    Ok(status) => status_code(status),
                    Err(_) => 1,
                };
                log(&format!("{:?} exited with {code}", opts.command));
                let token = lease.token();
                match lease.release() {
                    Ok(true) => log(&format!("released {} token={token}", opts.key)),
                    Ok(false) => log(&format!("{} token={token} was no longer held", opts.key)),
                    Err(err) => log(&format!("release of {} failed: {err}", opts.key)),
                }
                return if lost.is_some() { EXIT_LOST } else { code };
            }
            Ok(Msg::Signal(sig)) => {
                log(&format!("signal {sig}: stopping {:?}", opts.command));
                signal_group(pgid, sig);
                kill_at = Some(kill_at.map_or(Instant::now() + opts.grace, |k| {
                    k.min(Instant::now() + opts.grace)
                }));
            }
            Ok(Msg::Lease(LeaseEvent::Lost(reason))) => {
                log(&format!("lost {}: {reason}", opts.key));
                lost = Some(reason.to_string());
                if !termed {
                    termed = true;
                    signal_group(pgid, libc::SIGTERM);
                }
                let deadline = match reason {
                    LostReason::NotHeld(_) => Instant::now() + opts.grace,
                    LostReason::Unreachable(_) => Instant::now(),
                };
                kill_at = Some(kill_at.map_or(deadline, |k| k.min(deadline)));
            }
            Ok(Msg::Lease(LeaseEvent::BeatFailed { error, lease_ends })) => {
                let left = lease_ends.saturating_duration_since(Instant::now());
                log(&format!(
                    "beat of {} failed: {error}; lease ends in {} ms at the latest",
                    opts.key,
                    left.as_millis()
                ));
                let term = lease_ends
                    .checked_sub(opts.grace + margin)
                    .map_or(Instant::now(), |t| t.max(Instant::now()));
                term_at = Some(term);
                kill_at = Some(lease_ends.checked_sub(margin).unwrap_or(lease_ends));
            }
            Ok(Msg::Lease(LeaseEvent::Recovered)) => {
                if !termed {
                    log(&format!("beats of {} succeed again", opts.key));
                    term_at = None;
                    kill_at = None;
                }
            }
            Ok(Msg::Acquired(_)) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return EXIT_LOST,
        }
        let now = Instant::now();
        if term_at.is_some_and(|t| now >= t) && !termed {
            termed = true;
            lost.get_or_insert_with(|| "Redis unreachable".into());
            log(&format!(
                "stopping {:?}: the lease of {} may end soon",
                opts.command, opts.key
            ));
            signal_group(pgid, libc::SIGTERM);
        }
        if kill_at.is_some_and(|t| now >= t) {
            kill_at = None;
            log(&format!("killing {:?}", opts.command));
            signal_group(pgid, libc::SIGKILL);
        }
    }
}
