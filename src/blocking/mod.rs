//! Blocking ACQUIRE and lease deadlines: the Redis side of `queue.rs` and
//! `schedule.rs`.
//!
//! - A waiter is a client blocked with `RedisModule_BlockClient` (no Redis
//!   timeout) and queued per lock. It is granted from inside the command or
//!   timer that frees the lock, so the record is already its own before any
//!   other client runs; the reply follows when Redis unblocks it.
//! - WAIT deadlines and lease deadlines live in one [`Schedule`] driven by a
//!   single module timer (ms-precise, unlike Redis's blocked-client timeouts).
//! - Deletes, overwrites, renames and flushes are learnt from generic
//!   keyspace events, the data type's unlink callback and server events, and
//!   handled from a 0 ms timer: writing from inside a notification is not
//!   safe on Redis 7.0.
//!
//! State is thread-local (Redis calls modules on its main thread only) and is
//! never borrowed across a call into Redis.

//!
//! Layout: `waiters.rs` blocked clients (block, grant, reply, leave);
//! `timer.rs` the one module timer (lease deadlines, WAIT ends, pauses);
//! `events.rs` keyspace and server events (and each server's quirks). The
//! state they share is here.

mod events;
mod timer;
mod waiters;

pub use events::{on_unlink, subscribe};
pub use timer::{arm, watch_lease, watch_loaded};
pub use waiters::{block, can_block, serve, waiters, waiting_lock, Wait};

use crate::handoff::Handle;
use crate::stats;
use hblock_core::queue::{LockId, Queues, WaiterId};
use hblock_core::schedule::{Schedule, WaitSlot};
use redis_module::{raw, Context, RedisString};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

#[derive(Default)]
struct Blocking {
    queues: Queues<Handle>,
    schedule: Schedule,
    wait_slots: HashMap<WaiterId, WaitSlot>,
    /// Waiters that asked for BIND: their connection and grace.
    binds: HashMap<WaiterId, (u64, u64)>,
    /// The module timer and the time it was armed for.
    armed: Option<(raw::RedisModuleTimerID, i64)>,
}

thread_local! {
    static STATE: RefCell<Blocking> = RefCell::new(Blocking::default());
    /// Locks to look at again, noted by event callbacks.
    static PENDING: RefCell<HashSet<LockId>> = RefCell::new(HashSet::new());
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

fn selected_db(ctx: *mut raw::RedisModuleCtx) -> i32 {
    crate::ffi::selected_db(ctx)
}

pub fn lock_id(ctx: &Context, key: &RedisString) -> LockId {
    LockId::new(selected_db(ctx.ctx), key.as_slice())
}

fn select_db(ctx: &Context, db: i32) -> bool {
    crate::ffi::select_db(ctx.ctx, db)
}
