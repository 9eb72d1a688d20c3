//! The `hblock` CLI. See `hblock --help`.

use clap::{Args, Parser, Subcommand};
use hblock_client::commands::{self, BeatError};
use hblock_client::owner::default_owner;
use hblock_client::supervise::{self, RunOptions, EXIT_REDIS};
use hblock_client::{Client, LeaseOptions};
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

fn fail(err: redis::RedisError) -> i32 {
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
    if let Cmd::Run {
        key,
        terms,
        grace,
        command,
    } = command
    {
        let opts = RunOptions {
            key,
            lease: terms.lease_options(Some(Duration::ZERO)),
            owner: terms.owner.unwrap_or_else(default_owner),
            grace: Duration::from_millis(grace),
            command,
        };
        return supervise::run(client, opts);
    }
    let mut con = match client.connection() {
        Ok(con) => con,
        Err(err) => return fail(err),
    };
    match command {
        Cmd::Run { .. } => unreachable!("handled above"),
        Cmd::Acquire { key, terms, wait } => {
            let generated = terms.owner.is_none();
            let owner = terms.owner.clone().unwrap_or_else(default_owner);
            if generated {
                eprintln!("owner={owner}");
            }
            let reply = if terms.min_replicas > 0 {
                // Through the library: grant, WAIT for replicas, release on failure.
                let options = terms.lease_options(wait.map(Duration::from_millis));
                client
                    .acquire(&key, owner.as_bytes(), &options)
                    .map(|lease| lease.map(|l| l.detach()))
            } else {
                commands::acquire(
                    &mut con,
                    &key,
                    owner.as_bytes(),
                    Some(terms.interval),
                    Some(u64::from(terms.misses)),
                    wait,
                )
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
        Cmd::Beat { key, owner, token } => {
            match commands::beat(&mut con, &key, owner.as_bytes(), token) {
                Ok(beats) => {
                    println!("{beats}");
                    0
                }
                Err(BeatError::NotHeld(why)) => {
                    eprintln!("hblock: NOTHELD {why}");
                    1
                }
                Err(BeatError::Redis(err)) => fail(err),
            }
        }
        Cmd::Release { key, owner, token } => {
            match commands::release(&mut con, &key, owner.as_bytes(), token) {
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
        Cmd::Info { key, json } => match commands::info(&mut con, &key) {
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
        },
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
        Err(_) => format!(
            "0x{}",
            owner.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
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

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// INFO's field names; integers as JSON numbers; the owner as a JSON string
/// when it is UTF-8, else `"owner_hex"` with its bytes in hex.
fn info_json(info: &hblock_client::LockInfo) -> String {
    let mut fields = vec![format!("\"state\":{}", json_string(&info.state))];
    match info.owner.as_deref() {
        None => fields.push("\"owner\":null".into()),
        Some(owner) => match std::str::from_utf8(owner) {
            Ok(s) => fields.push(format!("\"owner\":{}", json_string(s))),
            Err(_) => {
                fields.push("\"owner\":null".into());
                let hex: String = owner.iter().map(|b| format!("{b:02x}")).collect();
                fields.push(format!("\"owner_hex\":\"{hex}\""));
            }
        },
    }
    for (name, value) in info.numbers() {
        fields.push(format!("\"{name}\":{value}"));
    }
    format!("{{{}}}", fields.join(","))
}
