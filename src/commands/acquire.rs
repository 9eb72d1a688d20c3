//! `HBLOCK.ACQUIRE key owner [INTERVAL ms] [MISSES n] [WAIT ms] [BIND ms]`
//!
//! Grants the lease when the lock is free, released or expired (reply: the new
//! fencing token); renews it when `owner` already holds it (reply: the same
//! token); otherwise nil, or with WAIT blocks in FIFO order until granted or
//! until the time runs out. Clients already waiting are never overtaken.
//! With BIND the lease (granted or renewed) is bound to the calling
//! connection: it is released when that connection closes and no re-bind
//! comes within the grace (binding.rs).

use super::{byte_args, commit, grant_new_key, lock_at, now_ms, refuse_on_replica};
use crate::blocking;
use crate::command_info::{Kind, Spec, KEY, OWNER, RW_UPDATE};
use crate::config;
use crate::error::Error;
use crate::{binding, stats, tokens};
use hblock_core::args;
use hblock_core::lease::{Acquired, State};
use redis_module::{Context, RedisResult, RedisString, RedisValue};

/// What Redis is told about this command (registration, COMMAND INFO/DOCS).
pub const SPEC: Spec = Spec {
    name: c"hblock.acquire",
    flags: "write deny-oom",
    acl: c"write blocking",
    summary: c"Acquires a heartbeat lease and returns its fencing token; nil when another owner holds it.",
    arity: -3,
    key_flags: RW_UPDATE,
    wraps: false,
    args: &[
        KEY,
        OWNER,
        (c"interval", Kind::Integer, Some(c"INTERVAL")),
        (c"misses", Kind::Integer, Some(c"MISSES")),
        (c"wait", Kind::Integer, Some(c"WAIT")),
        (c"bind", Kind::Integer, Some(c"BIND")),
    ],
};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let [_, key, owner, options @ ..] = args.as_slice() else {
        return Err(Error::Arity.into());
    };
    refuse_on_replica(ctx)?;
    let owner = args::owner(owner.as_slice()).map_err(Error::from)?;
    let opts = args::acquire_options(&byte_args(options)).map_err(Error::from)?;
    let requested = (opts.interval_ms, opts.misses);
    let defaults = config::default_terms();
    let now = now_ms();

    let handle = ctx.open_key_writable(key);
    // BIND: the connection and grace, checked before anything changes.
    let bind = match opts.bind_ms {
        None => None,
        Some(grace) => {
            let terms = match lock_at(&handle)? {
                Some(lease) => lease.terms_after_acquire(owner, requested, defaults, now),
                None => hblock_core::lease::Terms::resolve(requested, defaults),
            };
            let grace = args::bind_fits(grace, terms.lease_ms() as u64).map_err(Error::from)?;
            Some((binding::caller(ctx)?, grace))
        }
    };
    // Those already waiting go first: if the lock is available, the head of
    // the queue gets it now.
    let waiting = blocking::waiting_lock(ctx, key);
    if let Some(lock) = &waiting {
        blocking::serve(ctx, key, &handle, lock, now)?;
    }
    let queue_ahead = waiting.is_some() && blocking::waiting_lock(ctx, key).is_some();

    let call = Call {
        owner,
        requested,
        defaults,
        now,
        queue_ahead,
    };
    let got = grant_or_renew(ctx, key, &handle, &call)?;
    Ok(match got {
        Acquired::Token(token) => {
            if let Some((client, grace)) = bind {
                binding::bind(blocking::lock_id(ctx, key), client, token, grace);
            }
            RedisValue::Integer(token as i64)
        }
        Acquired::Busy => match opts.wait_ms {
            Some(wait_ms) if blocking::can_block(ctx) => {
                let lock = waiting.unwrap_or_else(|| blocking::lock_id(ctx, key));
                // Whatever happened to the key before (RENAME, RESTORE), the
                // lease this client waits for is looked at by its deadline.
                if let Some(lease) = lock_at(&handle)? {
                    blocking::watch_lease(ctx.ctx, || lock.clone(), lease);
                }
                let wait = blocking::Wait {
                    terms: requested,
                    wait_ms,
                    bind,
                };
                blocking::block(ctx, lock, owner, wait, now)
            }
            // Inside MULTI or Lua, WAIT is ignored: answer at once.
            _ => RedisValue::Null,
        },
    })
}

/// One ACQUIRE once parsed: who asks, for which terms, when, and whether
/// clients already wait for the lock.
struct Call<'a> {
    owner: &'a [u8],
    requested: (Option<u32>, Option<u16>),
    defaults: hblock_core::lease::Terms,
    now: i64,
    queue_ahead: bool,
}

/// Grants a new lease, renews the caller's, or answers Busy: the lock is
/// held, others wait first, or (after a promotion) the failover delay holds
/// off locks this server's records do not show as held.
fn grant_or_renew(
    ctx: &Context,
    key: &RedisString,
    handle: &redis_module::key::RedisKeyWritable,
    call: &Call,
) -> Result<Acquired, Error> {
    let Call {
        owner,
        requested,
        defaults,
        now,
        queue_ahead,
    } = *call;
    Ok(match lock_at(handle)? {
        Some(lease) => {
            let held = lease.state(now) == State::Held;
            let holder_renews = held && lease.owner.as_bytes() == owner;
            if queue_ahead && !holder_renews {
                Acquired::Busy
            } else if !held && tokens::hold_left(Some(lease), now) > 0 {
                stats::bump(&stats::FAILOVER_DELAYED);
                Acquired::Busy
            } else {
                let (got, fx) = lease.acquire(owner, requested, defaults, now, tokens::floor())?;
                commit(ctx, key, lease, fx);
                got
            }
        }
        None if queue_ahead => Acquired::Busy,
        None if tokens::hold_left(None, now) > 0 => {
            stats::bump(&stats::FAILOVER_DELAYED);
            Acquired::Busy
        }
        None => Acquired::Token(grant_new_key(ctx, key, handle, owner, requested, now)?.token),
    })
}
