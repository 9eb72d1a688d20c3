//! `HBLOCK.BEAT key owner token`
//!
//! The holder's heartbeat. Reply: the lease's beat count, or `NOTHELD <why>`.

use super::{commit, lock_at, now_ms, refuse_on_replica};
use crate::args;
use crate::blocking;
use crate::error::Error;
use crate::lease::NotHeld;
use crate::stats;
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
