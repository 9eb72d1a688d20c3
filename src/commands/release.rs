//! `HBLOCK.RELEASE key owner token`
//!
//! Reply: 1 when this call ended the caller's unexpired lease, else 0. The key
//! stays, free, keeping its token so the next lease gets token + 1; the first
//! client waiting in ACQUIRE gets it at once.

use super::{commit, lock_at, now_ms, refuse_on_replica};
use crate::args;
use crate::blocking;
use crate::error::Error;
use redis_module::{Context, RedisResult, RedisString, RedisValue};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let [_, key, owner, token] = args.as_slice() else {
        return Err(Error::Arity.into());
    };
    refuse_on_replica(ctx)?;
    let owner = args::owner(owner.as_slice()).map_err(Error::from)?;
    let token = args::token(token.as_slice()).map_err(Error::from)?;
    let now = now_ms();

    let handle = ctx.open_key_writable(key);
    let released = match lock_at(&handle)? {
        None => false,
        Some(lease) => {
            let (released, fx) = lease.release(owner, token, now);
            commit(ctx, key, lease, fx);
            released
        }
    };
    // Hand the lock to the first waiter before any other client runs.
    if let Some(lock) = blocking::waiting_lock(ctx, key) {
        blocking::serve(ctx, key, &handle, &lock, now)?;
    }
    Ok(RedisValue::Integer(i64::from(released)))
}
