//! `HBLOCK.CHECK key owner token`
//!
//! `OK` when `owner` holds the live lease of `key` under `token`, else the
//! same `NOTHELD ...` errors as BEAT. Records nothing: the guard for scripts,
//! `redis.call('HBLOCK.CHECK', KEYS[1], ARGV[1], ARGV[2])` first in a Lua
//! script or Function aborts it before any of its writes.

use super::common::owner_and_token;
use crate::error::Error;
use crate::spec::{Spec, KEY, OWNER, TOKEN};
use crate::{ffi, view};
use redis_module::{raw, Context, RedisResult, RedisString, RedisValue};

/// What Redis is told about this command (registration, COMMAND INFO/DOCS).
pub const SPEC: Spec = Spec {
    name: c"hblock.check",
    flags: "readonly fast",
    acl: c"read fast",
    summary: c"OK when owner holds the live lease under token, else NOTHELD; records nothing.",
    arity: 4,
    key_flags: raw::REDISMODULE_CMD_KEY_RO | raw::REDISMODULE_CMD_KEY_ACCESS,
    wraps: false,
    args: &[KEY, OWNER, TOKEN],
};

pub fn run(ctx: &Context, args: &[RedisString]) -> RedisResult {
    let [_, key, owner, token] = args else {
        return Err(Error::Arity.into());
    };
    let (owner, token) = owner_and_token(owner, token)?;
    view::holds(ctx, key, owner, token)?;
    ffi::reply_ok(ctx.ctx);
    Ok(RedisValue::NoReply)
}
