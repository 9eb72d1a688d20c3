//! Client side of hblock: typed calls of the module's commands and a lease
//! handle that beats in the background. The `hblock` CLI is built on it.
//!
//! # Layout
//! - `commands.rs`: one function per HBLOCK command, typed replies.
//! - `conn.rs`: [`Client`], one server, a cluster or a Sentinel-managed
//!   master, and its connections (named `hblock:<owner>`).
//! - `socket.rs`: the waiting ACQUIRE's connection, a socket the client
//!   holds so the wait can be watched and ended (a hung master).
//! - `error.rs`: [`Error`] and its [`Class`]: transient (retried) or fatal
//!   (with a hint), decided once.
//! - `sentinel.rs`: `redis+sentinel://` URLs and the master lookup.
//! - `acquire.rs`: [`Client::acquire`]: the grant, retried while waiting.
//! - `lease.rs`: the [`Lease`] handle (background heartbeat, loss reported
//!   on a channel, release on drop).
//! - `heartbeat.rs`: the lease's background heartbeat (the fault policy:
//!   reconnect with backoff until the lease may have ended).
//! - `lease_state.rs`: what the heartbeat and the [`Lease`] handle share
//!   (last acknowledged beat, why it was lost, the events); below both.
//! - `backoff.rs`: retry delays, never more than half an interval.
//! - `owner.rs`: owner ids, unique per process, and how an owner is shown.
//! - `help.rs`: the CLI's exit codes and `run --help` text.
//! - `output.rs`: what the CLI prints (text, JSON, masked URLs).
//! - `supervise.rs`: `hblock run`, the single-instance supervisor (its I/O).
//! - `stop_plan.rs`: when the supervisor stops its child: a pure state
//!   machine, the clock passed in, unit-tested.
//! - `health.rs`: `run --check`: the child's health check, its thread and
//!   the pure count of failures in a row ([`health::HealthCheck`]).
//! - `watchdog.rs`: the process that kills the child at the lease's
//!   deadline when the supervisor is stopped.
//! - `watch.rs`: [`Client::watch`], every change of a lock's holder.
//! - `ls.rs`: [`ls::scan_locks`], every lock on a server or on every master
//!   of a cluster (SCAN `TYPE hblock-lk`, pipelined INFO): `hblock ls`.
//! - `signals.rs`: which signals `hblock run` catches and what it does.
//! - `log.rs`: timestamped log lines, `--quiet`, `--verbose`, and
//!   [`log::Condition`]: a failing condition logged once when it starts and
//!   once when it ends.
//! - `exporter.rs`: `hblock exporter`, the Prometheus endpoint (SCAN,
//!   pipelined INFO, one scrape per request); `metrics.rs`: what it
//!   writes, in the text exposition format (pure, unit-tested).
//! - `main.rs`: the CLI.
//!
//! Files import each other's items by their own module (`crate::conn::Client`),
//! never through the re-exports below, so no file depends on this one and
//! the imports form no circle (`scripts/import_graph.py client/src`).
//!
//! [`Lease::fenced`] writes only while the lease is live (`HBLOCK.FENCED`);
//! a refusal is [`Error::NotHeld`] and marks the lease lost ([`Lease::lost`]).
//! [`supervise::run`] is `hblock run`; [`health::HealthCheck`] its `--check`.
//!
//! **Permits.** [`LeaseOptions::limit`] (default 1) acquires one of N
//! permits (`HBLOCK.ACQUIRE ... LIMIT n`): each holder has its own lease and
//! token; a limit other than the lock's is [`Class::LimitMismatch`] (fatal,
//! with a hint). [`commands::holders`] lists every holder, [`LockInfo`]'s
//! `limit` and `holders` count them, [`commands::set_limit`] is
//! `HBLOCK.LIMIT`.
//!
//! When [`Client::acquire`] answers `None`, [`Client::not_granted`] says why
//! ([`NotGranted`]): held by another owner, every permit held, grants held back after a failover
//! (`NotGranted::HeldBack`, INFO's state [`HELD_BACK`]), free, or missing.
//! [`Client::open`] takes `redis://`, `rediss://` and `redis+sentinel://`
//! URLs (see [`sentinel`]).
//!
//! **Errors.** Every [`Error`] has a [`Class`] ([`Error::class`]):
//! transient ones (connection refused/reset/closed, timeouts, `LOADING`,
//! `TRYAGAIN`, `MASTERDOWN`, `CLUSTERDOWN`, `READONLY`, `BUSY`, no Sentinel
//! answering) are retried by a waiting [`Client::acquire`], a [`Lease`]'s
//! heartbeat and [`Client::watch`]; fatal ones ([`Error::is_fatal`]: a
//! missing or wrong password, the module not loaded, an ACL `NOPERM`,
//! `WRONGTYPE`, a bad URL or a master name no Sentinel monitors) end them at
//! once, and [`Error::hint`] says what to do. [`Client::acquire_reporting`]
//! and [`watch::Watch::reporting`] report each retry and the end of a
//! failing spell ([`WaitEvent`]), for logging it once when it starts and
//! once when it ends (what the CLI does, [`log::Condition`]).
//!
//! **Connection names.** A lease's connections (the wait, the beats, the
//! release) are named `hblock:<owner>` with `CLIENT SETNAME`
//! ([`connection_name`]; not on a cluster); [`Client::named`] names a
//! client's others; unnamed, [`Client::watch`] uses `hblock:watch` and
//! [`Client::not_granted`] `hblock:info`. A refused SETNAME is ignored.
//!
//! ```no_run
//! use hblock_client::{Client, LeaseEvent, LeaseOptions};
//! use std::time::Duration;
//!
//! let client = Client::open("redis://127.0.0.1:6379/")?;
//! let options = LeaseOptions { wait: Some(Duration::ZERO), ..LeaseOptions::default() };
//! if let Some(lease) = client.acquire("jobs:leader", b"web-1", &options)? {
//!     println!("leader with fencing token {}", lease.token());
//!     // ... work; stop as soon as the lease is lost:
//!     if let Ok(LeaseEvent::Lost(why)) = lease.events().try_recv() {
//!         eprintln!("lost: {why}");
//!     }
//! } // dropped: heartbeat stops and the lease is released
//! # Ok::<(), hblock_client::Error>(())
//! ```

mod acquire;
mod backoff;
pub mod commands;
mod conn;
mod error;
pub mod exporter;
pub mod health;
mod heartbeat;
pub mod help;
mod lease;
mod lease_state;
pub mod log;
pub mod ls;
pub mod metrics;
pub mod output;
pub mod owner;
pub mod sentinel;
pub mod signals;
mod socket;
pub mod stop_plan;
pub mod supervise;
pub mod watch;
pub mod watchdog;

pub use acquire::WaitEvent;
pub use commands::{Holding, LockInfo, NotGranted, HELD_BACK};
pub use conn::{connection_name, Client, Conn, REPLY_LIMIT};
pub use error::{Class, Error};
pub use lease::{Lease, LeaseEvent, LeaseOptions, LostReason, BIND_DEFAULT};
