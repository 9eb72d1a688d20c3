//! `HBLOCK.INFO key`
//!
//! nil for a missing key, else a map (RESP2: flat array) of fixed field order.
//! Field names and the state are bulk strings, as XINFO replies, so Lua sees
//! plain strings. Read-only: an expired lease shows `expired` without being
//! written.

use super::now_ms;
use crate::command_info::{Spec, KEY};
use crate::error::Error;
use crate::record::LOCK_TYPE;
use hblock_core::lease::Lease;
use hblock_core::proto::{INFO_NUMBERS, STATE_HELD_BACK as HELD_BACK};
use redis_module::{raw, Context, RedisResult, RedisString, RedisValue};

/// What Redis is told about this command (registration, COMMAND INFO/DOCS).
pub const SPEC: Spec = Spec {
    name: c"hblock.info",
    flags: "readonly fast",
    acl: c"read fast",
    summary: c"Returns the state of a lock: holder, token, terms, missed beats, ttl and counters.",
    arity: 2,
    key_flags: raw::REDISMODULE_CMD_KEY_RO | raw::REDISMODULE_CMD_KEY_ACCESS,
    wraps: false,
    args: &[KEY],
};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let [_, key] = args.as_slice() else {
        return Err(Error::Arity.into());
    };
    reply_info(ctx, key)
}

/// The lock's holder: the token of its live lease, or 0 (free, released,
/// expired, missing). HBLOCK.WATCH compares it with what a watcher saw.
pub fn holder(lease: Option<&Lease>, now: i64) -> u64 {
    lease.map_or(0, |l| l.holder(now))
}

/// Replies with the INFO of the lock named `key` (a blocked client's reply).
pub fn reply_lock(ctx: *mut raw::RedisModuleCtx, key: &[u8]) {
    let context = Context::new(ctx);
    let key = RedisString::create_from_slice(ctx, key);
    match reply_info(&context, &key) {
        Ok(RedisValue::Null) => crate::ffi::reply_null(ctx),
        Ok(_) => {}
        Err(err) => crate::ffi::reply_error(ctx, &err.to_string()),
    }
}

/// Replies INFO's map, or answers Null (missing key) or an error.
pub fn reply_info(ctx: &Context, key: &RedisString) -> RedisResult {
    let handle = ctx.open_key(key);
    let lease = handle
        .get_value::<Lease>(&LOCK_TYPE)
        .map_err(|_| Error::WrongType)?;
    let now = now_ms();
    let waiters = crate::blocking::waiters(ctx, key) as u64;
    let Some(lease) = lease else {
        // Grants held back after a promotion: a key with no record says so.
        if crate::tokens::hold_left(None, now) > 0 {
            let none = Lease::never_held(crate::config::default_terms());
            reply_view(ctx, &none, now, (waiters, false));
            return Ok(RedisValue::NoReply);
        }
        return Ok(RedisValue::Null);
    };
    let bound = holder(Some(lease), now) != 0
        && crate::binding::is_bound(|| crate::blocking::lock_id(ctx, key), lease.token);
    reply_view(ctx, lease, now, (waiters, bound));
    Ok(RedisValue::NoReply)
}

/// `extra`: the waiters on the lock and whether its lease is bound.
fn reply_view(ctx: &Context, lease: &Lease, now: i64, extra: (u64, bool)) {
    let (waiters, bound) = extra;
    let view = lease.view(now);
    // A lock not held, after a promotion: `held-back`, ttl the delay left.
    let held_off = match view.state {
        hblock_core::lease::State::Held => 0,
        _ => crate::tokens::hold_left(Some(lease), now),
    };
    let (state, ttl) = if held_off > 0 {
        (HELD_BACK, held_off)
    } else {
        (view.state.name(), view.ttl_ms)
    };
    // In the order of INFO_NUMBERS (hblock_core::proto), which names them.
    let numbers: [i64; 10] = [
        view.token as i64,
        i64::from(view.interval_ms),
        i64::from(view.misses),
        view.missed as i64,
        ttl,
        view.beats as i64,
        view.age_ms,
        view.takeovers as i64,
        waiters as i64,
        i64::from(bound),
    ];
    let bulk = |bytes: &[u8]| crate::ffi::reply_bulk(ctx.ctx, bytes);
    crate::ffi::reply_map(ctx.ctx, 2 + numbers.len());
    bulk(b"state");
    bulk(state.as_bytes());
    bulk(b"owner");
    match view.owner {
        Some(owner) => bulk(owner),
        None => crate::ffi::reply_null(ctx.ctx),
    };
    for (name, value) in INFO_NUMBERS.into_iter().zip(numbers) {
        bulk(name.as_bytes());
        crate::ffi::reply_integer(ctx.ctx, value);
    }
}
