//! Server events: FLUSHDB, SWAPDB, role changes (promotion, demotion), the
//! start and end of loading, config changes, the master link going up or
//! down. Work they find is done from the timer, never inside the event.

use crate::blocking::{self, with_wait_state, REPLICA_POLL_MS};
use crate::{arrival, binding, datatype, eviction, ffi, propagation, tokens, watch};
use redis_module::{raw, Context, ContextFlags};
use std::ffi::{c_int, c_void};

/// Subscribes to the events below and sets the module's options. Called
/// once from init.
pub fn subscribe(ctx: ffi::Ctx) -> bool {
    let events = [
        raw::REDISMODULE_EVENT_FLUSHDB,
        raw::REDISMODULE_EVENT_SWAPDB,
        raw::REDISMODULE_EVENT_REPLICATION_ROLE_CHANGED,
        raw::REDISMODULE_EVENT_LOADING,
        raw::REDISMODULE_EVENT_CONFIG,
        raw::REDISMODULE_EVENT_MASTER_LINK_CHANGE,
    ];
    if !events
        .into_iter()
        .all(|id| ffi::subscribe_server_event(ctx, id, on_server_event))
    {
        return false;
    }
    // Keys are signalled as modified only when a lock really changes
    // (store::commit), not whenever one is opened for writing. rdb_load
    // checks for short reads (the crate tests RedisModule_IsIOError after
    // each load call) and touches nothing but the record it builds, and the
    // timer and events act on the live keyspace only, so Redis may keep
    // diskless loading (swapdb, async loading) on.
    ffi::set_module_options(
        ctx,
        (raw::REDISMODULE_OPTION_NO_IMPLICIT_SIGNAL_MODIFIED
            | raw::REDISMODULE_OPTIONS_HANDLE_IO_ERRORS
            | raw::REDISMODULE_OPTIONS_HANDLE_REPL_ASYNC_LOAD) as c_int,
    );
    true
}

unsafe extern "C" fn on_server_event(
    ctx: ffi::Ctx,
    event: raw::RedisModuleEvent,
    subevent: u64,
    data: *mut c_void,
) {
    let arm = match event.id {
        raw::REDISMODULE_EVENT_FLUSHDB => {
            // SAFETY: for FLUSHDB, data is a RedisModuleFlushInfo.
            let dbnum = unsafe { data.cast::<raw::RedisModuleFlushInfo>().as_ref() }
                .map_or(-1, |info| info.dbnum);
            note_locks_in((dbnum >= 0).then_some(dbnum));
            if subevent == raw::REDISMODULE_SUBEVENT_FLUSHDB_END {
                flushed(ctx, dbnum);
            }
            true
        }
        raw::REDISMODULE_EVENT_SWAPDB => {
            // SAFETY: for SWAPDB, data is a RedisModuleSwapDbInfo.
            if let Some(info) = unsafe { data.cast::<raw::RedisModuleSwapDbInfo>().as_ref() } {
                swapped(ctx, info.dbnum_first, info.dbnum_second);
            }
            true
        }
        raw::REDISMODULE_EVENT_REPLICATION_ROLE_CHANGED => {
            binding::clear();
            propagation::consumer_seen();
            if subevent == raw::REDISMODULE_EVENT_REPLROLECHANGED_NOW_MASTER {
                promoted();
            } else {
                tokens::demoted();
            }
            true
        }
        raw::REDISMODULE_EVENT_LOADING => loading(ctx, subevent),
        raw::REDISMODULE_EVENT_CONFIG => {
            eviction::on_config_change(ctx, data);
            propagation::refresh(ctx);
            // A running failover delay follows hblock.failover-delay at once.
            tokens::delay_config_changed(ffi::now_ms());
            true
        }
        raw::REDISMODULE_EVENT_MASTER_LINK_CHANGE => {
            let up = subevent == raw::REDISMODULE_SUBEVENT_MASTER_LINK_UP;
            tokens::link_changed(up, ffi::now_ms());
            false
        }
        _ => true,
    };
    if arm {
        blocking::arm(ctx);
    }
}

/// SWAPDB of databases `a` and `b`: their lease checks follow the swap,
/// their held leases end (every held lease has a check), and the locks
/// clients wait on or watch in both are looked at.
fn swapped(ctx: ffi::Ctx, a: i32, b: i32) {
    let held = with_wait_state(|s| {
        s.schedule.swap_dbs(a, b);
        s.schedule.locks_in(&[a, b])
    })
    .unwrap_or_default();
    datatype::swapped(ctx, &held);
    for db in [a, b] {
        note_locks_in(Some(db));
    }
}

/// A flush of database `dbnum` (-1: all) ended: the lease checks of every
/// database it emptied go, instead of staying until their time (tens of MB
/// for a million locks with hour-long leases, after every FLUSHALL or
/// DEBUG RELOAD). Only a database that holds no key at all loses its
/// checks: whatever path leaves records in one (a diskless or async load,
/// an async flush), a live lease must never lose its check. The checks of
/// a data set still loading are staged apart and not touched.
fn flushed(ctx: ffi::Ctx, dbnum: i32) {
    if dbnum >= 0 {
        if ffi::db_size(ctx, dbnum) == Some(0) {
            with_wait_state(|s| s.schedule.drop_lease_checks(Some(&[dbnum])));
        }
        return;
    }
    let (mut emptied, mut all) = (Vec::new(), true);
    let mut db = 0;
    while let Some(size) = ffi::db_size(ctx, db) {
        if size == 0 {
            emptied.push(db);
        } else {
            all = false;
        }
        db += 1;
    }
    if emptied.is_empty() {
        return;
    }
    let dbs = (!all).then_some(emptied.as_slice());
    with_wait_state(|s| s.schedule.drop_lease_checks(dbs));
}

/// A data set starts or stops loading. True when the timer is to be armed
/// (the end of loading).
fn loading(ctx: ffi::Ctx, subevent: u64) -> bool {
    if subevent == raw::REDISMODULE_SUBEVENT_LOADING_FAILED {
        arrival::loading(false);
        blocking::insert_staged_checks();
        return false;
    }
    if subevent != raw::REDISMODULE_SUBEVENT_LOADING_ENDED {
        arrival::loading(true);
        return false;
    }
    arrival::loading(false);
    blocking::insert_staged_checks();
    // A master that started from its files (or DEBUG RELOAD): a new epoch,
    // above grants that may not have reached the files.
    if Context::new(ctx).get_flags().contains(ContextFlags::MASTER) {
        tokens::new_epoch(ffi::now_ms(), false);
    }
    true
}

/// Notes every lock of `db` (None: all) that clients wait on or watch.
fn note_locks_in(db: Option<i32>) {
    let mut locks = blocking::locks_waited_on(db);
    locks.extend(watch::locks_in(db));
    for lock in locks {
        blocking::note_pending(lock);
    }
}

/// This server became a master: a new epoch of tokens; leases that ran out
/// while it was a replica are handled now.
fn promoted() {
    let now = ffi::now_ms();
    tokens::new_epoch(now, true);
    with_wait_state(|s| {
        s.schedule
            .advance_leases(now.saturating_add(REPLICA_POLL_MS + 1), now)
    });
}
