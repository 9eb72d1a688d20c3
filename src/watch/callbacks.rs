//! The blocked-client callbacks of a watcher. Each ends with the handle
//! unblocked exactly once (see the module's note).

use super::forget;
use crate::ffi;
use redis_module::raw;
use std::ffi::c_int;

fn reply_info(ctx: ffi::Ctx, lock: &hblock_core::queue::LockId) {
    crate::commands::info::reply_lock(ctx, &lock.key);
}

/// A woken watcher (a change of holder, or its TIMEOUT ended): the lock's
/// INFO reply as it is now (unchanged after a TIMEOUT).
pub(super) extern "C" fn reply(
    ctx: ffi::Ctx,
    _argv: *mut *mut raw::RedisModuleString,
    _argc: c_int,
) -> c_int {
    match forget(ctx, ffi::blocked_client_handle(ctx)) {
        Some(gone) => reply_info(ctx, &gone.lock),
        None => ffi::reply_error(ctx, "ERR watcher lost"),
    }
    raw::REDISMODULE_OK as c_int
}

/// `CLIENT UNBLOCK <id>` (there is no Redis timeout): the INFO reply, as
/// for a TIMEOUT. For a watcher the module already unblocked the command
/// filter (`handoff.rs`) turns the UNBLOCK into a no-op; should one escape
/// it (queued in MULTI), Valkey calls this for it (7.0 does not): it is
/// answered here, its handle is not unblocked twice.
pub(super) extern "C" fn on_client_unblock(
    ctx: ffi::Ctx,
    _argv: *mut *mut raw::RedisModuleString,
    _argc: c_int,
) -> c_int {
    let bc = ffi::blocked_client_handle(ctx);
    match forget(ctx, bc) {
        Some(gone) => {
            if gone.was_waiting {
                // Redis detaches the client right after this callback, so
                // this only frees the handle; the reply is written here.
                ffi::unblock_client(bc, std::ptr::null_mut());
            }
            reply_info(ctx, &gone.lock);
        }
        None => ffi::reply_error(ctx, "ERR watcher lost"),
    }
    raw::REDISMODULE_OK as c_int
}

/// The connection closed, was killed, or Redis unblocked the client itself
/// (`CLIENT UNBLOCK ... ERROR`, a master becoming a replica): a watcher
/// still waiting is unblocked here, one already woken was unblocked then.
pub(super) extern "C" fn on_disconnect(ctx: ffi::Ctx, bc: ffi::BlockedClient) {
    if forget(ctx, bc).is_some_and(|gone| gone.was_waiting) {
        ffi::unblock_client(bc, std::ptr::null_mut());
    }
}
