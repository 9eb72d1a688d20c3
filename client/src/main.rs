//! The `hblock` CLI. See `hblock --help`.

use clap::{Args, Parser, Subcommand};
use hblock_client::commands;
use hblock_client::owner::{default_owner, hex};
use hblock_client::supervise::{self, RunOptions, EXIT_REDIS};
use hblock_client::Error;
use hblock_client::{Client, Conn, LeaseOptions};
use hblock_core::limits::{
    INTERVAL_DEFAULT, INTERVAL_MAX, INTERVAL_MIN, MISSES_DEFAULT, MISSES_MAX, MISSES_MIN,
};
use std::time::Duration;

const EXIT_CODES: &str = "\
Exit codes:
  0   success
  1   not acquired / not held / no such lock (acquire answered nil, release
      answered 0, beat answered NOTHELD, info found no key)
  2   usage error
  3   Redis unreachable or answered an error
  4   run: the lease was lost (NOTHELD, or Redis unreachable for too long) and
      the command was stopped
  run otherwise exits with the command's status (128 + signal when the command
  died of a signal; 127 when it could not be started).";

#[derive(Parser)]
#[command(name = "hblock", version, about = "Heartbeat-lease locks in Redis (the hblock module)", after_help = EXIT_CODES)]
struct Cli {
    /// Redis URL (redis://[user:password@]host:port/[db], rediss:// for TLS).
    /// Repeat it (or separate with commas) to give several nodes of a cluster
    #[arg(
        long = "redis",
        env = "HBLOCK_REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        value_delimiter = ',',
        global = true
    )]
    urls: Vec<String>,
    /// The URLs are nodes of a Redis Cluster (implied by more than one URL)
    #[arg(long, global = true)]
    cluster: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args, Clone)]
struct Terms {
    /// Owner id (default: host:pid:random, unique per process)
    #[arg(long)]
    owner: Option<String>,
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
}

impl Terms {
    fn lease_options(&self, wait: Option<Duration>) -> LeaseOptions {
        LeaseOptions {
            interval: Duration::from_millis(self.interval),
            misses: self.misses,
            wait,
            min_replicas: self.min_replicas,
            replica_timeout: Duration::from_millis(self.replica_timeout),
        }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Run CMD only while holding the lease on KEY; a standby takes over when it stops
    #[command(after_help = EXIT_CODES)]
    Run {
        key: String,
        #[command(flatten)]
        terms: Terms,
        /// Time between SIGTERM and SIGKILL when the command must stop, in ms
        #[arg(long, default_value_t = 5000)]
        grace: u64,
        /// The command and its arguments (after --)
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Acquire the lock; print the token (exit 1 when not acquired)
    Acquire {
        key: String,
        #[command(flatten)]
        terms: Terms,
        /// Block up to MS for the lock (0: no limit)
        #[arg(long)]
        wait: Option<u64>,
    },
    /// Beat the lease held by OWNER with TOKEN; print the beat count
    Beat {
        key: String,
        owner: String,
        /// The lease's fencing token (a positive integer)
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        token: i64,
    },
    /// Release the lease held by OWNER with TOKEN; print 1 or 0
    Release {
        key: String,
        owner: String,
        /// The lease's fencing token (a positive integer)
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        token: i64,
    },
    /// Show a lock (human-readable, or --json)
    Info {
        key: String,
        #[arg(long)]
        json: bool,
    },
}

/// Redis unreachable or an error reply (including too few replicas): exit 3.
fn fail(err: impl std::fmt::Display) -> i32 {
    eprintln!("hblock: {err}");
    EXIT_REDIS
}

fn main() {
    let cli = Cli::parse(); // usage errors exit 2
    let client = if cli.cluster || cli.urls.len() > 1 {
        Client::open_cluster(&cli.urls)
    } else {
        Client::open(
            cli.urls
                .first()
                .map_or("redis://127.0.0.1:6379", String::as_str),
        )
    };
    let code = match client {
        // A URL that does not parse is a usage error, like any bad argument.
        Err(err) if err.kind() == redis::ErrorKind::InvalidClientConfig => {
            let urls: Vec<String> = cli.urls.iter().map(|u| mask_password(u)).collect();
            eprintln!(
                "hblock: invalid Redis URL {} ({err}); expected redis://[user:password@]host:port/[db]",
                urls.join(",")
            );
            2
        }
        Err(err) => fail(err),
        Ok(client) => dispatch(&client, cli.command),
    };
    std::process::exit(code);
}

fn dispatch(client: &Client, command: Cmd) -> i32 {
    match command {
        Cmd::Run {
            key,
            terms,
            grace,
            command,
        } => {
            let opts = RunOptions {
                key,
                lease: terms.lease_options(Some(Duration::ZERO)),
                owner: terms.owner.unwrap_or_else(default_owner),
                grace: Duration::from_millis(grace),
                command,
            };
            supervise::run(client, opts)
        }
        Cmd::Acquire { key, terms, wait } => {
            with_connection(client, |con| acquire(client, con, &key, &terms, wait))
        }
        Cmd::Beat { key, owner, token } => {
            with_connection(client, |con| beat(con, &key, &owner, token))
        }
        Cmd::Release { key, owner, token } => {
            with_connection(client, |con| release(con, &key, &owner, token))
        }
        Cmd::Info { key, json } => with_connection(client, |con| info(con, &key, json)),
    }
}

/// Runs a thin command on a new connection; exit 3 when there is none.
fn with_connection(client: &Client, command: impl FnOnce(&mut Conn) -> i32) -> i32 {
    match client.connection() {
        Ok(mut con) => command(&mut con),
        Err(err) => fail(err),
    }
}

fn acquire(client: &Client, con: &mut Conn, key: &str, terms: &Terms, wait: Option<u64>) -> i32 {
    let generated = terms.owner.is_none();
    let owner = terms.owner.clone().unwrap_or_else(default_owner);
    if generated {
        eprintln!("owner={owner}");
    }
    let reply = if terms.min_replicas > 0 {
        // Through the library: grant, WAIT for replicas, release on failure.
        let options = terms.lease_options(wait.map(Duration::from_millis));
        client
            .acquire(key, owner.as_bytes(), &options)
            .map(|lease| lease.map(|l| l.detach()))
    } else {
        commands::acquire(
            con,
            key,
            owner.as_bytes(),
            Some(terms.interval),
            Some(u64::from(terms.misses)),
            wait,
        )
        .map_err(Error::from)
    };
    match reply {
        Ok(Some(token)) => {
            println!("{token}");
            0
        }
        Ok(None) => {
            eprintln!("hblock: {key} not acquired");
            1
        }
        Err(err) => fail(err),
    }
}

fn beat(con: &mut Conn, key: &str, owner: &str, token: i64) -> i32 {
    match commands::beat(con, key, owner.as_bytes(), token) {
        Ok(beats) => {
            println!("{beats}");
            0
        }
        Err(Error::NotHeld(why)) => {
            eprintln!("hblock: NOTHELD {why}");
            1
        }
        Err(err) => fail(err),
    }
}

fn release(con: &mut Conn, key: &str, owner: &str, token: i64) -> i32 {
    match commands::release(con, key, owner.as_bytes(), token) {
        Ok(released) => {
            println!("{}", i32::from(released));
            if released {
                0
            } else {
                1
            }
        }
        Err(err) => fail(err),
    }
}

fn info(con: &mut Conn, key: &str, json: bool) -> i32 {
    match commands::info(con, key) {
        Ok(None) => {
            eprintln!("hblock: no such lock: {key}");
            1
        }
        Ok(Some(info)) => {
            println!(
                "{}",
                if json {
                    info_json(&info)
                } else {
                    info_text(&info)
                }
            );
            0
        }
        Err(err) => fail(err),
    }
}

/// A URL with its password replaced by `***`, for messages.
fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// The owner for display: the bytes as UTF-8, or 0x-prefixed hex when they are not.
fn owner_text(owner: &[u8]) -> String {
    match std::str::from_utf8(owner) {
        Ok(s) => s.to_string(),
        Err(_) => format!("0x{}", hex(owner)),
    }
}

fn info_text(info: &hblock_client::LockInfo) -> String {
    let mut out = format!("state      {}\n", info.state);
    out.push_str(&format!(
        "owner      {}\n",
        info.owner.as_deref().map_or("(none)".into(), owner_text)
    ));
    for (name, value) in info.numbers() {
        out.push_str(&format!("{name:<10} {value}\n"));
    }
    out.trim_end().to_string()
}

/// INFO's field names, in INFO's order; integers as JSON numbers; the owner
/// as a JSON string when it is UTF-8, else `null` plus `"owner_hex"`.
fn info_json(info: &hblock_client::LockInfo) -> String {
    use serde_json::{Map, Value};
    let mut fields = Map::new();
    fields.insert("state".into(), Value::from(info.state.as_str()));
    let owner = info.owner.as_deref();
    let text = owner.and_then(|o| std::str::from_utf8(o).ok());
    fields.insert("owner".into(), text.map_or(Value::Null, Value::from));
    if let (Some(owner), None) = (owner, text) {
        fields.insert("owner_hex".into(), Value::from(hex(owner)));
    }
    for (name, value) in info.numbers() {
        fields.insert(name.into(), Value::from(value));
    }
    Value::Object(fields).to_string()
}
