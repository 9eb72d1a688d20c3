//! `HBLOCK.ACQUIRE key owner [INTERVAL ms] [MISSES n] [WAIT ms]`
//!
//! Grants the lease when the lock is free, released or expired (reply: the new
//! fencing token); renews it when `owner` already holds it (reply: the same
//! token); nil when another owner holds an unexpired lease.

use super::{byte_args, commit, create_lock, lock_at, now_ms};
use crate::args;
use crate::config;
use crate::error::Error;
use crate::lease::{Acquired, Effects, Lease, Terms};
use redis_module::{Context, RedisResult, RedisString, RedisValue};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let [_, key, owner, options @ ..] = args.as_slice() else {
        return Err(Error::Arity.into());
    };
    let owner = args::owner(owner.as_slice())?;
    let opts = args::acquire_options(&byte_args(options))?;
    let requested = (opts.interval_ms, opts.misses);
    let defaults = config::default_terms();
    let now = now_ms();

    let handle = ctx.open_key_writable(key);
    let got = match lock_at(&handle)? {
        Some(lease) => {
            let (got, fx) = lease
                .acquire(owner, requested, defaults, now)
                .map_err(Error::from)?;
            commit(ctx, key, lease, fx);
            got
        }
        None => {
            let terms = Terms {
                interval_ms: requested.0.unwrap_or(defaults.interval_ms),
                misses: requested.1.unwrap_or(defaults.misses),
            };
            let lease = create_lock(&handle, Lease::first(owner, terms, now))?;
            let fx = Effects {
                changed: true,
                acquired: true,
                ..Effects::default()
            };
            commit(ctx, key, lease, fx);
            Acquired::Token(lease.token)
        }
    };
    Ok(match got {
        Acquired::Token(token) => RedisValue::Integer(token as i64),
        Acquired::Busy => RedisValue::Null,
    })
}
