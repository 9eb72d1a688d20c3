//! [`Client::acquire`] and the [`Lease`] handle: a background heartbeat on its
//! own connection, loss reported on a channel, release on drop.
//!
//! The client cannot see the server's clock, so it counts the lease from the
//! *send* time of the last successful beat: the server received that beat no
//! earlier, so the lease cannot end before `sent + interval * misses`.

use crate::commands;
use crate::heartbeat::Heartbeat;
use crate::Error;
use hblock_core::limits::{INTERVAL_DEFAULT, MISSES_DEFAULT};
use redis::cluster::{ClusterClient, ClusterConnection};
use redis::{Cmd, Connection, ConnectionLike, RedisResult, Value};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Terms of a lease and how to wait for it.
#[derive(Clone, Debug)]
pub struct LeaseOptions {
    /// Heartbeat interval (INTERVAL).
    pub interval: Duration,
    /// Missed beats allowed (MISSES).
    pub misses: u32,
    /// None: do not block. Some(ZERO): wait without limit. Some(d): up to d.
    pub wait: Option<Duration>,
    /// After a grant, wait until this many replicas have it (Redis `WAIT`);
    /// when fewer acknowledge within `replica_timeout`, release the lease and
    /// fail. 0: do not wait. Narrows, does not close, the window in which an
    /// asynchronous failover loses a grant.
    pub min_replicas: u32,
    pub replica_timeout: Duration,
}

impl Default for LeaseOptions {
    fn default() -> Self {
        LeaseOptions {
            interval: Duration::from_millis(INTERVAL_DEFAULT as u64),
            misses: MISSES_DEFAULT as u32,
            wait: None,
            min_replicas: 0,
            replica_timeout: Duration::from_millis(1000),
        }
    }
}

impl LeaseOptions {
    /// How long the lease lasts without a beat.
    pub fn lease(&self) -> Duration {
        self.interval.saturating_mul(self.misses)
    }
}

/// Why a lease was lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LostReason {
    /// The server answered a beat with NOTHELD (expired, taken over, released).
    NotHeld(String),
    /// No beat succeeded for `interval * misses`: the lease may have ended.
    Unreachable(String),
}

impl std::fmt::Display for LostReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LostReason::NotHeld(why) => write!(f, "NOTHELD {why}"),
            LostReason::Unreachable(err) => {
                write!(f, "no beat succeeded for a whole lease ({err})")
            }
        }
    }
}

/// What the heartbeat reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseEvent {
    /// A beat failed (Redis unreachable or erroring). The lease is safe until
    /// `lease_ends` at the latest; stop the work before then.
    BeatFailed { error: String, lease_ends: Instant },
    /// A beat succeeded again after failures.
    Recovered,
    /// The lease is gone; the heartbeat has stopped.
    Lost(LostReason),
}

/// Where the locks live: one Redis server, or a Redis Cluster given by a few
/// of its nodes (the client follows MOVED redirects and failovers).
#[derive(Clone)]
enum Target {
    Single(Box<redis::Client>),
    Cluster(Vec<String>),
}

/// A Redis connection source for the heartbeat and the waiter.
#[derive(Clone)]
pub struct Client {
    target: Target,
}

/// A connection to a single server or to a cluster.
pub enum Conn {
    Single(Connection),
    Cluster(Box<ClusterConnection>),
}

impl ConnectionLike for Conn {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }
    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }
    fn req_command(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            Conn::Single(c) => c.req_command(cmd),
            Conn::Cluster(c) => c.req_command(cmd),
        }
    }
    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
    fn check_connection(&mut self) -> bool {
        match self {
            Conn::Single(c) => c.check_connection(),
            Conn::Cluster(c) => c.check_connection(),
        }
    }
    fn is_open(&self) -> bool {
        match self {
            Conn::Single(c) => c.is_open(),
            Conn::Cluster(c) => c.is_open(),
        }
    }
}

impl Client {
    /// `redis://[user:password@]host:port/[db]`, or `rediss://` for TLS.
    pub fn open(url: &str) -> RedisResult<Client> {
        Ok(Client {
            target: Target::Single(Box::new(redis::Client::open(url)?)),
        })
    }

    /// A Redis Cluster, from the URLs of one or more of its nodes.
    pub fn open_cluster(urls: &[String]) -> RedisResult<Client> {
        ClusterClient::new(urls.to_vec())?; // validates the URLs
        Ok(Client {
            target: Target::Cluster(urls.to_vec()),
        })
    }

    /// A connection without a response timeout (blocking ACQUIRE may wait long).
    pub fn connection(&self) -> RedisResult<Conn> {
        match &self.target {
            Target::Single(client) => Ok(Conn::Single(client.get_connection()?)),
            Target::Cluster(urls) => {
                let con = ClusterClient::new(urls.clone())?.get_connection()?;
                con.set_read_timeout(None)?;
                Ok(Conn::Cluster(Box::new(con)))
            }
        }
    }

    pub(crate) fn connection_for_beats(&self, interval: Duration) -> RedisResult<Conn> {
        // A beat that takes longer than an interval is a failed beat.
        let limit = interval.max(Duration::from_millis(50));
        match &self.target {
            Target::Single(client) => {
                let con = client.get_connection_with_timeout(limit)?;
                con.set_read_timeout(Some(limit))?;
                con.set_write_timeout(Some(limit))?;
                Ok(Conn::Single(con))
            }
            Target::Cluster(urls) => {
                // A fresh slot map each time: after a failover the beats go
                // to the promoted replica.
                let con = ClusterClient::builder(urls.clone())
                    .connection_timeout(limit)
                    .response_timeout(limit)
                    .retries(1)
                    .build()?
                    .get_connection()?;
                Ok(Conn::Cluster(Box::new(con)))
            }
        }
    }

    /// ACQUIRE on a dedicated connection (blocking with `options.wait`), then
    /// start beating. None when the lock was not granted.
    pub fn acquire(
        &self,
        key: &str,
        owner: &[u8],
        options: &LeaseOptions,
    ) -> Result<Option<Lease>, Error> {
        let mut con = self.connection()?;
        let sent = Instant::now();
        let token = commands::acquire(
            &mut con,
            key,
            owner,
            Some(options.interval.as_millis() as u64),
            Some(u64::from(options.misses)),
            options.wait.map(|d| d.as_millis() as u64),
        )?;
        let Some(token) = token else {
            return Ok(None);
        };
        let mut last_ok = sent;
        if options.wait.is_some() {
            // A blocking grant happened at an unknown time: beat at once and
            // count the lease from this beat.
            let beat_sent = Instant::now();
            match commands::beat(&mut con, key, owner, token) {
                Ok(_) => last_ok = beat_sent,
                Err(Error::NotHeld(why)) => {
                    let why = format!("the lease ended before its first beat: {why}");
                    return Err(Error::NotHeld(why));
                }
                Err(err) => return Err(err),
            }
        }
        if options.min_replicas > 0 {
            let acked: i64 = redis::cmd("WAIT")
                .arg(options.min_replicas)
                .arg(options.replica_timeout.as_millis() as u64)
                .query(&mut con)?;
            if acked < i64::from(options.min_replicas) {
                let _ = commands::release(&mut con, key, owner, token);
                return Err(Error::NoReplicas {
                    acked,
                    wanted: options.min_replicas,
                });
            }
        }
        Ok(Some(Lease::start(
            self.clone(),
            key,
            owner,
            token,
            options,
            last_ok,
        )))
    }
}

pub(crate) struct Shared {
    pub(crate) last_ok: Mutex<Instant>,
}

/// A held lease. Beats every interval in the background; dropping it stops
/// the heartbeat and releases the lease.
pub struct Lease {
    client: Client,
    key: String,
    owner: Vec<u8>,
    token: i64,
    lease: Duration,
    shared: Arc<Shared>,
    events: Receiver<LeaseEvent>,
    stop: Option<Sender<()>>,
    heartbeat: Option<JoinHandle<()>>,
    released: bool,
}

impl Lease {
    fn start(
        client: Client,
        key: &str,
        owner: &[u8],
        token: i64,
        options: &LeaseOptions,
        last_ok: Instant,
    ) -> Lease {
        let shared = Arc::new(Shared {
            last_ok: Mutex::new(last_ok),
        });
        let (event_tx, events) = mpsc::channel();
        let (stop, stop_rx) = mpsc::channel();
        let heartbeat = Heartbeat {
            client: client.clone(),
            key: key.to_string(),
            owner: owner.to_vec(),
            token,
            interval: options.interval,
            lease: options.lease(),
            shared: shared.clone(),
            events: event_tx,
            stop: stop_rx,
        };
        let heartbeat = std::thread::spawn(move || heartbeat.run());
        Lease {
            client,
            key: key.to_string(),
            owner: owner.to_vec(),
            token,
            lease: options.lease(),
            shared,
            events,
            stop: Some(stop),
            heartbeat: Some(heartbeat),
            released: false,
        }
    }

    /// The fencing token: pass it to whatever the holder writes to.
    pub fn token(&self) -> i64 {
        self.token
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn owner(&self) -> &[u8] {
        &self.owner
    }

    /// The heartbeat's reports: failures, recovery, loss.
    pub fn events(&self) -> &Receiver<LeaseEvent> {
        &self.events
    }

    /// Sends the heartbeat's reports to `tx` as they happen (wrapped by
    /// `wrap`), instead of [`Lease::events`], so a caller can wait on one
    /// channel for everything. The forwarding ends with the heartbeat.
    pub fn forward_events<T: Send + 'static>(&mut self, tx: Sender<T>, wrap: fn(LeaseEvent) -> T) {
        let (_, unused) = mpsc::channel();
        let events = std::mem::replace(&mut self.events, unused);
        std::thread::spawn(move || {
            for event in events {
                if tx.send(wrap(event)).is_err() {
                    return;
                }
            }
        });
    }

    /// The latest the lease can end, from the client's point of view: the send
    /// time of the last successful beat plus `interval * misses`.
    pub fn lease_ends(&self) -> Instant {
        let last_ok = self
            .shared
            .last_ok
            .lock()
            .map_or_else(|e| *e.into_inner(), |t| *t);
        last_ok + self.lease
    }

    fn stop_heartbeat(&mut self) {
        self.stop.take(); // disconnects the stop channel: the heartbeat exits
        if let Some(handle) = self.heartbeat.take() {
            let _ = handle.join();
        }
    }

    /// Stops beating and hands the lease to the caller: it is not released,
    /// and whoever holds the token must beat or release it.
    pub fn detach(mut self) -> i64 {
        self.stop_heartbeat();
        self.released = true;
        self.token
    }

    /// Stops beating and releases: true when this ended the lease.
    pub fn release(mut self) -> RedisResult<bool> {
        self.stop_heartbeat();
        self.released = true;
        let mut con = self.client.connection()?;
        commands::release(&mut con, &self.key, &self.owner, self.token)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop_heartbeat();
        if !self.released {
            if let Ok(mut con) = self.client.connection() {
                let _ = commands::release(&mut con, &self.key, &self.owner, self.token);
            }
        }
    }
}
