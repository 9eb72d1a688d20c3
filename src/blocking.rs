//! The wait state: the Redis side of `hblock_core::queue` and
//! `hblock_core::schedule`, and the one module timer that drives them.
//!
//! - Waiters (blocked ACQUIREs, waiters.rs) are queued per lock here.
//! - WAIT deadlines and lease deadlines live in one [`Schedule`] driven by a
//!   single module timer (ms-precise, unlike Redis's blocked-client
//!   timeouts), armed here for the earliest due time.
//! - Keys that events noted (deleted, overwritten, renamed, flushed, arrived
//!   under a new name) wait here as pending for the next timer run: writing
//!   from inside a notification is not safe on Redis 7.0.
//!
//! State is thread-local (Redis calls modules on its main thread only) and is
//! never borrowed across a call into Redis.

use crate::ffi;
use crate::handoff::{self, Handle};
use crate::{binding, stats, tokens, watch};
use hblock_core::check_runs::Staged;
use hblock_core::lease::Lease;
use hblock_core::queue::{Caller, LockId, Queues, WaiterId};
use hblock_core::schedule::{Schedule, WaitSlot};
use redis_module::{Context, RedisString};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::OnceLock;

/// A replica cannot decide expiries; it re-checks an overdue lease this often
/// so that, once promoted, it takes over within that time.
pub const REPLICA_POLL_MS: i64 = 100;

#[derive(Default)]
pub struct WaitState {
    pub queues: Queues<Handle>,
    pub schedule: Schedule,
    pub wait_slots: HashMap<WaiterId, WaitSlot>,
    /// Waiters that asked for BIND: their connection and grace.
    pub binds: HashMap<WaiterId, (u64, u64)>,
    /// The LIMIT of waiters that gave one above 1: a waiter granted a key
    /// that no longer exists creates the lock with it.
    pub limits: HashMap<WaiterId, u16>,
    /// The module timer and the time it was armed for.
    armed: Option<(ffi::TimerId, i64)>,
}

thread_local! {
    static STATE: RefCell<WaitState> = RefCell::new(WaitState::default());
    /// Locks to look at again, noted by event callbacks.
    static PENDING: RefCell<HashSet<LockId>> = RefCell::new(HashSet::new());
    /// Lease checks of the records a loading data set brought so far.
    static STAGED: RefCell<Staged> = RefCell::new(Staged::default());
}

/// Runs `f` on the wait state unless it is already borrowed (it never is
/// while we call into Redis; this only guards against a re-entrant callback).
pub fn with_wait_state<R>(f: impl FnOnce(&mut WaitState) -> R) -> Option<R> {
    STATE.with(|s| s.try_borrow_mut().ok().map(|mut s| f(&mut s)))
}

/// Notes `lock` for the next timer run.
pub fn note_pending(lock: LockId) {
    PENDING.with(|p| {
        if let Ok(mut p) = p.try_borrow_mut() {
            p.insert(lock);
        }
    });
}

/// The locks noted for this timer run.
pub fn take_pending() -> Vec<LockId> {
    PENDING.with(|p| {
        p.try_borrow_mut()
            .map(|mut p| p.drain().collect())
            .unwrap_or_default()
    })
}

fn has_pending() -> bool {
    PENDING.with(|p| p.try_borrow().is_ok_and(|p| !p.is_empty()))
}

/// INFO's `waiting`: clients blocked in ACQUIRE now.
pub fn update_waiting_stat() {
    if let Some(total) = with_wait_state(|s| s.queues.total()) {
        stats::WAITING.store(total as u64, Ordering::Relaxed);
    }
}

/// The lock named `key` in the database `ctx` has selected.
pub fn lock_id(ctx: &Context, key: &RedisString) -> LockId {
    LockId::new(ffi::selected_db(ctx.ctx), key.as_slice())
}

/// The lock's id when clients wait on it (cheap when nobody waits anywhere).
pub fn waiting_lock(ctx: &Context, key: &RedisString) -> Option<LockId> {
    if with_wait_state(|s| s.queues.is_empty()).unwrap_or(true) {
        return None;
    }
    let lock = lock_id(ctx, key);
    with_wait_state(|s| s.queues.has_waiters(&lock))
        .unwrap_or(false)
        .then_some(lock)
}

/// Clients waiting on this key (HBLOCK.INFO `waiters`).
pub fn waiter_count(ctx: &Context, key: &RedisString) -> usize {
    waiting_lock(ctx, key).map_or(0, |lock| {
        with_wait_state(|s| s.queues.len(&lock)).unwrap_or(0)
    })
}

/// The LIMIT of the first waiter on this key whose WAIT has not run out
/// (the limit a missing key is recreated with when it is granted); None
/// when nobody waits.
pub fn waiting_limit(ctx: &Context, key: &RedisString, now: i64) -> Option<u16> {
    let lock = waiting_lock(ctx, key)?;
    with_wait_state(|s| {
        s.queues
            .waiters_of(&lock, usize::MAX)
            .into_iter()
            .find(|w| !w.timed_out(now))
            .map(|w| s.limits.get(&w.id).copied().unwrap_or(1))
    })
    .flatten()
}

/// One waiter as HBLOCK.WAITERS shows it: owner, who and since when, and
/// when its WAIT runs out (None: never).
pub struct WaiterView {
    pub owner: Box<[u8]>,
    pub caller: Caller,
    pub deadline_ms: Option<i64>,
}

/// The first `limit` clients waiting on this key, in queue order.
pub fn waiter_list(ctx: &Context, key: &RedisString, limit: usize) -> Vec<WaiterView> {
    let Some(lock) = waiting_lock(ctx, key) else {
        return Vec::new();
    };
    with_wait_state(|s| {
        s.queues
            .waiters_of(&lock, limit)
            .into_iter()
            .map(|w| WaiterView {
                owner: w.owner.clone(),
                caller: w.caller,
                deadline_ms: w.deadline_ms,
            })
            .collect()
    })
    .unwrap_or_default()
}

/// Locks of database `db` (None: all) that clients wait on.
pub fn locks_waited_on(db: Option<i32>) -> Vec<LockId> {
    with_wait_state(|s| s.queues.locks_in(db)).unwrap_or_default()
}

/// Notes `key` of `db` for the timer when clients wait on or watch it, or
/// always (`arrival`: it may hold a lease under a new name), and arms the
/// timer. Cheap when nobody waits on anything. For event callbacks.
pub fn note_key_for_timer(ctx: ffi::Ctx, db: i32, key: &[u8], arrival: bool) {
    let anyone_waiting =
        || !with_wait_state(|s| s.queues.is_empty()).unwrap_or(true) || watch::any();
    if !arrival && !anyone_waiting() {
        return;
    }
    let lock = LockId::new(db, key);
    let waited_on = |lock: &LockId| {
        with_wait_state(|s| s.queues.has_waiters(lock)).unwrap_or(false) || watch::is_watched(lock)
    };
    if arrival || waited_on(&lock) {
        note_pending(lock);
        arm(ctx);
    }
}

/// Makes sure a held lease is looked at by its deadline: its expiry is
/// published on time and the next waiter takes over at that moment. `lock`
/// is only built when a check must be added. A null `ctx` arms no timer
/// (the caller's timer run, or the end of loading, arms it).
pub fn schedule_lease_check(ctx: ffi::Ctx, lock: impl FnOnce() -> LockId, lease: &mut Lease) {
    if let Some(deadline) = lease.next_deadline() {
        schedule_check_at(ctx, lock, lease, deadline);
    }
}

/// A lease loaded from an RDB file or a RESTORE payload: its deadline is
/// checked (the timer is armed when loading ends or by the RESTORE's key
/// event).
pub fn schedule_loaded_check(key: &[u8], db: i32, lease: &mut Lease) {
    schedule_lease_check(std::ptr::null_mut(), || LockId::new(db, key), lease);
}

/// A lease loaded while a whole data set loads (RDB, AOF preamble, full
/// sync): its check is staged and joins the schedule, sorted, when loading
/// ends ([`insert_staged_checks`]); no timer runs before that.
pub fn stage_loaded_check(key: &[u8], db: i32, lease: &mut Lease) {
    let Some(at) = lease.next_deadline() else {
        return;
    };
    if lease.scheduled_check().is_some() {
        return schedule_loaded_check(key, db, lease);
    }
    let staged = STAGED.with(|s| {
        s.try_borrow_mut()
            .map(|mut staged| staged.push(at, db, key))
            .is_ok()
    });
    if staged {
        lease.set_scheduled_check(Some(at));
    } else {
        schedule_loaded_check(key, db, lease);
    }
}

/// Loading ended or failed: the checks staged while it ran join the
/// schedule (a check whose record is gone costs one look when it fires).
pub fn insert_staged_checks() {
    let staged = STAGED.with(|s| {
        s.try_borrow_mut()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
    });
    if !staged.is_empty() {
        with_wait_state(|s| s.schedule.lease_checks_loaded(staged));
    }
}

/// Makes sure the lock is looked at no later than `when`.
pub fn schedule_check_at(
    ctx: ffi::Ctx,
    lock: impl FnOnce() -> LockId,
    lease: &mut Lease,
    when: i64,
) {
    let current = lease.scheduled_check();
    if current.is_some_and(|at| at <= when) {
        return; // the common case: a beat moved the deadline later
    }
    let lock = lock();
    if let Some(at) = with_wait_state(|s| s.schedule.lease_check(&lock, current, when)) {
        lease.set_scheduled_check(Some(at));
    }
    if !ctx.is_null() {
        arm(ctx);
    }
}

/// The module timer's handler (events/timer.rs), handed down once at load
/// by lib.rs's init: the handler imports this file, so this file cannot
/// name it (the one deliberate indirection of the module's layers).
static TIMER_HANDLER: OnceLock<ffi::TimerCallback> = OnceLock::new();

/// Called once from init, before anything can arm the timer.
pub fn set_timer_handler(handler: ffi::TimerCallback) {
    // A second call (none is made) keeps the first handler.
    let _ = TIMER_HANDLER.set(handler);
}

/// The timer fired: it is no longer armed.
pub fn timer_fired() {
    with_wait_state(|s| s.armed = None);
}

/// Arms the module timer for the earliest due time, if it is not already.
pub fn arm(ctx: ffi::Ctx) {
    arm_not_before(ctx, i64::MIN);
}

/// Arms the module timer for the earliest due time, but not before
/// `earliest` (while writes are paused, due work is retried later).
pub fn arm_not_before(ctx: ffi::Ctx, earliest: i64) {
    let now = ffi::now_ms();
    let next = with_wait_state(|s| s.schedule.next_due()).flatten();
    let next = [tokens::next_due(now), binding::next_due()]
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
    let Some((stop, create)) = with_wait_state(|s| match s.armed {
        Some((_, when)) if when <= next => (None, false),
        Some((id, _)) => (Some(id), true),
        None => (None, true),
    }) else {
        return;
    };
    if let Some(id) = stop {
        ffi::stop_timer(ctx, id);
    }
    let Some(&handler) = TIMER_HANDLER.get().filter(|_| create) else {
        return;
    };
    let delay = next.saturating_sub(now).max(0);
    if let Some(id) = ffi::create_timer(ctx, delay, handler) {
        // When it really fires: create_timer caps the delay.
        let fires = next.min(now.saturating_add(ffi::TIMER_MAX_MS));
        with_wait_state(|s| s.armed = Some((id, fires)));
    }
}
