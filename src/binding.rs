//! BIND: leases that end when the connection that acquired them closes.
//!
//! The bookkeeping is the pure `hblock_core::bind::Bindings`; this file
//! feeds it. A binding is created by ACQUIRE ... BIND (at once, or when a
//! blocked waiter is granted), moved by the holder's re-acquire with BIND,
//! and dropped when the lock's holder changes (`store::commit` calls
//! `holder_changed`; a replica, which APPLY writes to, holds no bindings).
//! Redis's client-disconnect event (events/clients.rs) only notes the
//! connection (writing from inside it is not safe); the module timer then
//! releases the due leases exactly as RELEASE would and serves the next
//! waiter. Bindings are facts of this server's connections: never
//! replicated or saved, dropped when this server stops being a master.

use crate::error::Error;
use crate::ffi;
use hblock_core::bind::{Bindings, Unbound};
use hblock_core::queue::LockId;
use redis_module::{Context, ContextFlags};
use std::cell::{Cell, RefCell};

thread_local! {
    static BINDINGS: RefCell<Bindings> = RefCell::new(Bindings::default());
    /// The client running the current script or transaction (Redis 7.2+ and
    /// Valkey tell the command filter who sent each command; 7.0 does not).
    static SCRIPT_CALLER: Cell<Option<u64>> = const { Cell::new(None) };
}

fn with_bindings<R>(f: impl FnOnce(&mut Bindings) -> R) -> Option<R> {
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
    with_bindings(|b| b.bind(lock, client, token, grace_ms));
}

/// The lock's holder is now `holder` (0: none).
pub fn holder_changed(lock: &LockId, holder: u64) {
    if any() {
        with_bindings(|b| b.holder_changed(lock, holder));
    }
}

/// The live leases of a lock with permits are now `tokens`.
pub fn holders_are(lock: &LockId, tokens: &[u64]) {
    if any() {
        with_bindings(|b| b.holders_are(lock, tokens));
    }
}

/// INFO's `bound`: the live lease `token` of `lock` is bound.
pub fn is_bound(lock: impl FnOnce() -> LockId, token: u64) -> bool {
    any() && with_bindings(|b| b.is_bound(&lock(), token)).unwrap_or(false)
}

/// When the next release of a closed connection's lease is due.
pub fn next_due() -> Option<i64> {
    if !any() {
        return None;
    }
    with_bindings(|b| b.next_due()).flatten()
}

/// The releases due by `now` (the timer carries them out on a master).
pub fn take_due(now: i64) -> Vec<Unbound> {
    if !any() {
        return Vec::new();
    }
    with_bindings(|b| b.take_due(now)).unwrap_or_default()
}

/// This server is no longer a master, or has just become one: its bound
/// leases are ordinary heartbeat leases from now on.
pub fn clear() {
    with_bindings(Bindings::clear);
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
pub fn on_command(fctx: ffi::FilterCtx, name: &[u8]) {
    if !SCRIPT_RUNNERS.iter().any(|r| name.eq_ignore_ascii_case(r)) {
        return;
    }
    if let Some(client_id) = ffi::filter_client_id(fctx) {
        SCRIPT_CALLER.with(|c| c.set(Some(client_id)));
    }
}

/// Connection `client` closed (Redis's client-change event): its leases
/// become due after their grace. True when it had any (arm the timer).
pub fn connection_closed(client: u64, now: i64) -> bool {
    any() && with_bindings(|b| b.closed(client, now)).unwrap_or(false)
}
