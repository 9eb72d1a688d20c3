//! `HBLOCK.APPLY key phase owner token interval misses beats granted last_beat takeovers`
//!
//! Internal: how the master replicates a lock and how an AOF rewrite stores one.
//! It sets the record to exactly these values. Any other caller is refused, or
//! any client could forge lock records (7.0 has no "internal command" flag).

use super::{byte_args, create_lock, lock_at, signal_modified};
use crate::blocking;
use crate::error::Error;
use crate::lease::Phase;
use crate::record::Fields;
use redis_module::{Context, ContextFlags, RedisResult, RedisString, RedisValue};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if !ctx
        .get_flags()
        .intersects(ContextFlags::REPLICATED | ContextFlags::LOADING)
    {
        return Err(Error::InternalOnly.into());
    }
    let [_, key, fields @ ..] = args.as_slice() else {
        return Err(Error::Arity.into());
    };
    let fields = byte_args(fields);
    let lease = Fields::from_args(&fields)
        .and_then(Fields::to_lease)
        .ok_or(Error::BadRecord)?;
    // Watched here too, so a promoted replica takes over expired leases.
    let held_until = (lease.phase == Phase::Held).then(|| lease.deadline_ms());
    let handle = ctx.open_key_writable(key);
    match lock_at(&handle)? {
        Some(current) => *current = lease,
        None => {
            create_lock(&handle, lease)?;
        }
    }
    signal_modified(ctx, key);
    if let Some(deadline) = held_until {
        blocking::watch_lease(ctx.ctx, blocking::lock_id(ctx, key), deadline);
    }
    Ok(RedisValue::SimpleStringStatic("OK"))
}
