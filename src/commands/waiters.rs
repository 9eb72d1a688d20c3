//! `HBLOCK.WAITERS key [COUNT n]`
//!
//! The clients blocked in `HBLOCK.ACQUIRE ... WAIT` on a lock, in queue
//! order (the first is granted next), at most COUNT (default 100). Each is
//! a map (RESP2: flat array) of `owner`, `waited` (ms since it queued),
//! `timeout` (ms left of its WAIT, -1 for none) and `client` (its
//! connection id, as `CLIENT LIST` / `CLIENT KILL ID` name it). An empty
//! array for a lock nobody waits on; nil for a missing key (unless clients
//! wait on it, e.g. while its grants are held back); WRONGTYPE for a key of
//! another type. Read-only: the queue lives in this server's memory, so a
//! replica answers its own queue, which is empty.

use super::common::byte_args;
use crate::error::Error;
use crate::spec::{Kind, Spec, KEY};
use crate::{blocking, ffi, store};
use hblock_core::args;
use hblock_core::proto::WAITER_FIELDS;
use redis_module::{raw, Context, RedisResult, RedisString, RedisValue};

/// What Redis is told about this command (registration, COMMAND INFO/DOCS).
pub const SPEC: Spec = Spec {
    name: c"hblock.waiters",
    flags: "readonly fast",
    acl: c"read fast",
    summary:
        c"Lists the clients waiting for a lock, in queue order: owner, waited, timeout, client id.",
    arity: -2,
    key_flags: raw::REDISMODULE_CMD_KEY_RO | raw::REDISMODULE_CMD_KEY_ACCESS,
    wraps: false,
    args: &[KEY, (c"count", Kind::Integer, Some(c"COUNT"))],
};

pub fn run(ctx: &Context, args: &[RedisString]) -> RedisResult {
    let [_, key, options @ ..] = args else {
        return Err(Error::Arity.into());
    };
    let count = args::waiters_options(&byte_args(options)).map_err(Error::from)?;
    let exists = store::read_lock(ctx, key, |lease| lease.is_some())?;
    let limit = usize::try_from(count).unwrap_or(usize::MAX);
    let waiters = blocking::waiter_list(ctx, key, limit);
    if !exists && waiters.is_empty() {
        return Ok(RedisValue::Null);
    }
    let now = ffi::now_ms();
    ffi::reply_array(ctx.ctx, waiters.len());
    for waiter in &waiters {
        let waited = now.saturating_sub(waiter.caller.queued_ms).max(0);
        let timeout = waiter
            .deadline_ms
            .map_or(-1, |deadline| deadline.saturating_sub(now).max(0));
        let client = i64::try_from(waiter.caller.client).unwrap_or(i64::MAX);
        ffi::reply_map(ctx.ctx, WAITER_FIELDS.len());
        let [owner, waited_name, timeout_name, client_name] = WAITER_FIELDS;
        ffi::reply_bulk(ctx.ctx, owner.as_bytes());
        ffi::reply_bulk(ctx.ctx, &waiter.owner);
        for (name, value) in [
            (waited_name, waited),
            (timeout_name, timeout),
            (client_name, client),
        ] {
            ffi::reply_bulk(ctx.ctx, name.as_bytes());
            ffi::reply_integer(ctx.ctx, value);
        }
    }
    Ok(RedisValue::NoReply)
}
