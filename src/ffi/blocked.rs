//! Blocked clients and module timers.

use super::base::{
    BlockedClient, Ctx, DisconnectCallback, FreeCallback, ReplyCallback, TimerCallback, TimerId,
};
use redis_module::raw;
use std::ffi::c_void;

/// Blocks the client of the command `ctx` runs with these callbacks; Redis
/// times it out after `timeout_ms` (0: never; WAIT runs on the module timer
/// instead). None when Redis refused.
pub fn block_client(
    ctx: Ctx,
    reply: ReplyCallback,
    on_unblock: ReplyCallback,
    free: Option<FreeCallback>,
    on_disconnect: DisconnectCallback,
    timeout_ms: i64,
) -> Option<BlockedClient> {
    // SAFETY: `ctx` is a live command context; the callbacks are `extern "C"`
    // functions of this module that live as long as it does.
    unsafe {
        let (Some(block), Some(set_disconnect)) = (
            raw::RedisModule_BlockClient,
            raw::RedisModule_SetDisconnectCallback,
        ) else {
            return None;
        };
        let free = free.map(|f| f as unsafe extern "C" fn(Ctx, *mut c_void));
        let bc = block(ctx, Some(reply), Some(on_unblock), free, timeout_ms);
        if bc.is_null() {
            return None;
        }
        set_disconnect(bc, Some(on_disconnect));
        Some(bc)
    }
}

/// Unblocks `bc`, handing `privdata` (null, or a pointer the reply and free
/// callbacks understand) to its reply callback.
///
/// The caller guarantees `bc` came from [`block_client`] and is unblocked
/// only once (a queued waiter leaves the queue as it is unblocked).
pub fn unblock_client(bc: BlockedClient, privdata: *mut c_void) {
    // SAFETY: see above: a live handle, unblocked once.
    unsafe {
        if let Some(unblock) = raw::RedisModule_UnblockClient {
            unblock(bc, privdata);
        }
    }
}

/// The handle of the blocked client a reply/timeout callback runs for.
pub fn blocked_client_handle(ctx: Ctx) -> BlockedClient {
    // SAFETY: `ctx` is the live context of a blocked-client callback.
    unsafe { raw::RedisModule_GetBlockedClientHandle.map_or(std::ptr::null_mut(), |get| get(ctx)) }
}

/// The private data given to [`unblock_client`], in a reply callback.
pub fn blocked_client_privdata(ctx: Ctx) -> *mut c_void {
    // SAFETY: `ctx` is the live context of a blocked-client callback.
    unsafe {
        raw::RedisModule_GetBlockedClientPrivateData.map_or(std::ptr::null_mut(), |get| get(ctx))
    }
}

/// The longest delay a module timer is armed for: 10 minutes. Redis 7.0
/// computes a module timer's time as `now_us + period * 1000` and returns
/// the time to the next one from its handler as an `int` of ms; a deadline
/// far away (a record loaded from an AOF, an RDB or a crafted RESTORE
/// payload can say anything) overflowed both: measured, a lease check due
/// in 146 million years made the server grow to 21 GB, and other far
/// deadlines made it spin at 100% CPU. A timer that fires early finds
/// nothing due and is armed again (once per 10 minutes at most when idle).
pub const TIMER_MAX_MS: i64 = 600_000;

/// Starts a timer that calls `callback` after `delay_ms` (no data), at most
/// [`TIMER_MAX_MS`] from now.
pub fn create_timer(ctx: Ctx, delay_ms: i64, callback: TimerCallback) -> Option<TimerId> {
    create_timer_with_data(ctx, delay_ms, callback, 0)
}

/// As [`create_timer`], handing `data` (a number, not a pointer) to the
/// callback as its data pointer.
pub fn create_timer_with_data(
    ctx: Ctx,
    delay_ms: i64,
    callback: TimerCallback,
    data: usize,
) -> Option<TimerId> {
    let delay_ms = delay_ms.clamp(0, TIMER_MAX_MS);
    // SAFETY: a live context and an `extern "C"` callback of this module; the
    // data is a plain number that nobody dereferences, so nothing leaks
    // when the timer is stopped.
    unsafe {
        raw::RedisModule_CreateTimer
            .map(|create| create(ctx, delay_ms, Some(callback), data as *mut c_void))
    }
}

/// Stops a timer of this module (never from inside its own callback).
pub fn stop_timer(ctx: Ctx, id: TimerId) {
    // SAFETY: a live context; Redis ignores ids it does not know.
    unsafe {
        if let Some(stop) = raw::RedisModule_StopTimer {
            stop(ctx, id, std::ptr::null_mut());
        }
    }
}
