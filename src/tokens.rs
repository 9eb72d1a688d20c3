//! The data set's token floor and the failover delay, on the Redis side of
//! `hblock_core::tokens`.
//!
//! - Every record that changes, is replicated in or loaded raises the floor
//!   to its token (`observe`); new leases get tokens above it.
//! - The floor is saved as RDB aux data, and `HBLOCK.FLOOR n` carries its
//!   jumps to replicas and the AOF (emitted from the module timer, never
//!   from an event handler or while writes are paused).
//! - A promotion, or a master that starts from its files, begins a new
//!   epoch. After a promotion, locks that this server's records do not show
//!   as held are not granted for `hblock.failover-delay` ms.

use crate::lease::Lease;
use hblock_core::tokens::{failover_delay, Floor};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

static FLOOR: AtomicU64 = AtomicU64::new(0);
/// Longest lease (interval * misses, ms) of any record seen.
static LONGEST_LEASE: AtomicI64 = AtomicI64::new(0);
/// Until then (ms), locks not held are not granted (0: no delay).
static HOLD_UNTIL: AtomicI64 = AtomicI64::new(0);
/// Waiters must be served when the delay ends.
static HOLD_SERVE: AtomicBool = AtomicBool::new(false);
/// The floor jumped: `HBLOCK.FLOOR` must be propagated.
static EMIT: AtomicBool = AtomicBool::new(false);

/// The last token the data set handed out or saw.
pub fn floor() -> u64 {
    FLOOR.load(Ordering::Relaxed)
}

pub fn epoch() -> u64 {
    Floor(floor()).epoch()
}

// Every caller runs on Redis's main thread (commands, the timer, events,
// loading; the module starts no threads), so a load and a store raise these
// exactly, without the locked read-modify-write of fetch_max (which was most
// of `commit`'s own time on every BEAT).

pub fn observe_token(token: u64) {
    if token > FLOOR.load(Ordering::Relaxed) {
        FLOOR.store(token, Ordering::Relaxed);
    }
}

/// HBLOCK.FLOOR RESET: the floor becomes the start of the epoch after
/// `highest` (the highest token of the records that exist), lower or not;
/// the command replicates itself, so no jump is due. The new floor.
pub fn reset_floor(highest: u64) -> u64 {
    let mut f = Floor(highest);
    f.new_epoch();
    FLOOR.store(f.0, Ordering::Relaxed);
    EMIT.store(false, Ordering::Relaxed);
    f.0
}

/// A record that changed, arrived from the master or was loaded.
pub fn observe(lease: &Lease) {
    observe_token(lease.token);
    let terms = lease.terms();
    let lease_ms = i64::from(terms.interval_ms).saturating_mul(i64::from(terms.misses));
    if lease_ms > LONGEST_LEASE.load(Ordering::Relaxed) {
        LONGEST_LEASE.store(lease_ms, Ordering::Relaxed);
    }
}

/// This server became a master (`promoted`), or started as one from its
/// files: a new epoch. After a promotion, grants of locks not held wait.
pub fn new_epoch(now: i64, promoted: bool) {
    let mut f = Floor(floor());
    if !promoted && f.0 == 0 {
        return; // a fresh data set: its first token is 1
    }
    f.new_epoch();
    observe_token(f.0);
    EMIT.store(true, Ordering::Relaxed);
    if promoted {
        let defaults = crate::config::default_terms();
        let default_lease =
            i64::from(defaults.interval_ms).saturating_mul(i64::from(defaults.misses));
        let longest = LONGEST_LEASE.load(Ordering::Relaxed).max(default_lease);
        let delay = failover_delay(crate::config::failover_delay(), longest);
        if delay > 0 {
            HOLD_UNTIL.store(now.saturating_add(delay), Ordering::Relaxed);
            HOLD_SERVE.store(true, Ordering::Relaxed);
        }
    }
}

/// Ms left of the failover delay (0: none).
pub fn hold_left(now: i64) -> i64 {
    HOLD_UNTIL
        .load(Ordering::Relaxed)
        .saturating_sub(now)
        .max(0)
}

/// This server became a replica: a delay of an earlier promotion ends.
pub fn demoted() {
    EMIT.store(false, Ordering::Relaxed);
    HOLD_UNTIL.store(0, Ordering::Relaxed);
    HOLD_SERVE.store(false, Ordering::Relaxed);
}

/// When the timer has work here: the floor to propagate (now), the end of
/// the delay (serve the waiters).
pub fn next_due(now: i64) -> Option<i64> {
    if EMIT.load(Ordering::Relaxed) {
        return Some(now);
    }
    HOLD_SERVE
        .load(Ordering::Relaxed)
        .then(|| HOLD_UNTIL.load(Ordering::Relaxed))
}

/// From the timer, on a master, writes allowed: propagates a jumped floor.
/// True when the failover delay just ended (serve every waiter now).
pub fn on_timer(ctx: crate::ffi::Ctx, now: i64) -> bool {
    if EMIT.swap(false, Ordering::Relaxed) {
        crate::ffi::replicate_floor(ctx, floor());
    }
    HOLD_SERVE.load(Ordering::Relaxed)
        && now >= HOLD_UNTIL.load(Ordering::Relaxed)
        && HOLD_SERVE.swap(false, Ordering::Relaxed)
}

/// RDB aux data: the floor (saved before the keys).
///
/// # Safety
/// Called by Redis with the RDB stream it is writing.
pub unsafe extern "C" fn aux_save(io: *mut redis_module::raw::RedisModuleIO, _when: i32) {
    crate::ffi::save_u64(io, floor());
}

/// Redis 7.2+ and Valkey: nothing is written (and no aux field saved, so the
/// file loads without the module) while the floor is 0.
///
/// # Safety
/// Called by Redis with the RDB stream it is writing.
pub unsafe extern "C" fn aux_save2(io: *mut redis_module::raw::RedisModuleIO, _when: i32) {
    if floor() > 0 {
        crate::ffi::save_u64(io, floor());
    }
}

/// Loads the floor saved by `aux_save` (the higher of it and ours is kept).
///
/// # Safety
/// Called by Redis with the RDB stream it is reading.
pub unsafe extern "C" fn aux_load(
    io: *mut redis_module::raw::RedisModuleIO,
    _encver: i32,
    _when: i32,
) -> i32 {
    match crate::ffi::load_u64(io) {
        Some(saved) => {
            observe_token(saved);
            redis_module::raw::REDISMODULE_OK as i32
        }
        None => redis_module::raw::REDISMODULE_ERR as i32,
    }
}
