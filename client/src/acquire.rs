//! [`Client::acquire`]: a grant on a dedicated connection (blocking when
//! asked), its first beat, the replicas' acknowledgement, then the [`Lease`]
//! that beats in the background. A waiting client rides out transient
//! errors: it reconnects with backoff and waits again (it may lose its place
//! in the queue); a fatal one ([`Error::is_fatal`]) ends the wait at once.
//! Every connection is named `hblock:<owner>` ([`crate::conn::connection_name`]).

use crate::backoff::Backoff;
use crate::commands;
use crate::conn::Client;
use crate::conn::Conn;
use crate::conn::REPLY_LIMIT;
use crate::error::Error;
use crate::lease::{Lease, LeaseOptions};
use crate::owner::instance_owner;
use redis::RedisError;
use std::time::{Duration, Instant};

/// What a waiting [`Client::acquire_reporting`] reports.
#[derive(Debug)]
pub enum WaitEvent<'a> {
    /// An attempt failed with a transient error (or its grant was lost
    /// before the first beat); it waits again on a new connection after a
    /// backoff.
    Retry(&'a Error),
    /// The ACQUIRE is queued on the server: no error came back on a new
    /// connection (after `Retry`: the condition ended).
    Queued,
}

impl Client {
    /// ACQUIRE as `owner` made unique to this process (`owner/<random>`,
    /// see [`Lease::owner`]), so two processes given the same owner never
    /// share a lease. Blocks with `options.wait`; None when not granted.
    pub fn acquire(
        &self,
        key: &str,
        owner: &[u8],
        options: &LeaseOptions,
    ) -> Result<Option<Lease>, Error> {
        self.acquire_as(key, &instance_owner(owner), options, |_| {})
    }

    /// ACQUIRE as exactly `owner` (whoever else uses that owner shares the
    /// lease). While waiting (`options.wait` set), a connection error, a
    /// server that is loading or read-only, or a grant lost before its
    /// first beat is reported to `on_retry` and the wait starts again on a
    /// new connection, within what is left of `options.wait`.
    pub fn acquire_as(
        &self,
        key: &str,
        owner: &[u8],
        options: &LeaseOptions,
        mut on_retry: impl FnMut(&Error),
    ) -> Result<Option<Lease>, Error> {
        self.acquire_reporting(key, owner, options, |event| {
            if let WaitEvent::Retry(err) = event {
                on_retry(err);
            }
        })
    }

    /// As [`Client::acquire_as`], reporting the retries and when the
    /// ACQUIRE is queued again ([`WaitEvent`]), so a caller can log a
    /// failing condition once when it starts and once when it ends.
    pub fn acquire_reporting(
        &self,
        key: &str,
        owner: &[u8],
        options: &LeaseOptions,
        mut on_event: impl FnMut(WaitEvent<'_>),
    ) -> Result<Option<Lease>, Error> {
        let client = self.named(owner);
        let deadline = options
            .wait
            .filter(|d| !d.is_zero())
            .map(|d| Instant::now() + d);
        let mut backoff = Backoff::new(options.interval);
        loop {
            let wait = match (options.wait, deadline) {
                (None, _) => None,
                (Some(_), None) => Some(Duration::ZERO),
                (Some(_), Some(end)) => {
                    let left = end.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    // WAIT 0 would mean "no limit": at least 1 ms.
                    Some(left.max(Duration::from_millis(1)))
                }
            };
            match client.acquire_once(key, owner, options, wait, &mut on_event) {
                Err(err) if wait.is_some() && (err.is_transient() || err.is_not_held()) => {
                    on_event(WaitEvent::Retry(&err));
                    std::thread::sleep(backoff.next_delay());
                }
                other => return other,
            }
        }
    }

    /// One ACQUIRE on a new connection (blocking for `wait`), the first beat
    /// of a blocking grant, the replicas' acknowledgement.
    fn acquire_once(
        &self,
        key: &str,
        owner: &[u8],
        options: &LeaseOptions,
        wait: Option<Duration>,
        on_event: &mut dyn FnMut(WaitEvent<'_>),
    ) -> Result<Option<Lease>, Error> {
        // A timed wait ends within WAIT_SLACK of its time even on a hung
        // server; a plain ACQUIRE gets REPLY_LIMIT (plus the replicas'
        // WAIT) to answer. Both are transient timeouts (retried by a wait).
        let replicas = match options.min_replicas {
            0 => Duration::ZERO,
            _ => options.replica_timeout,
        };
        let deadline = wait
            .filter(|w| !w.is_zero())
            .map(|w| Instant::now() + w + WAIT_SLACK);
        let limit = REPLY_LIMIT + replicas;
        let con = match wait {
            Some(w) if !w.is_zero() => self.waiting_connection(w + WAIT_SLACK),
            Some(_) => self.waiting_connection(limit),
            None => self.connection_within(limit),
        };
        con.map_err(Error::from)
            .and_then(|con| self.acquire_on(con, key, owner, options, (wait, deadline), on_event))
            .map_err(|err| match wait {
                Some(w) if !w.is_zero() => err.timed_out(w + WAIT_SLACK).unwrap_or(err),
                _ => err.timed_out(limit).unwrap_or(err),
            })
    }

    /// The rest of [`Client::acquire_once`], on its connection.
    fn acquire_on(
        &self,
        mut con: Conn,
        key: &str,
        owner: &[u8],
        options: &LeaseOptions,
        (wait, deadline): (Option<Duration>, Option<Instant>),
        on_event: &mut dyn FnMut(WaitEvent<'_>),
    ) -> Result<Option<Lease>, Error> {
        let sent = Instant::now();
        let args = commands::AcquireArgs {
            interval_ms: Some(options.interval.as_millis() as u64),
            misses: Some(u64::from(options.misses)),
            wait_ms: wait.map(|d| d.as_millis() as u64),
            bind_ms: options.bind_ms(),
            limit: commands::limit_arg(options.limit),
        };
        // Through Sentinel, a waiter on a master that Sentinel no longer
        // names is moved (its connection closed, then queued again).
        let token: Option<i64> = match wait {
            Some(_) => {
                let cmd = commands::acquire_cmd(key, owner, args);
                let every = follow_every(options.interval);
                let mut queued = || on_event(WaitEvent::Queued);
                let reply = self.wait_reply(&mut con, &cmd, every, deadline, &mut queued)?;
                redis::from_redis_value(reply.extract_error()?).map_err(RedisError::from)?
            }
            None => commands::acquire(&mut con, key, owner, args)?,
        };
        if wait.is_some() {
            on_event(WaitEvent::Queued); // answered: the server is there
        }
        let Some(token) = token else {
            return Ok(None);
        };
        if wait.is_some() && self.moved(&con, follow_every(options.interval)) {
            // Granted by a master Sentinel no longer names (it stays up a
            // while after a planned failover): that grant does not count.
            let _ = commands::release(&mut con, key, owner, token);
            return Err(Error::NotHeld(
                "granted by a master Sentinel no longer names".into(),
            ));
        }
        let mut last_ok = sent;
        if wait.is_some() {
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
        // A bound lease keeps beating on the connection it is bound to.
        let bound = match options.bind {
            Some(_) => {
                con.set_beat_timeouts(options.interval, true)?;
                Some(con)
            }
            None => None,
        };
        let grant = crate::lease::Grant {
            key,
            owner,
            token,
            last_ok,
            bound,
        };
        Ok(Some(Lease::start(self.clone(), grant, options)))
    }
}

/// How late a timed wait (`WAIT ms`) may end on a server that answers
/// nothing: its connection gives up this long after the wait's end.
const WAIT_SLACK: Duration = Duration::from_millis(500);

/// How often a waiter asks Sentinel whether the master moved.
fn follow_every(interval: Duration) -> Duration {
    interval.clamp(Duration::from_millis(100), Duration::from_secs(1))
}
