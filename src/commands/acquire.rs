//! `HBLOCK.ACQUIRE key owner [INTERVAL ms] [MISSES n] [WAIT ms] [BIND ms] [LIMIT n]`
//!
//! LIMIT (1..1000, default 1): how many owners may hold the lock at once,
//! each with its own lease and token. A LIMIT other than the lock's is
//! refused while it has holders or waiters; otherwise it becomes the
//! lock's limit.
//!
//! Grants the lease when the lock is free, released or expired (reply: the new
//! fencing token); renews it when `owner` already holds it (reply: the same
//! token); otherwise nil, or with WAIT blocks in FIFO order until granted or
//! until the time runs out. Clients already waiting are never overtaken.
//! With BIND the lease (granted or renewed) is bound to the calling
//! connection: it is released when that connection closes and no re-bind
//! comes within the grace (binding.rs).

use super::common::{byte_args, can_block, refuse_on_replica};
use crate::error::Error;
use crate::spec::{Kind, Spec, KEY, OWNER, RW_UPDATE};
use crate::waiters::{self, Wait};
use crate::{binding, blocking, config, ffi, stats, store, tokens};
use hblock_core::args;
use hblock_core::lease::{Acquired, Lease, Terms};
use redis_module::key::RedisKeyWritable;
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
        (c"limit", Kind::Integer, Some(c"LIMIT")),
    ],
};

pub fn run(ctx: &Context, args: &[RedisString]) -> RedisResult {
    let [_, key, owner, options @ ..] = args else {
        return Err(Error::Arity.into());
    };
    refuse_on_replica(ctx)?;
    let owner = args::owner(owner.as_slice()).map_err(Error::from)?;
    let opts = args::acquire_options(&byte_args(options)).map_err(Error::from)?;
    let requested = (opts.interval_ms, opts.misses);
    let defaults = config::default_terms();
    let now = ffi::now_ms();

    let handle = store::open(ctx, key);
    // The record as the call found it: read once for the checks below and,
    // unless a waiter is served first, for the grant itself.
    let found = store::lock_at(&handle)?;
    let limit = opts.limit.unwrap_or(1);
    // Everything is checked before anything changes: a new limit is
    // committed only with the grant (or the queueing) it comes with.
    agree_on_limit(ctx, key, found.as_deref(), limit, now)?;
    let bind = match opts.bind_ms {
        None => None,
        Some(grace) => Some(bind_request(
            ctx,
            found.as_deref(),
            (owner, requested),
            grace,
            now,
        )?),
    };
    // Those already waiting go first: if the lock is available, the head of
    // the queue gets it now (and the record is read again after that).
    let waiting = blocking::waiting_lock(ctx, key);
    let lease = match &waiting {
        None => found,
        Some(lock) => {
            waiters::serve(ctx, key, &handle, lock, now)?;
            store::lock_at(&handle)?
        }
    };
    let queue_ahead = waiting.is_some() && blocking::waiting_lock(ctx, key).is_some();

    let call = Call {
        owner,
        requested,
        defaults,
        now,
        queue_ahead,
        limit,
    };
    Ok(match grant_or_renew(ctx, key, &handle, lease, &call)? {
        Acquired::Token(token) => {
            if let Some((client, grace)) = bind {
                binding::bind(blocking::lock_id(ctx, key), client, token, grace);
            }
            RedisValue::Integer(token as i64)
        }
        Acquired::Busy => match opts.wait_ms {
            Some(wait_ms) if can_block(ctx) => {
                let lock = waiting.unwrap_or_else(|| blocking::lock_id(ctx, key));
                // Queued under its LIMIT: a lock nobody holds or waits for
                // takes it now (agree_on_limit allowed it).
                if let Some(lease) = store::lock_at(&handle)? {
                    let fx = lease.set_limit(limit, now);
                    store::commit(ctx, key, lease, fx, now);
                }
                // Whatever happened to the key before (RENAME, RESTORE), the
                // lease this client waits for is looked at by its deadline.
                if let Some(lease) = store::lock_at(&handle)? {
                    blocking::schedule_lease_check(ctx.ctx, || lock.clone(), lease);
                }
                let wait = Wait {
                    terms: requested,
                    wait_ms,
                    bind,
                    limit,
                };
                waiters::block(ctx, lock, owner, wait, now)
            }
            // Inside MULTI or Lua, WAIT is ignored: answer at once.
            _ => RedisValue::Null,
        },
    })
}

/// LIMIT must match the lock's while it has holders or waiters; with
/// neither, it will become the lock's limit (with the grant or queueing,
/// see grant_or_renew). A missing key with waiters has the limit its first
/// live waiter will recreate it with (waiters::serve). Changes nothing.
fn agree_on_limit(
    ctx: &Context,
    key: &RedisString,
    found: Option<&Lease>,
    limit: u16,
    now: i64,
) -> Result<(), Error> {
    let current = match found {
        // Leases past their deadline but not yet seen count as ended.
        Some(lease) if lease.holder_count(now) > 0 => Some(lease.limit()),
        Some(lease) => blocking::waiting_limit(ctx, key, now).map(|_| lease.limit()),
        None => blocking::waiting_limit(ctx, key, now),
    };
    match current {
        Some(current) if current != limit => Err(Error::LimitMismatch {
            requested: limit,
            current,
        }),
        _ => Ok(()),
    }
}

/// BIND's connection and grace, checked against the terms the lease will
/// have before anything changes.
fn bind_request(
    ctx: &Context,
    found: Option<&Lease>,
    (owner, requested): (&[u8], (Option<u32>, Option<u16>)),
    grace: Option<u64>,
    now: i64,
) -> Result<(u64, u64), Error> {
    let defaults = config::default_terms();
    let terms = match found {
        Some(lease) => lease.terms_after_acquire(owner, requested, defaults, now),
        None => Terms::resolve(requested, defaults),
    };
    let grace = args::bind_fits(grace, terms.lease_ms() as u64).map_err(Error::from)?;
    Ok((binding::caller(ctx)?, grace))
}

/// One ACQUIRE once parsed: who asks, for which terms, when, and whether
/// clients already wait for the lock.
struct Call<'a> {
    owner: &'a [u8],
    requested: (Option<u32>, Option<u16>),
    defaults: Terms,
    now: i64,
    queue_ahead: bool,
    limit: u16,
}

/// Grants a new lease, renews the caller's, or answers Busy: the lock is
/// held, others wait first, or (after a promotion) the failover delay holds
/// off locks this server's records do not show as held. `lease` is the
/// record at `handle` as it is now (None: no such key).
fn grant_or_renew(
    ctx: &Context,
    key: &RedisString,
    handle: &RedisKeyWritable,
    lease: Option<&mut Lease>,
    call: &Call,
) -> Result<Acquired, Error> {
    let Call {
        owner,
        requested,
        defaults,
        now,
        queue_ahead,
        limit,
    } = *call;
    Ok(match lease {
        Some(lease) => {
            let holder_renews = lease.is_holder(owner, now);
            if queue_ahead && !holder_renews {
                Acquired::Busy
            } else if !holder_renews
                && lease.has_free_permit(now)
                && tokens::hold_left(Some(lease), now) > 0
            {
                stats::bump(&stats::FAILOVER_DELAYED);
                Acquired::Busy
            } else {
                let terms = (requested, defaults);
                let (got, fx) =
                    lease.acquire_with_limit(limit, owner, terms, now, tokens::floor())?;
                store::commit(ctx, key, lease, fx, now);
                got
            }
        }
        None if queue_ahead => Acquired::Busy,
        None if tokens::hold_left(None, now) > 0 => {
            stats::bump(&stats::FAILOVER_DELAYED);
            Acquired::Busy
        }
        None => Acquired::Token(store::grant_first(
            ctx,
            key,
            handle,
            (owner, requested, limit),
            now,
        )?),
    })
}
