//! The moment between granting a waiter and its reply reaching it.
//!
//! A grant commits the lease to the waiter at once and calls
//! `RedisModule_UnblockClient`; Redis delivers the reply (the token) later in
//! the same event-loop pass. Two things can get in between:
//! - `CLIENT UNBLOCK <waiter>`: Redis 7.0 then skips both the module's reply
//!   and timeout callbacks, so the waiter would get no reply at all (or
//!   `-UNBLOCKED` while it holds the lease). A command filter answers such a
//!   call as for a client that is not blocked (0): the waiter was served and
//!   gets its token.
//! - the waiter's connection closes (`CLIENT KILL`, a crash): nobody will ever
//!   learn the token, so the grant is undone (released as RELEASE would) from
//!   the timer, and the next waiter is served at once.
//!
//! A `CLIENT UNBLOCK` queued in MULTI before the waiter was granted escapes
//! the filter (filters run when a command is queued): the grant is undone
//! then too, and the waiter gets `-UNBLOCKED` or, on 7.0, no reply.
//!
//! A woken HBLOCK.WATCH (its holder changed, or its TIMEOUT ended) is in the
//! same moment between the module's unblock and its reply: the filter
//! spares it too, so it gets its INFO reply (nothing to undo: it holds
//! nothing). Measured without the filter: 7.0 sent it no reply at all (plain)
//! or `-UNBLOCKED` (ERROR); Valkey 8.1/9.1 answered the UNBLOCK 1 and sent
//! the INFO reply (plain) or `-UNBLOCKED` (ERROR).

use crate::ffi;
use hblock_core::queue::LockId;
use redis_module::raw;
use std::cell::RefCell;
use std::collections::HashMap;

/// A blocked client, as the address of its `RedisModuleBlockedClient`.
pub type Handle = usize;

/// A grant whose reply has not reached its client yet.
#[derive(Clone, Debug)]
pub struct Grant {
    pub lock: LockId,
    pub owner: Box<[u8]>,
    pub token: u64,
}

#[derive(Default)]
struct Handoff {
    /// Client id of every blocked ACQUIRE, queued or granted.
    client_ids: HashMap<Handle, u64>,
    /// Granted, reply not delivered yet.
    granted: HashMap<Handle, Grant>,
    /// Grants whose client went away before its reply: undo them.
    undo: Vec<Grant>,
    /// Watchers the module unblocked, reply not delivered yet: their client ids.
    woken_watchers: HashMap<Handle, u64>,
}

thread_local! {
    static HANDOFF: RefCell<Handoff> = RefCell::new(Handoff::default());
}

fn with_handoff<R>(f: impl FnOnce(&mut Handoff) -> R) -> Option<R> {
    HANDOFF.with(|h| h.try_borrow_mut().ok().map(|mut h| f(&mut h)))
}

/// A client blocked in ACQUIRE (its id is read from the command's context).
pub fn blocked(ctx: *mut raw::RedisModuleCtx, handle: Handle) {
    let id = ffi::client_id(ctx);
    with_handoff(|h| h.client_ids.insert(handle, id));
}

/// The waiter was granted; its reply is on its way.
pub fn granted(handle: Handle, grant: Grant) {
    with_handoff(|h| h.granted.insert(handle, grant));
}

/// The client's reply was delivered, or it left the queue: forget it.
pub fn done(handle: Handle) {
    with_handoff(|h| {
        h.granted.remove(&handle);
        h.client_ids.remove(&handle);
    });
}

/// The client's connection closed (or Redis unblocked it) after it was
/// granted but before its reply: the grant is to be undone.
pub fn lost(handle: Handle) -> bool {
    let lost = with_handoff(|h| {
        h.client_ids.remove(&handle);
        let grant = h.granted.remove(&handle)?;
        h.undo.push(grant);
        Some(())
    })
    .flatten();
    lost.is_some()
}

/// Grants to undo, for the timer.
pub fn take_undo() -> Vec<Grant> {
    with_handoff(|h| std::mem::take(&mut h.undo)).unwrap_or_default()
}

pub fn has_undo() -> bool {
    HANDOFF.with(|h| h.try_borrow().is_ok_and(|h| !h.undo.is_empty()))
}

/// A watcher was unblocked by the module; its reply is on its way.
pub fn watcher_woken(handle: Handle, client_id: u64) {
    with_handoff(|h| h.woken_watchers.insert(handle, client_id));
}

/// The watcher was answered, or left: forget it.
pub fn watcher_answered(handle: Handle) {
    with_handoff(|h| h.woken_watchers.remove(&handle));
}

/// Whether `client_id` was granted (or, watching, woken) and is waiting for
/// its reply.
fn awaiting_reply(client_id: u64) -> bool {
    with_handoff(|h| {
        let granted = !h.granted.is_empty()
            && h.granted
                .keys()
                .any(|handle| h.client_ids.get(handle) == Some(&client_id));
        granted || h.woken_watchers.values().any(|id| *id == client_id)
    })
    .unwrap_or(false)
}

fn any_reply_pending() -> bool {
    HANDOFF.with(|h| {
        h.try_borrow()
            .is_ok_and(|h| !h.granted.is_empty() || !h.woken_watchers.is_empty())
    })
}

/// `CLIENT UNBLOCK <id> [TIMEOUT|ERROR]` of a granted waiter or a woken
/// watcher whose reply is pending becomes `CLIENT UNBLOCK 0 ...` (no such
/// client: reply 0), so it gets its reply. Every other command passes
/// untouched; the cost is one check of two (almost always) empty maps.
pub fn on_command(fctx: ffi::FilterCtx, name: &[u8]) {
    if !any_reply_pending() {
        return;
    }
    let count = ffi::filter_arg_count(fctx);
    if !(3..=4).contains(&count) {
        return;
    }
    let word = |pos| ffi::filter_arg(fctx, pos);
    if !name.eq_ignore_ascii_case(b"client") || !word(1).eq_ignore_ascii_case(b"unblock") {
        return;
    }
    let Some(target) = hblock_core::args::parse_i64(word(2)).and_then(|id| u64::try_from(id).ok())
    else {
        return;
    };
    if awaiting_reply(target) {
        ffi::filter_replace_arg(fctx, 2, b"0");
    }
}
