//! Blocked ACQUIREs: blocking one, granting the head of a queue, replying,
//! and leaving the queue (WAIT's end, CLIENT UNBLOCK, disconnect). A waiter
//! is a client blocked with `RedisModule_BlockClient` (no Redis timeout) and
//! queued per lock in the wait state (blocking.rs). It is granted from
//! inside the command or timer run that frees the lock, so the record is
//! already its own before any other client runs; the reply follows when
//! Redis unblocks it.

use crate::blocking::{arm, update_waiting_stat, with_wait_state};
use crate::error::Error;
use crate::handoff::{self, Grant, Handle};
use crate::{binding, config, eviction, ffi, stats, store, tokens};
use hblock_core::lease::Acquired;
use hblock_core::queue::{Caller, LockId, WaiterId};
use hblock_core::schedule::Due;
use redis_module::key::RedisKeyWritable;
use redis_module::{raw, Context, RedisString, RedisValue};
use std::ffi::{c_int, c_void};

/// What a waiter is told when it leaves the queue.
enum Outcome {
    Token(i64),
    Nil,
    Error(String),
}

/// How a blocked ACQUIRE waits: the terms it asked for, its WAIT (0: no
/// limit) and its BIND (connection, grace), applied when it is granted.
pub struct Wait {
    pub terms: (Option<u32>, Option<u16>),
    pub wait_ms: u64,
    pub bind: Option<(u64, u64)>,
    pub limit: u16,
}

/// Blocks the calling client until it is granted the lock or its WAIT
/// passes. The command then returns `NoReply`.
pub fn block(ctx: &Context, lock: LockId, owner: &[u8], wait: Wait, now: i64) -> RedisValue {
    let Wait {
        terms,
        wait_ms,
        bind,
        limit,
    } = wait;
    let Some(bc) = ffi::block_client(
        ctx.ctx,
        reply_to_waiter,
        on_client_unblock,
        Some(free_outcome),
        on_disconnect_waiter,
        0,
    ) else {
        return RedisValue::Null;
    };
    handoff::blocked(ctx.ctx, bc as Handle);
    let deadline = (wait_ms > 0).then(|| now.saturating_add(wait_ms as i64));
    let caller = Caller {
        client: ffi::client_id(ctx.ctx),
        queued_ms: now,
    };
    let queued = with_wait_state(|s| {
        let id = s
            .queues
            .push(lock, owner, terms, deadline, caller, bc as Handle);
        if let Some(deadline) = deadline {
            let slot = s.schedule.wait_end(id, deadline);
            s.wait_slots.insert(id, slot);
        }
        if let Some(bind) = bind {
            s.binds.insert(id, bind);
        }
        if limit > 1 {
            s.limits.insert(id, limit);
        }
    });
    if queued.is_none() {
        // Never happens (the state is not borrowed across calls into Redis);
        // if it did, the client would wait, unqueued, until it disconnects.
        // Say so, and answer it nil at once instead.
        ctx.log_warning("hblock: internal state busy: a blocking ACQUIRE was answered nil");
        debug_assert!(false, "blocking state borrowed while blocking a client");
        handoff::done(bc as Handle);
        // Just blocked, never unblocked: the free callback frees the Outcome.
        ffi::unblock_client(bc, Box::into_raw(Box::new(Outcome::Nil)).cast());
        return RedisValue::NoReply;
    }
    update_waiting_stat();
    arm(ctx.ctx);
    RedisValue::NoReply
}

/// Takes a waiter out of its queue and unblocks it with `outcome`.
fn finish_waiter(id: WaiterId, outcome: Outcome) {
    let waiter = with_wait_state(|s| {
        let waiter = s.queues.remove(id)?;
        if let Some(slot) = s.wait_slots.remove(&id) {
            s.schedule.cancel_wait(slot);
        }
        s.limits.remove(&id);
        Some((waiter, s.binds.remove(&id)))
    })
    .flatten();
    let Some((waiter, bind)) = waiter else {
        return;
    };
    let handle = waiter.handle;
    if let Outcome::Token(token) = outcome {
        if let Some((client, grace)) = bind {
            binding::bind(waiter.lock.clone(), client, token as u64, grace);
        }
        let grant = Grant {
            lock: waiter.lock,
            owner: waiter.owner,
            token: token as u64,
        };
        handoff::granted(handle, grant);
    }
    update_waiting_stat();
    // Still queued until now, so never unblocked; the reply callback reads
    // the Outcome, the free callback frees it.
    let privdata = Box::into_raw(Box::new(outcome)).cast::<c_void>();
    ffi::unblock_client(handle as ffi::BlockedClient, privdata);
}

/// Hands the lock to the first waiter that is still waiting, if the lock is
/// free, released, expired or gone. Called with the key open for writing.
pub fn serve(
    ctx: &Context,
    key: &RedisString,
    handle: &RedisKeyWritable,
    lock: &LockId,
    now: i64,
) -> Result<(), Error> {
    loop {
        let head = with_wait_state(|s| {
            s.queues
                .head(lock)
                .map(|w| (w.id, w.timed_out(now), w.owner.clone(), w.terms))
                .map(|(id, out, owner, terms)| {
                    let limit = s.limits.get(&id).copied().unwrap_or(1);
                    (id, out, owner, (terms, limit))
                })
        })
        .flatten();
        let Some((id, timed_out, owner, (terms, limit))) = head else {
            return Ok(());
        };
        if timed_out {
            // Its WAIT ran out: never granted, even if the lock is free now.
            finish_waiter(id, Outcome::Nil);
            stats::bump(&stats::WAIT_TIMEOUTS);
            continue;
        }
        let granted = grant(ctx, key, handle, (&owner, terms, limit), now)?;
        match granted {
            None => return Ok(()),
            Some(Ok(token)) => {
                // A lock with permits may have more than one free: the
                // next head is looked at too.
                finish_waiter(id, Outcome::Token(token as i64));
            }
            Some(Err(err)) => {
                finish_waiter(id, Outcome::Error(err.message()));
            }
        }
    }
}

/// Grants the lock at `key` to `owner` with `terms` if it is free,
/// released, expired or gone: the token, or the error to tell that waiter
/// (who leaves the queue); None when the lock stays busy for now.
fn grant(
    ctx: &Context,
    key: &RedisString,
    handle: &RedisKeyWritable,
    (owner, terms, limit): (&[u8], (Option<u32>, Option<u16>), u16),
    now: i64,
) -> Result<Option<Result<u64, Error>>, Error> {
    Ok(match store::lock_at(handle)? {
        Some(lease) if !lease.has_free_permit(now) => None,
        // After a promotion, a lock not held waits for its delay's end.
        Some(lease) if tokens::hold_left(Some(lease), now) > 0 => None,
        None if tokens::hold_left(None, now) > 0 => None,
        // A grant that creates a key follows ACQUIRE's deny-oom.
        None if eviction::over_maxmemory(ctx) => Some(Err(Error::Oom)),
        None => {
            let token = store::grant_first(ctx, key, handle, (owner, terms, limit), now)?;
            Some(Ok(token))
        }
        Some(lease) => {
            let defaults = config::default_terms();
            match lease.acquire(owner, terms, defaults, now, tokens::floor()) {
                Ok((Acquired::Token(token), fx)) => {
                    store::commit(ctx, key, lease, fx, now);
                    Some(Ok(token))
                }
                Ok((Acquired::Busy, _)) => None,
                Err(err) => Some(Err(Error::from(err))),
            }
        }
    })
}

/// Tells every waiter of a lock `message` (the key now holds another type).
pub fn fail_all(lock: &LockId, message: &str) {
    let ids = with_wait_state(|s| s.queues.ids_of(lock)).unwrap_or_default();
    for id in ids {
        finish_waiter(id, Outcome::Error(message.to_string()));
    }
}

/// A WAIT ran out: the waiter, if still waiting, is answered nil.
pub fn end_wait(due: Due) {
    if let Due::WaitEnd(id) = due {
        if with_wait_state(|s| s.queues.get(id).is_some()).unwrap_or(false) {
            finish_waiter(id, Outcome::Nil);
            stats::bump(&stats::WAIT_TIMEOUTS);
        }
    }
}

// ---- blocked-client callbacks ----

extern "C" fn reply_to_waiter(
    ctx: *mut raw::RedisModuleCtx,
    _argv: *mut *mut raw::RedisModuleString,
    _argc: c_int,
) -> c_int {
    reply_outcome(ctx);
    handoff::done(ffi::blocked_client_handle(ctx) as Handle);
    raw::REDISMODULE_OK as c_int
}

/// Replies with the outcome stored as this blocked client's private data.
fn reply_outcome(ctx: *mut raw::RedisModuleCtx) {
    // SAFETY: the private data is null or the Outcome given to UnblockClient,
    // alive until the free callback runs after this one.
    let outcome = unsafe { ffi::blocked_client_privdata(ctx).cast::<Outcome>().as_ref() };
    match outcome {
        Some(Outcome::Token(token)) => ffi::reply_integer(ctx, *token),
        Some(Outcome::Error(message)) => ffi::reply_error(ctx, message),
        Some(Outcome::Nil) | None => ffi::reply_null(ctx),
    }
}

extern "C" fn free_outcome(_ctx: *mut raw::RedisModuleCtx, privdata: *mut c_void) {
    if !privdata.is_null() {
        // SAFETY: privdata is the Box<Outcome> given to UnblockClient, freed once.
        drop(unsafe { Box::from_raw(privdata.cast::<Outcome>()) });
    }
}

/// Called for `CLIENT UNBLOCK` (WAIT itself runs on our own timer): nil,
/// unless the client was granted the lock a moment ago, then its token.
extern "C" fn on_client_unblock(
    ctx: *mut raw::RedisModuleCtx,
    _argv: *mut *mut raw::RedisModuleString,
    _argc: c_int,
) -> c_int {
    if leave_queue(ffi::blocked_client_handle(ctx)) {
        ffi::reply_null(ctx);
    } else {
        // Already granted (UnblockClient was called): reply what it was given.
        reply_outcome(ctx);
    }
    raw::REDISMODULE_OK as c_int
}

/// Takes a client that is leaving (CLIENT UNBLOCK, disconnect) out of its
/// queue and frees its handle. False when it had already left the queue
/// (granted or timed out): its handle was unblocked then, never twice.
fn leave_queue(bc: *mut raw::RedisModuleBlockedClient) -> bool {
    let found = with_wait_state(|s| {
        let id = s.queues.find(&(bc as Handle))?;
        if let Some(slot) = s.wait_slots.remove(&id) {
            s.schedule.cancel_wait(slot);
        }
        s.binds.remove(&id);
        s.limits.remove(&id);
        s.queues.remove(id)
    })
    .flatten();
    if found.is_none() {
        return false;
    }
    handoff::done(bc as Handle);
    update_waiting_stat();
    // Still queued, so never unblocked; the client is gone (or answered by
    // the caller), so this only frees the handle.
    ffi::unblock_client(bc, std::ptr::null_mut());
    true
}

/// A waiter disconnected, was killed, or Redis unblocked it (role change,
/// CLIENT UNBLOCK ... ERROR). One granted a moment ago will never read its
/// token: the timer undoes that grant.
extern "C" fn on_disconnect_waiter(
    ctx: *mut raw::RedisModuleCtx,
    bc: *mut raw::RedisModuleBlockedClient,
) {
    if !leave_queue(bc) && handoff::lost(bc as Handle) {
        arm(ctx);
    }
}
