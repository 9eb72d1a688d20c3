//! One function per HBLOCK command, with typed replies.

use crate::error::Error;
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
    cmd
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
