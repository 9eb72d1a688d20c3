//! `HBLOCK.INFO key`
//!
//! nil for a missing key, else a map (RESP2: flat array) of fixed field order.
//! Field names and the state are bulk strings, as XINFO replies, so Lua sees
//! plain strings. Read-only: an expired lease shows `expired` without being
//! written.

use crate::error::Error;
use crate::spec::{Spec, KEY};
use crate::view;
use redis_module::{raw, Context, RedisResult, RedisString};

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

pub fn run(ctx: &Context, args: &[RedisString]) -> RedisResult {
    let [_, key] = args else {
        return Err(Error::Arity.into());
    };
    view::reply_info(ctx, key)
}
