//! `HBLOCK.HISTORY key`
//!
//! The lock's last lease ends, newest first, as its record keeps them
//! (`hblock.history` N, 0 by default: none). Each is a map (RESP2: flat
//! array) of `owner`, `token`, `granted` and `ended` (Unix ms) and `how`
//! (`released`, `expired`, `unbound`, `undone`). An empty array when the lock
//! keeps none, nil for a missing key, WRONGTYPE for a key of another type.
//! Read-only; a replica answers the same history as its master (the history
//! is part of the replicated record).

use crate::error::Error;
use crate::spec::{Spec, KEY};
use crate::{ffi, store};
use hblock_core::history;
use hblock_core::proto::HISTORY_FIELDS;
use redis_module::{raw, Context, RedisResult, RedisString, RedisValue};

/// What Redis is told about this command (registration, COMMAND INFO/DOCS).
pub const SPEC: Spec = Spec {
    name: c"hblock.history",
    flags: "readonly fast",
    acl: c"read fast",
    summary: c"Lists a lock's last lease ends, newest first: owner, token, granted, ended, how.",
    arity: 2,
    key_flags: raw::REDISMODULE_CMD_KEY_RO | raw::REDISMODULE_CMD_KEY_ACCESS,
    wraps: false,
    args: &[KEY],
};

pub fn run(ctx: &Context, args: &[RedisString]) -> RedisResult {
    let [_, key] = args else {
        return Err(Error::Arity.into());
    };
    let reply = store::read_lock(ctx, key, |lease| {
        let Some(lease) = lease else {
            return RedisValue::Null;
        };
        // Validated when the record arrived; an unreadable one shows empty.
        let entries = history::entries(lease.owner.history()).unwrap_or_default();
        let [owner, token, granted, ended, how] = HISTORY_FIELDS;
        ffi::reply_array(ctx.ctx, entries.len());
        for entry in &entries {
            ffi::reply_map(ctx.ctx, HISTORY_FIELDS.len());
            ffi::reply_bulk(ctx.ctx, owner.as_bytes());
            ffi::reply_bulk(ctx.ctx, entry.owner);
            for (name, value) in [
                (token, entry.token as i64),
                (granted, entry.granted_ms),
                (ended, entry.ended_ms),
            ] {
                ffi::reply_bulk(ctx.ctx, name.as_bytes());
                ffi::reply_integer(ctx.ctx, value);
            }
            ffi::reply_bulk(ctx.ctx, how.as_bytes());
            ffi::reply_bulk(ctx.ctx, entry.how.name().as_bytes());
        }
        RedisValue::NoReply
    })?;
    Ok(reply)
}
