//! Keyspace and server events: keys with waiters deleted, overwritten,
//! renamed or flushed; locks arriving under a new name; SWAPDB; promotion;
//! the end of loading; config changes (eviction policy).

use super::timer::REPLICA_POLL_MS;
use super::{arm, note_pending, selected_db, with};
use crate::commands::now_ms;
use hblock_core::queue::LockId;
use redis_module::{raw, RedisString};
use std::ffi::{c_char, c_int, c_void, CStr};

// ---- keyspace and server events ----

thread_local! {
    /// The db of the last `move_from` event (see `on_key_event`).
    static MOVED_FROM_DB: std::cell::Cell<Option<i32>> = const { std::cell::Cell::new(None) };
}

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
    crate::eviction::on_key_event(event, RedisString::string_as_slice(key), selected_db(ctx));
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
                crate::ffi::select_db(ctx, db);
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
    if event == b"restore" {
        crate::arrival::restored(ctx, key);
    }
    let key = RedisString::string_as_slice(key);
    look_again(ctx, selected_db(ctx), key, ARRIVALS.contains(&event));
}

/// Notes `key` of `db` for the timer when clients wait on or watch it, or
/// always (`arrival`). Cheap when nobody waits on anything.
fn look_again(ctx: *mut raw::RedisModuleCtx, db: i32, key: &[u8], arrival: bool) {
    let anyone_waiting = || !with(|s| s.queues.is_empty()).unwrap_or(true) || crate::watch::any();
    if !arrival && !anyone_waiting() {
        return;
    }
    let lock = LockId::new(db, key);
    let waited_on = |lock: &LockId| {
        with(|s| s.queues.has_waiters(lock)).unwrap_or(false) || crate::watch::is_watched(lock)
    };
    if arrival || waited_on(&lock) {
        note_pending(lock);
        arm(ctx);
    }
}

/// The data type's unlink callback: a lock left the keyspace (DEL, UNLINK,
/// an overwrite by any command, expiry, eviction, the source of RENAME or
/// MOVE). Its waiters and watchers are looked at from the timer. This is
/// how overwrites are learnt: subscribing to the string, list, set, hash,
/// zset and stream key events cost every write of every other key a module
/// context (SET -P16 ran ~12% slower with hblock loaded).
pub unsafe extern "C" fn on_unlink(octx: *mut raw::RedisModuleKeyOptCtx, value: *const c_void) {
    // SAFETY: Redis passes the record that leaves its key, still alive.
    unsafe { crate::arrival::unlinked(value) };
    let Some((key, db)) = crate::ffi::key_of_opt_ctx(octx) else {
        return;
    };
    crate::eviction::on_unlink(key, db);
    let ctx = crate::ffi::detached_context();
    if !ctx.is_null() {
        look_again(ctx, db, key, false);
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
            note_locks_in(db);
        }
        raw::REDISMODULE_EVENT_SWAPDB => {
            // SAFETY: for SWAPDB, data is a RedisModuleSwapDbInfo.
            if let Some(info) = unsafe { data.cast::<raw::RedisModuleSwapDbInfo>().as_ref() } {
                let (a, b) = (info.dbnum_first, info.dbnum_second);
                // Every held lease has a check: those of both databases end.
                let held = with(|s| {
                    s.schedule.swap_dbs(a, b);
                    s.schedule.locks_in(&[a, b])
                })
                .unwrap_or_default();
                crate::arrival::swapped(ctx, &held);
                for db in [a, b] {
                    note_locks_in(Some(db));
                }
            }
        }
        raw::REDISMODULE_EVENT_REPLICATION_ROLE_CHANGED
            if subevent == raw::REDISMODULE_EVENT_REPLROLECHANGED_NOW_MASTER =>
        {
            crate::binding::clear();
            crate::propagation::consumer_seen();
            promoted();
        }
        raw::REDISMODULE_EVENT_REPLICATION_ROLE_CHANGED => {
            crate::binding::clear();
            crate::propagation::consumer_seen();
            crate::tokens::demoted();
        }
        raw::REDISMODULE_EVENT_LOADING if subevent == raw::REDISMODULE_SUBEVENT_LOADING_FAILED => {
            crate::arrival::loading(false);
            return;
        }
        raw::REDISMODULE_EVENT_LOADING if subevent != raw::REDISMODULE_SUBEVENT_LOADING_ENDED => {
            crate::arrival::loading(true);
            return;
        }
        raw::REDISMODULE_EVENT_LOADING => {
            crate::arrival::loading(false);
            // A master that started from its files (or DEBUG RELOAD): a new
            // epoch, above grants that may not have reached the files.
            let flags = redis_module::Context::new(ctx).get_flags();
            if flags.contains(redis_module::ContextFlags::MASTER) {
                crate::tokens::new_epoch(now_ms(), false);
            }
        }
        raw::REDISMODULE_EVENT_CONFIG => {
            crate::eviction::on_config_change(ctx, data);
            crate::propagation::refresh(ctx);
            // A running failover delay follows hblock.failover-delay at once.
            crate::tokens::delay_config_changed(now_ms());
        }
        raw::REDISMODULE_EVENT_MASTER_LINK_CHANGE => {
            let up = subevent == raw::REDISMODULE_SUBEVENT_MASTER_LINK_UP;
            crate::tokens::link_changed(up, now_ms());
            return;
        }
        _ => {}
    }
    arm(ctx);
}

/// Notes every lock of `db` (None: all) that clients wait on or watch.
fn note_locks_in(db: Option<i32>) {
    let mut locks = with(|s| s.queues.locks_in(db)).unwrap_or_default();
    locks.extend(crate::watch::locks_in(db));
    for lock in locks {
        note_pending(lock);
    }
}

/// This server became a master: a new epoch of tokens; leases that ran out
/// while it was a replica are handled now.
fn promoted() {
    let now = now_ms();
    crate::tokens::new_epoch(now, true);
    with(|s| {
        s.schedule
            .advance_leases(now.saturating_add(REPLICA_POLL_MS + 1), now)
    });
}

/// Subscribes to the events above. Called once from init.
pub fn subscribe(ctx: *mut raw::RedisModuleCtx) -> bool {
    // Generic events tell which key a lock arrived at (rename_to, move_to,
    // copy_to, restore) and deletes; evicted ones count evicted locks. A lock
    // that leaves its key any other way is seen by `on_unlink`. Each
    // subscribed event costs Redis a module context, so write events of the
    // other types (set, lpush, hset, ...) and expired are not subscribed.
    let classes = raw::REDISMODULE_NOTIFY_GENERIC | raw::REDISMODULE_NOTIFY_EVICTED;
    let events = [
        raw::REDISMODULE_EVENT_FLUSHDB,
        raw::REDISMODULE_EVENT_SWAPDB,
        raw::REDISMODULE_EVENT_REPLICATION_ROLE_CHANGED,
        raw::REDISMODULE_EVENT_LOADING,
        raw::REDISMODULE_EVENT_CONFIG,
        raw::REDISMODULE_EVENT_MASTER_LINK_CHANGE,
    ];
    if !crate::ffi::subscribe_keyspace(ctx, classes, on_key_event) {
        return false;
    }
    if !events
        .into_iter()
        .all(|id| crate::ffi::subscribe_server_event(ctx, id, on_server_event))
    {
        return false;
    }
    // Keys are signalled as modified only when a lock really changes
    // (commit), not whenever one is opened for writing. rdb_load checks for
    // short reads (the crate tests RedisModule_IsIOError after each load
    // call) and touches nothing but the record it builds, and the timer and
    // events act on the live keyspace only, so Redis may keep diskless
    // loading (swapdb, async loading) on.
    crate::ffi::set_module_options(
        ctx,
        (raw::REDISMODULE_OPTION_NO_IMPLICIT_SIGNAL_MODIFIED
            | raw::REDISMODULE_OPTIONS_HANDLE_IO_ERRORS
            | raw::REDISMODULE_OPTIONS_HANDLE_REPL_ASYNC_LOAD) as c_int,
    );
    true
}
