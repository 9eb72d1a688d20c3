//! The counters of the `INFO hblock` section, since the module was loaded
//! (events/info.rs writes the section).

use std::ffi::CStr;
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

/// The counters of `INFO hblock`, in its order (events/info.rs).
pub const FIELDS: [(&CStr, &AtomicU64); 11] = [
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
