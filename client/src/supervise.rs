//! `hblock run KEY -- CMD`: run CMD only while holding the lease.
//!
//! 1. Wait for the lease with one blocking `ACQUIRE ... WAIT 0` on a dedicated
//!    connection (keeps this standby's place in the queue).
//! 2. Run CMD in its own process group, with HBLOCK_KEY / HBLOCK_OWNER /
//!    HBLOCK_TOKEN, and a parent-death signal (SIGKILL) on Linux.
//! 3. Beat every interval (the lease's thread, whose reports are pushed here);
//!    stop the child when the lease is lost or may end: when and how is
//!    decided by the pure `StopPlan` (stop_plan.rs).
//! 4. When CMD exits: RELEASE at once (a standby takes over) and exit with its
//!    status. SIGINT/SIGTERM are forwarded to CMD; then the same.

use crate::lease::{Client, LeaseEvent, LeaseOptions, LostReason};
use crate::stop_plan::{Action, StopPlan};
use std::process::{Command, ExitStatus};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
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
    Acquired(Box<Result<Option<crate::Lease>, crate::Error>>),
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
    let mut lease = match wait_for_lease(client, &opts, &tx, &rx) {
        Ok(lease) => lease,
        Err(code) => return code,
    };
    log(&format!("acquired {} token={}", opts.key, lease.token()));
    let pgid = match start_child(&opts, lease.token(), &tx) {
        Ok(pgid) => pgid,
        Err(code) => {
            let _ = lease.release();
            return code;
        }
    };
    lease.forward_events(tx, Msg::Lease);
    supervise_child(lease, &opts, pgid, &rx)
}

/// One blocking `ACQUIRE ... WAIT 0` in a thread, while signals can still
/// end the wait. Err: the exit code.
fn wait_for_lease(
    client: &Client,
    opts: &RunOptions,
    tx: &Sender<Msg>,
    rx: &Receiver<Msg>,
) -> Result<crate::Lease, i32> {
    log(&format!("waiting for {} as {}", opts.key, opts.owner));
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
    loop {
        match rx.recv() {
            Ok(Msg::Signal(sig)) => {
                log(&format!(
                    "signal {sig} while waiting for {}: exiting",
                    opts.key
                ));
                return Err(128 + sig); // exiting closes the waiting connection
            }
            Ok(Msg::Acquired(acquired)) => {
                return match *acquired {
                    Ok(Some(lease)) => Ok(lease),
                    Ok(None) => {
                        log(&format!("not acquired {}", opts.key));
                        Err(1)
                    }
                    Err(err) => {
                        log(&format!("cannot acquire {}: {err}", opts.key));
                        Err(EXIT_REDIS)
                    }
                };
            }
            Ok(_) => {}
            Err(_) => return Err(EXIT_REDIS),
        }
    }
}

/// Starts the child and a thread that reports its exit. Ok: its process
/// group; Err: the exit code (127: it could not be started).
fn start_child(opts: &RunOptions, token: i64, tx: &Sender<Msg>) -> Result<u32, i32> {
    let mut child = spawn_child(opts, token).map_err(|err| {
        log(&format!("cannot start {:?}: {err}", opts.command));
        127
    })?;
    let pgid = child.id();
    log(&format!("started {:?} pid={pgid}", opts.command));
    let tx = tx.clone();
    std::thread::spawn(move || {
        let _ = tx.send(Msg::ChildExited(child.wait()));
    });
    Ok(pgid)
}

/// Beats (in the lease's thread) while the child runs; stops it when the
/// plan says so; releases when it exits. Returns the exit code.
fn supervise_child(lease: crate::Lease, opts: &RunOptions, pgid: u32, rx: &Receiver<Msg>) -> i32 {
    let mut plan = StopPlan::new(opts.lease.interval, opts.grace);
    loop {
        let msg = match plan.next_wake(Instant::now()) {
            Some(wait) => rx.recv_timeout(wait),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let now = Instant::now();
        let actions = match msg {
            Ok(Msg::ChildExited(status)) => return finish(lease, opts, pgid, status, &plan),
            Ok(Msg::Signal(sig)) => {
                log(&format!("signal {sig}: stopping {:?}", opts.command));
                signal_group(pgid, sig);
                plan.on_signal(now);
                Vec::new()
            }
            Ok(Msg::Lease(LeaseEvent::Lost(reason))) => {
                log(&format!("lost {}: {reason}", opts.key));
                let not_held = matches!(reason, LostReason::NotHeld(_));
                plan.on_lost(reason.to_string(), not_held, now)
            }
            Ok(Msg::Lease(LeaseEvent::BeatFailed { error, lease_ends })) => {
                let left = lease_ends.saturating_duration_since(now).as_millis();
                log(&format!(
                    "beat of {} failed: {error}; lease ends in {left} ms at the latest",
                    opts.key
                ));
                plan.on_beat_failed(lease_ends, now);
                Vec::new()
            }
            Ok(Msg::Lease(LeaseEvent::Recovered)) => {
                if plan.on_recovered() {
                    log(&format!("beats of {} succeed again", opts.key));
                }
                Vec::new()
            }
            Ok(Msg::Acquired(_)) | Err(RecvTimeoutError::Timeout) => Vec::new(),
            Err(RecvTimeoutError::Disconnected) => return EXIT_LOST,
        };
        for action in actions.into_iter().chain(plan.due(Instant::now())) {
            let (sig, what) = match action {
                Action::Term => (libc::SIGTERM, "stopping"),
                Action::Kill => (libc::SIGKILL, "killing"),
            };
            log(&format!(
                "{what} {:?} ({})",
                opts.command,
                plan.lost().unwrap_or("signal")
            ));
            signal_group(pgid, sig);
        }
    }
}

/// The child exited: kill what it left behind, release, exit with its
/// status (or 4 when the lease was lost).
fn finish(
    lease: crate::Lease,
    opts: &RunOptions,
    pgid: u32,
    status: std::io::Result<ExitStatus>,
    plan: &StopPlan,
) -> i32 {
    signal_group(pgid, libc::SIGKILL); // whatever it left behind
    let code = status.as_ref().map_or(1, status_code);
    log(&format!("{:?} exited with {code}", opts.command));
    let token = lease.token();
    match lease.release() {
        Ok(true) => log(&format!("released {} token={token}", opts.key)),
        Ok(false) => log(&format!("{} token={token} was no longer held", opts.key)),
        Err(err) => log(&format!("release of {} failed: {err}", opts.key)),
    }
    if plan.lost().is_some() {
        EXIT_LOST
    } else {
        code
    }
}
