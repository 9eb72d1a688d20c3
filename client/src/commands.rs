//! One function per HBLOCK command, with typed replies.

use crate::error::Error;
use hblock_core::proto::{HISTORY_FIELDS, HOLDER_FIELDS, INFO_NUMBERS, WAITER_FIELDS};
use redis::{ConnectionLike, RedisError, RedisResult, Value};

/// The module's data type name (`TYPE key`), SCAN's `TYPE` filter.
pub const LOCK_TYPE: &str = "hblock-lk";

/// Keys SCAN looks at per call (its `COUNT`).
pub const SCAN_COUNT: usize = 1000;

/// Every lock key of the server behind `con` whose name matches `pattern`
/// (every lock when None): one whole SCAN pass with `TYPE hblock-lk`. A
/// key may come twice (the server rehashed during the pass).
pub fn scan_lock_keys(
    con: &mut impl ConnectionLike,
    pattern: Option<&str>,
) -> RedisResult<Vec<Vec<u8>>> {
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor);
        if let Some(pattern) = pattern {
            cmd.arg("MATCH").arg(pattern);
        }
        cmd.arg("COUNT").arg(SCAN_COUNT).arg("TYPE").arg(LOCK_TYPE);
        let (next, batch): (u64, Vec<Vec<u8>>) = cmd.query(con)?;
        keys.extend(batch);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

/// ACQUIRE's options: INTERVAL, MISSES, WAIT, BIND and LIMIT (None: not
/// sent).
#[derive(Clone, Copy, Debug, Default)]
pub struct AcquireArgs {
    pub interval_ms: Option<u64>,
    pub misses: Option<u64>,
    /// None = do not block, Some(0) = no limit.
    pub wait_ms: Option<u64>,
    /// Bind the lease to this connection with this grace.
    pub bind_ms: Option<u64>,
    /// How many owners may hold the lock at once (LIMIT; the server's
    /// default is 1). Every holder and waiter must give the same.
    pub limit: Option<u32>,
}

/// `HBLOCK.ACQUIRE`: the fencing token, or None when another owner holds the
/// lock (or WAIT ran out).
pub fn acquire(
    con: &mut impl ConnectionLike,
    key: &str,
    owner: &[u8],
    args: AcquireArgs,
) -> RedisResult<Option<i64>> {
    acquire_cmd(key, owner, args).query(con)
}

/// The `HBLOCK.ACQUIRE` command itself (sent by [`acquire`], or by a waiter
/// that watches its connection while the reply takes).
pub fn acquire_cmd(key: &str, owner: &[u8], args: AcquireArgs) -> redis::Cmd {
    let AcquireArgs {
        interval_ms,
        misses,
        wait_ms,
        bind_ms,
        limit,
    } = args;
    let mut cmd = redis::cmd("HBLOCK.ACQUIRE");
    cmd.arg(key).arg(owner);
    if let Some(ms) = interval_ms {
        cmd.arg("INTERVAL").arg(ms);
    }
    if let Some(n) = misses {
        cmd.arg("MISSES").arg(n);
    }
    if let Some(ms) = wait_ms {
        cmd.arg("WAIT").arg(ms);
    }
    if let Some(ms) = bind_ms {
        cmd.arg("BIND").arg(ms);
    }
    if let Some(n) = limit {
        cmd.arg("LIMIT").arg(n);
    }
    cmd
}

/// LIMIT for [`AcquireArgs::limit`]: None for 1 (the server's default, so
/// a one-holder lock's ACQUIRE is what it always was).
pub fn limit_arg(limit: u32) -> Option<u32> {
    (limit != 1).then_some(limit)
}

/// `HBLOCK.LIMIT key n`: changes the lock's limit now (raising it grants
/// waiters at once; lowering it ends no lease); the new limit.
pub fn set_limit(con: &mut impl ConnectionLike, key: &str, limit: u32) -> RedisResult<i64> {
    redis::cmd("HBLOCK.LIMIT").arg(key).arg(limit).query(con)
}

/// `HBLOCK.CHECK`: Ok when `owner` holds a live lease of `key` under
/// `token`, else [`Error::NotHeld`].
pub fn check(
    con: &mut impl ConnectionLike,
    key: &str,
    owner: &[u8],
    token: i64,
) -> Result<(), Error> {
    let _: Value = redis::cmd("HBLOCK.CHECK")
        .arg(key)
        .arg(owner)
        .arg(token)
        .query(con)?;
    Ok(())
}

/// `HBLOCK.BEAT`: the lease's beat count.
pub fn beat(
    con: &mut impl ConnectionLike,
    key: &str,
    owner: &[u8],
    token: i64,
) -> Result<i64, Error> {
    Ok(redis::cmd("HBLOCK.BEAT")
        .arg(key)
        .arg(owner)
        .arg(token)
        .query(con)?)
}

/// `HBLOCK.RELEASE`: true when this call ended the caller's lease.
pub fn release(
    con: &mut impl ConnectionLike,
    key: &str,
    owner: &[u8],
    token: i64,
) -> RedisResult<bool> {
    let n: i64 = redis::cmd("HBLOCK.RELEASE")
        .arg(key)
        .arg(owner)
        .arg(token)
        .query(con)?;
    Ok(n == 1)
}

/// `HBLOCK.INFO`, field by field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockInfo {
    pub state: String,
    pub owner: Option<Vec<u8>>,
    pub token: i64,
    pub interval: i64,
    pub misses: i64,
    pub missed: i64,
    pub ttl: i64,
    pub beats: i64,
    pub age: i64,
    pub takeovers: i64,
    pub waiters: i64,
    /// 1 when the lease is bound to a connection (BIND), else 0.
    pub bound: i64,
    /// How many owners may hold the lock at once (1 from a module without
    /// permits).
    pub limit: i64,
    /// How many hold it now.
    pub holders: i64,
}

/// INFO's last two fields (the permits issue), after [`INFO_NUMBERS`].
pub const INFO_PERMITS: [&str; 2] = ["limit", "holders"];

impl LockInfo {
    /// The integer fields with their INFO names, in reply order.
    pub fn numbers(&self) -> [(&'static str, i64); 12] {
        let values = [
            self.token,
            self.interval,
            self.misses,
            self.missed,
            self.ttl,
            self.beats,
            self.age,
            self.takeovers,
            self.waiters,
            self.bound,
        ];
        let mut out = [("", 0); 12];
        let permits = INFO_PERMITS.into_iter().zip([self.limit, self.holders]);
        let pairs = INFO_NUMBERS.into_iter().zip(values).chain(permits);
        for (slot, pair) in out.iter_mut().zip(pairs) {
            *slot = pair;
        }
        out
    }

    /// Sets the integer field named `name` (an INFO_NUMBERS name); false for
    /// another name.
    fn set_number(&mut self, name: &[u8], value: i64) -> bool {
        let fields = [
            &mut self.token,
            &mut self.interval,
            &mut self.misses,
            &mut self.missed,
            &mut self.ttl,
            &mut self.beats,
            &mut self.age,
            &mut self.takeovers,
            &mut self.waiters,
            &mut self.bound,
        ];
        match name {
            b"limit" => self.limit = value,
            b"holders" => self.holders = value,
            _ => {
                return match INFO_NUMBERS.iter().position(|n| n.as_bytes() == name) {
                    Some(i) => fields.into_iter().nth(i).map(|f| *f = value).is_some(),
                    None => false,
                }
            }
        }
        true
    }
}

/// `HBLOCK.INFO`: None when the key does not exist.
pub fn info(con: &mut impl ConnectionLike, key: &str) -> RedisResult<Option<LockInfo>> {
    parse_info(redis::cmd("HBLOCK.INFO").arg(key).query(con)?)
}

/// `HBLOCK.WATCH key SEEN seen TIMEOUT ms`: the INFO once the holder differs
/// from `seen` (or the TIMEOUT passed; 0 = no limit).
pub fn watch(
    con: &mut impl ConnectionLike,
    key: &str,
    seen: i64,
    timeout_ms: u64,
) -> RedisResult<Option<LockInfo>> {
    let reply: Value = redis::cmd("HBLOCK.WATCH")
        .arg(key)
        .arg("SEEN")
        .arg(seen)
        .arg("TIMEOUT")
        .arg(timeout_ms)
        .query(con)?;
    parse_info(reply)
}

/// One client blocked in `HBLOCK.ACQUIRE ... WAIT` (an `HBLOCK.WAITERS`
/// entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiter {
    pub owner: Vec<u8>,
    /// Ms since it was queued.
    pub waited: i64,
    /// Ms left of its WAIT; -1 for no limit.
    pub timeout: i64,
    /// Its connection id (`CLIENT LIST`, `CLIENT KILL ID`).
    pub client: i64,
}

/// `HBLOCK.WAITERS key [COUNT n]`: the waiters in queue order (at most
/// `count`, the server's default 100 when None); None when the key does
/// not exist.
pub fn waiters(
    con: &mut impl ConnectionLike,
    key: &str,
    count: Option<u64>,
) -> RedisResult<Option<Vec<Waiter>>> {
    let mut cmd = redis::cmd("HBLOCK.WAITERS");
    cmd.arg(key);
    if let Some(n) = count {
        cmd.arg("COUNT").arg(n);
    }
    parse_waiters(cmd.query(con)?)
}

/// The entries of a list reply (WAITERS, HOLDERS, HISTORY), each parsed by
/// `parse_one`; None for nil (no such key).
fn parse_entries<T>(
    reply: Value,
    command: &str,
    parse_one: fn(Value) -> RedisResult<T>,
) -> RedisResult<Option<Vec<T>>> {
    let entries = match reply {
        Value::Nil => return Ok(None),
        Value::Array(entries) | Value::Set(entries) => entries,
        other => return Err(unexpected_of(command, &other)),
    };
    entries
        .into_iter()
        .map(parse_one)
        .collect::<RedisResult<Vec<_>>>()
        .map(Some)
}

/// A name/value reply as a flat list: a RESP2 array as is, a RESP3 map
/// flattened; anything else is handed back for the caller's error.
fn name_value_items(reply: Value) -> Result<Vec<Value>, Value> {
    match reply {
        Value::Array(items) => Ok(items),
        Value::Map(pairs) => Ok(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect()),
        other => Err(other),
    }
}

fn parse_waiters(reply: Value) -> RedisResult<Option<Vec<Waiter>>> {
    parse_entries(reply, "HBLOCK.WAITERS", parse_waiter)
}

fn parse_waiter(entry: Value) -> RedisResult<Waiter> {
    let items = name_value_items(entry).map_err(|other| unexpected_of("HBLOCK.WAITERS", &other))?;
    let mut waiter = Waiter {
        owner: Vec::new(),
        waited: 0,
        timeout: 0,
        client: 0,
    };
    let mut it = items.into_iter();
    while let (Some(name), Some(value)) = (it.next(), it.next()) {
        let Value::BulkString(name) = name else {
            return Err(unexpected_of("HBLOCK.WAITERS", &name));
        };
        let at = WAITER_FIELDS.iter().position(|f| f.as_bytes() == name);
        match (at, value) {
            (Some(0), Value::BulkString(owner)) => waiter.owner = owner,
            (Some(1), Value::Int(n)) => waiter.waited = n,
            (Some(2), Value::Int(n)) => waiter.timeout = n,
            (Some(3), Value::Int(n)) => waiter.client = n,
            // A field added by a newer module is skipped.
            (None, _) => {}
            (Some(_), other) => return Err(unexpected_of("HBLOCK.WAITERS", &other)),
        }
    }
    Ok(waiter)
}

/// One holder of a lock (an `HBLOCK.HOLDERS` entry): INFO's per-lease
/// fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holding {
    pub owner: Vec<u8>,
    pub token: i64,
    pub interval: i64,
    pub misses: i64,
    pub missed: i64,
    /// Ms until this lease expires.
    pub ttl: i64,
    pub beats: i64,
    /// Ms since it was granted.
    pub age: i64,
    /// 1 when bound to a connection (BIND).
    pub bound: i64,
}

impl Holding {
    /// The integer fields with their names, in reply order.
    pub fn numbers(&self) -> [(&'static str, i64); 8] {
        let values = [
            self.token,
            self.interval,
            self.misses,
            self.missed,
            self.ttl,
            self.beats,
            self.age,
            self.bound,
        ];
        let mut out = [("", 0); 8];
        for (slot, pair) in out
            .iter_mut()
            .zip(HOLDER_FIELDS.into_iter().skip(1).zip(values))
        {
            *slot = pair;
        }
        out
    }
}

/// `HBLOCK.HOLDERS key`: every holder in token order (empty when none);
/// None when the key does not exist.
pub fn holders(con: &mut impl ConnectionLike, key: &str) -> RedisResult<Option<Vec<Holding>>> {
    parse_holders(redis::cmd("HBLOCK.HOLDERS").arg(key).query(con)?)
}

pub(crate) fn parse_holders(reply: Value) -> RedisResult<Option<Vec<Holding>>> {
    parse_entries(reply, "HBLOCK.HOLDERS", parse_holding)
}

fn parse_holding(entry: Value) -> RedisResult<Holding> {
    let items = name_value_items(entry).map_err(|other| unexpected_of("HBLOCK.HOLDERS", &other))?;
    let mut h = Holding {
        owner: Vec::new(),
        token: 0,
        interval: 0,
        misses: 0,
        missed: 0,
        ttl: 0,
        beats: 0,
        age: 0,
        bound: 0,
    };
    let mut it = items.into_iter();
    while let (Some(name), Some(value)) = (it.next(), it.next()) {
        let Value::BulkString(name) = name else {
            return Err(unexpected_of("HBLOCK.HOLDERS", &name));
        };
        let at = HOLDER_FIELDS.iter().position(|f| f.as_bytes() == name);
        let slot = match at {
            Some(1) => &mut h.token,
            Some(2) => &mut h.interval,
            Some(3) => &mut h.misses,
            Some(4) => &mut h.missed,
            Some(5) => &mut h.ttl,
            Some(6) => &mut h.beats,
            Some(7) => &mut h.age,
            Some(8) => &mut h.bound,
            Some(_) => match value {
                Value::BulkString(owner) => {
                    h.owner = owner;
                    continue;
                }
                other => return Err(unexpected_of("HBLOCK.HOLDERS", &other)),
            },
            // A field added by a newer module is skipped.
            None => continue,
        };
        match value {
            Value::Int(n) => *slot = n,
            other => return Err(unexpected_of("HBLOCK.HOLDERS", &other)),
        }
    }
    Ok(h)
}

/// One lease end an `HBLOCK.HISTORY` entry records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ended {
    pub owner: Vec<u8>,
    pub token: i64,
    /// When the lease was granted, Unix ms (the server's clock).
    pub granted: i64,
    /// When it ended, Unix ms.
    pub ended: i64,
    /// How: `released`, `expired`, `unbound`, `undone`.
    pub how: String,
}

/// `HBLOCK.HISTORY key`: the lock's last lease ends, newest first (empty
/// when the server keeps none, `hblock.history 0`); None when the key does
/// not exist.
pub fn history(con: &mut impl ConnectionLike, key: &str) -> RedisResult<Option<Vec<Ended>>> {
    parse_history(redis::cmd("HBLOCK.HISTORY").arg(key).query(con)?)
}

fn parse_history(reply: Value) -> RedisResult<Option<Vec<Ended>>> {
    parse_entries(reply, "HBLOCK.HISTORY", parse_ended)
}

fn parse_ended(entry: Value) -> RedisResult<Ended> {
    let items = name_value_items(entry).map_err(|other| unexpected_of("HBLOCK.HISTORY", &other))?;
    let mut ended = Ended {
        owner: Vec::new(),
        token: 0,
        granted: 0,
        ended: 0,
        how: String::new(),
    };
    let mut it = items.into_iter();
    while let (Some(name), Some(value)) = (it.next(), it.next()) {
        let Value::BulkString(name) = name else {
            return Err(unexpected_of("HBLOCK.HISTORY", &name));
        };
        let at = HISTORY_FIELDS.iter().position(|f| f.as_bytes() == name);
        match (at, value) {
            (Some(0), Value::BulkString(owner)) => ended.owner = owner,
            (Some(1), Value::Int(n)) => ended.token = n,
            (Some(2), Value::Int(n)) => ended.granted = n,
            (Some(3), Value::Int(n)) => ended.ended = n,
            (Some(4), Value::BulkString(how)) => {
                ended.how = String::from_utf8_lossy(&how).into_owned()
            }
            // A field added by a newer module is skipped.
            (None, _) => {}
            (Some(_), other) => return Err(unexpected_of("HBLOCK.HISTORY", &other)),
        }
    }
    Ok(ended)
}

/// INFO's `state` while grants of a lock are held back after a promotion
/// (the failover delay, `hblock.failover-delay`); `ttl` is then the ms left.
pub const HELD_BACK: &str = "held-back";

impl LockInfo {
    /// The token of the live lease, or 0 when the lock is not held.
    pub fn holder(&self) -> i64 {
        if self.state == "held" {
            self.token
        } else {
            0
        }
    }

    /// What to pass back as `HBLOCK.WATCH ... SEEN` so the next change is
    /// not missed: on a one-holder lock its holder's token (0: none); on a
    /// lock of LIMIT > 1 INFO's `token`, the last one issued, which every
    /// grant and every lease end advance.
    pub fn seen(&self) -> i64 {
        if self.limit > 1 {
            self.token
        } else {
            self.holder()
        }
    }

    /// Ms left while grants are held back after a failover, else None.
    pub fn held_back_ms(&self) -> Option<i64> {
        (self.state == HELD_BACK).then_some(self.ttl.max(0))
    }
}

/// Why a lock is not granted now, from its INFO: what `hblock run` logs
/// while waiting and `hblock acquire` when not acquired
/// ([`crate::Client::not_granted`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotGranted {
    /// Another owner holds the lease.
    Held {
        owner: Vec<u8>,
        token: i64,
        ttl_ms: i64,
    },
    /// Every permit of a lock of LIMIT > 1 is held; `owner`'s lease ends
    /// first, in `ttl_ms` at the latest.
    Full {
        limit: i64,
        owner: Vec<u8>,
        ttl_ms: i64,
    },
    /// Grants of this lock are held back after a failover for `left_ms`
    /// more (`hblock.failover-delay`; INFO's state `held-back`).
    HeldBack { left_ms: i64 },
    /// Not held (INFO's `state`, e.g. `free`: granted to the next caller).
    Free { state: String, token: i64 },
    /// No such key.
    Missing,
}

impl NotGranted {
    /// From INFO's reply (None: no such key).
    pub fn from_info(info: Option<&LockInfo>) -> NotGranted {
        match info {
            None => NotGranted::Missing,
            Some(i) if i.limit > 1 && i.holders >= i.limit => NotGranted::Full {
                limit: i.limit,
                owner: i.owner.clone().unwrap_or_default(),
                ttl_ms: i.ttl,
            },
            Some(i) if i.state == "held" => NotGranted::Held {
                owner: i.owner.clone().unwrap_or_default(),
                token: i.token,
                ttl_ms: i.ttl,
            },
            Some(i) => match i.held_back_ms() {
                Some(left_ms) => NotGranted::HeldBack { left_ms },
                None => NotGranted::Free {
                    state: i.state.clone(),
                    token: i.token,
                },
            },
        }
    }
}

impl std::fmt::Display for NotGranted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotGranted::Held {
                owner,
                token,
                ttl_ms,
            } => write!(
                f,
                "held by {} token={token} ttl={ttl_ms}ms",
                crate::owner::owner_text(owner)
            ),
            NotGranted::Full {
                limit,
                owner,
                ttl_ms,
            } => write!(
                f,
                "all {limit} permits held; the first to end is {}'s, ttl={ttl_ms}ms",
                crate::owner::owner_text(owner)
            ),
            NotGranted::HeldBack { left_ms } => write!(
                f,
                "grants are held back after a failover for {left_ms} ms (hblock.failover-delay)"
            ),
            NotGranted::Free { state, token } => write!(f, "{state} (token {token})"),
            NotGranted::Missing => write!(f, "no such lock yet"),
        }
    }
}

pub(crate) fn parse_info(reply: Value) -> RedisResult<Option<LockInfo>> {
    if reply == Value::Nil {
        return Ok(None);
    }
    let items = name_value_items(reply).map_err(|other| unexpected(&other))?;
    let mut info = LockInfo {
        state: String::new(),
        owner: None,
        token: 0,
        interval: 0,
        misses: 0,
        missed: 0,
        ttl: 0,
        beats: 0,
        age: 0,
        takeovers: 0,
        waiters: 0,
        bound: 0,
        limit: 0,
        holders: -1,
    };
    let mut it = items.into_iter();
    while let (Some(name), Some(value)) = (it.next(), it.next()) {
        let Value::BulkString(name) = name else {
            return Err(unexpected(&name));
        };
        match (name.as_slice(), value) {
            (b"state", Value::BulkString(s)) => {
                info.state = String::from_utf8_lossy(&s).into_owned()
            }
            (b"owner", Value::BulkString(o)) => info.owner = Some(o),
            (b"owner", Value::Nil) => info.owner = None,
            // A field added by a newer module is skipped.
            (field, Value::Int(n)) => {
                info.set_number(field, n);
            }
            (_, other) => return Err(unexpected(&other)),
        }
    }
    // A module without permits: one holder at most.
    if info.limit < 1 {
        info.limit = 1;
    }
    if info.holders < 0 {
        info.holders = i64::from(info.state == "held");
    }
    Ok(Some(info))
}

fn unexpected(value: &Value) -> RedisError {
    unexpected_of("HBLOCK.INFO", value)
}

fn unexpected_of(command: &str, value: &Value) -> RedisError {
    RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unexpected reply",
        format!("{command}: {value:?}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(state: &str, owner: Option<&str>, ttl: i64) -> Value {
        let mut items = vec![
            Value::BulkString(b"state".to_vec()),
            Value::BulkString(state.as_bytes().to_vec()),
            Value::BulkString(b"owner".to_vec()),
            owner.map_or(Value::Nil, |o| Value::BulkString(o.as_bytes().to_vec())),
        ];
        for (name, value) in INFO_NUMBERS
            .iter()
            .zip([0, 1000, 3, 0, ttl, 0, -1, 0, 2, 0])
        {
            items.push(Value::BulkString(name.as_bytes().to_vec()));
            items.push(Value::Int(value));
        }
        Value::Array(items)
    }

    #[test]
    fn waiters_are_parsed_from_resp2_and_resp3() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let flat = Value::Array(vec![
            bulk("owner"),
            bulk("w1"),
            bulk("waited"),
            Value::Int(80),
            bulk("timeout"),
            Value::Int(-1),
            bulk("client"),
            Value::Int(12),
            bulk("later"),
            Value::Int(1),
        ]);
        let map = Value::Map(vec![
            (bulk("owner"), Value::BulkString(vec![0xff])),
            (bulk("waited"), Value::Int(5)),
            (bulk("timeout"), Value::Int(900)),
            (bulk("client"), Value::Int(13)),
        ]);
        let parsed = parse_waiters(Value::Array(vec![flat, map]))
            .unwrap()
            .unwrap();
        assert_eq!(
            parsed,
            [
                Waiter {
                    owner: b"w1".to_vec(),
                    waited: 80,
                    timeout: -1,
                    client: 12
                },
                Waiter {
                    owner: vec![0xff],
                    waited: 5,
                    timeout: 900,
                    client: 13
                }
            ]
        );
        assert_eq!(parse_waiters(Value::Nil).unwrap(), None);
        assert_eq!(parse_waiters(Value::Array(vec![])).unwrap(), Some(vec![]));
        assert!(parse_waiters(Value::Int(1)).is_err());
        assert!(parse_waiters(Value::Array(vec![Value::Array(vec![
            bulk("waited"),
            bulk("x")
        ])]))
        .is_err());
    }

    #[test]
    fn holders_are_parsed_from_resp2_and_resp3() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let mut flat = Vec::new();
        for (i, name) in HOLDER_FIELDS.iter().enumerate() {
            flat.push(bulk(name));
            flat.push(if i == 0 {
                bulk("a")
            } else {
                Value::Int(i as i64)
            });
        }
        flat.extend([bulk("later"), Value::Int(9)]);
        let map = Value::Map(vec![
            (bulk("owner"), Value::BulkString(vec![0xff])),
            (bulk("token"), Value::Int(12)),
            (bulk("ttl"), Value::Int(900)),
        ]);
        let parsed = parse_holders(Value::Array(vec![Value::Array(flat), map]))
            .unwrap()
            .unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].owner, b"a");
        assert_eq!(
            parsed[0].numbers(),
            [
                ("token", 1),
                ("interval", 2),
                ("misses", 3),
                ("missed", 4),
                ("ttl", 5),
                ("beats", 6),
                ("age", 7),
                ("bound", 8)
            ]
        );
        assert_eq!(
            (parsed[1].owner.as_slice(), parsed[1].token, parsed[1].ttl),
            (&[0xff][..], 12, 900)
        );
        assert_eq!(parse_holders(Value::Nil).unwrap(), None);
        assert!(parse_holders(Value::Int(1)).is_err());
        assert!(parse_holders(Value::Array(vec![Value::Array(vec![
            bulk("token"),
            bulk("x")
        ])]))
        .is_err());
    }

    #[test]
    fn limit_and_holders_are_read_or_defaulted() {
        // A module without permits: limit 1, holders from the state.
        let old = parse_info(reply("held", Some("a"), 900)).unwrap().unwrap();
        assert_eq!((old.limit, old.holders, old.seen()), (1, 1, 0));
        let Value::Array(mut items) = reply("held", Some("a"), 900) else {
            unreachable!()
        };
        for (name, value) in INFO_PERMITS.iter().zip([3, 3]) {
            items.push(Value::BulkString(name.as_bytes().to_vec()));
            items.push(Value::Int(value));
        }
        let mut info = parse_info(Value::Array(items)).unwrap().unwrap();
        info.token = 17;
        assert_eq!((info.limit, info.holders), (3, 3));
        // SEEN of a LIMIT > 1 lock is the last token issued.
        assert_eq!(info.seen(), 17);
        let names: Vec<&str> = info.numbers().iter().map(|(n, _)| *n).collect();
        assert_eq!(&names[10..], ["limit", "holders"]);
        assert_eq!(
            NotGranted::from_info(Some(&info)).to_string(),
            "all 3 permits held; the first to end is a's, ttl=900ms"
        );
        info.holders = 2;
        assert!(matches!(
            NotGranted::from_info(Some(&info)),
            NotGranted::Held { .. }
        ));
    }

    #[test]
    fn history_entries_are_parsed() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let entry = Value::Array(vec![
            bulk("owner"),
            bulk("a"),
            bulk("token"),
            Value::Int(7),
            bulk("granted"),
            Value::Int(1000),
            bulk("ended"),
            Value::Int(2500),
            bulk("how"),
            bulk("expired"),
        ]);
        let parsed = parse_history(Value::Array(vec![entry])).unwrap().unwrap();
        assert_eq!(
            parsed,
            [Ended {
                owner: b"a".to_vec(),
                token: 7,
                granted: 1000,
                ended: 2500,
                how: "expired".into()
            }]
        );
        assert_eq!(parse_history(Value::Nil).unwrap(), None);
        assert!(parse_history(Value::Array(vec![Value::Array(vec![
            bulk("token"),
            bulk("x")
        ])]))
        .is_err());
    }

    #[test]
    fn held_back_is_parsed_and_explained() {
        let info = parse_info(reply("held-back", None, 2500)).unwrap().unwrap();
        assert_eq!((info.state.as_str(), info.holder()), ("held-back", 0));
        assert_eq!(info.held_back_ms(), Some(2500));
        assert_eq!(info.waiters, 2);
        let why = NotGranted::from_info(Some(&info));
        assert_eq!(why, NotGranted::HeldBack { left_ms: 2500 });
        assert_eq!(
            why.to_string(),
            "grants are held back after a failover for 2500 ms (hblock.failover-delay)"
        );
        let held = parse_info(reply("held", Some("a/1"), 900))
            .unwrap()
            .unwrap();
        assert_eq!(held.held_back_ms(), None);
        assert_eq!(
            NotGranted::from_info(Some(&held)).to_string(),
            "held by a/1 token=0 ttl=900ms"
        );
        assert_eq!(NotGranted::from_info(None).to_string(), "no such lock yet");
    }
}
