//! Every lock on a server, or on every master of a cluster (`hblock ls`,
//! and the exporter's scrape): `SCAN ... TYPE hblock-lk` (never `KEYS`), then
//! `HBLOCK.INFO` pipelined in batches.
//!
//! The names are collected first (a SCAN pass per master, `COUNT 1000` keys
//! looked at per call, so Redis is never blocked for long), sorted and cut
//! to the limit; only the kept names are asked for their INFO, in key
//! order. A key deleted (or replaced by another type, or moved to another
//! cluster node) between SCAN and INFO is skipped, and the next name takes
//! its place under the limit.

use crate::commands::{parse_info, scan_lock_keys, LockInfo};
use crate::conn::{Client, Node};
use crate::error::Error;
use redis::{RedisError, Value};
use std::time::Duration;

/// HBLOCK.INFO commands sent in one pipeline: Redis runs a pipeline's
/// commands back to back, so a batch is what other clients may wait behind
/// (PING p99 during a 100,000-lock listing, `make bench ONLY=ls` on a
/// loaded 2-CPU host: 0.05-2.8 ms with 200, 1.6-5.9 ms with 1000).
pub const INFO_BATCH: usize = 200;

/// How long connecting and each reply (one SCAN call, one pipeline) may take.
const REPLY_LIMIT: Duration = Duration::from_secs(10);

/// One lock as listed: its key, the master it lives on (`host:port`) and
/// its INFO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub key: Vec<u8>,
    pub node: String,
    pub info: LockInfo,
}

/// What [`scan_locks`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// The locks, sorted by key (bytewise), at most the limit.
    pub locks: Vec<Listed>,
    /// Lock names SCAN found beyond the limit (not asked for their INFO;
    /// some may have been deleted since).
    pub left_out: usize,
}

/// Every lock whose key matches `pattern` (SCAN's `MATCH` glob: `*` for
/// all) on the server, or on every master of a cluster, sorted by key;
/// with `limit`, the first `limit` of them in key order and the count of
/// the others. Errors: the connection, the module missing
/// ([`crate::error::Class::ModuleMissing`]), any error reply other than
/// the skipped WRONGTYPE/MOVED/ASK of a key that changed meanwhile.
pub fn scan_locks(client: &Client, pattern: &str, limit: Option<usize>) -> Result<Listing, Error> {
    find_locks(client, pattern)?.list(limit)
}

/// The names of the locks SCAN found, sorted, with a connection to each
/// master: the first half of [`scan_locks`], [`Found::list`] the second.
pub struct Found {
    nodes: Vec<Node>,
    /// (key, index of its node), sorted by key, each key once.
    names: Vec<(Vec<u8>, usize)>,
}

/// SCAN every master for the lock names matching `pattern`.
pub fn find_locks(client: &Client, pattern: &str) -> Result<Found, Error> {
    let mut nodes = client.master_connections(REPLY_LIMIT)?;
    let mut names: Vec<(Vec<u8>, usize)> = Vec::new();
    for (i, node) in nodes.iter_mut().enumerate() {
        require_module(node)?;
        names.extend(scan_names(node, pattern)?.into_iter().map(|k| (k, i)));
    }
    names.sort_unstable();
    // A key SCAN returned twice (a rehash during the pass) is listed once.
    names.dedup_by(|a, b| a.0 == b.0);
    Ok(Found { nodes, names })
}

impl Found {
    /// How many lock names SCAN found.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &[u8]> {
        self.names.iter().map(|(k, _)| k.as_slice())
    }

    /// The INFO of the names in key order, pipelined per master in batches
    /// of [`INFO_BATCH`], until `limit` locks are found (all without one).
    /// A name whose key is gone, of another type or moved is skipped.
    pub fn list(mut self, limit: Option<usize>) -> Result<Listing, Error> {
        let wanted = limit.unwrap_or(usize::MAX);
        let mut listing = Listing::default();
        let mut next = 0;
        while listing.locks.len() < wanted && next < self.names.len() {
            let room = wanted - listing.locks.len();
            let end = self.names.len().min(next + room.min(INFO_BATCH));
            let batch = self.names.get(next..end).unwrap_or_default();
            next = end;
            for (key, info) in infos(&mut self.nodes, batch)? {
                if let Some((node, info)) = info {
                    listing.locks.push(Listed { key, node, info });
                }
            }
        }
        listing.left_out = self.names.len() - next;
        Ok(listing)
    }
}

/// `COMMAND INFO HBLOCK.INFO`: a server without the module answers nil,
/// which would make SCAN's unknown TYPE list nothing; that is an error.
/// A refused COMMAND (an ACL) is no answer: the listing goes on.
fn require_module(node: &mut Node) -> Result<(), Error> {
    let reply = redis::cmd("COMMAND")
        .arg("INFO")
        .arg("HBLOCK.INFO")
        .query::<Value>(&mut node.con);
    match reply {
        Ok(Value::Array(items)) if matches!(items.first(), Some(Value::Nil)) => {
            Err(Error::from(RedisError::from((
                redis::ErrorKind::Client,
                "unknown command",
                format!("{}: unknown command 'HBLOCK.INFO'", node.addr),
            ))))
        }
        Err(err) if err.is_io_error() || err.is_timeout() || err.is_connection_dropped() => {
            Err(Error::from(err))
        }
        _ => Ok(()),
    }
}

/// One SCAN pass over a node: the names of its locks matching `pattern`.
fn scan_names(node: &mut Node, pattern: &str) -> Result<Vec<Vec<u8>>, Error> {
    Ok(scan_lock_keys(&mut node.con, Some(pattern))?)
}

/// INFO of each name in `batch` (in its order), pipelined per node: None
/// for a key gone (nil), of another type now, or moved to another node.
type Answer = (Vec<u8>, Option<(String, LockInfo)>);

fn infos(nodes: &mut [Node], batch: &[(Vec<u8>, usize)]) -> Result<Vec<Answer>, Error> {
    let mut found: Vec<Answer> = batch.iter().map(|(k, _)| (k.clone(), None)).collect();
    for (n, node) in nodes.iter_mut().enumerate() {
        let mine: Vec<usize> = (0..batch.len())
            .filter(|&i| batch.get(i).is_some_and(|(_, on)| *on == n))
            .collect();
        if mine.is_empty() {
            continue;
        }
        let mut pipe = redis::pipe();
        for &i in &mine {
            if let Some((key, _)) = batch.get(i) {
                pipe.cmd("HBLOCK.INFO").arg(key);
            }
        }
        let replies: Vec<Value> = pipe.ignore_errors().query(&mut node.con)?;
        for (&i, reply) in mine.iter().zip(replies) {
            let info = match reply {
                Value::ServerError(err) => {
                    let err = RedisError::from(err);
                    match err.code() {
                        Some("WRONGTYPE" | "MOVED" | "ASK") => None,
                        _ => return Err(Error::from(err)),
                    }
                }
                reply => parse_info(reply)?,
            };
            if let (Some(slot), Some(info)) = (found.get_mut(i), info) {
                slot.1 = Some((node.addr.clone(), info));
            }
        }
    }
    Ok(found)
}
