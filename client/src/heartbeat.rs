//! The background heartbeat of a [`crate::Lease`]: beats every interval on
//! its own connection, reconnects after errors, and reports failures,
//! recovery and loss. The lease is counted from the *send* time of the last
//! acknowledged beat (the server got it no earlier).

use crate::backoff::Backoff;
use crate::commands;
use crate::lease::{LeaseEvent, LostReason, Shared};
use crate::Error;
use crate::{Client, Conn};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
}

impl Heartbeat {
    /// Beats every interval until stopped or the lease is lost; after a
    /// failure, retries on a new connection with backoff (never slower than
    /// interval / 2). Reports failures, recovery and loss on `events`.
    pub(crate) fn run(self) {
        let mut con: Option<Conn> = None;
        let mut failing = false;
        let mut backoff = Backoff::new(self.interval);
        let mut next = Instant::now() + self.interval;
        loop {
            match self
                .stop
                .recv_timeout(next.saturating_duration_since(Instant::now()))
            {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return, // released or dropped
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
                Err(Error::NotHeld(why)) => {
                    let _ = self.events.send(LeaseEvent::Lost(LostReason::NotHeld(why)));
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

    /// One beat, connecting first when there is no connection.
    fn beat(&self, con: &mut Option<Conn>) -> Result<(), Error> {
        if con.is_none() {
            *con = Some(self.client.connection_for_beats(self.interval)?);
        }
        match con.as_mut() {
            Some(c) => commands::beat(c, &self.key, &self.owner, self.token).map(|_| ()),
            None => Ok(()),
        }
    }

    /// A beat failed: report it once, or the loss once the lease may have
    /// ended. False when the heartbeat stops.
    fn on_failure(&self, error: &str, failing: &mut bool) -> bool {
        let lease_ends = self.shared.last_ok() + self.lease;
        if Instant::now() >= lease_ends {
            let lost = LostReason::Unreachable(error.to_string());
            let _ = self.events.send(LeaseEvent::Lost(lost));
            return false;
        }
        if !*failing {
            *failing = true;
            let _ = self.events.send(LeaseEvent::BeatFailed {
                error: error.to_string(),
                lease_ends,
            });
        }
        true
    }
}
