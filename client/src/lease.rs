//! The [`Lease`] handle and its terms: a background heartbeat on its own
//! connection, loss reported on a channel, release on drop.
//!
//! The client cannot see the server's clock, so it counts the lease from the
//! *send* time of the last successful beat: the server received that beat no
//! earlier, so the lease cannot end before `sent + interval * misses`.

use crate::commands;
use crate::conn::Client;
use crate::heartbeat::Heartbeat;
use crate::lease_state::Shared;
pub use crate::lease_state::{LeaseEvent, LostReason};
use hblock_core::limits::{INTERVAL_DEFAULT, MISSES_DEFAULT};
use redis::{FromRedisValue, RedisResult, ToRedisArgs};
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
    /// Bind the lease to the connection it beats on (`ACQUIRE ... BIND`):
    /// when this process dies and the connection closes, the server releases
    /// the lease after this grace instead of after the missed beats. A
    /// dropped connection is re-bound from a new one within the grace (the
    /// heartbeat notices the drop at once). None: a plain heartbeat lease.
    /// Capped at the lease's length. Do not [`Lease::detach`] a bound lease.
    pub bind: Option<Duration>,
    /// How many owners may hold the lock at once (ACQUIRE's LIMIT, 1 to
    /// 1000): a semaphore of `limit` permits, each holder with its own
    /// lease and token. Every holder and waiter of a lock must give the
    /// same limit (another is refused with
    /// [`Class::LimitMismatch`](crate::error::Class::LimitMismatch) while
    /// the lock has holders or waiters). 1, the default, is the plain lock.
    pub limit: u32,
}

/// The default BIND grace: a connection drop is re-bound well within it,
/// and the old holder's process is dead before it ends.
pub const BIND_DEFAULT: Duration = Duration::from_millis(100);

impl Default for LeaseOptions {
    fn default() -> Self {
        LeaseOptions {
            interval: Duration::from_millis(INTERVAL_DEFAULT as u64),
            misses: MISSES_DEFAULT as u32,
            wait: None,
            min_replicas: 0,
            replica_timeout: Duration::from_millis(1000),
            bind: Some(BIND_DEFAULT),
            limit: 1,
        }
    }
}

impl LeaseOptions {
    /// How long the lease lasts without a beat.
    pub fn lease(&self) -> Duration {
        self.interval.saturating_mul(self.misses)
    }

    /// BIND's grace in ms, capped at the lease (the server's limit).
    pub fn bind_ms(&self) -> Option<u64> {
        self.bind
            .map(|grace| grace.min(self.lease()).as_millis() as u64)
    }
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
    /// The connection of [`Lease::fenced`], made at its first call.
    fenced: Mutex<Option<crate::conn::Conn>>,
    events: Receiver<LeaseEvent>,
    stop: Option<Sender<()>>,
    heartbeat: Option<JoinHandle<()>>,
    released: bool,
}

/// A grant as `Client::acquire` got it: the send time of its last
/// acknowledged command, and for a bound lease the connection it is bound to.
pub(crate) struct Grant<'a> {
    pub key: &'a str,
    pub owner: &'a [u8],
    pub token: i64,
    pub last_ok: Instant,
    pub bound: Option<crate::conn::Conn>,
}

impl Lease {
    pub(crate) fn start(client: Client, grant: Grant, options: &LeaseOptions) -> Lease {
        let Grant {
            key,
            owner,
            token,
            last_ok,
            bound,
        } = grant;
        let shared = Arc::new(Shared::new(last_ok));
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
            bind_ms: options.bind_ms(),
            bound,
            limit: options.limit,
            seen: token,
        };
        let heartbeat = std::thread::spawn(move || heartbeat.run());
        Lease {
            client,
            key: key.to_string(),
            owner: owner.to_vec(),
            token,
            lease: options.lease(),
            shared,
            fenced: Mutex::new(None),
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

    /// The owner the lease was granted to: for [`Client::acquire`], the
    /// given owner with this process's instance part (`web-1/4f3a9c0d`).
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

    /// Why the lease is lost, once this process knows it is: the heartbeat
    /// got NOTHELD or could not beat for a whole lease, or [`Lease::fenced`]
    /// was refused. None while it is (as far as this process knows) held.
    pub fn lost(&self) -> Option<LostReason> {
        self.shared.lost()
    }

    pub fn is_lost(&self) -> bool {
        self.lost().is_some()
    }

    /// A write fenced by this lease: sends `HBLOCK.FENCED key owner token
    /// command...`, which the server runs only while this lease is live,
    /// and returns the command's reply.
    ///
    /// ```no_run
    /// # fn f(lease: &hblock_client::Lease) -> Result<(), hblock_client::Error> {
    /// // The written keys share the lock's slot on a cluster: {jobs} here.
    /// let _: () = lease.fenced(("SET", "{jobs}:last", 42))?;
    /// let n: i64 = lease.fenced(("INCR", "{jobs}:count"))?;
    /// # Ok(()) }
    /// ```
    ///
    /// A refusal is [`Error::NotHeld`](crate::error::Error::NotHeld): the write was
    /// not applied, and the lease is marked lost ([`Lease::lost`]); stop
    /// working. Any other error (Redis unreachable, the command's own error)
    /// is returned as is and not retried: after a connection error the write
    /// may or may not have been applied. Calls share one connection, made at
    /// the first call (a new one after an error).
    pub fn fenced<T: FromRedisValue>(
        &self,
        command: impl ToRedisArgs,
    ) -> Result<T, crate::error::Error> {
        let mut cmd = redis::cmd("HBLOCK.FENCED");
        cmd.arg(&self.key)
            .arg(&self.owner)
            .arg(self.token)
            .arg(command);
        let mut slot = self
            .fenced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut con = match slot.take() {
            Some(con) => con,
            None => self.client.connection()?,
        };
        match cmd.query::<T>(&mut con).map_err(crate::error::Error::from) {
            Ok(reply) => {
                *slot = Some(con);
                Ok(reply)
            }
            Err(crate::error::Error::NotHeld(why)) => {
                *slot = Some(con);
                self.shared.mark_lost(&LostReason::NotHeld(why.clone()));
                Err(crate::error::Error::NotHeld(why))
            }
            Err(err) => {
                // An error reply leaves the connection usable; anything else
                // may not (a half-read reply), nor an old master's READONLY.
                if matches!(&err, crate::error::Error::Redis(e) if e.code().is_some())
                    && !err.is_transient()
                {
                    *slot = Some(con);
                }
                Err(err)
            }
        }
    }

    /// The latest the lease can end, from the client's point of view: the send
    /// time of the last successful beat plus `interval * misses`.
    pub fn lease_ends(&self) -> Instant {
        self.shared.last_ok() + self.lease
    }

    /// Calls `hook` from the heartbeat thread with the new [`Lease::lease_ends`]
    /// after every acknowledged beat (`hblock run` moves its watchdog's
    /// deadline with it).
    pub fn on_extended(&self, hook: impl Fn(Instant) + Send + 'static) {
        self.shared.set_on_extended(Box::new(hook));
    }

    /// How long a release may take: a server that hangs must not hold
    /// the caller (or `hblock run`'s exit) forever; the lease ends on its
    /// own anyway.
    fn release_limit(&self) -> Duration {
        self.lease
            .clamp(Duration::from_millis(100), Duration::from_secs(5))
    }

    /// Tells the heartbeat to stop (it exits at its next look at the stop
    /// channel: at once when sleeping, when its WATCH returns when bound).
    fn signal_stop(&mut self) {
        self.stop.take(); // disconnects the stop channel
    }

    fn join_heartbeat(&mut self) {
        self.signal_stop();
        if let Some(handle) = self.heartbeat.take() {
            let _ = handle.join();
        }
    }

    /// Stops beating and hands the lease to the caller: it is not released,
    /// and whoever holds the token must beat or release it. A bound lease
    /// (`LeaseOptions::bind`) is released by the server once the heartbeat's
    /// connection closes: detach only leases acquired with `bind: None`.
    pub fn detach(mut self) -> i64 {
        self.join_heartbeat();
        self.released = true;
        self.token
    }

    /// Stops beating and releases: true when this ended the lease. The
    /// release goes first, so a heartbeat waiting in WATCH wakes at once.
    pub fn release(mut self) -> RedisResult<bool> {
        self.signal_stop();
        self.released = true;
        let released = self
            .client
            .connection_within(self.release_limit())
            .and_then(|mut con| commands::release(&mut con, &self.key, &self.owner, self.token));
        self.join_heartbeat();
        released
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.signal_stop();
        if !self.released {
            if let Ok(mut con) = self.client.connection_within(self.release_limit()) {
                let _ = commands::release(&mut con, &self.key, &self.owner, self.token);
            }
        }
        self.join_heartbeat();
    }
}
