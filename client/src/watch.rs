//! [`Client::watch`]: every change of a lock's holder, without polling and
//! without gaps (HBLOCK.WATCH with the token last seen), reconnecting after
//! connection errors.

use crate::backoff::Backoff;
use crate::commands::{self, LockInfo};
use crate::{Client, Conn, Error};
use std::time::Duration;

/// Through Sentinel, how long one HBLOCK.WATCH waits before the watch asks
/// Sentinel whether the master moved.
const SENTINEL_SLICE: Duration = Duration::from_secs(1);

/// An endless iterator over a lock's holders: first the current one, then one
/// item per change (`None`: the key does not exist). Transient errors are
/// retried on a new connection; others end nothing and are yielded.
pub struct Watch {
    client: Client,
    key: String,
    /// The holder last yielded (None: nothing yielded yet).
    seen: Option<i64>,
    con: Option<Conn>,
    backoff: Backoff,
}

impl Client {
    /// Watches `key`: see [`Watch`].
    pub fn watch(&self, key: &str) -> Watch {
        Watch {
            client: self.clone(),
            key: key.to_string(),
            seen: None,
            con: None,
            backoff: Backoff::new(Duration::from_secs(2)),
        }
    }
}

impl Watch {
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
            None => self.con.insert(self.client.connection()?),
        };
        let timeout_ms = if sentinel {
            SENTINEL_SLICE.as_millis() as u64
        } else {
            0
        };
        Ok(match self.seen {
            None => commands::info(con, &self.key)?,
            Some(seen) => commands::watch(con, &self.key, seen, timeout_ms)?,
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
                    let holder = info.as_ref().map_or(0, LockInfo::holder);
                    if self.seen == Some(holder) {
                        continue; // a TIMEOUT or a change back and forth
                    }
                    self.seen = Some(holder);
                    return Some(Ok(info));
                }
                Err(err) if err.is_transient() => {
                    self.con = None;
                    std::thread::sleep(self.backoff.next_delay());
                }
                Err(err) => {
                    self.con = None;
                    std::thread::sleep(self.backoff.next_delay());
                    return Some(Err(err));
                }
            }
        }
    }
}
