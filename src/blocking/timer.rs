//! The one module timer: lease deadlines (publish the expiry, grant the next
//! waiter), WAIT ends, grants to undo, keys to look at again; it does
//! nothing that writes while Redis pauses writes.

use super::waiters::{end_wait, fail_all, serve};
use super::{has_pending, select_db, take_pending, with};
use crate::commands::{commit, lock_at, now_ms};
use crate::ffi;
use crate::handoff::{self, Grant};
use hblock_core::bind::Unbound;
use hblock_core::lease::{Effects, Lease, Phase};
use hblock_core::queue::LockId;
use hblock_core::schedule::Due;
use redis_module::key::KeyFlags;
use redis_module::{raw, Context, ContextFlags, RedisString};
use std::ffi::c_void;

/// A replica cannot decide expiries; it re-checks an overdue lease this often
/// so that, once promoted, it takes over within that time.
pub(super) const REPLICA_POLL_MS: i64 = 100;

/// While writes are paused, the timer looks again this often.
const PAUSE_POLL_MS: i64 = 10;

/// Makes sure a held lease is looked at by its deadline: its expiry is
/// published on time and the next waiter takes over at that moment. `lock`
/// is only built when a check must be added.
pub fn watch_lease(
    ctx: *mut raw::RedisModuleCtx,
    lock: impl FnOnce() -> LockId,
    lease: &mut Lease,
) {
    if lease.phase == Phase::Held {
        let deadline = lease.deadline_ms();
        watch_lease_at(ctx, lock, lease, deadline);
    }
}

/// Makes sure the lock is looked at no later than `when`.
fn watch_lease_at(
    ctx: *mut raw::RedisModuleCtx,
    lock: impl FnOnce() -> LockId,
    lease: &mut Lease,
    when: i64,
) {
    let current = lease.scheduled_check();
    if current.is_some_and(|at| at <= when) {
        return; // the common case: a beat moved the deadline later
    }
    let lock = lock();
    if let Some(at) = with(|s| s.schedule.lease_check(&lock, current, when)) {
        lease.set_scheduled_check(Some(at));
    }
    if !ctx.is_null() {
        arm(ctx);
    }
}

/// Looks at one lock from the timer: publishes an expiry the server has not
/// seen yet, grants it to the next waiter, and schedules the next look. The
/// record's own scheduled check is consumed (or, for a lock that arrived
/// under a new name, was never this name's), so it is scheduled afresh.
fn check_lock(ctx: &Context, lock: &LockId, now: i64, is_master: bool) {
    if !select_db(ctx, lock.db) {
        return;
    }
    let key = RedisString::create_from_slice(ctx.ctx, &lock.key);
    // NOTOUCH: looking at a key (maybe not even a lock) must not reset its
    // LRU/LFU; a write lookup counts no keyspace hits or misses either.
    let handle = ctx.open_key_writable_with_flags(&key, KeyFlags::NOTOUCH);
    let lease = match lock_at(&handle) {
        Ok(lease) => lease,
        Err(err) => {
            fail_all(lock, &err.message());
            return;
        }
    };
    if let Some(lease) = lease {
        lease.set_scheduled_check(None);
        if !is_master {
            // A replica only keeps track, so that it can take over when promoted.
            if lease.phase == Phase::Held {
                let deadline = lease.deadline_ms();
                let next = if deadline > now {
                    deadline
                } else {
                    now.saturating_add(REPLICA_POLL_MS)
                };
                watch_lease_at(std::ptr::null_mut(), || lock.clone(), lease, next);
            }
            return;
        }
        if lease.observe_expiry(now) {
            let fx = Effects {
                changed: true,
                expired: true,
                ..Effects::default()
            };
            commit(ctx, &key, lease, fx);
        } else {
            watch_lease(std::ptr::null_mut(), || lock.clone(), lease);
        }
    } else if !is_master {
        return;
    }
    if let Err(err) = serve(ctx, &key, &handle, lock, now) {
        fail_all(lock, &err.message());
    }
}

/// The timer's look at a lock: its lease and waiters, then its watchers.
fn look_at(ctx: &Context, lock: &LockId, now: i64, is_master: bool) {
    check_lock(ctx, lock, now, is_master);
    notify_watchers(ctx, lock, now);
}

/// Tells the lock's watchers its holder now (deleted, flushed, overwritten
/// or renamed away: none; a deadline passed by this server's clock: none).
fn notify_watchers(ctx: &Context, lock: &LockId, now: i64) {
    if !crate::watch::is_watched(lock) || !select_db(ctx, lock.db) {
        return;
    }
    let key = RedisString::create_from_slice(ctx.ctx, &lock.key);
    let handle = ctx.open_key_with_flags(&key, KeyFlags::NOTOUCH);
    let lease = handle
        .get_value::<Lease>(&crate::record::LOCK_TYPE)
        .ok()
        .flatten();
    crate::watch::notify(lock, crate::commands::info::holder(lease, now));
}

/// Releases the held lease `token` of `lock` on the master, as RELEASE by
/// its holder would, when `meant` says it is still the lease meant; then
/// looks at the lock (the next waiter is served). True when it released.
fn release_if(
    ctx: &Context,
    lock: &LockId,
    token: u64,
    now: i64,
    meant: impl FnOnce(&Lease) -> bool,
) -> bool {
    let mut released = false;
    if select_db(ctx, lock.db) {
        let key = RedisString::create_from_slice(ctx.ctx, &lock.key);
        let handle = ctx.open_key_writable_with_flags(&key, KeyFlags::NOTOUCH);
        if let Ok(Some(lease)) = lock_at(&handle) {
            if lease.phase == Phase::Held && lease.token == token && meant(lease) {
                let owner = lease.owner.as_bytes().to_vec();
                let (_, fx) = lease.release(&owner, token, now);
                released = fx.released;
                commit(ctx, &key, lease, fx);
            }
        }
    }
    check_lock(ctx, lock, now, true);
    released
}

/// Releases a lease granted to a client that never got its token (it still
/// is that grant: same owner and token, not beaten or renewed since), then
/// serves the next waiter.
fn undo_grant(ctx: &Context, grant: &Grant, now: i64, is_master: bool) {
    if is_master {
        let untouched = |l: &Lease| l.beats == 0 && l.owner.as_bytes() == &grant.owner[..];
        release_if(ctx, &grant.lock, grant.token, now, untouched);
    } else {
        check_lock(ctx, &grant.lock, now, false);
    }
}

/// Releases a bound lease whose connection closed and was not re-bound
/// within its grace (the same lease: token unchanged), exactly as RELEASE
/// would, then serves the next waiter.
fn release_unbound(ctx: &Context, unbound: &Unbound, now: i64) {
    if release_if(ctx, &unbound.lock, unbound.token, now, |_| true) {
        crate::stats::bump(&crate::stats::UNBOUND);
    }
}

/// Arms the module timer for the earliest due time, if it is not already.
pub fn arm(ctx: *mut raw::RedisModuleCtx) {
    arm_not_before(ctx, i64::MIN);
}

/// Arms the module timer for the earliest due time, but not before
/// `earliest` (while writes are paused, due work is retried later).
fn arm_not_before(ctx: *mut raw::RedisModuleCtx, earliest: i64) {
    let now = now_ms();
    let next = with(|s| s.schedule.next_due()).flatten();
    let next = [crate::tokens::next_due(now), crate::binding::next_due()]
        .into_iter()
        .flatten()
        .chain(next)
        .min();
    let next = if has_pending() || handoff::has_undo() {
        Some(now)
    } else {
        next
    };
    let Some(next) = next.map(|next| next.max(earliest)) else {
        return;
    };
    let Some((stop, create)) = with(|s| match s.armed {
        Some((_, when)) if when <= next => (None, false),
        Some((id, _)) => (Some(id), true),
        None => (None, true),
    }) else {
        return;
    };
    if let Some(id) = stop {
        ffi::stop_timer(ctx, id);
    }
    if !create {
        return;
    }
    let delay = next.saturating_sub(now).max(0);
    if let Some(id) = ffi::create_timer(ctx, delay, on_timer) {
        // When it really fires: create_timer caps the delay.
        let fires = next.min(now.saturating_add(ffi::TIMER_MAX_MS));
        with(|s| s.armed = Some((id, fires)));
    }
}

extern "C" fn on_timer(ctx: *mut raw::RedisModuleCtx, _data: *mut c_void) {
    with(|s| s.armed = None);
    crate::tokens::something_ran();
    let now = now_ms();
    if ffi::writes_paused() {
        // CLIENT PAUSE WRITE/ALL, FAILOVER, CLUSTER FAILOVER, SHUTDOWN waiting
        // for replicas: Redis aborts if anything is propagated now. Answer the
        // WAITs that ran out (no write); expiries and grants wait for the end
        // of the pause and then happen at once, in deadline order.
        for due in with(|s| s.schedule.take_due_waits(now)).unwrap_or_default() {
            end_wait(due);
        }
        arm_not_before(ctx, now.saturating_add(PAUSE_POLL_MS));
        return;
    }
    let context = Context::new(ctx);
    let is_master = context.get_flags().contains(ContextFlags::MASTER);
    if is_master {
        crate::census::step(ctx);
    }
    if is_master && crate::tokens::on_timer(ctx, now) {
        // The failover delay ended: every lock with waiters is served now.
        for lock in with(|s| s.queues.locks_in(None)).unwrap_or_default() {
            super::note_pending(lock);
        }
    }
    for grant in handoff::take_undo() {
        undo_grant(&context, &grant, now, is_master);
    }
    for unbound in crate::binding::take_due(now) {
        if is_master {
            release_unbound(&context, &unbound, now);
        }
    }
    for lock in take_pending() {
        look_at(&context, &lock, now, is_master);
    }
    let due = with(|s| s.schedule.take_due(now)).unwrap_or_default();
    for due in due {
        match due {
            Due::WaitEnd(_) => end_wait(due),
            Due::Lease { lock, .. } => look_at(&context, &lock, now, is_master),
        }
    }
    arm(ctx);
}

/// A lease loaded from an RDB file or a RESTORE payload: watch its deadline
/// (the timer is armed when loading ends or by the RESTORE's key event).
pub fn watch_loaded(key: &[u8], db: i32, lease: &mut Lease) {
    watch_lease(std::ptr::null_mut(), || LockId::new(db, key), lease);
}
