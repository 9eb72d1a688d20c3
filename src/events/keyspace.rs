//! Keyspace events: keys with waiters or watchers deleted or renamed,
//! locks arriving under a new name (rename, move, copy, restore), evicted
//! locks. A lock that leaves its key any other way (an overwrite) is seen by
//! the data type's unlink callback (datatype.rs).

use crate::{arrival, blocking, eviction, ffi};
use redis_module::{raw, RedisString};
use std::ffi::{c_char, c_int, CStr};

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
    eviction::on_key_event(
        event,
        RedisString::string_as_slice(key),
        ffi::selected_db(ctx),
    );
    // Valkey 8.1 before valkey-io/valkey#4024 runs this callback on the client
    // that issued the command after selecting the event's db, and never
    // switches it back: after MOVE that client would be left on the target
    // db. move_from comes first, in the client's own db, so move_to puts it
    // back. (Redis uses a private client here; reselecting it is harmless.)
    match event {
        b"move_from" => MOVED_FROM_DB.with(|d| d.set(Some(ffi::selected_db(ctx)))),
        b"move_to" => {
            if let Some(db) = MOVED_FROM_DB.with(|d| d.take()) {
                handle_key_event(ctx, event, key);
                ffi::select_db(ctx, db);
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
        arrival::restored(ctx, key);
    }
    let key = RedisString::string_as_slice(key);
    let arrival = ARRIVALS.contains(&event);
    blocking::note_key_for_timer(ctx, ffi::selected_db(ctx), key, arrival);
}

/// Subscribes to the keyspace events above. Called once from init.
pub fn subscribe(ctx: ffi::Ctx) -> bool {
    // Generic events tell which key a lock arrived at (rename_to, move_to,
    // copy_to, restore) and deletes; evicted ones count evicted locks. A lock
    // that leaves its key any other way is seen by the data type's unlink
    // callback. Each subscribed event costs Redis a module context, so write
    // events of the other types (set, lpush, hset, ...) and expired are not
    // subscribed.
    let classes = raw::REDISMODULE_NOTIFY_GENERIC | raw::REDISMODULE_NOTIFY_EVICTED;
    ffi::subscribe_keyspace(ctx, classes as c_int, on_key_event)
}
