//! `HBLOCK.WATCH key [SEEN token] [TIMEOUT ms]`
//!
//! Answers the lock's INFO reply (nil for a missing key) as soon as its
//! holder differs from `SEEN` (the token of the lease the caller last saw
//! held, 0 for "no holder", the default): at once if it already does, else
//! when a grant, release, expiry, takeover, deletion or overwrite makes it
//! so, or when TIMEOUT ms pass (0: no limit) with the reply unchanged.
//! Read-only: works on replicas. Inside MULTI or Lua it answers at once.
//!
//! Who watches what is the registry's (watch.rs); here: blocking the
//! client, its callbacks (each ends with the handle unblocked exactly once,
//! see watch.rs), and TIMEOUT on module timers, which are ms-precise (Redis
//! checks its blocked-client timeouts only every 1000/hz ms: `TIMEOUT 1`
//! answered after ~100 ms). One timer per watcher with a TIMEOUT, its id as
//! the timer's data; stopped when the watcher is done before it fires.
//! Ending a TIMEOUT writes nothing (it unblocks the client, whose reply is
//! read-only), so it runs while Redis pauses writes too, as Redis's own
//! blocked-client timeouts do.

use super::common::{byte_args, can_block};
use crate::error::Error;
use crate::spec::{Kind, Spec, KEY};
use crate::watch::{self, WatcherId};
use crate::{blocking, ffi, store, view};
use hblock_core::args;
use hblock_core::queue::LockId;
use redis_module::{raw, Context, RedisResult, RedisString, RedisValue};
use std::ffi::{c_int, c_void};

/// What Redis is told about this command (registration, COMMAND INFO/DOCS).
pub const SPEC: Spec = Spec {
    name: c"hblock.watch",
    flags: "readonly blocking",
    acl: c"read blocking",
    summary: c"Blocks until the lock's holder differs from the token last seen; returns its INFO.",
    arity: -2,
    key_flags: raw::REDISMODULE_CMD_KEY_RO | raw::REDISMODULE_CMD_KEY_ACCESS,
    wraps: false,
    args: &[
        KEY,
        (c"token", Kind::Integer, Some(c"SEEN")),
        (c"ms", Kind::Integer, Some(c"TIMEOUT")),
    ],
};

pub fn run(ctx: &Context, args: &[RedisString]) -> RedisResult {
    let [_, key, rest @ ..] = args else {
        return Err(Error::Arity.into());
    };
    let (seen, timeout_ms) = args::watch_options(&byte_args(rest)).map_err(Error::from)?;
    let now = ffi::now_ms();
    let holder = store::read_lock(ctx, key, |lease| lease.map_or(0, |l| l.holder(now)))?;
    if holder == seen && can_block(ctx) {
        let lock = blocking::lock_id(ctx, key);
        if block(ctx.ctx, lock, seen, timeout_ms) {
            return Ok(RedisValue::NoReply);
        }
    }
    view::reply_info(ctx, key)
}

/// Blocks the calling client until `lock`'s holder differs from `seen` or
/// `timeout_ms` pass (0: no limit). False when Redis refused to block.
fn block(ctx: ffi::Ctx, lock: LockId, seen: u64, timeout_ms: u64) -> bool {
    // No private data: Redis would make a module context per woken client
    // just to free it. The callbacks find the watcher by its handle. No
    // Redis timeout: the module timer ends TIMEOUT (the timeout callback
    // is then called for CLIENT UNBLOCK only).
    let Some(bc) = ffi::block_client(ctx, reply, on_client_unblock, None, on_disconnect, 0) else {
        return false;
    };
    let client = ffi::client_id(ctx);
    let now = ffi::now_ms();
    // WAIT_MAX bounds the timeout: no overflow, and it fits an i64.
    let timeout_ms = i64::try_from(timeout_ms).unwrap_or(i64::MAX);
    let deadline = (timeout_ms > 0).then(|| now.saturating_add(timeout_ms));
    match (watch::add(lock, bc, seen, client, deadline), deadline) {
        (Some(id), Some(_)) => arm_timeout(ctx, id, timeout_ms),
        (Some(_), None) => {}
        // Never happens (the state is not borrowed across calls into
        // Redis). If it did, nothing could wake this client: answer it at
        // once (the reply callback finds no watcher and says so).
        (None, _) => ffi::unblock_client(bc, std::ptr::null_mut()),
    }
    true
}

/// Arms the timer that ends watcher `id`'s TIMEOUT in `delay_ms` (a long
/// TIMEOUT fires early, at the timer's cap, and is armed again).
fn arm_timeout(ctx: ffi::Ctx, id: WatcherId, delay_ms: i64) {
    let timer = ffi::create_timer_with_data(ctx, delay_ms, on_timeout, id);
    if let Some(unused) = watch::set_timer(id, timer) {
        ffi::stop_timer(ctx, unused);
    }
}

extern "C" fn on_timeout(ctx: ffi::Ctx, data: *mut c_void) {
    let id = data as WatcherId; // the id given to create_timer_with_data
    if let Some(delay) = watch::timer_fired(id, ffi::now_ms()) {
        arm_timeout(ctx, id, delay);
    }
}

fn reply_info(ctx: ffi::Ctx, lock: &LockId) {
    view::reply_lock(ctx, &lock.key);
}

/// A woken watcher (a change of holder, or its TIMEOUT ended): the lock's
/// INFO reply as it is now (unchanged after a TIMEOUT).
extern "C" fn reply(ctx: ffi::Ctx, _argv: *mut *mut raw::RedisModuleString, _argc: c_int) -> c_int {
    match watch::forget(ctx, ffi::blocked_client_handle(ctx)) {
        Some(gone) => reply_info(ctx, &gone.lock),
        None => ffi::reply_error(ctx, &Error::WatcherLost.message()),
    }
    raw::REDISMODULE_OK as c_int
}

/// `CLIENT UNBLOCK <id>` (there is no Redis timeout): the INFO reply, as
/// for a TIMEOUT. For a watcher the module already unblocked the command
/// filter (`handoff.rs`) turns the UNBLOCK into a no-op; should one escape
/// it (queued in MULTI), Valkey calls this for it (7.0 does not): it is
/// answered here, its handle is not unblocked twice.
extern "C" fn on_client_unblock(
    ctx: ffi::Ctx,
    _argv: *mut *mut raw::RedisModuleString,
    _argc: c_int,
) -> c_int {
    let bc = ffi::blocked_client_handle(ctx);
    match watch::forget(ctx, bc) {
        Some(gone) => {
            if gone.was_waiting {
                // Redis detaches the client right after this callback, so
                // this only frees the handle; the reply is written here.
                ffi::unblock_client(bc, std::ptr::null_mut());
            }
            reply_info(ctx, &gone.lock);
        }
        None => ffi::reply_error(ctx, &Error::WatcherLost.message()),
    }
    raw::REDISMODULE_OK as c_int
}

/// The connection closed, was killed, or Redis unblocked the client itself
/// (`CLIENT UNBLOCK ... ERROR`, a master becoming a replica): a watcher
/// still waiting is unblocked here, one already woken was unblocked then.
extern "C" fn on_disconnect(ctx: ffi::Ctx, bc: ffi::BlockedClient) {
    if watch::forget(ctx, bc).is_some_and(|gone| gone.was_waiting) {
        ffi::unblock_client(bc, std::ptr::null_mut());
    }
}
