//! HBLOCK.WATCH's blocked clients: who watches which lock, having seen which
//! holder, and waking them when the holder changes.
//!
//! The holder of a lock is the token of its live lease, or 0 (free,
//! released, expired, missing, another type). Every change of holder goes
//! through `notify`: `commit` on the master (grant, release, expiry,
//! takeover), APPLY on a replica, and the timer for keys deleted, flushed,
//! overwritten, renamed or evicted and for deadlines a replica's clock sees.
//! A woken watcher is answered the lock's INFO reply as it is when Redis
//! sends the reply; a TIMEOUT answers it unchanged.

use crate::ffi::{self, BlockedClient};
use crate::queue::LockId;
use redis_module::raw;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_int;

struct Watcher {
    lock: LockId,
    bc: BlockedClient,
    seen: u64,
}

#[derive(Default)]
struct Watchers {
    next_id: u64,
    by_id: HashMap<u64, Watcher>,
    /// Waiting watchers per lock (woken ones are only in `by_id` and
    /// `by_client` until their reply or disconnect).
    by_lock: HashMap<LockId, Vec<u64>>,
    /// Blocked-client handle -> id, for replies, timeouts and disconnects.
    by_client: HashMap<usize, u64>,
}

thread_local! {
    static WATCHERS: RefCell<Watchers> = RefCell::new(Watchers::default());
}

fn with<R>(f: impl FnOnce(&mut Watchers) -> R) -> Option<R> {
    WATCHERS.with(|w| w.try_borrow_mut().ok().map(|mut w| f(&mut w)))
}

/// Whether anyone watches any lock.
pub fn any() -> bool {
    with(|w| !w.by_lock.is_empty()).unwrap_or(false)
}

/// Whether anyone watches this lock (cheap when nobody watches anything).
pub fn is_watched(lock: &LockId) -> bool {
    with(|w| !w.by_lock.is_empty() && w.by_lock.contains_key(lock)).unwrap_or(false)
}

/// Watched locks of database `db` (all databases: None).
pub fn locks_in(db: Option<i32>) -> Vec<LockId> {
    with(|w| {
        w.by_lock
            .keys()
            .filter(|l| db.is_none_or(|d| d == l.db))
            .cloned()
            .collect()
    })
    .unwrap_or_default()
}

/// Blocks the calling client until `lock`'s holder differs from `seen` or
/// `timeout_ms` pass (0: no limit). False when Redis refused to block.
pub fn block(ctx: ffi::Ctx, lock: LockId, seen: u64, timeout_ms: i64) -> bool {
    // No private data: Redis would make a module context per woken client
    // just to free it. The reply callback finds the watcher by its handle.
    let Some(bc) = ffi::block_client(
        ctx,
        reply_and_forget,
        reply_and_forget,
        None,
        on_disconnect,
        timeout_ms,
    ) else {
        return false;
    };
    with(|w| {
        w.next_id += 1;
        let id = w.next_id;
        w.by_lock.entry(lock.clone()).or_default().push(id);
        w.by_client.insert(bc as usize, id);
        w.by_id.insert(id, Watcher { lock, bc, seen });
    });
    true
}

/// The holder of `lock` is now `holder`: wakes its watchers that saw another.
pub fn notify(lock: &LockId, holder: u64) {
    let woken: Vec<BlockedClient> = with(|w| {
        if w.by_lock.is_empty() {
            return Vec::new();
        }
        let Some(ids) = w.by_lock.get_mut(lock) else {
            return Vec::new();
        };
        let (wake, keep): (Vec<u64>, Vec<u64>) = ids
            .iter()
            .partition(|id| w.by_id.get(id).is_some_and(|x| x.seen != holder));
        if keep.is_empty() {
            w.by_lock.remove(lock);
        } else {
            *ids = keep;
        }
        wake.into_iter()
            .filter_map(|id| w.by_id.get(&id).map(|x| x.bc))
            .collect()
    })
    .unwrap_or_default();
    for bc in woken {
        ffi::unblock_client(bc, std::ptr::null_mut());
    }
}

/// Forgets a watcher, waiting or woken (reply, timeout, disconnect); its
/// lock, if any.
fn forget(bc: BlockedClient) -> Option<LockId> {
    with(|w| {
        let id = w.by_client.remove(&(bc as usize))?;
        let x = w.by_id.remove(&id)?;
        if let Some(ids) = w.by_lock.get_mut(&x.lock) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                w.by_lock.remove(&x.lock);
            }
        }
        Some(x.lock)
    })
    .flatten()
}

fn reply_info(ctx: ffi::Ctx, lock: &LockId) {
    crate::commands::info::reply_lock(ctx, &lock.key);
}

/// The reply callback of a woken watcher and the timeout callback alike:
/// both answer the lock's INFO reply as it is now (a timeout answers it
/// unchanged) and forget the watcher.
extern "C" fn reply_and_forget(
    ctx: ffi::Ctx,
    _argv: *mut *mut raw::RedisModuleString,
    _argc: c_int,
) -> c_int {
    match forget(ffi::blocked_client_handle(ctx)) {
        Some(lock) => reply_info(ctx, &lock),
        None => ffi::reply_error(ctx, "ERR watcher lost"),
    }
    raw::REDISMODULE_OK as c_int
}

extern "C" fn on_disconnect(_ctx: ffi::Ctx, bc: BlockedClient) {
    forget(bc);
}
