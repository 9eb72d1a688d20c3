//! [`Client::watch`]: every change of a lock's holder, without polling and
//! without gaps (HBLOCK.WATCH with the token last seen), reconnecting after
//! connection errors.

use crate::acquire::WaitEvent;
use crate::backoff::Backoff;
use crate::commands::{self, LockInfo};
use crate::conn::Client;
use crate::conn::Conn;
use crate::error::Error;
use std::time::Duration;

/// Through Sentinel, how long one HBLOCK.WATCH waits before the watch asks
/// Sentinel whether the master moved.
const SENTINEL_SLICE: Duration = Duration::from_secs(1);

/// What [`Watch::reporting`] calls.
type Reporter = Box<dyn FnMut(WaitEvent<'_>)>;

/// An endless iterator over a lock's holders: first the current one, then one
/// item per change (`None`: the key does not exist); on a lock of LIMIT > 1
/// one item per grant and per lease end of any holder. Transient errors are
/// retried on a new connection (reported to [`Watch::reporting`]'s
/// callback); a fatal one ([`Error::is_fatal`]) is yielded, and the caller
/// should stop (retrying cannot help). Its connections are named
/// `hblock:watch` unless the client has a name.
pub struct Watch {
    client: Client,
    key: String,
    /// What the last item yielded had as [`LockInfo::seen`] (None: nothing
    /// yielded yet): passed back as WATCH's SEEN.
    seen: Option<i64>,
    con: Option<Conn>,
    backoff: Backoff,
    report: Option<Reporter>,
    /// The last attempt failed (reported as `WaitEvent::Retry`).
    failing: bool,
}

impl Client {
    /// Watches `key`: see [`Watch`].
    pub fn watch(&self, key: &str) -> Watch {
        Watch {
            client: self.named_or("watch"),
            key: key.to_string(),
            seen: None,
            con: None,
            backoff: Backoff::new(Duration::from_secs(2)),
            report: None,
            failing: false,
        }
    }
}

impl Watch {
    /// Calls `report` with every transient error before it is retried
    /// (`WaitEvent::Retry`), and once an answer comes again after one
    /// (`WaitEvent::Queued`), so a caller can log a failing condition once
    /// when it starts and once when it ends.
    pub fn reporting(mut self, report: impl FnMut(WaitEvent<'_>) + 'static) -> Watch {
        self.report = Some(Box::new(report));
        self
    }

    fn report(&mut self, event: WaitEvent<'_>) {
        if let Some(report) = self.report.as_mut() {
            report(event);
        }
    }

    fn ask(&mut self) -> Result<Option<LockInfo>, Error> {
        // Through Sentinel: wait in slices and, between them, move to the
        // master Sentinel names (after a planned failover the old master
        // stays up and would report no change). WATCH with the token last
        // seen misses nothing across slices.
        let sentinel = self.client.is_sentinel();
        if sentinel
            && self
                .con
                .as_ref()
                .is_some_and(|c| self.client.moved(c, SENTINEL_SLICE))
        {
            self.con = None;
        }
        let con = match &mut self.con {
            Some(con) => con,
            None => {
                let con = self.client.connection()?;
                if sentinel {
                    // A master that hangs answers no slice: give up on it
                    // after two, and ask Sentinel again.
                    con.set_beat_timeouts(SENTINEL_SLICE, true)?;
                }
                self.con.insert(con)
            }
        };
        let timeout_ms = if sentinel {
            SENTINEL_SLICE.as_millis() as u64
        } else {
            0
        };
        // After a failure INFO first: it answers at once, so the recovery
        // is seen now, not at the next change.
        Ok(match self.seen {
            Some(seen) if !self.failing => commands::watch(con, &self.key, seen, timeout_ms)?,
            _ => commands::info(con, &self.key)?,
        })
    }
}

impl Iterator for Watch {
    type Item = Result<Option<LockInfo>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.ask() {
                Ok(info) => {
                    self.backoff.reset();
                    if std::mem::take(&mut self.failing) {
                        self.report(WaitEvent::Queued);
                    }
                    // The holder; on a lock of LIMIT > 1 the last token
                    // issued, which each grant and lease end advance.
                    let holder = info.as_ref().map_or(0, LockInfo::seen);
                    if self.seen == Some(holder) {
                        continue; // a TIMEOUT or a change back and forth
                    }
                    self.seen = Some(holder);
                    return Some(Ok(info));
                }
                Err(err) if err.is_transient() => {
                    self.con = None;
                    self.failing = true;
                    self.report(WaitEvent::Retry(&err));
                    std::thread::sleep(self.backoff.next_delay());
                }
                Err(err) => {
                    self.con = None;
                    return Some(Err(err));
                }
            }
        }
    }
}
