//! The store: the only place that opens lock keys, reads and creates lock
//! records, and makes a change visible (commit: write, replicate, notify,
//! count, schedule the deadline). Commands, the timer and the waiters all
//! come here; nothing here calls up into them. (The data type's two walks
//! over raw values, SWAPDB's and FLOOR RESET's, and the census read records
//! through ffi's scans instead: they change no key.)

use crate::datatype::LOCK_TYPE;
use crate::error::Error;
use crate::{binding, blocking, config, ffi, propagation, stats, tokens, watch};
use hblock_core::lease::{Effects, Lease, Terms};
use hblock_core::queue::LockId;
use hblock_core::record::Fields;
use redis_module::key::{KeyFlags, RedisKey, RedisKeyWritable};
use redis_module::{Context, NotifyEvent, RedisString};

/// Opens `key` for writing (a lock or not, existing or not).
pub fn open(ctx: &Context, key: &RedisString) -> RedisKeyWritable {
    ctx.open_key_writable(key)
}

/// Opens the key of `lock` for the timer, in its database (None when that
/// database cannot be selected). NOTOUCH: looking at a key (maybe not even
/// a lock) must not reset its LRU/LFU; a write lookup counts no keyspace
/// hits or misses either. Returns the key's name with the open key.
pub fn open_untouched(ctx: &Context, lock: &LockId) -> Option<(RedisString, RedisKeyWritable)> {
    if !ffi::select_db(ctx.ctx, lock.db) {
        return None;
    }
    let key = RedisString::create_from_slice(ctx.ctx, &lock.key);
    let handle = ctx.open_key_writable_with_flags(&key, KeyFlags::NOTOUCH);
    Some((key, handle))
}

/// The lock stored at an open key: None when the key does not exist,
/// WRONGTYPE when it holds another type. Its holder history is set to keep
/// `hblock.history` entries at its next lease end (the history's room is
/// made at the first end recorded, and dropped when it empties).
pub fn lock_at(key: &RedisKeyWritable) -> Result<Option<&mut Lease>, Error> {
    let mut lease = key
        .get_value::<Lease>(&LOCK_TYPE)
        .map_err(|_| Error::WrongType)?;
    if let Some(lease) = lease.as_deref_mut() {
        lease.history_cap = config::history();
    }
    Ok(lease)
}

/// The lock at a key open for reading, as [`lock_at`].
fn lock_in(key: &RedisKey) -> Result<Option<&Lease>, Error> {
    key.get_value::<Lease>(&LOCK_TYPE)
        .map_err(|_| Error::WrongType)
}

/// `f` of the lock named `key` (None: no such key), read-only: the one
/// read-only lookup of CHECK, FENCED, INFO and WATCH. WRONGTYPE when the
/// key holds another type.
pub fn read_lock<R>(
    ctx: &Context,
    key: &RedisString,
    f: impl FnOnce(Option<&Lease>) -> R,
) -> Result<R, Error> {
    let handle = ctx.open_key(key);
    lock_in(&handle).map(f)
}

/// `f` of `lock`'s record, read-only, for the timer: in its database,
/// NOTOUCH (see [`open_untouched`]); a key of another type reads as no lock.
/// None when the database cannot be selected.
pub fn read_lock_untouched<R>(
    ctx: &Context,
    lock: &LockId,
    f: impl FnOnce(Option<&Lease>) -> R,
) -> Option<R> {
    if !ffi::select_db(ctx.ctx, lock.db) {
        return None;
    }
    let key = RedisString::create_from_slice(ctx.ctx, &lock.key);
    let handle = ctx.open_key_with_flags(&key, KeyFlags::NOTOUCH);
    Some(f(lock_in(&handle).ok().flatten()))
}

/// Stores a new record at an empty key and returns it.
pub fn create_lock(key: &RedisKeyWritable, lease: Lease) -> Result<&mut Lease, Error> {
    key.set_value(&LOCK_TYPE, lease)
        .map_err(|_| Error::WrongType)?;
    lock_at(key)?.ok_or(Error::WrongType)
}

/// The first lease of a key that does not exist (a token above the floor),
/// with the terms the call gave and the configured defaults for the rest,
/// on a lock of `limit` permits; committed. Returns its token.
pub fn grant_first(
    ctx: &Context,
    key: &RedisString,
    handle: &RedisKeyWritable,
    (owner, requested, limit): (&[u8], (Option<u32>, Option<u16>), u16),
    now: i64,
) -> Result<u64, Error> {
    let terms = Terms::resolve(requested, config::default_terms());
    let first = Lease::first_after(owner, terms, now, tokens::floor()).map_err(Error::from)?;
    let token = first.token;
    let lease = create_lock(handle, first)?;
    if limit > 1 {
        lease.set_limit(limit, now);
    }
    let fx = Effects {
        changed: true,
        acquired: true,
        ..Effects::default()
    };
    commit(ctx, key, lease, fx, now);
    Ok(token)
}

/// HBLOCK.LIMIT on a key that does not exist: a free lock of `limit`
/// permits (token 0), committed.
pub fn create_free(
    ctx: &Context,
    key: &RedisString,
    handle: &RedisKeyWritable,
    limit: u16,
    now: i64,
) -> Result<(), Error> {
    let lease = create_lock(handle, Lease::never_held(config::default_terms()))?;
    let mut fx = lease.set_limit(limit, now);
    fx.changed = true;
    commit(ctx, key, lease, fx, now);
    Ok(())
}

/// Makes a transition at `now` visible: replicate the new record as
/// absolute values, publish its keyspace events, count it, tell BIND and
/// WATCH of a new holder, and make sure a held lease is looked at by its
/// deadline. Every change a command, waiter grant or timer run makes goes
/// through here; APPLY's goes through [`commit_applied`].
pub fn commit(ctx: &Context, key: &RedisString, lease: &mut Lease, fx: Effects, now: i64) {
    if fx.changed {
        signal_modified(ctx, key);
        replicate_record(ctx, key, lease, fx.history);
        tokens::observe(lease);
    }
    let events = [
        (fx.expired, "hblock.expired", &stats::EXPIRED),
        (fx.acquired, "hblock.acquired", &stats::ACQUIRED),
        (fx.takeover, "", &stats::TAKEOVERS),
        (fx.released, "hblock.released", &stats::RELEASED),
    ];
    for (happened, event, counter) in events {
        if happened {
            // Each lease of a lock with permits seen expired in this step.
            let times = if event == "hblock.expired" {
                1 + u32::from(fx.also_expired)
            } else {
                1
            };
            for _ in 0..times {
                stats::bump(counter);
                if !event.is_empty() {
                    ctx.notify_keyspace_event(NotifyEvent::MODULE, event, key);
                }
            }
        }
    }
    if (fx.acquired || fx.released || fx.expired) && (watch::any() || binding::any()) {
        let holder = lease.holder(now);
        let lock = blocking::lock_id(ctx, key);
        match lease.permits() {
            Some(permits) => {
                let tokens: Vec<u64> = permits.live(now).map(|h| h.token).collect();
                binding::holders_are(&lock, &tokens)
            }
            None => binding::holder_changed(&lock, holder),
        }
        watch::notify(&lock, holder);
    }
    if fx.changed {
        // Cheap when a check is already scheduled no later (every beat).
        blocking::schedule_lease_check(ctx.ctx, || blocking::lock_id(ctx, key), lease);
    }
}

/// Makes a record HBLOCK.APPLY set visible: signalled, propagated as itself
/// (on a replica this puts the record in its own AOF and counts it toward
/// its save points; sub-replicas get the master's stream as it is; nothing
/// is propagated while loading), its token raised into the floor, its
/// watchers told, and its deadline checked (so a promoted replica takes
/// over expired leases).
pub fn commit_applied(ctx: &Context, key: &RedisString, record: &mut Lease) {
    signal_modified(ctx, key);
    ctx.replicate_verbatim();
    tokens::observe(record);
    if watch::any() {
        let holder = record.holder(ffi::now_ms());
        watch::notify(&blocking::lock_id(ctx, key), holder);
    }
    blocking::schedule_lease_check(ctx.ctx, || blocking::lock_id(ctx, key), record);
}

/// Invalidates WATCH and client-side caches of the key. The module signals
/// explicitly (REDISMODULE_OPTION_NO_IMPLICIT_SIGNAL_MODIFIED), so that a
/// refused call or a timer's look at a lock touches nothing.
fn signal_modified(ctx: &Context, key: &RedisString) {
    ffi::signal_modified(ctx.ctx, key.inner);
}

/// Sends `HBLOCK.APPLY key <record>` to replicas and the AOF, so they hold
/// exactly the master's record whatever their own clock says.
///
/// The record is the compact binary form (`hblock_core::record`): this is
/// on every BEAT's path, and Redis builds one object per argument it
/// propagates (the ten-field form cost ~55% of a BEAT). The AOF rewrite
/// keeps the readable ten-field form; APPLY takes both.
///
/// When the holder history changed (`history`), it follows as a second
/// argument, `HBLOCK.APPLY key <record> <history>`; other changes (every
/// beat) leave the replica's history as it is.
fn replicate_record(ctx: &Context, key: &RedisString, lease: &Lease, history: bool) {
    if !propagation::needed() {
        return; // nothing can read it (propagation.rs)
    }
    let history = history.then(|| lease.owner.history());
    if lease.permits().is_some() {
        let mut record = Vec::new();
        hblock_core::record::compact_any(lease, &mut record);
        ffi::replicate_apply(ctx.ctx, key.inner, &record, history);
        return;
    }
    let record = Fields::of(lease).compact();
    ffi::replicate_apply(ctx.ctx, key.inner, record.as_bytes(), history);
}
