//! One function per HBLOCK command, with typed replies.

use crate::Error;
use hblock_core::proto::INFO_NUMBERS;
use redis::{ConnectionLike, RedisError, RedisResult, Value};

/// ACQUIRE's options: INTERVAL, MISSES, WAIT and BIND (None: not sent).
#[derive(Clone, Copy, Debug, Default)]
pub struct AcquireArgs {
    pub interval_ms: Option<u64>,
    pub misses: Option<u64>,
    /// None = do not block, Some(0) = no limit.
    pub wait_ms: Option<u64>,
    /// Bind the lease to this connection with this grace.
    pub bind_ms: Option<u64>,
}

/// `HBLOCK.ACQUIRE`: the fencing token, or None when another owner holds the
/// lock (or WAIT ran out).
pub fn acquire(
    con: &mut impl ConnectionLike,
    key: &str,
    owner: &[u8],
    args: AcquireArgs,
) -> RedisResult<Option<i64>> {
    let AcquireArgs {
        interval_ms,
        misses,
        wait_ms,
        bind_ms,
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
    cmd.query(con)
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
}

impl LockInfo {
    /// The integer fields with their INFO names, in reply order.
    pub fn numbers(&self) -> [(&'static str, i64); 10] {
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
        let mut out = [("", 0); 10];
        for (slot, pair) in out.iter_mut().zip(INFO_NUMBERS.into_iter().zip(values)) {
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
        match INFO_NUMBERS.iter().position(|n| n.as_bytes() == name) {
            Some(i) => fields.into_iter().nth(i).map(|f| *f = value).is_some(),
            None => false,
        }
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

impl LockInfo {
    /// The token of the live lease, or 0 when the lock is not held.
    pub fn holder(&self) -> i64 {
        if self.state == "held" {
            self.token
        } else {
            0
        }
    }
}

fn parse_info(reply: Value) -> RedisResult<Option<LockInfo>> {
    let items = match reply {
        Value::Nil => return Ok(None),
        Value::Array(items) => items,
        Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        other => return Err(unexpected(&other)),
    };
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
    Ok(Some(info))
}

fn unexpected(value: &Value) -> RedisError {
    RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "unexpected HBLOCK.INFO reply",
        format!("{value:?}"),
    ))
}
