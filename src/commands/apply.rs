//! `HBLOCK.APPLY key phase owner token interval misses beats granted last_beat takeovers`
//! `HBLOCK.APPLY key <record>`
//!
//! Internal: how the master replicates a lock (the compact binary form, one
//! argument) and how an AOF rewrite stores one (the ten fields; older AOF
//! files hold only this form).
//! It sets the record to exactly these values. Any other caller is refused, or
//! any client could forge lock records (7.0 has no "internal command" flag).

use super::{byte_args, create_lock, lock_at, signal_modified};
use crate::blocking;
use crate::command_info::{Kind, Spec, KEY, OWNER, TOKEN};
use crate::error::Error;
use hblock_core::record::Fields;
use redis_module::{raw, Context, ContextFlags, RedisResult, RedisString, RedisValue};

/// What Redis is told about this command (registration, COMMAND INFO/DOCS).
pub const SPEC: Spec = Spec {
    name: c"hblock.apply",
    flags: "write",
    acl: c"write",
    summary: c"Internal: sets a lock record (these fields, or one compact binary record); used by replication and AOF only.",
    arity: -3,
    key_flags: raw::REDISMODULE_CMD_KEY_OW | raw::REDISMODULE_CMD_KEY_UPDATE,
    wraps: false,
    args: &[
        KEY,
        (c"phase", Kind::Integer, None),
        OWNER,
        TOKEN,
        (c"interval", Kind::Integer, None),
        (c"misses", Kind::Integer, None),
        (c"beats", Kind::Integer, None),
        (c"granted", Kind::Integer, None),
        (c"last-beat", Kind::Integer, None),
        (c"takeovers", Kind::Integer, None),
    ],
};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if !ctx
        .get_flags()
        .intersects(ContextFlags::REPLICATED | ContextFlags::LOADING)
    {
        return Err(Error::InternalOnly(c"HBLOCK.APPLY").into());
    }
    let [_, key, fields @ ..] = args.as_slice() else {
        return Err(Error::Arity.into());
    };
    let fields = byte_args(fields);
    let parsed = match fields.as_slice() {
        [record] => Fields::from_compact(record),
        _ if fields.len() == hblock_core::record::NUMBERS.len() + 1 => Fields::from_args(&fields),
        _ => return Err(Error::Arity.into()),
    };
    let lease = parsed.and_then(Fields::to_lease).ok_or(Error::BadRecord)?;
    let handle = ctx.open_key_writable(key);
    let record = match lock_at(&handle)? {
        Some(current) => {
            // Keep the local bookkeeping of the record being replaced.
            let check_at = current.check_at;
            *current = lease;
            current.check_at = check_at;
            current
        }
        None => create_lock(&handle, lease)?,
    };
    signal_modified(ctx, key);
    // Module commands propagate themselves: on a replica this puts the record
    // in its own AOF and counts it toward its save points (sub-replicas get
    // the master's stream as it is). Nothing is propagated while loading.
    ctx.replicate_verbatim();
    // Watched here too, so a promoted replica takes over expired leases.
    crate::tokens::observe(record);
    if crate::watch::any() {
        let holder = super::info::holder(Some(record), super::now_ms());
        crate::watch::notify(&blocking::lock_id(ctx, key), holder);
    }
    blocking::watch_lease(ctx.ctx, || blocking::lock_id(ctx, key), record);
    Ok(RedisValue::SimpleStringStatic("OK"))
}
