//! The data set's token floor and the failover delay, on the Redis side of
//! `hblock_core::tokens`.
//!
//! - Every record that changes, is replicated in or loaded raises the floor
//!   to its token (`observe`); new leases get tokens above it.
//! - The floor is saved as RDB aux data, and `HBLOCK.FLOOR n` carries its
//!   jumps to replicas and the AOF (emitted from the module timer, never
//!   from an event handler or while writes are paused).
//! - A promotion, or a master that starts from its files, begins a new
//!   epoch. After an unplanned promotion (the master link was down), each
//!   lock that this server's records do not show as held is not granted for
//!   its own delay (`hblock_core::tokens::failover_delay`: its last lease's
//!   length, the default terms' for a key without a record, or
//!   `hblock.failover-delay` ms), counted from the promotion. A planned one
//!   (FAILOVER, CLUSTER FAILOVER without FORCE/TAKEOVER: Redis pauses the
//!   master's writes and checks the replica is caught up; the link up until
//!   the promotion) lost nothing and holds nothing back.

use hblock_core::lease::Lease;
use hblock_core::tokens::{failover_delay, Floor};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

static FLOOR: AtomicU64 = AtomicU64::new(0);
/// Longest lease (interval * misses, ms) of any record seen: an upper bound
/// of what any lock is held back, for INFO.
static LONGEST_LEASE: AtomicI64 = AtomicI64::new(0);
/// When this server was promoted without a handover (0: nothing is held back).
static PROMOTED_AT: AtomicI64 = AtomicI64::new(0);
/// The first token of the epoch that promotion began: a record whose token
/// is above it was granted here since, and is never held back.
static HELD_UP_TO_TOKEN: AtomicU64 = AtomicU64::new(0);
/// LONGEST_LEASE at that promotion: what records from before it can hold.
static HELD_LONGEST: AtomicI64 = AtomicI64::new(0);
/// The earliest end of a hold that kept a waiter waiting (i64::MAX: none):
/// the timer serves every waiter then.
static HOLD_SERVE_AT: AtomicI64 = AtomicI64::new(i64::MAX);
/// When the master link last went down (MASTER_LINK_CHANGE), and whether
/// nothing has run since (no command, no timer): a promotion that finds the
/// link went down within the same call was linked until that moment.
static LINK_DOWN_AT: AtomicI64 = AtomicI64::new(i64::MIN);
static LINK_JUST_DOWN: AtomicBool = AtomicBool::new(false);
/// When the command filter last saw a command that promotes only a replica
/// Redis has checked is caught up, with the master's writes paused: `PSYNC
/// ... FAILOVER` (FAILOVER on the old master; the promotion runs inside it)
/// and `CLUSTER FAILOVER` without FORCE/TAKEOVER (it completes within 5 s).
static VERIFIED_PSYNC_AT: AtomicI64 = AtomicI64::new(i64::MIN);
static VERIFIED_CLUSTER_AT: AtomicI64 = AtomicI64::new(i64::MIN);
/// Redis gives a manual cluster failover this long (CLUSTER_MF_TIMEOUT).
const MANUAL_FAILOVER_MS: i64 = 5_000;
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
/// files: a new epoch. After an unplanned promotion, grants of locks not
/// held wait (`hold_left`).
pub fn new_epoch(now: i64, promoted: bool) {
    let mut f = Floor(floor());
    if promoted {
        // Planned: the link to the master was up until this promotion (Redis
        // fires the link's down event right before the role change only when
        // it was connected and in sync). After a crash the link went down
        // earlier, and whatever ran since (the promoting command included)
        // cleared LINK_JUST_DOWN.
        let just_down = LINK_JUST_DOWN.swap(false, Ordering::Relaxed);
        let linked = just_down && now.saturating_sub(LINK_DOWN_AT.load(Ordering::Relaxed)) <= 1;
        // Linked is not enough: REPLICAOF NO ONE (Sentinel's failovers, by
        // hand) cannot tell a replica that is caught up from one still
        // reading a backlog, and the old master keeps granting until it is
        // demoted. Only the two promotions Redis verifies count.
        let since = |at: &AtomicI64| now.saturating_sub(at.load(Ordering::Relaxed));
        let verified =
            since(&VERIFIED_PSYNC_AT) <= 1 || since(&VERIFIED_CLUSTER_AT) <= MANUAL_FAILOVER_MS;
        let planned = linked && verified;
        VERIFIED_PSYNC_AT.store(i64::MIN, Ordering::Relaxed);
        VERIFIED_CLUSTER_AT.store(i64::MIN, Ordering::Relaxed);
        PROMOTED_AT.store(if planned { 0 } else { now.max(1) }, Ordering::Relaxed);
    }
    if !promoted && f.0 == 0 {
        return; // a fresh data set: its first token is 1
    }
    f.new_epoch();
    observe_token(f.0);
    if promoted {
        HELD_UP_TO_TOKEN.store(f.0, Ordering::Relaxed);
        HELD_LONGEST.store(LONGEST_LEASE.load(Ordering::Relaxed), Ordering::Relaxed);
        if PROMOTED_AT.load(Ordering::Relaxed) != 0 {
            crate::census::start(f.0);
        } else {
            crate::census::stop();
        }
    }
    EMIT.store(true, Ordering::Relaxed);
}

/// The master link went up or down (a replica's MASTER_LINK_CHANGE event).
pub fn link_changed(up: bool, now: i64) {
    if !up {
        LINK_DOWN_AT.store(now, Ordering::Relaxed);
    }
    LINK_JUST_DOWN.store(!up, Ordering::Relaxed);
}

/// Something ran (a command passed the filter, the timer fired): a link that
/// went down before it did not go down with a promotion.
pub fn something_ran() {
    LINK_JUST_DOWN.store(false, Ordering::Relaxed);
}

/// From the command filter (names starting with c or p): notes the
/// promotions Redis verifies (see VERIFIED_PSYNC_AT), before they run.
pub fn on_command(fctx: crate::ffi::FilterCtx, name: &[u8]) {
    use crate::ffi::{filter_arg as arg, filter_arg_count as count};
    // The name first: every SET passes here, and it is not worth an
    // argument count.
    let psync = name.eq_ignore_ascii_case(b"psync");
    if !psync && !name.eq_ignore_ascii_case(b"cluster") {
        return;
    }
    let n = count(fctx);
    let is = |word: &[u8], pos| arg(fctx, pos).eq_ignore_ascii_case(word);
    let now = crate::ffi::now_ms();
    if psync && n >= 4 && is(b"failover", n - 1) {
        VERIFIED_PSYNC_AT.store(now, Ordering::Relaxed);
    } else if !psync && n == 2 && is(b"failover", 1) {
        VERIFIED_CLUSTER_AT.store(now, Ordering::Relaxed);
    }
}

/// Ms that grants of this lock (its record, None for a missing key) are
/// still held back after a promotion (0: none). A held lock is never held
/// back: its holder renews as usual.
pub fn hold_left(lease: Option<&Lease>, now: i64) -> i64 {
    let promoted_at = PROMOTED_AT.load(Ordering::Relaxed);
    if promoted_at == 0 {
        return 0;
    }
    if lease.is_some_and(|l| l.token > HELD_UP_TO_TOKEN.load(Ordering::Relaxed)) {
        return 0; // granted by this server since the promotion: nothing was lost
    }
    let lock_lease = lease.map(|l| l.terms().lease_ms());
    let delay = failover_delay(
        crate::config::failover_delay(),
        lock_lease,
        crate::config::default_terms().lease_ms(),
    );
    let left = promoted_at.saturating_add(delay).saturating_sub(now).max(0);
    if left > 0 {
        // A waiter kept waiting by it is served the moment it ends.
        let end = now.saturating_add(left);
        if end < HOLD_SERVE_AT.load(Ordering::Relaxed) {
            HOLD_SERVE_AT.store(end, Ordering::Relaxed);
        }
    }
    left
}

/// The longest any lock, or a key without a record, may still be held back
/// (INFO's `failover_delay_left_ms`): exact once the census has walked the
/// keyspace, until then an upper bound (the longest lease of any record seen
/// before the promotion, a deleted one included).
pub fn longest_hold_left(now: i64) -> i64 {
    let promoted_at = PROMOTED_AT.load(Ordering::Relaxed);
    if promoted_at == 0 {
        return 0;
    }
    let defaults = crate::config::default_terms().lease_ms();
    let longest = crate::census::longest().unwrap_or(HELD_LONGEST.load(Ordering::Relaxed));
    let delay = failover_delay(
        crate::config::failover_delay(),
        Some(longest.max(defaults)),
        0,
    );
    let left = promoted_at.saturating_add(delay).saturating_sub(now).max(0);
    if left == 0 {
        // Every hold has ended: nothing more to look at.
        PROMOTED_AT.store(0, Ordering::Relaxed);
        crate::census::stop();
    }
    left
}

/// `hblock.failover-delay` (or the default terms) changed: a running delay
/// follows at once; waiters are looked at now.
pub fn delay_config_changed(now: i64) {
    if PROMOTED_AT.load(Ordering::Relaxed) != 0 {
        HOLD_SERVE_AT.store(now, Ordering::Relaxed);
        if crate::config::failover_delay() == 0 {
            // 0 ends the delay for good: setting it back does not revive it.
            PROMOTED_AT.store(0, Ordering::Relaxed);
            crate::census::stop();
        }
    }
}

/// This server became a replica: a delay of an earlier promotion ends.
pub fn demoted() {
    crate::census::stop();
    EMIT.store(false, Ordering::Relaxed);
    PROMOTED_AT.store(0, Ordering::Relaxed);
    HOLD_SERVE_AT.store(i64::MAX, Ordering::Relaxed);
}

/// When the timer has work here: the floor to propagate (now), the end of
/// a hold that kept a waiter waiting (serve the waiters).
pub fn next_due(now: i64) -> Option<i64> {
    if EMIT.load(Ordering::Relaxed) || crate::census::walking() {
        return Some(now);
    }
    let serve_at = HOLD_SERVE_AT.load(Ordering::Relaxed);
    (serve_at != i64::MAX).then_some(serve_at)
}

/// From the timer, on a master, writes allowed: propagates a jumped floor.
/// True when a hold that kept waiters waiting ended (serve every waiter
/// now: those still held back note their own end again).
pub fn on_timer(ctx: crate::ffi::Ctx, now: i64) -> bool {
    if EMIT.swap(false, Ordering::Relaxed) {
        crate::ffi::replicate_floor(ctx, floor());
    }
    let serve_at = HOLD_SERVE_AT.load(Ordering::Relaxed);
    if serve_at != i64::MAX && now >= serve_at {
        HOLD_SERVE_AT.store(i64::MAX, Ordering::Relaxed);
        return true;
    }
    false
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
