//! `HBLOCK.HOLDERS key`
//!
//! Every live lease of the lock, in token order: each a map (RESP2: flat
//! name-value array) of `owner token interval misses missed ttl beats age
//! bound`, INFO's per-lease fields. An empty array for a missing key or a
//! lock nobody holds. Read-only, like INFO.

use crate::error::Error;
use crate::spec::{Spec, KEY};
use crate::view;
use redis_module::{raw, Context, RedisResult, RedisString};

/// What Redis is told about this command (registration, COMMAND INFO/DOCS).
pub const SPEC: Spec = Spec {
    name: c"hblock.holders",
    flags: "readonly fast",
    acl: c"read fast",
    summary: c"Returns every live lease of a lock in token order: owner, token, terms, missed beats, ttl, beats, age, bound.",
    arity: 2,
    key_flags: raw::REDISMODULE_CMD_KEY_RO | raw::REDISMODULE_CMD_KEY_ACCESS,
    wraps: false,
    args: &[KEY],
};

pub fn run(ctx: &Context, args: &[RedisString]) -> RedisResult {
    let [_, key] = args else {
        return Err(Error::Arity.into());
    };
    view::reply_holders(ctx, key)
}
