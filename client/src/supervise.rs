//! `hblock run KEY -- CMD`: run CMD only while holding the lease.
//!
//! 1. Wait for the lease with one blocking `ACQUIRE ... WAIT` on a dedicated
//!    connection (keeps this standby's place in the queue); on connection
//!    errors reconnect and wait again.
//! 2. Start the watchdog (watchdog.rs), then CMD in its own process group,
//!    with HBLOCK_KEY / HBLOCK_OWNER / HBLOCK_TOKEN and a parent-death signal
//!    (SIGKILL) on Linux. Every acknowledged beat moves the watchdog's
//!    deadline.
//! 3. Beat every interval (the lease's thread, whose reports are pushed
//!    here); stop the child when the lease is lost or may end: when and how
//!    is decided by the pure `StopPlan` (stop_plan.rs).
//! 4. With `--check`, run the health check (health.rs) while CMD runs;
//!    when it fails too often in a row, stop CMD as on a lost lease.
//! 5. When CMD exits: RELEASE at once (a standby takes over) and exit with
//!    its status. Signals: see signals.rs.

use crate::conn::Client;
use crate::conn::LOOKUP_LIMIT;
use crate::health::{Checker, HealthCheck, HealthEvent, EXIT_UNHEALTHY};
use crate::lease::{LeaseEvent, LeaseOptions, LostReason};
use crate::log::{self, Condition};
use crate::output::error_line;
use crate::signals::{self, Kind};
use crate::stop_plan::{Action, StopPlan};
use crate::watchdog::Watchdog;
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the holder lookup of the `not acquired` line may take (a
/// timed wait on a hung server ends soon after its time).
const FINAL_LOOKUP_LIMIT: Duration = Duration::from_millis(500);

/// `run` exit code when the lease was lost and the child stopped for it.
pub const EXIT_LOST: i32 = 4;
/// Exit code when Redis could not be reached or answered an error.
pub const EXIT_REDIS: i32 = 3;
/// Exit code when the lease was not acquired (`--no-wait`, `--timeout`).
pub const EXIT_NOT_ACQUIRED: i32 = 1;

pub struct RunOptions {
    pub key: String,
    /// The owner exactly as used (already unique to this process).
    pub owner: String,
    /// `wait`: None = try once, Some(0) = no limit, Some(d) = up to d.
    pub lease: LeaseOptions,
    pub grace: std::time::Duration,
    pub command: Vec<String>,
    /// `--check`: stop the child (exit 5) when this check fails too often
    /// in a row. None: no health check.
    pub check: Option<HealthCheck>,
    /// `--on-hup ignore`: SIGHUP is not passed to the child, and the child
    /// starts with SIGHUP ignored (a hangup sent to its group does not end
    /// it unless it installs a handler). False: SIGHUP is passed on.
    pub ignore_hup: bool,
}

enum Msg {
    Signal(i32),
    Acquired(Box<Result<Option<crate::lease::Lease>, crate::error::Error>>),
    ChildExited(std::io::Result<ExitStatus>),
    Lease(LeaseEvent),
    Health(HealthEvent),
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
    let ignore_hup = opts.ignore_hup;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("HBLOCK_KEY", &opts.key)
        .env("HBLOCK_OWNER", &opts.owner)
        .env("HBLOCK_TOKEN", token.to_string())
        .process_group(0);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            signals::unblock_all_in_child();
            if ignore_hup {
                signals::ignore_in_child(libc::SIGHUP);
            }
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
    // Every connection of this run is named after its owner.
    let client = &client.named(opts.owner.as_bytes());
    let (tx, rx) = mpsc::channel();
    signals::catch(tx.clone(), Msg::Signal);
    let mut lease = match wait_for_lease(client, &opts, &tx, &rx) {
        Ok(lease) => lease,
        Err(code) => return code,
    };
    log::info(&format!(
        "acquired {} token={} as {}",
        opts.key,
        lease.token(),
        opts.owner
    ));
    let plan = StopPlan::new(opts.lease.interval, opts.grace);
    let (pgid, watchdog) = match start_child(&opts, &lease, &plan, &tx) {
        Ok(started) => started,
        Err(code) => {
            let _ = lease.release();
            return code;
        }
    };
    let checker = opts.check.clone().map(|check| {
        let env = vec![
            ("HBLOCK_KEY".to_string(), opts.key.clone()),
            ("HBLOCK_OWNER".to_string(), opts.owner.clone()),
            ("HBLOCK_TOKEN".to_string(), lease.token().to_string()),
            ("HBLOCK_CHILD_PID".to_string(), pgid.to_string()),
        ];
        Checker::start(check, env, tx.clone(), Msg::Health)
    });
    lease.forward_events(tx, Msg::Lease);
    let beats = Beats {
        condition: Condition::new(&opts.key, client.url()),
        acked: lease.lease_ends(),
        overdue: false,
    };
    let child = Child {
        pgid,
        watchdog: &watchdog,
        checker,
    };
    supervise_child(lease, &opts, child, (plan, beats), &rx)
}

/// The beats as the supervisor sees them on its own clock: a beat that has
/// not answered a whole interval after it was due counts as failed (the
/// heartbeat's own read may block longer, up to the lease's end, on a
/// server that hangs), so the stop plan starts in time. Not sooner: a beat
/// that is merely slow (a busy host, a fork) must not stop the child.
struct Beats {
    /// Beats failing or recovered: logged once each.
    condition: Condition,
    /// The lease's end after the last acknowledged beat seen here.
    acked: Instant,
    /// Overdue: the plan was told a beat failed.
    overdue: bool,
}

impl Beats {
    /// When the next beat is overdue: a whole interval after it was due
    /// (the last acknowledged beat's send time plus two intervals), but
    /// two margins before the lease's end at the latest, so that SIGTERM
    /// still comes before the watchdog's SIGKILL (lease end - margin).
    fn overdue_at(&self, opts: &RunOptions, plan: &StopPlan) -> Instant {
        let lease = opts.lease.lease();
        let interval = opts.lease.interval;
        let last_ok = self.acked.checked_sub(lease).unwrap_or(self.acked);
        let latest = self.acked.checked_sub(plan.margin() * 2).unwrap_or(last_ok);
        (last_ok + interval * 2).min(latest).max(last_ok)
    }

    /// Looks at the lease's end now: an acknowledged beat ends an overdue
    /// spell (and cancels a stop not yet begun); a beat overdue starts one.
    /// How long until the next look is due (None: no deadline of its own).
    fn look(
        &mut self,
        lease: &crate::lease::Lease,
        opts: &RunOptions,
        plan: &mut StopPlan,
        now: Instant,
    ) -> Option<std::time::Duration> {
        let lease_ends = lease.lease_ends();
        if lease_ends > self.acked {
            self.acked = lease_ends;
            if std::mem::take(&mut self.overdue) {
                plan.on_recovered();
            }
            self.condition.recovered();
        }
        if self.overdue {
            return None;
        }
        let overdue_at = self.overdue_at(opts, plan);
        if now < overdue_at {
            return Some(overdue_at - now);
        }
        self.overdue = true;
        let last_ok = self.acked.checked_sub(opts.lease.lease()).unwrap_or(now);
        let silent = now.saturating_duration_since(last_ok).as_millis();
        self.condition.failed(&format!(
            "no beat answered for {silent} ms (interval {} ms)",
            opts.lease.interval.as_millis()
        ));
        plan.on_beat_failed(lease_ends, now);
        None
    }
}

/// Why the lock is not ours now, for the waiting log line: its holder,
/// grants held back after a failover, or no such lock yet.
fn holder(client: &Client, key: &str) -> String {
    match client.not_granted_within(key, FINAL_LOOKUP_LIMIT) {
        Ok(why) => why.to_string(),
        Err(err) => format!("holder unknown: {err}"),
    }
}

/// After the wait was retried (a failover, say), one line when the lock
/// turns out to be held back on the master the waiter queues on now:
/// checked every 250 ms by a thread of its own (the signal loop stays free)
/// until INFO answers, while `waiting`.
fn report_held_back(
    client: &Client,
    opts: &RunOptions,
    requeued: &Arc<AtomicBool>,
    waiting: &Arc<AtomicBool>,
) {
    let (client, key, owner) = (client.clone(), opts.key.clone(), opts.owner.clone());
    let (requeued, waiting) = (Arc::clone(requeued), Arc::clone(waiting));
    std::thread::spawn(move || {
        while waiting.load(Ordering::Relaxed) {
            std::thread::sleep(std::time::Duration::from_millis(250));
            if !requeued.swap(false, Ordering::Relaxed) || !waiting.load(Ordering::Relaxed) {
                continue;
            }
            match client.not_granted(&key) {
                Ok(why @ crate::commands::NotGranted::HeldBack { .. }) => {
                    log::info(&format!("waiting for {key} as {owner} ({why})"));
                }
                Ok(_) => {}
                Err(_) => requeued.store(true, Ordering::Relaxed), // ask again
            }
        }
    });
}

/// One blocking ACQUIRE (retried on connection errors) in a thread, while
/// signals can still end the wait. Err: the exit code.
fn wait_for_lease(
    client: &Client,
    opts: &RunOptions,
    tx: &Sender<Msg>,
    rx: &Receiver<Msg>,
) -> Result<crate::lease::Lease, i32> {
    let (waiter, key, owner, tx, mut options) = (
        client.clone(),
        opts.key.clone(),
        opts.owner.clone(),
        tx.clone(),
        opts.lease.clone(),
    );
    let requeued = Arc::new(AtomicBool::new(false));
    let waiting = Arc::new(AtomicBool::new(true));
    report_held_back(client, opts, &requeued, &waiting);
    let mut condition = log::Condition::new(&opts.key, client.url());
    std::thread::spawn(move || {
        // The holder lookup happens here, so signals still end the wait on
        // a hung server; its time comes out of --timeout. A fatal error
        // (a missing password, WRONGTYPE) is the one line the exit logs.
        let started = Instant::now();
        let limit = match options.wait {
            Some(w) if !w.is_zero() => (w / 4).clamp(Duration::from_millis(50), LOOKUP_LIMIT),
            _ => LOOKUP_LIMIT,
        };
        match waiter.not_granted_within(&key, limit) {
            // An ACL without HBLOCK.INFO still lets the ACQUIRE decide.
            Err(err) if err.is_fatal() && err.class() != crate::error::Class::NoPermission => {
                let _ = tx.send(Msg::Acquired(Box::new(Err(err))));
                return;
            }
            found => {
                let why = match found {
                    Ok(why) => why.to_string(),
                    Err(err) => format!("holder unknown: {err}"),
                };
                log::info(&format!("waiting for {key} as {owner} ({why})"));
            }
        }
        options.wait = options.wait.map(|w| match w.is_zero() {
            true => w, // no limit
            false => w
                .saturating_sub(started.elapsed())
                .max(Duration::from_millis(1)),
        });
        // Failing is logged once when it starts and once when it ends (a
        // failover retries every few ms for seconds), each retry only with
        // --verbose.
        let acquired =
            waiter.acquire_reporting(&key, owner.as_bytes(), &options, |event| match event {
                crate::acquire::WaitEvent::Retry(err) => {
                    requeued.store(true, Ordering::Relaxed);
                    condition.failed(err);
                }
                crate::acquire::WaitEvent::Queued => condition.recovered(),
            });
        waiting.store(false, Ordering::Relaxed);
        let _ = tx.send(Msg::Acquired(Box::new(acquired)));
    });
    loop {
        match rx.recv() {
            Ok(Msg::Signal(sig)) if signals::kind(sig) == Kind::Pass => {
                log::info(&format!("{} while waiting: ignored", signals::name(sig)));
            }
            Ok(Msg::Signal(sig)) => {
                log::info(&format!(
                    "{} while waiting for {}: exiting",
                    signals::name(sig),
                    opts.key
                ));
                return Err(128 + sig); // exiting closes the waiting connection
            }
            Ok(Msg::Acquired(acquired)) => {
                return match *acquired {
                    Ok(Some(lease)) => Ok(lease),
                    Ok(None) => {
                        log::error(&format!(
                            "not acquired {} ({})",
                            opts.key,
                            holder(client, &opts.key)
                        ));
                        Err(EXIT_NOT_ACQUIRED)
                    }
                    Err(err) => {
                        log::error(&error_line(&opts.key, client.url(), &err));
                        Err(EXIT_REDIS)
                    }
                };
            }
            Ok(_) => {}
            Err(_) => return Err(EXIT_REDIS),
        }
    }
}

/// Starts the watchdog, then the child and a thread that reports its exit;
/// the watchdog guards the child's group from then on. Ok: the child's
/// process group and the watchdog; Err: the exit code (127: could not start).
fn start_child(
    opts: &RunOptions,
    lease: &crate::lease::Lease,
    plan: &StopPlan,
    tx: &Sender<Msg>,
) -> Result<(u32, Arc<Watchdog>), i32> {
    let watchdog = Watchdog::start().map_err(|err| {
        log::error(&format!("cannot start the watchdog: {err}"));
        127
    })?;
    let watchdog = Arc::new(watchdog);
    let mut child = spawn_child(opts, lease.token()).map_err(|err| {
        log::error(&format!("cannot start {:?}: {err}", opts.command));
        watchdog.disarm();
        127
    })?;
    let pgid = child.id();
    watchdog.guard(pgid, plan.kill_time(lease.lease_ends()));
    let (guard, margin) = (Arc::clone(&watchdog), plan.margin());
    lease.on_extended(move |lease_ends| {
        guard.extend(lease_ends.checked_sub(margin).unwrap_or(lease_ends));
    });
    log::info(&format!("started {:?} pid={pgid}", opts.command));
    let tx = tx.clone();
    std::thread::spawn(move || {
        let _ = tx.send(Msg::ChildExited(child.wait()));
    });
    Ok((pgid, watchdog))
}

/// A signal to the supervisor while the child runs: passed on (or SIGTERM
/// for the ones that only end processes); the stopping kinds start the stop.
fn on_signal(sig: i32, opts: &RunOptions, pgid: u32, plan: &mut StopPlan, now: Instant) {
    let name = signals::name(sig);
    match signals::kind(sig) {
        Kind::Pass if sig == libc::SIGHUP && opts.ignore_hup => {
            log::info(&format!("{name}: ignored (--on-hup ignore)"));
        }
        Kind::Pass => {
            log::info(&format!("{name}: passed to {:?}", opts.command));
            signal_group(pgid, sig);
        }
        Kind::Stop => {
            log::info(&format!("{name}: passed to {:?}, stopping", opts.command));
            signal_group(pgid, sig);
            plan.on_signal(now);
        }
        Kind::Terminate => {
            log::info(&format!("{name}: stopping {:?} with SIGTERM", opts.command));
            signal_group(pgid, libc::SIGTERM);
            plan.on_signal(now);
        }
    }
}

/// A report of the heartbeat: what the plan makes of it.
fn on_lease_event(
    event: LeaseEvent,
    opts: &RunOptions,
    (plan, beats): (&mut StopPlan, &mut Beats),
    now: Instant,
) -> Vec<Action> {
    match event {
        LeaseEvent::Lost(LostReason::Fatal(error)) => {
            log::error(&format!("lost {}: {error}", opts.key));
            plan.on_fatal(error, now)
        }
        LeaseEvent::Lost(reason) => {
            log::error(&format!("lost {}: {reason}", opts.key));
            let not_held = matches!(reason, LostReason::NotHeld(_));
            plan.on_lost(reason.to_string(), not_held, now)
        }
        LeaseEvent::BeatFailed { error, lease_ends } => {
            let left = lease_ends.saturating_duration_since(now).as_millis();
            beats.condition.failed(&error);
            // Only a beat acknowledged after this failure is a recovery: one
            // acknowledged before it but not yet looked at is not.
            beats.acked = beats.acked.max(lease_ends);
            beats.overdue = true;
            log::debug(&format!(
                "{}: the lease ends in {left} ms at the latest",
                opts.key
            ));
            plan.on_beat_failed(lease_ends, now);
            Vec::new()
        }
        LeaseEvent::Recovered => {
            plan.on_recovered();
            beats.overdue = false;
            beats.condition.recovered();
            Vec::new()
        }
    }
}

/// A health-check report: logged once per condition; too many failures in
/// a row stop the child as a lost lease does (SIGTERM now, SIGKILL after the
/// grace), while the lease is still held and beaten: it is released once the
/// child is gone. True when the child is to stop for it.
fn on_health_event(
    event: HealthEvent,
    opts: &RunOptions,
    plan: &mut StopPlan,
    now: Instant,
) -> (bool, Vec<Action>) {
    match event {
        HealthEvent::Failing { error, limit } => {
            log::error(&format!(
                "{}: health check failing: {error}; the command is stopped after {limit} failures in a row",
                opts.key
            ));
            (false, Vec::new())
        }
        HealthEvent::Recovered { after } => {
            log::error(&format!(
                "{}: health check recovered after {:.1} s",
                opts.key,
                after.as_secs_f64()
            ));
            (false, Vec::new())
        }
        HealthEvent::Unhealthy { error, failures } => {
            let reason = format!("health check failed {failures} times in a row, last: {error}");
            log::error(&format!("unhealthy {}: {reason}", opts.key));
            (true, plan.on_lost(reason, true, now))
        }
    }
}

/// The running child: its process group, the watchdog guarding it, and the
/// health check's thread (dropped, and so stopped, once the child is being
/// stopped for any reason).
struct Child<'a> {
    pgid: u32,
    watchdog: &'a Watchdog,
    checker: Option<Checker>,
}

/// Beats (in the lease's thread) while the child runs; stops it when the
/// plan says so; releases when it exits. Returns the exit code.
fn supervise_child(
    lease: crate::lease::Lease,
    opts: &RunOptions,
    mut child: Child,
    (mut plan, mut beats): (StopPlan, Beats),
    rx: &Receiver<Msg>,
) -> i32 {
    let pgid = child.pgid;
    let mut unhealthy = false;
    loop {
        let now = Instant::now();
        // Once the lease is lost (or given up for a failed check) no beat
        // is due: nothing to look at, no "no beat answered" line.
        let look = match plan.lost() {
            None => beats.look(&lease, opts, &mut plan, now),
            Some(_) => None,
        };
        let wake = [plan.next_wake(now), look].into_iter().flatten().min();
        let msg = match wake {
            Some(wait) => rx.recv_timeout(wait),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let now = Instant::now();
        let actions = match msg {
            Ok(Msg::ChildExited(status)) => {
                child.watchdog.disarm();
                child.checker.take();
                let code = finish(lease, opts, pgid, status, &plan);
                return if unhealthy { EXIT_UNHEALTHY } else { code };
            }
            Ok(Msg::Signal(sig)) => {
                on_signal(sig, opts, pgid, &mut plan, now);
                if signals::kind(sig) != Kind::Pass {
                    child.checker.take(); // stopping: its status decides
                }
                Vec::new()
            }
            Ok(Msg::Lease(event)) => {
                let actions = on_lease_event(event, opts, (&mut plan, &mut beats), now);
                if plan.lost().is_some() {
                    child.checker.take(); // exit 4, not 5
                }
                actions
            }
            Ok(Msg::Health(event)) if child.checker.is_some() && plan.lost().is_none() => {
                let (stop, actions) = on_health_event(event, opts, &mut plan, now);
                if stop {
                    unhealthy = true;
                    child.checker.take();
                }
                actions
            }
            Ok(Msg::Health(_) | Msg::Acquired(_)) | Err(RecvTimeoutError::Timeout) => Vec::new(),
            Err(RecvTimeoutError::Disconnected) => return EXIT_LOST,
        };
        let now = Instant::now();
        if plan.lost().is_none() {
            beats.look(&lease, opts, &mut plan, now);
        }
        for action in actions.into_iter().chain(plan.due(now)) {
            let (sig, what) = match action {
                Action::Term => (libc::SIGTERM, "stopping"),
                Action::Kill => (libc::SIGKILL, "killing"),
            };
            log::error(&format!(
                "{what} {:?} with {} ({})",
                opts.command,
                signals::name(sig),
                plan.lost().unwrap_or("signal")
            ));
            signal_group(pgid, sig);
        }
    }
}

/// The child exited: kill what it left behind, release, exit with its
/// status (or 4 when the lease was lost, or found no longer held).
fn finish(
    lease: crate::lease::Lease,
    opts: &RunOptions,
    pgid: u32,
    status: std::io::Result<ExitStatus>,
    plan: &StopPlan,
) -> i32 {
    signal_group(pgid, libc::SIGKILL); // whatever it left behind
    let code = status.as_ref().map_or(1, status_code);
    log::info(&format!("{:?} exited with {code}", opts.command));
    let token = lease.token();
    let mut lost = plan.lost().is_some();
    match lease.release() {
        Ok(true) => log::info(&format!("released {} token={token}", opts.key)),
        Ok(false) => {
            log::error(&format!(
                "lost {}: token={token} was no longer held",
                opts.key
            ));
            lost = true;
        }
        Err(err) => log::error(&format!("release of {} failed: {err}", opts.key)),
    }
    if plan.fatal() {
        EXIT_REDIS // a beat got an error no retry fixes
    } else if lost {
        EXIT_LOST
    } else {
        code
    }
}
