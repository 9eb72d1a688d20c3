//! `HBLOCK.CHECK key owner token`
//!
//! `OK` when `owner` holds the live lease of `key` under `token`, else the
//! same `NOTHELD ...` errors as BEAT. Records nothing: the guard for scripts,
//! `redis.call('HBLOCK.CHECK', KEYS[1], ARGV[1], ARGV[2])` first in a Lua
//! script or Function aborts it before any of its writes.

use super::now_ms;
use crate::command_info::{Spec, KEY, OWNER, TOKEN};
use crate::error::Error;
use crate::record::LOCK_TYPE;
use crate::stats;
use hblock_core::lease::{Lease, NotHeld};
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

/// Whether (owner, token) holds the live lease of `key` now. Read-only.
pub fn holds(ctx: &Context, key: &RedisString, owner: &[u8], token: u64) -> Result<(), Error> {
    let handle = ctx.open_key(key);
    let lease = handle
        .get_value::<Lease>(&LOCK_TYPE)
        .map_err(|_| Error::WrongType)?;
    let verdict = match lease {
        None => Err(NotHeld::NoSuchLock),
        Some(lease) => lease.check(owner, token, now_ms()),
    };
    verdict.map_err(|why| {
        stats::bump(&stats::NOTHELD);
        Error::NotHeld(why)
    })
}

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let [_, key, owner, token] = args.as_slice() else {
        return Err(Error::Arity.into());
    };
    let owner = hblock_core::args::owner(owner.as_slice()).map_err(Error::from)?;
    let token = hblock_core::args::token(token.as_slice()).map_err(Error::from)?;
    holds(ctx, key, owner, token)?;
    Ok(RedisValue::SimpleStringStatic("OK"))
}
