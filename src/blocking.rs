//! Blocking ACQUIRE and lease deadlines: the Redis side of `queue.rs` and
//! `schedule.rs`.
//!
//! - A waiter is a client blocked with `RedisModule_BlockClient` (no Redis
//!   timeout) and queued per lock. It is granted from inside the command or
//!   timer that frees the lock, so the record is already its own before any
//!   other client runs; the reply follows when Redis unblocks it.
//! - WAIT deadlines and lease deadlines live in one [`Schedule`] driven by a
//!   single module timer (ms-precise, unlike Redis's blocked-client timeouts).
//! - Deletes, overwrites, renames and flushes are learnt from keyspace and
//!   server events and handled from a 0 ms timer: writing from inside a
//!   notification is not safe on Redis 7.0.
//!
//! State is thread-local (Redis calls modules on its main thread only) and is
//! never borrowed across a call into Redis.

use crate::commands::{commit, grant_new_key, lock_at, now_ms};
use crate::config;
use crate::error::Error;
use crate::handoff::{self, Grant, Handle};
use crate::lease::{Acquired, Effects, Lease, Phase, State};
use crate::queue::{LockId, Queues, WaiterId};
use crate::schedule::{Due, Schedule, WaitSlot};
use crate::stats;
use redis_module::key::{KeyFlags, RedisKeyWritable};
use redis_module::{raw, Context, ContextFlags, RedisString, RedisValue};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::atomic::Ordering;

/// A replica cannot decide expiries; it re-checks an overdue lease this often
/// so that, once promoted, it takes over within that time.
const REPLICA_POLL_MS: i64 = 100;

/// While writes are paused, the timer looks again this often.
const PAUSE_POLL_MS: i64 = 10;

#[derive(Default)]
struct Blocking {
    queues: Queues<Handle>,
    schedule: Schedule,
    wait_slots: HashMap<WaiterId, WaitSlot>,
    /// The module timer and the time it was armed for.
    armed: Option<(raw::RedisModuleTimerID, i64)>,
}

thread_local! {
    static STATE: RefCell<Blocking> = RefCell::new(Blocking::default());
    /// Locks to look at again, noted by event callbacks.
    static PENDING: RefCell<HashSet<LockId>> = RefCell::new(HashSet::new());
    /// The db of the last `move_from` event (see `on_key_event`).
    static MOVED_FROM_DB: std::cell::Cell<Option<i32>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` on the state unless it is already borrowed (it never is while we
/// call into Redis; this only guards against a re-entrant callback).
fn with<R>(f: impl FnOnce(&mut Blocking) -> R) -> Option<R> {
    STATE.with(|s| s.try_borrow_mut().ok().map(|mut s| f(&mut s)))
}

fn note_pending(lock: LockId) {
    PENDING.with(|p| {
        if let Ok(mut p) = p.try_borrow_mut() {
            p.insert(lock);
        }
    });
}

fn take_pending() -> Vec<LockId> {
    PENDING.with(|p| {
        p.try_borrow_mut()
            .map(|mut p| p.drain().collect())
            .unwrap_or_default()
    })
}

fn has_pending() -> bool {
    PENDING.with(|p| p.try_borrow().is_ok_and(|p| !p.is_empty()))
}

fn update_waiting_stat() {
    if let Some(total) = with(|s| s.queues.total()) {
        stats::WAITING.store(total as u64, Ordering::Relaxed);
    }
}

/// What a waiter is told when it leaves the queue.
enum Outcome {
    Token(i64),
    Nil,
    Error(String),
}

fn selected_db(ctx: *mut raw::RedisModuleCtx) -> i32 {
    // SAFETY: a plain API call on a live context.
    match unsafe { raw::RedisModule_GetSelectedDb } {
        Some(get) => unsafe { get(ctx) },
        None => 0,
    }
}

pub fn lock_id(ctx: &Context, key: &RedisString) -> LockId {
    LockId::new(selected_db(ctx.ctx), key.as_slice())
}

/// The lock's id when clients wait on it (cheap when nobody waits anywhere).
pub fn waiting_lock(ctx: &Context, key: &RedisString) -> Option<LockId> {
    if with(|s| s.queues.is_empty()).unwrap_or(true) {
        return None;
    }
    let lock = lock_id(ctx, key);
    with(|s| s.queues.has_waiters(&lock))
        .unwrap_or(false)
        .then_some(lock)
}

/// Clients waiting on this key (HBLOCK.INFO `waiters`).
pub fn waiters(ctx: &Context, key: &RedisString) -> usize {
    waiting_lock(ctx, key).map_or(0, |lock| with(|s| s.queues.len(&lock)).unwrap_or(0))
}

/// Whether this call may block: not inside MULTI, Lua or another module's call.
pub fn can_block(ctx: &Context) -> bool {
    !ctx.get_flags()
        .intersects(ContextFlags::MULTI | ContextFlags::LUA | ContextFlags::DENY_BLOCKING)
}

/// Blocks the calling client until it is granted the lock or `wait_ms` pass
/// (0: no limit). The command then returns `NoReply`.
pub fn block(
    ctx: &Context,
    lock: LockId,
    owner: &[u8],
    terms: (Option<u32>, Option<u16>),
    wait_ms: u64,
    now: i64,
) -> RedisValue {
    // SAFETY: API calls on the live command context; callbacks are ours.
    let bc = unsafe {
        let (Some(block_client), Some(on_disconnect)) = (
            raw::RedisModule_BlockClient,
            raw::RedisModule_SetDisconnectCallback,
        ) else {
            return RedisValue::Null;
        };
        let bc = block_client(
            ctx.ctx,
            Some(reply_to_waiter),
            Some(on_client_unblock),
            Some(free_outcome),
            0,
        );
        if bc.is_null() {
            return RedisValue::Null;
        }
        on_disconnect(bc, Some(on_disconnect_waiter));
        bc
    };
    handoff::blocked(ctx.ctx, bc as Handle);
    let deadline = (wait_ms > 0).then(|| now.saturating_add(wait_ms as i64));
    with(|s| {
        let id = s.queues.push(lock, owner, terms, deadline, bc as Handle);
        if let Some(deadline) = deadline {
            let slot = s.schedule.wait_end(id, deadline);
            s.wait_slots.insert(id, slot);
        }
    });
    update_waiting_stat();
    arm(ctx.ctx);
    RedisValue::NoReply
}

/// Takes a waiter out of its queue and unblocks it with `outcome`.
fn finish_waiter(id: WaiterId, outcome: Outcome) {
    let waiter = with(|s| {
        let waiter = s.queues.remove(id)?;
        if let Some(slot) = s.wait_slots.remove(&id) {
            s.schedule.cancel_wait(slot);
        }
        Some(waiter)
    })
    .flatten();
    let Some(waiter) = waiter else {
        return;
    };
    let handle = waiter.handle;
    if let Outcome::Token(token) = outcome {
        let grant = Grant {
            lock: waiter.lock,
            owner: waiter.owner,
            token: token as u64,
        };
        handoff::granted(handle, grant);
    }
    update_waiting_stat();
    let privdata = Box::into_raw(Box::new(outcome)).cast::<c_void>();
    // SAFETY: the handle came from BlockClient and has not been unblocked yet
    // (it was still queued); Redis passes privdata to the reply and free callbacks.
    unsafe {
        if let Some(unblock) = raw::RedisModule_UnblockClient {
            unblock(handle as *mut raw::RedisModuleBlockedClient, privdata);
        }
    }
}

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

/// Hands the lock to the first waiter that is still waiting, if the lock is
/// free, released, expired or gone. Called with the key open for writing.
pub fn serve(
    ctx: &Context,
    key: &RedisString,
    handle: &RedisKeyWritable,
    lock: &LockId,
    now: i64,
) -> Result<(), Error> {
    loop {
        let head = with(|s| {
            s.queues
                .head(lock)
                .map(|w| (w.id, w.timed_out(now), w.owner.clone(), w.terms))
        })
        .flatten();
        let Some((id, timed_out, owner, terms)) = head else {
            return Ok(());
        };
        if timed_out {
            // Its WAIT ran out: never granted, even if the lock is free now.
            finish_waiter(id, Outcome::Nil);
            stats::bump(&stats::WAIT_TIMEOUTS);
            continue;
        }
        let granted = match lock_at(handle)? {
            // A grant that creates a key follows ACQUIRE's deny-oom.
            None if crate::eviction::over_maxmemory(ctx) => Some(Err(Error::Oom)),
            None => {
                let lease = grant_new_key(ctx, key, handle, &owner, terms, now)?;
                watch_lease(ctx.ctx, || lock.clone(), lease);
                Some(Ok(lease.token))
            }
            Some(lease) if lease.state(now) == State::Held => None,
            Some(lease) => match lease.acquire(&owner, terms, config::default_terms(), now) {
                Ok((Acquired::Token(token), fx)) => {
                    commit(ctx, key, lease, fx);
                    watch_lease(ctx.ctx, || lock.clone(), lease);
                    Some(Ok(token))
                }
                Ok((Acquired::Busy, _)) => None,
                Err(err) => Some(Err(Error::from(err))),
            },
        };
        match granted {
            None => return Ok(()),
            Some(Ok(token)) => {
                finish_waiter(id, Outcome::Token(token as i64));
                return Ok(());
            }
            Some(Err(err)) => {
                finish_waiter(id, Outcome::Error(err.message()));
            }
        }
    }
}

/// Tells every waiter of a lock `message` (the key now holds another type).
fn fail_all(lock: &LockId, message: &str) {
    let ids = with(|s| s.queues.ids_of(lock)).unwrap_or_default();
    for id in ids {
        finish_waiter(id, Outcome::Error(message.to_string()));
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

/// A WAIT ran out: the waiter, if still waiting, is answered nil.
fn end_wait(due: Due) {
    if let Due::WaitEnd(id) = due {
        if with(|s| s.queues.get(id).is_some()).unwrap_or(false) {
            finish_waiter(id, Outcome::Nil);
            stats::bump(&stats::WAIT_TIMEOUTS);
        }
    }
}

/// Whether Redis forbids propagating writes right now (clients paused).
/// `RedisModule_AvoidReplicaTraffic` is exactly that test on Redis 7.0 and
/// Valkey; a server without it has no pauses we could break.
pub fn writes_paused() -> bool {
    // SAFETY: a plain API call without arguments, on the main thread.
    unsafe { raw::RedisModule_AvoidReplicaTraffic.is_some_and(|avoid| avoid() != 0) }
}

/// Releases a lease granted to a client that never got its token (it still
/// is that grant: same owner and token, not beaten or renewed since), then
/// serves the next waiter.
fn undo_grant(ctx: &Context, grant: &Grant, now: i64, is_master: bool) {
    if is_master && select_db(ctx, grant.lock.db) {
        let key = RedisString::create_from_slice(ctx.ctx, &grant.lock.key);
        let handle = ctx.open_key_writable_with_flags(&key, KeyFlags::NOTOUCH);
        if let Ok(Some(lease)) = lock_at(&handle) {
            let untouched = lease.phase == Phase::Held
                && lease.token == grant.token
                && lease.beats == 0
                && lease.owner.as_bytes() == &grant.owner[..];
            if untouched {
                let (_, fx) = lease.release(&grant.owner, grant.token, now);
                commit(ctx, &key, lease, fx);
            }
        }
    }
    check_lock(ctx, &grant.lock, now, is_master);
}

fn select_db(ctx: &Context, db: i32) -> bool {
    // SAFETY: a plain API call on the timer's context.
    unsafe {
        raw::RedisModule_SelectDb
            .is_some_and(|select| select(ctx.ctx, db) == raw::REDISMODULE_OK as c_int)
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
    // SAFETY: plain API calls on a live context; the timer carries no data.
    unsafe {
        if let (Some(id), Some(stop_timer)) = (stop, raw::RedisModule_StopTimer) {
            stop_timer(ctx, id, std::ptr::null_mut());
        }
        if !create {
            return;
        }
        let Some(create_timer) = raw::RedisModule_CreateTimer else {
            return;
        };
        let delay = next.saturating_sub(now).max(0);
        let id = create_timer(ctx, delay, Some(on_timer), std::ptr::null_mut());
        with(|s| s.armed = Some((id, next)));
    }
}

extern "C" fn on_timer(ctx: *mut raw::RedisModuleCtx, _data: *mut c_void) {
    with(|s| s.armed = None);
    let now = now_ms();
    if writes_paused() {
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
    for grant in handoff::take_undo() {
        undo_grant(&context, &grant, now, is_master);
    }
    for lock in take_pending() {
        check_lock(&context, &lock, now, is_master);
    }
    let due = with(|s| s.schedule.take_due(now)).unwrap_or_default();
    for due in due {
        match due {
            Due::WaitEnd(_) => end_wait(due),
            Due::Lease { lock, .. } => check_lock(&context, &lock, now, is_master),
        }
    }
    arm(ctx);
}

// ---- blocked-client callbacks ----

extern "C" fn reply_to_waiter(
    ctx: *mut raw::RedisModuleCtx,
    _argv: *mut *mut raw::RedisModuleString,
    _argc: c_int,
) -> c_int {
    reply_outcome(ctx);
    // SAFETY: a plain API call on the reply context.
    let bc = unsafe {
        raw::RedisModule_GetBlockedClientHandle.map_or(std::ptr::null_mut(), |get| get(ctx))
    };
    handoff::done(bc as Handle);
    raw::REDISMODULE_OK as c_int
}

/// Replies with the outcome stored as this blocked client's private data.
fn reply_outcome(ctx: *mut raw::RedisModuleCtx) {
    // SAFETY: the private data is null or the Outcome given to UnblockClient.
    let outcome = unsafe {
        raw::RedisModule_GetBlockedClientPrivateData
            .map(|get| get(ctx).cast::<Outcome>())
            .and_then(|ptr| ptr.as_ref())
    };
    match outcome {
        Some(Outcome::Token(token)) => {
            raw::reply_with_long_long(ctx, *token);
        }
        Some(Outcome::Error(message)) => {
            let message = CString::new(message.replace('\0', " ")).unwrap_or_default();
            // SAFETY: a NUL-terminated message on the reply context.
            unsafe {
                if let Some(reply_error) = raw::RedisModule_ReplyWithError {
                    reply_error(ctx, message.as_ptr());
                }
            }
        }
        Some(Outcome::Nil) | None => {
            raw::reply_with_null(ctx);
        }
    }
}

extern "C" fn free_outcome(_ctx: *mut raw::RedisModuleCtx, privdata: *mut c_void) {
    if !privdata.is_null() {
        // SAFETY: privdata is the Box<Outcome> given to UnblockClient, freed once.
        drop(unsafe { Box::from_raw(privdata.cast::<Outcome>()) });
    }
}

/// Called for `CLIENT UNBLOCK` (WAIT itself runs on our own timer): nil,
/// unless the client was granted the lock a moment ago, then its token.
extern "C" fn on_client_unblock(
    ctx: *mut raw::RedisModuleCtx,
    _argv: *mut *mut raw::RedisModuleString,
    _argc: c_int,
) -> c_int {
    // SAFETY: a plain API call on the timeout context.
    let bc = unsafe {
        raw::RedisModule_GetBlockedClientHandle.map_or(std::ptr::null_mut(), |get| get(ctx))
    };
    if leave_queue(bc) {
        raw::reply_with_null(ctx);
    } else {
        // Already granted (UnblockClient was called): reply what it was given.
        reply_outcome(ctx);
    }
    raw::REDISMODULE_OK as c_int
}

/// Takes a client that is leaving (CLIENT UNBLOCK, disconnect) out of its
/// queue and frees its handle. False when it had already left the queue
/// (granted or timed out): its handle was unblocked then, never twice.
fn leave_queue(bc: *mut raw::RedisModuleBlockedClient) -> bool {
    let found = with(|s| {
        let id = s.queues.find(&(bc as Handle))?;
        if let Some(slot) = s.wait_slots.remove(&id) {
            s.schedule.cancel_wait(slot);
        }
        s.queues.remove(id)
    })
    .flatten();
    if found.is_none() {
        return false;
    }
    handoff::done(bc as Handle);
    update_waiting_stat();
    // SAFETY: it was still queued, so its handle was never unblocked; the
    // client is gone (or answered by the caller), so this only frees it.
    unsafe {
        if let Some(unblock) = raw::RedisModule_UnblockClient {
            unblock(bc, std::ptr::null_mut());
        }
    }
    true
}

/// A waiter disconnected, was killed, or Redis unblocked it (role change,
/// CLIENT UNBLOCK ... ERROR). One granted a moment ago will never read its
/// token: the timer undoes that grant.
extern "C" fn on_disconnect_waiter(
    ctx: *mut raw::RedisModuleCtx,
    bc: *mut raw::RedisModuleBlockedClient,
) {
    if !leave_queue(bc) && handoff::lost(bc as Handle) {
        arm(ctx);
    }
}

// ---- keyspace and server events ----

/// Events after which a key may hold a lease under a new name.
const ARRIVALS: [&[u8]; 4] = [b"rename_to", b"move_to", b"copy_to", b"restore"];

extern "C" fn on_key_event(
    ctx: *mut raw::RedisModuleCtx,
    _type: c_int,
    event: *const c_char,
    key: *mut raw::RedisModuleString,
) -> c_int {
    if event.is_null() || key.is_null() {
        return raw::REDISMODULE_OK as c_int;
    }
    // SAFETY: Redis passes a NUL-terminated event name and a live key string.
    let event = unsafe { CStr::from_ptr(event) }.to_bytes();
    crate::eviction::on_key_event(event, key);
    // Valkey 8.1 before valkey-io/valkey#4024 runs this callback on the client
    // that issued the command after selecting the event's db, and never
    // switches it back: after MOVE that client would be left on the target
    // db. move_from comes first, in the client's own db, so move_to puts it
    // back. (Redis uses a private client here; reselecting it is harmless.)
    match event {
        b"move_from" => MOVED_FROM_DB.with(|d| d.set(Some(selected_db(ctx)))),
        b"move_to" => {
            if let Some(db) = MOVED_FROM_DB.with(|d| d.take()) {
                handle_key_event(ctx, event, key);
                // SAFETY: a plain API call on the notification's context.
                unsafe {
                    if let Some(select) = raw::RedisModule_SelectDb {
                        select(ctx, db);
                    }
                }
                return raw::REDISMODULE_OK as c_int;
            }
        }
        _ => {}
    }
    handle_key_event(ctx, event, key);
    raw::REDISMODULE_OK as c_int
}

/// Notes a key that waiters wait on, or that may now hold a lease under a
/// new name, for the next timer run.
fn handle_key_event(ctx: *mut raw::RedisModuleCtx, event: &[u8], key: *mut raw::RedisModuleString) {
    let arrival = ARRIVALS.contains(&event);
    let anyone_waiting = !with(|s| s.queues.is_empty()).unwrap_or(true);
    if !arrival && !anyone_waiting {
        return;
    }
    let lock = LockId::new(selected_db(ctx), RedisString::string_as_slice(key));
    let waited_on = with(|s| s.queues.has_waiters(&lock)).unwrap_or(false);
    if arrival || waited_on {
        note_pending(lock);
        arm(ctx);
    }
}

unsafe extern "C" fn on_server_event(
    ctx: *mut raw::RedisModuleCtx,
    event: raw::RedisModuleEvent,
    subevent: u64,
    data: *mut c_void,
) {
    match event.id {
        raw::REDISMODULE_EVENT_FLUSHDB => {
            // SAFETY: for FLUSHDB, data is a RedisModuleFlushInfo.
            let dbnum = unsafe { data.cast::<raw::RedisModuleFlushInfo>().as_ref() }
                .map_or(-1, |info| info.dbnum);
            let db = (dbnum >= 0).then_some(dbnum);
            for lock in with(|s| s.queues.locks_in(db)).unwrap_or_default() {
                note_pending(lock);
            }
        }
        raw::REDISMODULE_EVENT_SWAPDB => {
            // SAFETY: for SWAPDB, data is a RedisModuleSwapDbInfo.
            if let Some(info) = unsafe { data.cast::<raw::RedisModuleSwapDbInfo>().as_ref() } {
                let (a, b) = (info.dbnum_first, info.dbnum_second);
                with(|s| s.schedule.swap_dbs(a, b));
                for db in [a, b] {
                    for lock in with(|s| s.queues.locks_in(Some(db))).unwrap_or_default() {
                        note_pending(lock);
                    }
                }
            }
        }
        raw::REDISMODULE_EVENT_REPLICATION_ROLE_CHANGED
            if subevent == raw::REDISMODULE_EVENT_REPLROLECHANGED_NOW_MASTER =>
        {
            // Leases that ran out while this was a replica are handled now.
            let now = now_ms();
            with(|s| {
                s.schedule
                    .advance_leases(now.saturating_add(REPLICA_POLL_MS + 1), now)
            });
        }
        raw::REDISMODULE_EVENT_LOADING if subevent != raw::REDISMODULE_SUBEVENT_LOADING_ENDED => {
            return;
        }
        raw::REDISMODULE_EVENT_CONFIG => {
            crate::eviction::on_config_change(ctx, data);
            return;
        }
        _ => {}
    }
    arm(ctx);
}

/// Subscribes to the events above. Called once from init.
pub fn subscribe(ctx: *mut raw::RedisModuleCtx) -> bool {
    // Every class of key event but the module's own: deletes, overwrites,
    // expiries, evictions, renames and moves of a key somebody waits on.
    let classes = raw::REDISMODULE_NOTIFY_GENERIC
        | raw::REDISMODULE_NOTIFY_STRING
        | raw::REDISMODULE_NOTIFY_LIST
        | raw::REDISMODULE_NOTIFY_SET
        | raw::REDISMODULE_NOTIFY_HASH
        | raw::REDISMODULE_NOTIFY_ZSET
        | raw::REDISMODULE_NOTIFY_EXPIRED
        | raw::REDISMODULE_NOTIFY_EVICTED
        | raw::REDISMODULE_NOTIFY_STREAM;
    let events = [
        raw::REDISMODULE_EVENT_FLUSHDB,
        raw::REDISMODULE_EVENT_SWAPDB,
        raw::REDISMODULE_EVENT_REPLICATION_ROLE_CHANGED,
        raw::REDISMODULE_EVENT_LOADING,
        raw::REDISMODULE_EVENT_CONFIG,
    ];
    // SAFETY: registration calls during OnLoad with our own callbacks.
    unsafe {
        let (Some(keyspace), Some(server)) = (
            raw::RedisModule_SubscribeToKeyspaceEvents,
            raw::RedisModule_SubscribeToServerEvent,
        ) else {
            return false;
        };
        if keyspace(ctx, classes, Some(on_key_event)) != raw::REDISMODULE_OK as c_int {
            return false;
        }
        for id in events {
            let event = raw::RedisModuleEvent { id, dataver: 1 };
            if server(ctx, event, Some(on_server_event)) != raw::REDISMODULE_OK as c_int {
                return false;
            }
        }
        // Keys are signalled as modified only when a lock really changes
        // (commit), not whenever one is opened for writing. rdb_load checks
        // for short reads (the crate tests RedisModule_IsIOError after each
        // load call) and touches nothing but the record it builds, and the
        // timer and events act on the live keyspace only, so Redis may keep
        // diskless loading (swapdb, async loading) on.
        if let Some(set_options) = raw::RedisModule_SetModuleOptions {
            set_options(
                ctx,
                (raw::REDISMODULE_OPTION_NO_IMPLICIT_SIGNAL_MODIFIED
                    | raw::REDISMODULE_OPTIONS_HANDLE_IO_ERRORS
                    | raw::REDISMODULE_OPTIONS_HANDLE_REPL_ASYNC_LOAD) as c_int,
            );
        }
    }
    true
}

/// A lease loaded from an RDB file or a RESTORE payload: watch its deadline
/// (the timer is armed when loading ends or by the RESTORE's key event).
pub fn watch_loaded(io: *mut raw::RedisModuleIO, lease: &mut Lease) {
    if lease.phase != Phase::Held {
        return;
    }
    // SAFETY: plain API calls on the IO context of the running rdb_load.
    let (name, db) = unsafe {
        let name = raw::RedisModule_GetKeyNameFromIO.map_or(std::ptr::null(), |get| get(io));
        let db = raw::RedisModule_GetDbIdFromIO.map_or(0, |get| get(io));
        (name, db)
    };
    if name.is_null() {
        return;
    }
    let key = RedisString::string_as_slice(name);
    watch_lease(std::ptr::null_mut(), || LockId::new(db, key), lease);
}
