//! `HBLOCK.APPLY key phase owner token interval misses beats granted last_beat takeovers [history]`
//! `HBLOCK.APPLY key <record> [history]`
//! `HBLOCK.APPLY key <beat delta>`
//!
//! Internal: how the master replicates a lock (the compact binary form, one
//! argument) and how an AOF rewrite stores one (the ten fields; older AOF
//! files hold only this form).
//! It sets the record to exactly these values. The holder history
//! (`hblock_core::history`) follows when it changed (or, in an AOF rewrite,
//! when there is one); without it the record keeps the history it has.
//! A BEAT that was only a beat comes as a beat delta
//! (`hblock_core::beat_delta`: token, beats, last beat), applied to the
//! holder with that token.
//! Any other caller is refused, or
//! any client could forge lock records (7.0 has no "internal command" flag).

use super::common::{byte_args, from_master};
use crate::error::Error;
use crate::spec::{Kind, Spec, KEY, OWNER, TOKEN};
use crate::{ffi, store};
use hblock_core::beat_delta::{self, BeatDelta};
use hblock_core::history;
use hblock_core::owner::Owner;
use hblock_core::record::{self, Fields, NUMBERS};
use redis_module::{raw, Context, RedisResult, RedisString, RedisValue};

/// What Redis is told about this command (registration, COMMAND INFO/DOCS).
pub const SPEC: Spec = Spec {
    name: c"hblock.apply",
    flags: "write",
    acl: c"write",
    summary: c"Internal: sets a lock record (these fields, or one compact binary record); used by replication and AOF only.",
    arity: -3,
    key_flags: raw::REDISMODULE_CMD_KEY_OW | raw::REDISMODULE_CMD_KEY_UPDATE,
    wraps: false,
    args: &[
        KEY,
        (c"phase", Kind::Integer, None),
        OWNER,
        TOKEN,
        (c"interval", Kind::Integer, None),
        (c"misses", Kind::Integer, None),
        (c"beats", Kind::Integer, None),
        (c"granted", Kind::Integer, None),
        (c"last-beat", Kind::Integer, None),
        (c"takeovers", Kind::Integer, None),
    ],
};

pub fn run(ctx: &Context, args: &[RedisString]) -> RedisResult {
    if !from_master(ctx) {
        return Err(Error::InternalOnly(c"HBLOCK.APPLY").into());
    }
    let [_, key, fields @ ..] = args else {
        return Err(Error::Arity.into());
    };
    let fields = byte_args(fields);
    if let [delta] = fields.as_slice() {
        if beat_delta::is_delta(delta) {
            return apply_beat(ctx, key, delta);
        }
    }
    let ten = NUMBERS.len() + 1;
    let (parsed, history) = match fields.as_slice() {
        [record] => (record::from_compact_any(record), None),
        [record, history] => (record::from_compact_any(record), Some(*history)),
        _ if fields.len() == ten => (Fields::from_args(&fields).and_then(Fields::to_lease), None),
        [numbers @ .., history] if numbers.len() == ten => (
            Fields::from_args(numbers).and_then(Fields::to_lease),
            Some(*history),
        ),
        _ => return Err(Error::Arity.into()),
    };
    let mut lease = parsed.ok_or(Error::BadRecord)?;
    let permits = lease.permits().cloned();
    if history.is_some_and(|h| !history::fits(h, lease.token)) {
        return Err(Error::BadRecord.into());
    }
    let handle = store::open(ctx, key);
    let record = match store::lock_at(&handle)? {
        Some(current) => {
            // Keep the local bookkeeping of the record being replaced, and
            // its history unless this one carries one.
            let check_at = current.check_at;
            let mut owner = std::mem::replace(&mut current.owner, Owner::none());
            owner.set(lease.owner.as_bytes());
            owner.set_permits(permits);
            lease.owner = owner;
            *current = lease;
            current.check_at = check_at;
            current
        }
        None => store::create_lock(&handle, lease)?,
    };
    if let Some(history) = history {
        record.owner.set_history(history.into());
    }
    // Module commands propagate themselves: see commit_applied.
    store::commit_applied(ctx, key, record);
    ffi::reply_ok(ctx.ctx);
    Ok(RedisValue::NoReply)
}

/// `HBLOCK.APPLY key <beat delta>`: the master's BEAT, applied to the
/// holder it names by token. A record without that holder refuses it and
/// changes nothing (the master's record and this one differ: it cannot
/// happen while replay is exact).
fn apply_beat(ctx: &Context, key: &RedisString, delta: &[u8]) -> RedisResult {
    let handle = store::open(ctx, key);
    let record = store::lock_at(&handle)?.ok_or(Error::BadRecord)?;
    BeatDelta::apply(delta, record).map_err(|_| Error::BadRecord)?;
    store::commit_applied(ctx, key, record);
    ffi::reply_ok(ctx.ctx);
    Ok(RedisValue::NoReply)
}

#[cfg(test)]
mod tests {
    #[test]
    fn apply_docs_name_the_record_fields_in_order() {
        let names: Vec<&str> = super::SPEC
            .args
            .iter()
            .skip(1)
            .filter_map(|(name, _, _)| name.to_str().ok())
            .collect();
        let mut want: Vec<&str> = super::NUMBERS.to_vec();
        want.insert(1, "owner");
        assert_eq!(names, want);
    }
}
