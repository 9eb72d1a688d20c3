//! `HBLOCK.LIMIT key n`
//!
//! Sets how many owners may hold the lock at once (1..1000) and replies the
//! new limit. Raising it grants waiters at once, FIFO, as a release would;
//! lowering it ends no lease, it only stops grants until fewer than n hold.
//! A missing key becomes a free lock of that limit (token 0), so that the
//! limit is in place before the first ACQUIRE ... LIMIT n.

use super::common::refuse_on_replica;
use crate::error::Error;
use crate::spec::{Kind, Spec, KEY, RW_UPDATE};
use crate::{blocking, eviction, ffi, store, waiters};
use hblock_core::args;
use redis_module::{Context, RedisResult, RedisString, RedisValue};

/// What Redis is told about this command (registration, COMMAND INFO/DOCS).
pub const SPEC: Spec = Spec {
    name: c"hblock.limit",
    flags: "write deny-oom",
    acl: c"write",
    summary: c"Sets how many owners may hold a lock at once; raising it grants waiters at once.",
    arity: 3,
    key_flags: RW_UPDATE,
    wraps: false,
    args: &[KEY, (c"limit", Kind::Integer, None)],
};

pub fn run(ctx: &Context, args: &[RedisString]) -> RedisResult {
    let [_, key, limit] = args else {
        return Err(Error::Arity.into());
    };
    refuse_on_replica(ctx)?;
    let limit = args::limit(limit.as_slice()).map_err(Error::from)?;
    let now = ffi::now_ms();
    let handle = store::open(ctx, key);
    match store::lock_at(&handle)? {
        Some(lease) => {
            let fx = lease.set_limit(limit, now);
            store::commit(ctx, key, lease, fx, now);
        }
        None if eviction::over_maxmemory(ctx) => return Err(Error::Oom.into()),
        None => store::create_free(ctx, key, &handle, limit, now)?,
    }
    // A raised limit frees permits: the waiters at the head get them now.
    if let Some(lock) = blocking::waiting_lock(ctx, key) {
        waiters::serve(ctx, key, &handle, &lock, now)?;
    }
    Ok(RedisValue::Integer(i64::from(limit)))
}
