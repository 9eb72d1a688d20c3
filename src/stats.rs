//! The `INFO hblock` section: counters since the module was loaded.

use redis_module::raw;
use std::ffi::{c_int, CStr};
use std::sync::atomic::{AtomicU64, Ordering};

pub static ACQUIRED: AtomicU64 = AtomicU64::new(0);
pub static RELEASED: AtomicU64 = AtomicU64::new(0);
pub static EXPIRED: AtomicU64 = AtomicU64::new(0);
pub static TAKEOVERS: AtomicU64 = AtomicU64::new(0);
pub static BEATS: AtomicU64 = AtomicU64::new(0);
pub static NOTHELD: AtomicU64 = AtomicU64::new(0);
/// Clients blocked in ACQUIRE right now.
pub static WAITING: AtomicU64 = AtomicU64::new(0);
/// Blocking ACQUIREs that ran out of WAIT time.
pub static WAIT_TIMEOUTS: AtomicU64 = AtomicU64::new(0);
/// Lock keys evicted by `maxmemory` (an `allkeys-*` policy).
pub static EVICTED: AtomicU64 = AtomicU64::new(0);

/// Grants deferred by the failover delay (ACQUIREs answered nil or queued).
pub static FAILOVER_DELAYED: AtomicU64 = AtomicU64::new(0);

/// Bound leases released because their connection closed (BIND).
pub static UNBOUND: AtomicU64 = AtomicU64::new(0);

/// Counts one. Only Redis's main thread counts (the module starts no
/// threads), so a load and a store do, without a locked add on every BEAT.
pub fn bump(counter: &AtomicU64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

const FIELDS: [(&CStr, &AtomicU64); 11] = [
    (c"acquired", &ACQUIRED),
    (c"released", &RELEASED),
    (c"expired", &EXPIRED),
    (c"takeovers", &TAKEOVERS),
    (c"beats", &BEATS),
    (c"notheld", &NOTHELD),
    (c"waiting", &WAITING),
    (c"wait_timeouts", &WAIT_TIMEOUTS),
    (c"evicted", &EVICTED),
    (c"failover_delayed", &FAILOVER_DELAYED),
    (c"unbound", &UNBOUND),
];

/// Redis prefixes each field with the module name: `hblock_acquired`, ...
pub extern "C" fn info_callback(ctx: *mut raw::RedisModuleInfoCtx, _for_crash_report: c_int) {
    crate::ffi::info_add_section(ctx);
    for (name, counter) in FIELDS {
        crate::ffi::info_add_u64(ctx, name, counter.load(Ordering::Relaxed));
    }
    // Promotions (and restarts of a master from its files) seen by this data.
    crate::ffi::info_add_u64(ctx, c"epoch", crate::tokens::epoch());
    // The longest any lock may still be held back after a promotion (0: none).
    let left = crate::tokens::longest_hold_left(crate::ffi::now_ms());
    crate::ffi::info_add_u64(ctx, c"failover_delay_left_ms", left.max(0) as u64);
}
