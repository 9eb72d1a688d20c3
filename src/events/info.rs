//! The `INFO hblock` section: the counters (stats.rs), the epoch and the
//! failover delay left (tokens.rs).

use crate::{ffi, stats, tokens};
use redis_module::raw;
use std::ffi::c_int;
use std::sync::atomic::Ordering;

/// Redis prefixes each field with the module name: `hblock_acquired`, ...
pub extern "C" fn info_callback(ctx: *mut raw::RedisModuleInfoCtx, _for_crash_report: c_int) {
    ffi::info_add_section(ctx);
    for (name, counter) in stats::FIELDS {
        ffi::info_add_u64(ctx, name, counter.load(Ordering::Relaxed));
    }
    // Promotions (and restarts of a master from its files) seen by this data.
    ffi::info_add_u64(ctx, c"epoch", tokens::epoch());
    // The longest any lock may still be held back after a promotion (0: none).
    let left = tokens::longest_hold_left(ffi::now_ms());
    ffi::info_add_u64(ctx, c"failover_delay_left_ms", left.max(0) as u64);
}
