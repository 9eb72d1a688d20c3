//! `HBLOCK.BEAT key owner token`
//!
//! The holder's heartbeat. Reply: the lease's beat count, or `NOTHELD <why>`.

use super::{commit, holder_call, lock_at, now_ms};
use crate::blocking;
use crate::command_info::{holder_spec, Spec};
use crate::error::Error;
use crate::lease::NotHeld;
use crate::stats;
use redis_module::{Context, RedisResult, RedisString, RedisValue};

/// What Redis is told about this command (registration, COMMAND INFO/DOCS).
pub const SPEC: Spec = holder_spec(
    c"hblock.beat",
    c"Records a heartbeat of the lease held by owner and token; returns its beat count or NOTHELD.",
);

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let (key, owner, token) = holder_call(ctx, &args)?;
    let now = now_ms();

    let handle = ctx.open_key_writable(key);
    let result = match lock_at(&handle)? {
        None => Err(NotHeld::NoSuchLock),
        Some(lease) => {
            let (result, fx) = lease.beat(owner, token, now);
            commit(ctx, key, lease, fx);
            result
        }
    };
    // A lease this call found expired goes to the next waiter now.
    if result == Err(NotHeld::Expired) {
        if let Some(lock) = blocking::waiting_lock(ctx, key) {
            blocking::serve(ctx, key, &handle, &lock, now)?;
        }
    }
    match result {
        Ok(beats) => {
            stats::bump(&stats::BEATS);
            Ok(RedisValue::Integer(beats as i64))
        }
        Err(why) => {
            stats::bump(&stats::NOTHELD);
            Err(Error::NotHeld(why).into())
        }
    }
}
