//! Client side of hblock: typed calls of the module's commands and a lease
//! handle that beats in the background. The `hblock` CLI is built on it.
//!
//! # Layout
//! - `commands.rs`: one function per HBLOCK command, typed replies.
//! - `lease.rs`: [`Client::acquire`] and the [`Lease`] handle (background
//!   heartbeat, loss reported on a channel, release on drop).
//! - `heartbeat.rs`: the lease's background heartbeat.
//! - `owner.rs`: default owner ids, unique per process.
//! - `supervise.rs`: `hblock run`, the single-instance supervisor (its I/O).
//! - `stop_plan.rs`: when the supervisor stops its child: a pure state
//!   machine, the clock passed in, unit-tested.
//! - `main.rs`: the CLI.
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

pub mod commands;
mod error;
mod heartbeat;
mod lease;
pub mod owner;
pub mod stop_plan;
pub mod supervise;

pub use commands::LockInfo;
pub use error::Error;
pub use lease::{Client, Conn, Lease, LeaseEvent, LeaseOptions, LostReason};
