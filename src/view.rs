//! Read-only views of a lock: whether a caller holds its live lease (CHECK,
//! FENCED), and its INFO reply (HBLOCK.INFO, and a woken HBLOCK.WATCH).
//! They read the record through the store and write nothing.

use crate::error::Error;
use crate::{binding, blocking, config, ffi, stats, store, tokens};
use hblock_core::lease::{Lease, NotHeld, State};
use hblock_core::proto::{HOLDER_FIELDS, INFO_NUMBERS, STATE_HELD_BACK as HELD_BACK};
use redis_module::{Context, RedisResult, RedisString, RedisValue};

/// Whether (owner, token) holds the live lease of `key` now. Read-only;
/// NOTHELD is counted.
pub fn holds(ctx: &Context, key: &RedisString, owner: &[u8], token: u64) -> Result<(), Error> {
    let verdict = store::read_lock(ctx, key, |lease| match lease {
        None => Err(NotHeld::NoSuchLock),
        Some(lease) => lease.check(owner, token, ffi::now_ms()),
    })?;
    verdict.map_err(|why| {
        stats::bump(&stats::NOTHELD);
        Error::NotHeld(why)
    })
}

/// Replies with the INFO of the lock named `key` (a blocked client's reply).
pub fn reply_lock(ctx: ffi::Ctx, key: &[u8]) {
    let context = Context::new(ctx);
    let key = RedisString::create_from_slice(ctx, key);
    match reply_info(&context, &key) {
        Ok(RedisValue::Null) => ffi::reply_null(ctx),
        Ok(_) => {}
        Err(err) => ffi::reply_error(ctx, &err.to_string()),
    }
}

/// Replies INFO's map, or answers Null (missing key) or an error.
pub fn reply_info(ctx: &Context, key: &RedisString) -> RedisResult {
    let reply = store::read_lock(ctx, key, |lease| {
        let now = ffi::now_ms();
        let waiters = blocking::waiter_count(ctx, key) as u64;
        let Some(lease) = lease else {
            // Grants held back after a promotion: a key with no record says so.
            if tokens::hold_left(None, now) > 0 {
                let none = Lease::never_held(config::default_terms());
                reply_view(ctx, &none, now, (waiters, false));
                return RedisValue::NoReply;
            }
            return RedisValue::Null;
        };
        let bound = lease_token(lease, now)
            .is_some_and(|token| binding::is_bound(|| blocking::lock_id(ctx, key), token));
        reply_view(ctx, lease, now, (waiters, bound));
        RedisValue::NoReply
    })?;
    Ok(reply)
}

/// The token of the live lease INFO describes: the holder's, or on a lock
/// with permits the one that ends first.
fn lease_token(lease: &Lease, now: i64) -> Option<u64> {
    match lease.permits() {
        Some(permits) => permits.first_ending(now).map(|h| h.token),
        None => (lease.holder(now) != 0).then_some(lease.token),
    }
}

/// Replies HBLOCK.HOLDERS: every live lease of the lock named `key`, in
/// token order, each with INFO's per-lease fields (a map in RESP3, a flat
/// name-value array in RESP2); an empty array for a missing key.
pub fn reply_holders(ctx: &Context, key: &RedisString) -> RedisResult {
    store::read_lock(ctx, key, |lease| {
        let now = ffi::now_ms();
        let holders = lease.map(|l| l.holders(now)).unwrap_or_default();
        let lock = binding::any().then(|| blocking::lock_id(ctx, key));
        ffi::reply_array(ctx.ctx, holders.len());
        for h in holders {
            let bound = lock
                .as_ref()
                .is_some_and(|lock| binding::is_bound(|| lock.clone(), h.token));
            let numbers: [i64; 8] = [
                h.token as i64,
                i64::from(h.interval_ms),
                i64::from(h.misses),
                h.missed as i64,
                h.ttl_ms,
                h.beats as i64,
                h.age_ms,
                i64::from(bound),
            ];
            ffi::reply_map(ctx.ctx, HOLDER_FIELDS.len());
            ffi::reply_bulk(ctx.ctx, b"owner");
            ffi::reply_bulk(ctx.ctx, h.owner);
            for (name, value) in HOLDER_FIELDS.into_iter().skip(1).zip(numbers) {
                ffi::reply_bulk(ctx.ctx, name.as_bytes());
                ffi::reply_integer(ctx.ctx, value);
            }
        }
        RedisValue::NoReply
    })
    .map_err(Into::into)
}

/// `extra`: the waiters on the lock and whether its lease is bound.
fn reply_view(ctx: &Context, lease: &Lease, now: i64, extra: (u64, bool)) {
    let (waiters, bound) = extra;
    let view = lease.view(now);
    // A lock not held, after a promotion: `held-back`, ttl the delay left.
    let held_off = match view.state {
        State::Held => 0,
        _ => tokens::hold_left(Some(lease), now),
    };
    let (state, ttl) = if held_off > 0 {
        (HELD_BACK, held_off)
    } else {
        (view.state.name(), view.ttl_ms)
    };
    // In the order of INFO_NUMBERS (hblock_core::proto), which names them.
    let numbers: [i64; 12] = [
        view.token as i64,
        i64::from(view.interval_ms),
        i64::from(view.misses),
        view.missed as i64,
        ttl,
        view.beats as i64,
        view.age_ms,
        view.takeovers as i64,
        waiters as i64,
        i64::from(bound),
        i64::from(view.limit),
        view.holders as i64,
    ];
    let bulk = |bytes: &[u8]| ffi::reply_bulk(ctx.ctx, bytes);
    ffi::reply_map(ctx.ctx, 2 + numbers.len());
    bulk(b"state");
    bulk(state.as_bytes());
    bulk(b"owner");
    match view.owner {
        Some(owner) => bulk(owner),
        None => ffi::reply_null(ctx.ctx),
    };
    for (name, value) in INFO_NUMBERS.into_iter().zip(numbers) {
        bulk(name.as_bytes());
        ffi::reply_integer(ctx.ctx, value);
    }
}
