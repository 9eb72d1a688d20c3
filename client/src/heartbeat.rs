//! The background heartbeat of a [`crate::Lease`]: beats every interval on
//! its own connection, reconnects after errors, and reports failures,
//! recovery and loss. The lease is counted from the *send* time of the last
//! acknowledged beat (the server got it no earlier).
//!
//! A bound lease (BIND) beats on the connection it is bound to and waits
//! between beats in `HBLOCK.WATCH key SEEN token`, so a dropped connection
//! (or a lost lease) is noticed at once, not at the next beat: it reconnects,
//! beats, and re-binds (ACQUIRE ... BIND, same token) within the grace.
//!
//! On a lock of LIMIT > 1, WATCH's SEEN is the lock's last token issued
//! (INFO's `token`; every grant and lease end of any holder advances it),
//! not this holder's: WATCH returns at each change of holders, the
//! heartbeat passes back the token it saw and asks HBLOCK.CHECK whether its
//! own lease is still live, so a busy lock costs one WATCH and one CHECK per
//! change, an idle one nothing between beats.

use crate::backoff::Backoff;
use crate::commands;
use crate::conn::Client;
use crate::conn::Conn;
use crate::error::Class;
use crate::error::Error;
use crate::lease_state::{LeaseEvent, LostReason, Shared};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A beat's error that no retry can fix and that leaves the holder unable
/// to beat: the lease is as good as lost (other error replies are retried
/// until the lease may have ended, as Redis being away is).
fn ends_the_lease(err: &Error) -> bool {
    matches!(
        err.class(),
        Class::NeedsPassword
            | Class::WrongPassword
            | Class::NoPermission
            | Class::WrongType
            | Class::ModuleMissing
            | Class::Configuration
            | Class::LimitMismatch
    )
}

/// The background heartbeat of one lease (its own thread and connection).
pub(crate) struct Heartbeat {
    pub(crate) client: Client,
    pub(crate) key: String,
    pub(crate) owner: Vec<u8>,
    pub(crate) token: i64,
    pub(crate) interval: Duration,
    /// interval * misses: how long the lease lasts without a beat.
    pub(crate) lease: Duration,
    pub(crate) shared: Arc<Shared>,
    pub(crate) events: Sender<LeaseEvent>,
    /// Closed (or sent to) when the lease is released or dropped.
    pub(crate) stop: Receiver<()>,
    /// BIND's grace (ms) when the lease is bound.
    pub(crate) bind_ms: Option<u64>,
    /// The connection the lease was bound to when granted.
    pub(crate) bound: Option<Conn>,
    /// The lock's LIMIT as acquired (re-sent when re-binding).
    pub(crate) limit: u32,
    /// What the next WATCH passes as SEEN: this lease's token on a
    /// one-holder lock; on LIMIT > 1 the lock's last token issued, as last
    /// seen.
    pub(crate) seen: i64,
}

impl Heartbeat {
    /// Beats every interval until stopped or the lease is lost; after a
    /// failure, retries on a new connection with backoff (never slower than
    /// interval / 2). Reports failures, recovery and loss on `events`.
    pub(crate) fn run(mut self) {
        let mut con: Option<Conn> = self.bound.take();
        let mut failing = false;
        let mut backoff = Backoff::new(self.interval);
        let mut next = Instant::now() + self.interval;
        // False once WATCH answered an error reply (an ACL without
        // HBLOCK.WATCH, say): from then on, for the rest of this lease,
        // plain sleeping between beats on the same connection.
        let mut watching = true;
        loop {
            if !self.wait_until(next, &mut con, &mut watching) {
                return; // released or dropped
            }
            let sent = Instant::now();
            match self.beat(&mut con) {
                Ok(()) => {
                    self.shared.beat_acknowledged(sent, self.lease);
                    backoff.reset();
                    next = sent + self.interval;
                    if failing {
                        failing = false;
                        let _ = self.events.send(LeaseEvent::Recovered);
                    }
                }
                Err(Error::NotHeld(_)) if self.stopped() => return, // released
                Err(Error::NotHeld(why)) => {
                    self.shared.mark_lost(&LostReason::NotHeld(why.clone()));
                    let _ = self.events.send(LeaseEvent::Lost(LostReason::NotHeld(why)));
                    return;
                }
                Err(err) if ends_the_lease(&err) => {
                    let text = match err.hint() {
                        Some(hint) => format!("{}: {err}: {hint}", self.client.url()),
                        None => format!("{}: {err}", self.client.url()),
                    };
                    let _ = self.events.send(LeaseEvent::Lost(LostReason::Fatal(text)));
                    return;
                }
                Err(err) => {
                    con = None; // reconnect on the next attempt
                    if !self.on_failure(&err.to_string(), &mut failing) {
                        return;
                    }
                    next = Instant::now() + backoff.next_delay();
                }
            }
        }
    }

    fn stopped(&self) -> bool {
        !matches!(self.stop.try_recv(), Err(TryRecvError::Empty))
    }

    /// Waits until `next`: false when stopped first. A bound lease waits in
    /// WATCH on its connection and returns early when the connection fails
    /// (then dropped, so the beat reconnects and re-binds) or the holder
    /// changes (the beat then finds out why). An error *reply* to WATCH
    /// (NOPERM, unknown command) turns `watching` off: the connection is
    /// kept and the wait becomes a plain sleep, for the rest of the lease.
    fn wait_until(&mut self, next: Instant, con: &mut Option<Conn>, watching: &mut bool) -> bool {
        loop {
            let left = next.saturating_duration_since(Instant::now());
            let Some(c) = con.as_mut().filter(|_| self.bind_ms.is_some() && *watching) else {
                return matches!(self.stop.recv_timeout(left), Err(RecvTimeoutError::Timeout));
            };
            if self.stopped() {
                return false;
            }
            if left.is_zero() {
                return true;
            }
            let timeout_ms = (left.as_millis() as u64).max(1);
            let seen = self.seen;
            match commands::watch(c, &self.key, seen, timeout_ms).map_err(Error::from) {
                Ok(Some(info)) if self.limit > 1 || info.limit > 1 => {
                    // A change among the holders (or the TIMEOUT): is ours
                    // still live? A NOTHELD is found out by the beat.
                    if info.seen() == seen {
                        continue;
                    }
                    self.seen = info.seen();
                    match commands::check(c, &self.key, &self.owner, self.token) {
                        Ok(()) => {}
                        Err(Error::NotHeld(_)) => return !self.stopped(),
                        Err(err) if err.is_fatal() => *watching = false,
                        Err(_) => {
                            *con = None;
                            return !self.stopped();
                        }
                    }
                }
                Ok(info) if info.as_ref().is_some_and(|i| i.holder() == self.token) => {
                    self.seen = self.token;
                }
                Ok(_) => return !self.stopped(),
                Err(err) if err.is_fatal() => {
                    *watching = false;
                    crate::log::debug(&format!(
                        "{}: {} HBLOCK.WATCH refused: {err}; sleeping between beats instead",
                        self.key,
                        self.client.url()
                    ));
                }
                Err(_) => {
                    *con = None;
                    return !self.stopped();
                }
            }
        }
    }

    /// One beat, connecting first when there is no connection; on a new
    /// connection a bound lease is re-bound there.
    fn beat(&self, con: &mut Option<Conn>) -> Result<(), Error> {
        // Through Sentinel: beats on a node Sentinel no longer names as the
        // master do not count (after a planned failover the old master stays
        // up and answers them for a while); reconnect to the named one.
        let limit = (self.interval / 2).clamp(Duration::from_millis(20), Duration::from_secs(1));
        if con.as_ref().is_some_and(|c| self.client.moved(c, limit)) {
            *con = None;
        }
        let fresh = con.is_none();
        if fresh {
            let watching = self.bind_ms.is_some();
            *con = Some(self.client.connection_for_beats(self.interval, watching)?);
        }
        let Some(c) = con.as_mut() else {
            return Ok(());
        };
        commands::beat(c, &self.key, &self.owner, self.token)?;
        match self.bind_ms {
            Some(grace) if fresh => self.rebind(c, grace),
            _ => Ok(()),
        }
    }

    /// Moves the binding to this connection: the holder's ACQUIRE with BIND
    /// (terms unchanged) renews its lease under the same token. Any other
    /// answer means the lease ended a moment ago.
    fn rebind(&self, c: &mut Conn, grace: u64) -> Result<(), Error> {
        let args = commands::AcquireArgs {
            bind_ms: Some(grace),
            limit: commands::limit_arg(self.limit),
            ..commands::AcquireArgs::default()
        };
        let granted = match commands::acquire(c, &self.key, &self.owner, args).map_err(Error::from)
        {
            // HBLOCK.LIMIT changed the lock's limit since the grant: re-bind
            // under the lock's limit (the lease is the same).
            Err(err) if err.class() == Class::LimitMismatch => {
                let limit = commands::info(c, &self.key)?.map_or(1, |i| i.limit);
                let limit = u32::try_from(limit).unwrap_or(1);
                let args = commands::AcquireArgs {
                    limit: commands::limit_arg(limit),
                    ..args
                };
                commands::acquire(c, &self.key, &self.owner, args)?
            }
            other => other?,
        };
        match granted {
            Some(token) if token == self.token => Ok(()),
            Some(token) => {
                // A new lease of our own, granted because ours had ended.
                let _ = commands::release(c, &self.key, &self.owner, token);
                Err(Error::NotHeld("the lease ended while reconnecting".into()))
            }
            None => Err(Error::NotHeld("the lock is held by another owner".into())),
        }
    }

    /// A beat failed: report it once, or the loss once the lease may have
    /// ended. False when the heartbeat stops.
    fn on_failure(&self, error: &str, failing: &mut bool) -> bool {
        let lease_ends = self.shared.last_ok() + self.lease;
        if Instant::now() >= lease_ends {
            let lost = LostReason::Unreachable(error.to_string());
            self.shared.mark_lost(&lost);
            let _ = self.events.send(LeaseEvent::Lost(lost));
            return false;
        }
        if !*failing {
            *failing = true;
            let _ = self.events.send(LeaseEvent::BeatFailed {
                error: error.to_string(),
                lease_ends,
            });
        } else {
            // Reported once; each retry only with --verbose.
            crate::log::debug(&format!(
                "{}: {} still failing: {error}; retrying",
                self.key,
                self.client.url()
            ));
        }
        true
    }
}
