//! What several commands share: their arguments as bytes, the refusals
//! (a write on a replica, an internal command from a client), owner and
//! token parsed once, and BEAT's and RELEASE's common path.

use crate::error::Error;
use crate::{blocking, ffi, store, waiters};
use hblock_core::args;
use hblock_core::lease::{Effects, Lease};
use redis_module::key::RedisKeyWritable;
use redis_module::{Context, ContextFlags, RedisString};

/// The arguments as byte slices (keys and owners are binary-safe).
pub fn byte_args(args: &[RedisString]) -> Vec<&[u8]> {
    args.iter().map(RedisString::as_slice).collect()
}

/// Refuses a lock write on a replica, whatever `replica-read-only` says: a
/// lock that exists only on a replica is invisible to its master and lost at
/// the next resync.
pub fn refuse_on_replica(ctx: &Context) -> Result<(), Error> {
    // On a master (the role as the role-change event last said, ffi), the
    // server's flags need not be read.
    if !ffi::is_replica() {
        return Ok(());
    }
    let flags = ctx.get_flags();
    if flags.contains(ContextFlags::SLAVE) && !flags.contains(ContextFlags::REPLICATED) {
        return Err(Error::ReadOnly);
    }
    Ok(())
}

/// Whether the call comes from the master link or from loading the AOF:
/// the only callers of the internal commands (APPLY, FLOOR with a token or
/// ENDS). 7.0 has no "internal command" flag, so any other caller is
/// refused with `Error::InternalOnly`, or any client could forge records.
pub fn from_master(ctx: &Context) -> bool {
    ctx.get_flags()
        .intersects(ContextFlags::REPLICATED | ContextFlags::LOADING)
}

/// Whether this call may block: not inside MULTI, Lua or another module's call.
pub fn can_block(ctx: &Context) -> bool {
    !ctx.get_flags()
        .intersects(ContextFlags::MULTI | ContextFlags::LUA | ContextFlags::DENY_BLOCKING)
}

/// The owner and token arguments of BEAT, RELEASE, CHECK and FENCED, checked.
pub fn owner_and_token<'a>(
    owner: &'a RedisString,
    token: &RedisString,
) -> Result<(&'a [u8], u64), Error> {
    let owner = args::owner(owner.as_slice())?;
    let token = args::token(token.as_slice())?;
    Ok((owner, token))
}

/// BEAT's and RELEASE's call once applied: the open key, the time of the
/// call, and what the lease answered (None: no such key).
pub struct Applied<'a, T> {
    pub key: &'a RedisString,
    pub handle: RedisKeyWritable,
    pub now: i64,
    pub outcome: Option<T>,
}

/// `CMD key owner token` (BEAT, RELEASE): refused on a replica, owner and
/// token checked, `op` applied to the lock at the key and its effects
/// committed.
pub fn apply_to_lease<'a, T>(
    ctx: &Context,
    args: &'a [RedisString],
    op: impl FnOnce(&mut Lease, &[u8], u64, i64) -> (T, Effects),
) -> Result<Applied<'a, T>, Error> {
    apply_and_commit(ctx, args, op, store::commit)
}

/// The commit of a [`store`] change: `store::commit`, or BEAT's
/// `store::commit_beat`.
pub type Commit = fn(&Context, &RedisString, &mut Lease, Effects, i64);

/// [`apply_to_lease`] with the commit given (BEAT's sends a beat delta).
pub fn apply_and_commit<'a, T>(
    ctx: &Context,
    args: &'a [RedisString],
    op: impl FnOnce(&mut Lease, &[u8], u64, i64) -> (T, Effects),
    commit: Commit,
) -> Result<Applied<'a, T>, Error> {
    let [_, key, owner, token] = args else {
        return Err(Error::Arity);
    };
    refuse_on_replica(ctx)?;
    let (owner, token) = owner_and_token(owner, token)?;
    let now = ffi::now_ms();
    let handle = store::open(ctx, key);
    let outcome = match store::lock_at(&handle)? {
        None => None,
        Some(lease) => {
            let (outcome, fx) = op(lease, owner, token, now);
            commit(ctx, key, lease, fx, now);
            Some(outcome)
        }
    };
    Ok(Applied {
        key,
        handle,
        now,
        outcome,
    })
}

impl<T> Applied<'_, T> {
    /// Hands a lock that became free to its first waiter before any other
    /// client runs.
    pub fn serve_next_waiter(&self, ctx: &Context) -> Result<(), Error> {
        if let Some(lock) = blocking::waiting_lock(ctx, self.key) {
            waiters::serve(ctx, self.key, &self.handle, &lock, self.now)?;
        }
        Ok(())
    }
}
