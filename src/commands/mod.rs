//! One file per command: parse -> core -> write/replicate/notify -> reply.
//! What they share (the clock, opening a lock, committing effects) is here.

pub mod acquire;
pub mod apply;
pub mod beat;
pub mod check;
pub mod fenced;
pub mod floor;
pub mod info;
pub mod release;
pub mod watch;

/// Every command's spec, in registration order (lib.rs registers them in
/// this order too; command_info sets their metadata from these).
pub const SPECS: [&crate::command_info::Spec; 9] = [
    &acquire::SPEC,
    &beat::SPEC,
    &release::SPEC,
    &info::SPEC,
    &apply::SPEC,
    &check::SPEC,
    &fenced::SPEC,
    &floor::SPEC,
    &watch::SPEC,
];

use crate::config;
use crate::error::Error;
use crate::record::LOCK_TYPE;
use crate::stats;
use hblock_core::lease::Terms;
use hblock_core::lease::{Effects, Lease, Phase};
use hblock_core::record::Fields;
use redis_module::key::RedisKeyWritable;
use redis_module::{Context, ContextFlags, NotifyEvent, RedisString};

/// Wall-clock milliseconds, the clock Redis itself uses for PEXPIRE. Read once
/// per command and replicated as absolute times, never re-read on replicas.
pub fn now_ms() -> i64 {
    crate::ffi::now_ms()
}

/// `CMD key owner token`, as BEAT and RELEASE take it: refused on a replica,
/// owner and token checked. Returns the key, the owner and the token.
pub fn holder_call<'a>(
    ctx: &Context,
    args: &'a [RedisString],
) -> Result<(&'a RedisString, &'a [u8], u64), Error> {
    let [_, key, owner, token] = args else {
        return Err(Error::Arity);
    };
    refuse_on_replica(ctx)?;
    let owner = hblock_core::args::owner(owner.as_slice())?;
    let token = hblock_core::args::token(token.as_slice())?;
    Ok((key, owner, token))
}

/// BEAT's and RELEASE's call once parsed and applied: the open key, the time
/// of the call, and what the lease answered (None: no such key).
pub struct HolderCall<'a, T> {
    pub key: &'a RedisString,
    pub handle: RedisKeyWritable,
    pub now: i64,
    pub outcome: Option<T>,
}

/// `CMD key owner token` parsed (holder_call), `op` applied to the lock at
/// the key and its effects committed.
pub fn on_holder<'a, T>(
    ctx: &Context,
    args: &'a [RedisString],
    op: impl FnOnce(&mut Lease, &[u8], u64, i64) -> (T, Effects),
) -> Result<HolderCall<'a, T>, Error> {
    let (key, owner, token) = holder_call(ctx, args)?;
    let now = now_ms();
    let handle = ctx.open_key_writable(key);
    let outcome = match lock_at(&handle)? {
        None => None,
        Some(lease) => {
            let (outcome, fx) = op(lease, owner, token, now);
            commit(ctx, key, lease, fx);
            Some(outcome)
        }
    };
    Ok(HolderCall {
        key,
        handle,
        now,
        outcome,
    })
}

impl<T> HolderCall<'_, T> {
    /// Hands a lock that became free to its first waiter before any other
    /// client runs.
    pub fn serve_waiter(&self, ctx: &Context) -> Result<(), Error> {
        if let Some(lock) = crate::blocking::waiting_lock(ctx, self.key) {
            crate::blocking::serve(ctx, self.key, &self.handle, &lock, self.now)?;
        }
        Ok(())
    }
}

/// The arguments as byte slices (keys and owners are binary-safe).
pub fn byte_args(args: &[RedisString]) -> Vec<&[u8]> {
    args.iter().map(RedisString::as_slice).collect()
}

/// Refuses a lock write on a replica, whatever `replica-read-only` says: a
/// lock that exists only on a replica is invisible to its master and lost at
/// the next resync.
pub fn refuse_on_replica(ctx: &Context) -> Result<(), Error> {
    let flags = ctx.get_flags();
    if flags.contains(ContextFlags::SLAVE) && !flags.contains(ContextFlags::REPLICATED) {
        return Err(Error::ReadOnly);
    }
    Ok(())
}

/// The lock stored at an open key: None when the key does not exist,
/// WRONGTYPE when it holds another type.
pub fn lock_at(key: &RedisKeyWritable) -> Result<Option<&mut Lease>, Error> {
    key.get_value::<Lease>(&LOCK_TYPE)
        .map_err(|_| Error::WrongType)
}

/// Stores a new record at an empty key and returns it.
pub fn create_lock(key: &RedisKeyWritable, lease: Lease) -> Result<&mut Lease, Error> {
    key.set_value(&LOCK_TYPE, lease)
        .map_err(|_| Error::WrongType)?;
    lock_at(key)?.ok_or(Error::WrongType)
}

/// The first lease of a key that does not exist (token 1), with the terms the
/// call gave and the configured defaults for the rest; published and replicated.
pub fn grant_new_key<'k>(
    ctx: &Context,
    key: &RedisString,
    handle: &'k RedisKeyWritable,
    owner: &[u8],
    requested: (Option<u32>, Option<u16>),
    now: i64,
) -> Result<&'k mut Lease, Error> {
    let terms = Terms::resolve(requested, config::default_terms());
    let first =
        Lease::first_after(owner, terms, now, crate::tokens::floor()).map_err(Error::from)?;
    let lease = create_lock(handle, first)?;
    let fx = Effects {
        changed: true,
        acquired: true,
        ..Effects::default()
    };
    commit(ctx, key, lease, fx);
    Ok(lease)
}

/// Makes a transition visible: replicate the new record as absolute values,
/// publish its keyspace events, count it, and make sure a held lease is
/// looked at by its deadline (no handler has to remember that).
pub fn commit(ctx: &Context, key: &RedisString, lease: &mut Lease, fx: Effects) {
    if fx.changed {
        signal_modified(ctx, key);
        replicate_record(ctx, key, lease);
        crate::tokens::observe(lease);
    }
    let events = [
        (fx.expired, "hblock.expired", &stats::EXPIRED),
        (fx.acquired, "hblock.acquired", &stats::ACQUIRED),
        (fx.takeover, "", &stats::TAKEOVERS),
        (fx.released, "hblock.released", &stats::RELEASED),
    ];
    for (happened, event, counter) in events {
        if happened {
            stats::bump(counter);
            if !event.is_empty() {
                ctx.notify_keyspace_event(NotifyEvent::MODULE, event, key);
            }
        }
    }
    if (fx.acquired || fx.released || fx.expired) && (crate::watch::any() || crate::binding::any())
    {
        let holder = if lease.phase == Phase::Held {
            lease.token
        } else {
            0
        };
        let lock = crate::blocking::lock_id(ctx, key);
        crate::binding::holder_changed(&lock, holder);
        crate::watch::notify(&lock, holder);
    }
    if fx.changed && lease.phase == Phase::Held {
        // Cheap when a check is already scheduled no later (every beat).
        crate::blocking::watch_lease(ctx.ctx, || crate::blocking::lock_id(ctx, key), lease);
    }
}

/// Invalidates WATCH and client-side caches of the key. The module signals
/// explicitly (REDISMODULE_OPTION_NO_IMPLICIT_SIGNAL_MODIFIED), so that a
/// refused call or a timer's look at a lock touches nothing.
pub fn signal_modified(ctx: &Context, key: &RedisString) {
    crate::ffi::signal_modified(ctx.ctx, key.inner);
}

/// Sends `HBLOCK.APPLY key <record>` to replicas and the AOF, so they hold
/// exactly the master's record whatever their own clock says.
///
/// The record is the compact binary form (record.rs): this is on every
/// BEAT's path, and Redis builds one object per argument it propagates (the
/// ten-field form cost ~55% of a BEAT). The AOF rewrite keeps the readable
/// ten-field form; APPLY takes both.
pub fn replicate_record(ctx: &Context, key: &RedisString, lease: &Lease) {
    if !crate::propagation::needed() {
        return; // nothing can read it (propagation.rs)
    }
    let record = Fields::of(lease).compact();
    crate::ffi::replicate_apply(ctx.ctx, key.inner, record.as_bytes());
}
