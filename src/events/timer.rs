//! The one module timer's handler: lease deadlines (publish the expiry,
//! grant the next waiter), WAIT ends, grants to undo, bound leases whose
//! connection closed, keys events noted, the token floor's jumps and the
//! census; it does nothing that writes while Redis pauses writes. The wait
//! state (blocking.rs) arms the timer; lib.rs's init hands it this handler.

use crate::blocking::{self, with_wait_state, REPLICA_POLL_MS};
use crate::handoff::{self, Grant};
use crate::{binding, census, datatype, ffi, stats, store, tokens, waiters, watch};
use hblock_core::bind::Unbound;
use hblock_core::history::How;
use hblock_core::queue::LockId;
use hblock_core::schedule::Due;
use redis_module::{Context, ContextFlags};
use std::ffi::c_void;

/// While writes are paused, the timer looks again this often.
const PAUSE_POLL_MS: i64 = 10;

/// The timer's handler (registered at load, see blocking.rs).
pub extern "C" fn on_timer(ctx: ffi::Ctx, _data: *mut c_void) {
    blocking::timer_fired();
    tokens::something_ran();
    let now = ffi::now_ms();
    if ffi::writes_paused() {
        // CLIENT PAUSE WRITE/ALL, FAILOVER, CLUSTER FAILOVER, SHUTDOWN waiting
        // for replicas: Redis aborts if anything is propagated now. Answer the
        // WAITs that ran out (no write); expiries and grants wait for the end
        // of the pause and then happen at once, in deadline order.
        for due in with_wait_state(|s| s.schedule.take_due_waits(now)).unwrap_or_default() {
            waiters::end_wait(due);
        }
        blocking::arm_not_before(ctx, now.saturating_add(PAUSE_POLL_MS));
        return;
    }
    let context = Context::new(ctx);
    let is_master = context.get_flags().contains(ContextFlags::MASTER);
    if let (true, Some(ty)) = (is_master, datatype::raw_type()) {
        census::step(ctx, ty);
    }
    if is_master && tokens::on_timer(ctx, now) {
        // The failover delay ended: every lock with waiters is served now.
        for lock in blocking::locks_waited_on(None) {
            blocking::note_pending(lock);
        }
    }
    for grant in handoff::take_undo() {
        undo_grant(&context, &grant, now, is_master);
    }
    for unbound in binding::take_due(now) {
        if is_master {
            release_unbound(&context, &unbound, now);
        }
    }
    for lock in blocking::take_pending() {
        revisit(&context, &lock, now, is_master);
    }
    let due = with_wait_state(|s| s.schedule.take_due(now)).unwrap_or_default();
    for due in due {
        match due {
            Due::WaitEnd(_) => waiters::end_wait(due),
            Due::Lease { lock, .. } => revisit(&context, &lock, now, is_master),
        }
    }
    blocking::arm(ctx);
}

/// Brings a lock up to date: its lease and waiters, then its watchers.
fn revisit(ctx: &Context, lock: &LockId, now: i64, is_master: bool) {
    expire_and_serve(ctx, lock, now, is_master);
    tell_watchers(ctx, lock, now);
}

/// On a master: publishes an expiry the server has not seen yet, grants the
/// lock to the next waiter, and schedules the next check. On a replica:
/// only schedules it. The record's own scheduled check is consumed (or, for
/// a lock that arrived under a new name, was never this name's), so it is
/// scheduled afresh.
fn expire_and_serve(ctx: &Context, lock: &LockId, now: i64, is_master: bool) {
    let Some((key, handle)) = store::open_untouched(ctx, lock) else {
        return;
    };
    let lease = match store::lock_at(&handle) {
        Ok(lease) => lease,
        Err(err) => {
            waiters::fail_all(lock, &err.message());
            return;
        }
    };
    if let Some(lease) = lease {
        lease.set_scheduled_check(None);
        if !is_master {
            // A replica only keeps track, so that it can take over when promoted.
            if let Some(deadline) = lease.next_deadline() {
                let next = if deadline > now {
                    deadline
                } else {
                    now.saturating_add(REPLICA_POLL_MS)
                };
                blocking::schedule_check_at(std::ptr::null_mut(), || lock.clone(), lease, next);
            }
            return;
        }
        let fx = lease.observe_expiry(now);
        if fx.expired {
            store::commit(ctx, &key, lease, fx, now);
        } else {
            blocking::schedule_lease_check(std::ptr::null_mut(), || lock.clone(), lease);
        }
    } else if !is_master {
        return;
    }
    if let Err(err) = waiters::serve(ctx, &key, &handle, lock, now) {
        waiters::fail_all(lock, &err.message());
    }
}

/// Tells the lock's watchers its holder now (deleted, flushed, overwritten
/// or renamed away: none; a deadline passed by this server's clock: none).
fn tell_watchers(ctx: &Context, lock: &LockId, now: i64) {
    if !watch::is_watched(lock) {
        return;
    }
    if let Some(holder) = store::read_lock_untouched(ctx, lock, |l| l.map_or(0, |l| l.holder(now)))
    {
        watch::notify(lock, holder);
    }
}

/// Releases the held lease `token` of `lock` on the master, as RELEASE by
/// its holder would, when `meant` says it is still the lease meant; then
/// brings the lock up to date (the next waiter is served). True when it
/// released.
fn release_if(
    ctx: &Context,
    (lock, token): (&LockId, u64),
    (now, how): (i64, How),
    meant: impl FnOnce(&[u8], u64) -> bool,
) -> bool {
    let mut released = false;
    if let Some((key, handle)) = store::open_untouched(ctx, lock) {
        if let Ok(Some(lease)) = store::lock_at(&handle) {
            let recorded = lease.recorded_lease(token);
            if let Some((owner, _)) = recorded.filter(|&(owner, beats)| meant(owner, beats)) {
                let owner = owner.to_vec();
                let (_, fx) = lease.release_as(&owner, token, now, how);
                released = fx.released;
                store::commit(ctx, &key, lease, fx, now);
            }
        }
    }
    expire_and_serve(ctx, lock, now, true);
    released
}

/// Releases a lease granted to a client that never got its token (it still
/// is that grant: same owner and token, not beaten or renewed since), then
/// serves the next waiter.
fn undo_grant(ctx: &Context, grant: &Grant, now: i64, is_master: bool) {
    if is_master {
        let untouched = |owner: &[u8], beats: u64| beats == 0 && owner == &grant.owner[..];
        release_if(
            ctx,
            (&grant.lock, grant.token),
            (now, How::Undone),
            untouched,
        );
    } else {
        expire_and_serve(ctx, &grant.lock, now, false);
    }
}

/// Releases a bound lease whose connection closed and was not re-bound
/// within its grace (the same lease: token unchanged), exactly as RELEASE
/// would, then serves the next waiter.
fn release_unbound(ctx: &Context, unbound: &Unbound, now: i64) {
    if release_if(
        ctx,
        (&unbound.lock, unbound.token),
        (now, How::Unbound),
        |_, _| true,
    ) {
        stats::bump(&stats::UNBOUND);
    }
}
