//! The `hblock` CLI. See `hblock --help`.

use clap::{Args, Parser, Subcommand};
use hblock_client::commands;
use hblock_client::exporter::{self, ExporterOptions};
use hblock_client::health::HealthCheck;
use hblock_client::output::{
    acquired_json, ended_json, ended_text, error_line, info_json, info_json_full, info_text_full,
    listed_json, listed_lines, mask_password,
};
use hblock_client::owner::{default_owner, instance_owner};
use hblock_client::supervise::{self, RunOptions, EXIT_REDIS};
use hblock_client::REPLY_LIMIT;
use hblock_client::{log, sentinel, watchdog, Client, Conn, Error, LeaseOptions, BIND_DEFAULT};
use hblock_core::limits::{
    INTERVAL_DEFAULT, INTERVAL_MAX, INTERVAL_MIN, LIMIT_MAX, LIMIT_MIN, MISSES_DEFAULT, MISSES_MAX,
    MISSES_MIN, OWNER_MAX_LEN, WAIT_MAX,
};
use std::time::Duration;

use hblock_client::help::{EXIT_CODES, RUN_HELP};

/// `run --bind`'s floor: the child of a supervisor that died is killed (the
/// kernel's parent-death signal, the watchdog) the moment its connection
/// closes; the grace keeps the standby's start behind that.
const BIND_MIN_MS: u64 = 20;

#[derive(Parser)]
#[command(name = "hblock", version, about = "Heartbeat-lease locks in Redis (the hblock module)", after_help = EXIT_CODES)]
struct Cli {
    /// Redis URL (redis://[user:password@]host:port/[db], rediss:// for TLS),
    /// or redis+sentinel://[user:password@]host:port[,host:port...]/mastername[/db]
    /// (rediss+sentinel:// for TLS; Sentinel's own password: ?sentinel_password=...).
    /// Repeat it (or separate with commas) to give several nodes of a cluster
    #[arg(
        long = "redis",
        env = "HBLOCK_REDIS_URL",
        hide_env_values = true,
        default_value = "redis://127.0.0.1:6379",
        global = true
    )]
    urls: Vec<String>,
    /// The URLs are nodes of a Redis Cluster (implied by more than one URL)
    #[arg(long, global = true)]
    cluster: bool,
    /// Log errors only (run)
    #[arg(long, short, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Log every retry too (by default a failing condition is logged once when it starts and once when it ends)
    #[arg(long, short, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args, Clone)]
struct Terms {
    /// Heartbeat interval in ms
    #[arg(long, default_value_t = INTERVAL_DEFAULT as u64, value_parser = clap::value_parser!(u64).range(INTERVAL_MIN as u64..=INTERVAL_MAX as u64))]
    interval: u64,
    /// Missed beats allowed before the lease expires
    #[arg(long, default_value_t = MISSES_DEFAULT as u32, value_parser = clap::value_parser!(u32).range(MISSES_MIN..=MISSES_MAX))]
    misses: u32,
    /// After a grant, wait until N replicas have it (Redis WAIT); else release and fail (exit 3)
    #[arg(long, default_value_t = 0)]
    min_replicas: u32,
    /// How long to wait for --min-replicas, in ms
    #[arg(long, default_value_t = 1000)]
    replica_timeout: u64,
    /// At most N owners hold the lock at once, each with its own lease and token (a semaphore of N permits, 1 to 1000); every holder and waiter must give the same N
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(LIMIT_MIN as i64..=LIMIT_MAX as i64))]
    limit: u32,
}

impl Terms {
    fn lease_options(&self, wait: Option<Duration>) -> LeaseOptions {
        LeaseOptions {
            interval: Duration::from_millis(self.interval),
            misses: self.misses,
            wait,
            min_replicas: self.min_replicas,
            replica_timeout: Duration::from_millis(self.replica_timeout),
            // `run` binds (its --bind); the thin commands' leases outlive them.
            bind: None,
            limit: self.limit,
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Run CMD only while holding the lease on KEY; a standby takes over when it stops
    #[command(after_help = RUN_HELP)]
    Run {
        /// The lock's key
        key: String,
        /// Owner name, at most 1015 bytes; a unique part is appended (NAME/<random>) so two runs never share a lease (default: host:pid:random)
        #[arg(long, value_parser = run_owner)]
        owner: Option<String>,
        #[command(flatten)]
        terms: Terms,
        /// Time between SIGTERM and SIGKILL when the command must stop, in ms (default: a third of interval * misses)
        #[arg(long)]
        grace: Option<u64>,
        /// When this supervisor dies (its connection closes), the server releases the lease after MS ms instead of after the missed beats; a dropped connection is re-bound within it. At least 20 ms: the old child's death must come first (capped at interval * misses)
        #[arg(long, value_name = "MS", default_value_t = BIND_DEFAULT.as_millis() as u64, value_parser = clap::value_parser!(u64).range(BIND_MIN_MS..))]
        bind: u64,
        /// A plain heartbeat lease: not bound to the connection
        #[arg(long, conflicts_with = "bind")]
        no_bind: bool,
        /// Try once; exit 1 at once when the lock is held
        #[arg(long, conflicts_with = "timeout")]
        no_wait: bool,
        /// Give up waiting for the lock after MS ms (exit 1); at most 31536000000 (365 days)
        #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=WAIT_MAX as u64))]
        timeout: Option<u64>,
        /// SIGHUP to hblock: `pass` sends it to the command (which dies of it unless it handles it); `ignore` keeps it from the command (the command also starts with SIGHUP ignored, so a hangup sent to its process group does not end it unless it installs a handler)
        #[arg(long, value_name = "pass|ignore", value_enum, default_value_t = OnHup::Pass)]
        on_hup: OnHup,
        #[command(flatten)]
        check: CheckArgs,
        /// The command and its arguments (after --)
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Acquire the lock; print the token (exit 1 when not acquired)
    Acquire {
        /// The lock's key
        key: String,
        /// Owner id, used as given (default: $HBLOCK_OWNER, else host:pid:random, shown on stderr)
        #[arg(long, env = "HBLOCK_OWNER", hide_env_values = true)]
        owner: Option<String>,
        #[command(flatten)]
        terms: Terms,
        /// Block up to MS for the lock (0: no limit; at most 31536000000, 365 days)
        #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(0..=WAIT_MAX as u64))]
        wait: Option<u64>,
        /// Print {"key", "owner", "token"} as JSON (token null when not acquired)
        #[arg(long)]
        json: bool,
    },
    /// Beat the lease held by OWNER with TOKEN; print the beat count
    Beat(Holder),
    /// Release the lease held by OWNER with TOKEN; print 1 or 0
    Release(Holder),
    /// Print the lock's holder now and at every change, forever (reconnects on errors)
    Watch {
        /// The lock's key
        key: String,
        /// One JSON object per change: INFO's fields as `info --json` prints them, without waiters_list (null: no such lock)
        #[arg(long)]
        json: bool,
        /// First print the lock's past leases (HBLOCK.HISTORY, kept when the server's hblock.history is above 0), oldest first
        #[arg(long)]
        history: bool,
    },
    /// List every lock (on a cluster, on every master), sorted by key
    Ls {
        /// Only keys matching this glob (SCAN's MATCH)
        #[arg(default_value = "*")]
        pattern: String,
        /// One JSON object per line: `key` and INFO's fields, as `info --json`
        #[arg(long)]
        json: bool,
        /// The first N locks in key order; a line on stderr counts the others
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
    },
    /// Show a lock (human-readable, or --json)
    Info {
        /// The lock's key
        key: String,
        /// Print INFO's fields and the waiters (waiters_list) as one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Serve Prometheus metrics of every lock (GET /metrics), forever; Redis errors show as hblock_up 0
    Exporter {
        /// Listen on ADDR (host:port; port 0: a free port, printed on stderr)
        #[arg(long, value_name = "ADDR")]
        listen: String,
        /// Export only locks whose key matches PATTERN (SCAN MATCH glob); repeat for several (default: every lock)
        #[arg(long = "match", value_name = "PATTERN")]
        patterns: Vec<String>,
        /// Export at most N locks (the first in key order); hblock_locks_left_out counts the rest
        #[arg(long, value_name = "N", default_value_t = 10_000)]
        max_locks: usize,
    },
}

/// `run --on-hup`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum OnHup {
    Pass,
    Ignore,
}

/// `run --check CMD` and its terms.
#[derive(Args, Clone)]
struct CheckArgs {
    /// Health check: run CMD with `sh -c` while the command runs; when it fails (non-zero exit or timeout) --check-failures times in a row, stop the command as on a lost lease, release, and exit 5
    #[arg(long, value_name = "CMD")]
    check: Option<String>,
    /// Run the check every MS ms (default: the interval)
    #[arg(long, value_name = "MS", requires = "check", value_parser = clap::value_parser!(u64).range(1..))]
    check_every: Option<u64>,
    /// A check still running after MS ms is killed and counts as failed (default: the interval)
    #[arg(long, value_name = "MS", requires = "check", value_parser = clap::value_parser!(u64).range(1..))]
    check_timeout: Option<u64>,
    /// Failures in a row that stop the command (default: --misses)
    #[arg(long, value_name = "N", requires = "check", value_parser = clap::value_parser!(u32).range(1..))]
    check_failures: Option<u32>,
}

impl CheckArgs {
    fn health_check(&self, lease: &LeaseOptions) -> Option<HealthCheck> {
        let defaults = HealthCheck::new(self.check.clone()?, lease);
        Some(HealthCheck {
            every: self
                .check_every
                .map_or(defaults.every, Duration::from_millis),
            timeout: self
                .check_timeout
                .map_or(defaults.timeout, Duration::from_millis),
            failures: self.check_failures.unwrap_or(defaults.failures),
            ..defaults
        })
    }
}

impl Cmd {
    /// The lock's key: what error lines name first.
    fn key(&self) -> &str {
        match self {
            Cmd::Run { key, .. }
            | Cmd::Acquire { key, .. }
            | Cmd::Watch { key, .. }
            | Cmd::Info { key, .. } => key,
            Cmd::Ls { .. } => "ls",
            Cmd::Exporter { .. } => "exporter",
            Cmd::Beat(holder) | Cmd::Release(holder) => &holder.key,
        }
    }
}

#[derive(Args)]
struct Holder {
    /// The lock's key
    key: String,
    /// OWNER TOKEN, or TOKEN alone with the owner from $HBLOCK_OWNER; TOKEN is the lease's fencing token (a positive integer)
    #[arg(value_name = "[OWNER] TOKEN", num_args = 1..=2, required = true)]
    args: Vec<String>,
}

impl Holder {
    /// (owner, token), or a usage error.
    fn owner_and_token(&self) -> Result<(String, i64), String> {
        let (owner, token) = match self.args.as_slice() {
            [owner, token] => (owner.clone(), token),
            [token] => match std::env::var("HBLOCK_OWNER") {
                Ok(owner) if !owner.is_empty() => (owner, token),
                _ => return Err("no OWNER given and HBLOCK_OWNER is not set".into()),
            },
            _ => return Err("expected [OWNER] TOKEN".into()),
        };
        match token.parse::<i64>() {
            Ok(t) if t > 0 => Ok((owner, t)),
            _ => Err(format!("TOKEN must be a positive integer, not {token:?}")),
        }
    }
}

/// Where the errors of one invocation are reported: the command's key and
/// the URLs, masked.
struct Cx {
    subject: String,
    urls: String,
    /// The URLs when they name a cluster's nodes (the exporter scrapes its masters).
    cluster: Option<Vec<String>>,
    /// The reply limit of the thin command's connection (None: no limit).
    limit: std::cell::Cell<Option<Duration>>,
}

impl Cx {
    /// Redis unreachable or an error reply (including too few replicas):
    /// one line `hblock: KEY: URL: ERROR[: HINT]`, exit 3.
    fn fail(&self, err: &Error) -> i32 {
        let timed_out = self.limit.get().and_then(|limit| err.timed_out(limit));
        let err = timed_out.as_ref().unwrap_or(err);
        eprintln!("hblock: {}", error_line(&self.subject, &self.urls, err));
        EXIT_REDIS
    }

    /// A thin command on a new connection whose replies come within
    /// `limit` (None: no limit, a blocking ACQUIRE without one); exit 3
    /// when there is none.
    fn with_connection(
        &self,
        client: &Client,
        limit: Option<Duration>,
        command: impl FnOnce(&mut Conn) -> i32,
    ) -> i32 {
        self.limit.set(limit);
        let con = match limit {
            Some(limit) => client.connection_within(limit),
            None => client.connection(),
        };
        match con {
            Ok(mut con) => command(&mut con),
            Err(err) => self.fail(&Error::from(err)),
        }
    }
}

/// The bytes the unique part of a run's owner takes (`/` and 8 hex digits).
const OWNER_SUFFIX_LEN: usize = 9;

/// `run --owner`: 1 byte up to what leaves room for the unique part within
/// the module's owner limit (a usage error, exit 2, otherwise).
fn run_owner(given: &str) -> Result<String, String> {
    let max = OWNER_MAX_LEN - OWNER_SUFFIX_LEN;
    if given.is_empty() || given.len() > max {
        return Err(format!(
            "must be 1 to {max} bytes (a unique /xxxxxxxx is appended, and an owner is at most {OWNER_MAX_LEN} bytes); got {}",
            given.len()
        ));
    }
    Ok(given.to_string())
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some(watchdog::ARG) {
        std::process::exit(watchdog::main());
    }
    let cli = Cli::parse(); // usage errors exit 2
    log::set_quiet(cli.quiet);
    log::set_verbose(cli.verbose);
    let urls = split_urls(&cli.urls);
    let masked: Vec<String> = urls.iter().map(|u| mask_password(u)).collect();
    let sentinel = urls.iter().any(|u| sentinel::is_sentinel_url(u));
    let cx = Cx {
        subject: cli.command.key().to_string(),
        urls: masked.join(","),
        cluster: (!sentinel && (cli.cluster || urls.len() > 1)).then(|| urls.clone()),
        limit: std::cell::Cell::new(None),
    };
    let client = if sentinel && (cli.cluster || urls.len() > 1) {
        eprintln!(
            "hblock: a redis+sentinel:// URL names every Sentinel itself (host:port,host:port); give it alone, without --cluster"
        );
        std::process::exit(2);
    } else if cli.cluster || urls.len() > 1 {
        Client::open_cluster(&urls)
    } else {
        Client::open(
            urls.first()
                .map_or("redis://127.0.0.1:6379", String::as_str),
        )
    };
    let code = match client {
        // A URL that does not parse: fatal, "check the URL" (exit 3).
        Err(err) if err.kind() == redis::ErrorKind::InvalidClientConfig => {
            let detail = err.detail().unwrap_or("it does not parse");
            let err = redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "invalid Redis URL",
                format!("{detail}; expected redis://[user:password@]host:port/[db] or redis+sentinel://[user:password@]host:port[,host:port...]/mastername[/db]"),
            ));
            cx.fail(&Error::from(err))
        }
        Err(err) => cx.fail(&Error::from(err)),
        Ok(client) => dispatch(&cx, &client, cli.command),
    };
    std::process::exit(code);
}

/// The URLs of `--redis` (repeated) and `HBLOCK_REDIS_URL`: commas separate
/// cluster nodes, except inside a redis+sentinel:// URL, whose Sentinel
/// hosts are comma-separated themselves.
fn split_urls(given: &[String]) -> Vec<String> {
    given
        .iter()
        .flat_map(|value| {
            if sentinel::is_sentinel_url(value) {
                vec![value.trim().to_string()]
            } else {
                value
                    .split(',')
                    .map(|u| u.trim().to_string())
                    .filter(|u| !u.is_empty())
                    .collect()
            }
        })
        .collect()
}

fn dispatch(cx: &Cx, client: &Client, command: Cmd) -> i32 {
    match command {
        Cmd::Run {
            key,
            owner,
            terms,
            grace,
            bind,
            no_bind,
            no_wait,
            timeout,
            on_hup,
            check,
            command,
        } => {
            let wait = match (no_wait, timeout) {
                (true, _) => None,
                (false, Some(ms)) => Some(Duration::from_millis(ms)),
                (false, None) => Some(Duration::ZERO),
            };
            let lease = LeaseOptions {
                bind: (!no_bind).then_some(Duration::from_millis(bind)),
                ..terms.lease_options(wait)
            };
            let opts = RunOptions {
                key,
                owner: owner.map_or_else(default_owner, |o| {
                    String::from_utf8_lossy(&instance_owner(o.as_bytes())).into_owned()
                }),
                grace: grace.map_or(lease.lease() / 3, Duration::from_millis),
                check: check.health_check(&lease),
                lease,
                command,
                ignore_hup: matches!(on_hup, OnHup::Ignore),
            };
            supervise::run(client, opts)
        }
        Cmd::Acquire {
            key,
            owner,
            terms,
            wait,
            json,
        } => {
            let generated = owner.is_none();
            let owner = owner.unwrap_or_else(default_owner);
            let client = client.named(owner.as_bytes());
            // A hung server fails it after REPLY_LIMIT beyond the wait and
            // the replicas' WAIT; `--wait 0` (no limit) waits as long.
            let replicas = match terms.min_replicas {
                0 => 0,
                _ => terms.replica_timeout,
            };
            let limit = match wait {
                Some(0) => None,
                ms => Some(
                    REPLY_LIMIT + Duration::from_millis(ms.unwrap_or(0).saturating_add(replicas)),
                ),
            };
            cx.with_connection(&client, limit, |con| {
                acquire(
                    cx,
                    &client,
                    con,
                    &key,
                    (&owner, generated),
                    &terms,
                    (wait, json),
                )
            })
        }
        Cmd::Beat(holder) => holder_command(cx, client, &holder, beat),
        Cmd::Release(holder) => holder_command(cx, client, &holder, release),
        Cmd::Info { key, json } => {
            cx.with_connection(&client.named(b"info"), Some(REPLY_LIMIT), |con| {
                info(cx, con, &key, json)
            })
        }
        Cmd::Watch { key, json, history } => {
            if history {
                print_history(client, &key, json);
            }
            watch(cx, client, &key, json)
        }
        Cmd::Ls {
            pattern,
            json,
            limit,
        } => ls(cx, client, &pattern, json, limit),
        Cmd::Exporter {
            listen,
            patterns,
            max_locks,
        } => {
            let options = ExporterOptions {
                listen,
                patterns,
                max_locks,
                cluster: cx.cluster.clone(),
            };
            exporter::serve(client, &options)
        }
    }
}

type HolderFn = fn(&Cx, &mut Conn, &str, &str, i64) -> i32;

fn holder_command(cx: &Cx, client: &Client, holder: &Holder, command: HolderFn) -> i32 {
    match holder.owner_and_token() {
        Ok((owner, token)) => {
            cx.with_connection(&client.named(owner.as_bytes()), Some(REPLY_LIMIT), |con| {
                command(cx, con, &holder.key, &owner, token)
            })
        }
        Err(usage) => {
            eprintln!("hblock: {usage}");
            2
        }
    }
}

fn acquire(
    cx: &Cx,
    client: &Client,
    con: &mut Conn,
    key: &str,
    (owner, generated): (&str, bool),
    terms: &Terms,
    (wait, json): (Option<u64>, bool),
) -> i32 {
    if generated && !json {
        eprintln!("owner={owner}");
    }
    let reply = if terms.min_replicas > 0 {
        // Through the library: grant, WAIT for replicas, release on failure.
        let options = terms.lease_options(wait.map(Duration::from_millis));
        client
            .acquire_as(key, owner.as_bytes(), &options, |_| {})
            .map(|lease| lease.map(|l| l.detach()))
    } else {
        let args = commands::AcquireArgs {
            interval_ms: Some(terms.interval),
            misses: Some(u64::from(terms.misses)),
            wait_ms: wait,
            // The lease outlives this process: never bound to its connection.
            bind_ms: None,
            limit: commands::limit_arg(terms.limit),
        };
        commands::acquire(con, key, owner.as_bytes(), args).map_err(Error::from)
    };
    match reply {
        Ok(token) if json => {
            println!("{}", acquired_json(key, owner.as_bytes(), token));
            if token.is_none() {
                held_back_line(client, key);
            }
            i32::from(token.is_none())
        }
        Ok(Some(token)) => {
            println!("{token}");
            0
        }
        Ok(None) => {
            match client.not_granted(key) {
                Ok(why) => eprintln!("hblock: {key} not acquired ({why})"),
                Err(_) => eprintln!("hblock: {key} not acquired"),
            }
            1
        }
        Err(err) => cx.fail(&err),
    }
}

/// `acquire --json` not granted: the one stderr line saying why, when the
/// reason is a failover delay (stdout stays the JSON object).
fn held_back_line(client: &Client, key: &str) {
    if let Ok(why @ hblock_client::NotGranted::HeldBack { .. }) = client.not_granted(key) {
        eprintln!("hblock: {key} not acquired ({why})");
    }
}

fn beat(cx: &Cx, con: &mut Conn, key: &str, owner: &str, token: i64) -> i32 {
    match commands::beat(con, key, owner.as_bytes(), token) {
        Ok(beats) => {
            println!("{beats}");
            0
        }
        Err(Error::NotHeld(why)) => {
            eprintln!("hblock: NOTHELD {why}");
            1
        }
        Err(err) => cx.fail(&err),
    }
}

fn release(cx: &Cx, con: &mut Conn, key: &str, owner: &str, token: i64) -> i32 {
    match commands::release(con, key, owner.as_bytes(), token) {
        Ok(released) => {
            println!("{}", i32::from(released));
            i32::from(!released)
        }
        Err(err) => cx.fail(&Error::from(err)),
    }
}

fn info(cx: &Cx, con: &mut Conn, key: &str, json: bool) -> i32 {
    match commands::info(con, key) {
        Ok(None) => {
            if json {
                println!("null");
            }
            eprintln!("hblock: no such lock: {key}");
            1
        }
        Ok(Some(info)) => {
            // The waiters in queue order; when they cannot be read (a
            // module without HBLOCK.WAITERS, an ACL), INFO alone.
            let waiters = match commands::waiters(con, key, None) {
                Ok(list) => Some(list.unwrap_or_default()),
                Err(err) => {
                    eprintln!("hblock: {key}: waiters not shown: {}", Error::from(err));
                    None
                }
            };
            let holders = holders_of(con, key, &info);
            let text = if json {
                info_json_full(&info, holders.as_deref(), waiters.as_deref())
            } else {
                info_text_full(&info, holders.as_deref(), waiters.as_deref())
            };
            println!("{text}");
            0
        }
        Err(err) => cx.fail(&Error::from(err)),
    }
}

/// Every holder of a lock of LIMIT > 1 (HBLOCK.HOLDERS), in token order;
/// None for a one-holder lock (INFO names its holder), or, with a line on
/// stderr, when they cannot be read.
fn holders_of(
    con: &mut Conn,
    key: &str,
    info: &commands::LockInfo,
) -> Option<Vec<commands::Holding>> {
    if info.limit <= 1 {
        return None;
    }
    match commands::holders(con, key) {
        Ok(list) => Some(list.unwrap_or_default()),
        Err(err) => {
            eprintln!("hblock: {key}: holders not shown: {}", Error::from(err));
            None
        }
    }
}

/// `hblock ls`: the locks on stdout, one a line; with `--limit`, the count
/// of those left out on stderr. Any error: exit 3 (nothing on stdout).
fn ls(cx: &Cx, client: &Client, pattern: &str, json: bool, limit: Option<u64>) -> i32 {
    use std::io::Write;
    let limit = limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let listing = match hblock_client::ls::scan_locks(client, pattern, limit) {
        Ok(listing) => listing,
        Err(err) => return cx.fail(&err),
    };
    let lines = if json {
        listing
            .locks
            .iter()
            .map(|l| listed_json(&l.key, &l.info))
            .collect()
    } else {
        listed_lines(listing.locks.iter().map(|l| (l.key.as_slice(), &l.info)))
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in lines {
        if writeln!(out, "{line}").is_err() {
            return 0; // stdout closed (a pipe's reader left)
        }
    }
    if out.flush().is_err() {
        return 0;
    }
    if listing.left_out > 0 {
        eprintln!(
            "hblock: ls: {} more locks not shown (--limit {})",
            listing.left_out,
            limit.unwrap_or_default()
        );
    }
    0
}

/// `watch --history`: the lock's past leases, oldest first (the server
/// answers newest first), so the lines before the current holder read as a
/// timeline. When the history cannot be read (a module without
/// HBLOCK.HISTORY, an ACL, the server down: the watch retries that), one
/// line on stderr and the watch goes on.
fn print_history(client: &Client, key: &str, json: bool) {
    use std::io::Write;
    let history = client
        .named(b"watch")
        .connection()
        .map_err(Error::from)
        .and_then(|mut con| commands::history(&mut con, key).map_err(Error::from));
    match history {
        Ok(entries) => {
            let mut out = std::io::stdout().lock();
            for ended in entries.unwrap_or_default().iter().rev() {
                let line = if json {
                    ended_json(ended)
                } else {
                    ended_text(ended)
                };
                if writeln!(out, "{line}").is_err() {
                    return;
                }
            }
            let _ = out.flush();
        }
        Err(err) => eprintln!("hblock: {key}: history not shown: {err}"),
    }
}

/// `hblock watch` on a lock of LIMIT > 1, one line per grant or lease end:
/// `STATE holders=N/LIMIT token=LAST` (the last token issued), then, while
/// anyone holds, ` owner=... ttl=MS` of the lease that ends first.
fn permits_line(info: &commands::LockInfo) -> String {
    let line = format!(
        "{} holders={}/{} token={}",
        info.state, info.holders, info.limit, info.token
    );
    match (info.holders > 0, info.owner.as_deref()) {
        (true, Some(owner)) => format!(
            "{line} owner={} ttl={}",
            hblock_client::output::owner_text(owner),
            info.ttl
        ),
        _ => line,
    }
}

/// `hblock watch`: one line per change of holder, flushed at once;
/// transient errors are logged once when they start and once when they
/// end; a fatal one ends it (exit 3).
fn watch(cx: &Cx, client: &Client, key: &str, json: bool) -> i32 {
    use std::io::Write;
    let mut condition = log::Condition::new(key, client.url());
    let changes = client.watch(key).reporting(move |event| match event {
        hblock_client::WaitEvent::Retry(err) => condition.failed(err),
        hblock_client::WaitEvent::Queued => condition.recovered(),
    });
    for change in changes {
        let line = match change {
            Ok(info) if json => info.as_ref().map_or("null".into(), info_json),
            Ok(Some(info)) if info.limit > 1 => permits_line(&info),
            Ok(Some(info)) if info.state == "held" => format!(
                "held owner={} token={} ttl={}",
                hblock_client::output::owner_text(info.owner.as_deref().unwrap_or_default()),
                info.token,
                info.ttl
            ),
            Ok(Some(info)) if info.held_back_ms().is_some() => {
                format!("held-back ttl={} token={}", info.ttl, info.token)
            }
            Ok(_) => "free".into(),
            Err(err) => return cx.fail(&err),
        };
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            return 0; // stdout closed (a pipe's reader left)
        }
    }
    0
}
