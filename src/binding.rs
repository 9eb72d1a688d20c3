//! BIND: leases that end when the connection that acquired them closes.
//!
//! The bookkeeping is the pure `hblock_core::bind::Bindings`; this file
//! feeds it. A binding is created by ACQUIRE ... BIND (at once, or when a
//! blocked waiter is granted), moved by the holder's re-acquire with BIND,
//! and dropped when the lock's holder changes (`commit` and APPLY call
//! `holder_changed`). Redis's client-disconnect event only notes the
//! connection (writing from inside it is not safe); the module timer then
//! releases the due leases exactly as RELEASE would and serves the next
//! waiter. Bindings are facts of this server's connections: never
//! replicated or saved, dropped when this server stops being a master.

use crate::error::Error;
use crate::ffi;
use hblock_core::bind::{Bindings, Unbound};
use hblock_core::queue::LockId;
use redis_module::{raw, Context, ContextFlags};
use std::cell::{Cell, RefCell};
use std::ffi::c_void;

thread_local! {
    static BINDINGS: RefCell<Bindings> = RefCell::new(Bindings::default());
    /// The client running the current script or transaction (Redis 7.2+ and
    /// Valkey tell the command filter who sent each command; 7.0 does not).
    static SCRIPT_CALLER: Cell<Option<u64>> = const { Cell::new(None) };
}

fn with<R>(f: impl FnOnce(&mut Bindings) -> R) -> Option<R> {
    BINDINGS.with(|b| b.try_borrow_mut().ok().map(|mut b| f(&mut b)))
}

/// Whether any lease is bound (the cheap test before anything else).
pub fn any() -> bool {
    BINDINGS.with(|b| b.try_borrow().is_ok_and(|b| !b.is_empty()))
}

/// The connection a BIND of this call binds to: the calling client, or
/// inside a script the client that runs the script.
pub fn caller(ctx: &Context) -> Result<u64, Error> {
    if ctx.get_flags().contains(ContextFlags::LUA) {
        return SCRIPT_CALLER.with(Cell::get).ok_or(Error::BindInScript);
    }
    Ok(ffi::client_id(ctx.ctx))
}

/// Binds lease `token` of `lock` to connection `client` with `grace_ms`.
pub fn bind(lock: LockId, client: u64, token: u64, grace_ms: u64) {
    with(|b| b.bind(lock, client, token, grace_ms));
}

/// The lock's holder is now `holder` (0: none).
pub fn holder_changed(lock: &LockId, holder: u64) {
    if any() {
        with(|b| b.holder_changed(lock, holder));
    }
}

/// INFO's `bound`: the live lease `token` of `lock` is bound.
pub fn is_bound(lock: impl FnOnce() -> LockId, token: u64) -> bool {
    any() && with(|b| b.is_bound(&lock(), token)).unwrap_or(false)
}

/// When the next release of a closed connection's lease is due.
pub fn next_due() -> Option<i64> {
    if !any() {
        return None;
    }
    with(|b| b.next_due()).flatten()
}

/// The releases due by `now` (the timer carries them out on a master).
pub fn take_due(now: i64) -> Vec<Unbound> {
    if !any() {
        return Vec::new();
    }
    with(|b| b.take_due(now)).unwrap_or_default()
}

/// This server is no longer a master, or has just become one: its bound
/// leases are ordinary heartbeat leases from now on.
pub fn clear() {
    with(Bindings::clear);
}

/// Commands that run a script or a transaction: the client that sends one
/// is the caller of the scripts it runs.
const SCRIPT_RUNNERS: [&[u8]; 7] = [
    b"eval",
    b"evalsha",
    b"eval_ro",
    b"evalsha_ro",
    b"fcall",
    b"fcall_ro",
    b"exec",
];

/// The command filter's part: notes who runs the next script.
pub fn on_command(fctx: *mut raw::RedisModuleCommandFilterCtx, name: &[u8]) {
    if !SCRIPT_RUNNERS.iter().any(|r| name.eq_ignore_ascii_case(r)) {
        return;
    }
    if let Some(client_id) = ffi::filter_client_id(fctx) {
        SCRIPT_CALLER.with(|c| c.set(Some(client_id)));
    }
}

/// Subscribes to client changes. Called once from init.
pub fn subscribe(ctx: *mut raw::RedisModuleCtx) -> bool {
    crate::ffi::subscribe_server_event(ctx, raw::REDISMODULE_EVENT_CLIENT_CHANGE, on_client_event)
}

/// Redis's client-change event: a closed connection's leases become due
/// after their grace; the timer releases them.
unsafe extern "C" fn on_client_event(
    ctx: *mut raw::RedisModuleCtx,
    _event: raw::RedisModuleEvent,
    subevent: u64,
    data: *mut c_void,
) {
    if subevent != raw::REDISMODULE_SUBEVENT_CLIENT_CHANGE_DISCONNECTED || !any() {
        return;
    }
    // SAFETY: for CLIENT_CHANGE, data is a RedisModuleClientInfo (V1, as
    // subscribed), alive for the callback.
    let Some(info) = (unsafe { data.cast::<raw::RedisModuleClientInfo>().as_ref() }) else {
        return;
    };
    let now = crate::commands::now_ms();
    if with(|b| b.closed(info.id, now)).unwrap_or(false) {
        crate::blocking::arm(ctx);
    }
}
