//! Locks and `maxmemory`: a warning when the eviction policy may evict lock
//! keys, the `hblock_evicted` counter, and the OOM rule for waiter grants.
//!
//! Redis 7.0 says "evicted" only after the key is gone, so the data type's
//! `unlink` callback notes which key it saw last; the "evicted" event that
//! follows for the same key is a lock's eviction.

use crate::stats;
use redis_module::{raw, Context, ContextFlags, RedisValue};
use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// The lock unlinked last: its name and db, while `valid`. The buffer is
/// reused, so a lock leaving its key costs no allocation.
#[derive(Default)]
struct Unlinked {
    key: Vec<u8>,
    db: i32,
    valid: bool,
}

/// The buffer's room kept between unlinks.
const KEEP_CAPACITY: usize = 4096;

thread_local! {
    static LAST_UNLINKED: RefCell<Unlinked> = RefCell::new(Unlinked::default());
}

/// Whether a note may be valid: every command clears the note, and most
/// find none to clear, so they test this static (main thread only) instead
/// of the thread-local (a __tls_get_addr call in a loaded library).
static NOTED: AtomicBool = AtomicBool::new(false);

/// A lock left the keyspace (the data type's unlink callback): remember
/// which key, for the "evicted" event that may follow.
pub fn on_unlink(key: &[u8], db: i32) {
    LAST_UNLINKED.with(|u| {
        if let Ok(mut u) = u.try_borrow_mut() {
            u.key.clear();
            u.key.extend_from_slice(key);
            u.db = db;
            u.valid = true;
            NOTED.store(true, Relaxed);
        }
    });
}

/// Forgets the note; whether it was for this key.
fn take_note_for(key: &[u8], db: i32) -> bool {
    LAST_UNLINKED.with(|u| {
        u.try_borrow_mut().is_ok_and(|mut u| {
            let same = u.valid && u.db == db && u.key == key;
            u.valid = false;
            NOTED.store(false, Relaxed);
            if u.key.capacity() > KEEP_CAPACITY {
                // A huge key name is not kept around.
                u.key = Vec::new();
            }
            same
        })
    })
}

/// Every command starts here (the filter): a note from the command before
/// is stale.
pub fn on_command() {
    if NOTED.load(Relaxed) {
        take_note_for(&[], 0);
    }
}

/// Every key event passes here first: an "evicted" event for the lock just
/// unlinked counts an evicted lock. Any event clears the note. (Eviction
/// unlinks the key and says "evicted" right after, with nothing between.)
pub fn on_key_event(event: &[u8], key: &[u8], db: i32) {
    if take_note_for(key, db) && event == b"evicted" {
        stats::bump(&stats::EVICTED);
    }
}

/// Whether creating a key now would go over `maxmemory` (waiter grants of a
/// new key follow ACQUIRE's deny-oom; Redis checks commands, not timers).
pub fn over_maxmemory(ctx: &Context) -> bool {
    ctx.get_flags().contains(ContextFlags::OOM)
}

/// Logs a warning when `maxmemory-policy` lets Redis evict keys without a
/// TTL, lock keys among them. Called at load and when the policy changes.
pub fn warn_if_locks_evictable(ctx: &Context) {
    let reply = ctx.call("CONFIG", &["GET", "maxmemory-policy"]);
    let policy = match reply {
        Ok(RedisValue::Array(items)) => match items.get(1) {
            Some(RedisValue::SimpleString(s)) => s.clone(),
            Some(RedisValue::BulkString(s)) => s.clone(),
            Some(RedisValue::BulkRedisString(s)) => s.to_string_lossy(),
            _ => return,
        },
        _ => return,
    };
    if policy.starts_with("allkeys-") {
        ctx.log_warning(&format!(
            "maxmemory-policy is {policy}: Redis may evict lock keys, which ends \
             their leases at once and loses their records. Use noeviction or a \
             volatile-* policy on servers that hold locks (hblock_evicted counts \
             evicted locks)."
        ));
    }
}

/// The config-change server event: warn again if the policy changed.
pub fn on_config_change(ctx: *mut raw::RedisModuleCtx, data: *mut c_void) {
    // SAFETY: for REDISMODULE_EVENT_CONFIG, data is a RedisModuleConfigChange
    // whose config_names holds num_changes NUL-terminated names.
    let names = unsafe {
        let Some(change) = data.cast::<raw::RedisModuleConfigChange>().as_ref() else {
            return;
        };
        if change.config_names.is_null() {
            return;
        }
        std::slice::from_raw_parts(change.config_names, change.num_changes as usize)
    };
    let policy_changed = names.iter().any(|&name: &*const c_char| {
        // SAFETY: each entry is a NUL-terminated config name (see above).
        !name.is_null() && unsafe { CStr::from_ptr(name) }.to_bytes() == b"maxmemory-policy"
    });
    if policy_changed {
        warn_if_locks_evictable(&Context::new(ctx));
    }
}
