//! `HBLOCK.WATCH key [SEEN token] [TIMEOUT ms]`
//!
//! Answers the lock's INFO reply (nil for a missing key) as soon as its
//! holder differs from `SEEN` (the token of the lease the caller last saw
//! held, 0 for "no holder", the default): at once if it already does, else
//! when a grant, release, expiry, takeover, deletion or overwrite makes it
//! so, or when TIMEOUT ms pass (0: no limit) with the reply unchanged.
//! Read-only: works on replicas. Inside MULTI or Lua it answers at once.

use super::now_ms;
use crate::command_info::{Kind, Spec, KEY};
use crate::error::Error;
use crate::record::LOCK_TYPE;
use hblock_core::args;
use hblock_core::lease::Lease;
use redis_module::{raw, Context, RedisResult, RedisString, RedisValue};

/// What Redis is told about this command (registration, COMMAND INFO/DOCS).
pub const SPEC: Spec = Spec {
    name: c"hblock.watch",
    flags: "readonly blocking",
    acl: c"read blocking",
    summary: c"Blocks until the lock's holder differs from the token last seen; returns its INFO.",
    arity: -2,
    key_flags: raw::REDISMODULE_CMD_KEY_RO | raw::REDISMODULE_CMD_KEY_ACCESS,
    wraps: false,
    args: &[
        KEY,
        (c"token", Kind::Integer, Some(c"SEEN")),
        (c"ms", Kind::Integer, Some(c"TIMEOUT")),
    ],
};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let [_, key, rest @ ..] = args.as_slice() else {
        return Err(Error::Arity.into());
    };
    let (seen, timeout_ms) = args::watch_options(&super::byte_args(rest)).map_err(Error::from)?;
    let holder = {
        let handle = ctx.open_key(key);
        let lease = handle
            .get_value::<Lease>(&LOCK_TYPE)
            .map_err(|_| Error::WrongType)?;
        super::info::holder(lease, now_ms())
    };
    if holder == seen && crate::blocking::can_block(ctx) {
        let lock = crate::blocking::lock_id(ctx, key);
        if crate::watch::block(ctx.ctx, lock, seen, timeout_ms) {
            return Ok(RedisValue::NoReply);
        }
    }
    super::info::reply_info(ctx, key)
}
