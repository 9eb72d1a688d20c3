//! `HBLOCK.RELEASE key owner token`
//!
//! Reply: 1 when this call ended the caller's unexpired lease, else 0. The key
//! stays, free, keeping its token so the next lease gets token + 1; the first
//! client waiting in ACQUIRE gets it at once.

use super::{commit, holder_call, lock_at, now_ms};
use crate::blocking;
use crate::command_info::{holder_spec, Spec};
use redis_module::{Context, RedisResult, RedisString, RedisValue};

/// What Redis is told about this command (registration, COMMAND INFO/DOCS).
pub const SPEC: Spec = holder_spec(
    c"hblock.release",
    c"Ends the lease held by owner and token; 1 if released, else 0.",
);

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let (key, owner, token) = holder_call(ctx, &args)?;
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
