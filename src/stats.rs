//! The `INFO hblock` section: counters since the module was loaded.

use redis_module::raw;
use std::ffi::{c_char, c_int, CStr};
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

pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

const FIELDS: [(&CStr, &AtomicU64); 9] = [
    (c"acquired", &ACQUIRED),
    (c"released", &RELEASED),
    (c"expired", &EXPIRED),
    (c"takeovers", &TAKEOVERS),
    (c"beats", &BEATS),
    (c"notheld", &NOTHELD),
    (c"waiting", &WAITING),
    (c"wait_timeouts", &WAIT_TIMEOUTS),
    (c"evicted", &EVICTED),
];

/// Redis prefixes each field with the module name: `hblock_acquired`, ...
pub extern "C" fn info_callback(ctx: *mut raw::RedisModuleInfoCtx, _for_crash_report: c_int) {
    // SAFETY: called by Redis on the main thread with a valid info context.
    unsafe {
        let (Some(add_section), Some(add_field)) = (
            raw::RedisModule_InfoAddSection,
            raw::RedisModule_InfoAddFieldULongLong,
        ) else {
            return;
        };
        add_section(ctx, std::ptr::null_mut::<c_char>());
        for (name, counter) in FIELDS {
            add_field(
                ctx,
                name.as_ptr().cast_mut(),
                counter.load(Ordering::Relaxed),
            );
        }
    }
}
