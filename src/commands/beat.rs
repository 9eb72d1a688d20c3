//! `HBLOCK.BEAT key owner token`
//!
//! The holder's heartbeat. Reply: the lease's beat count, or `NOTHELD <why>`.

use super::common::apply_and_commit;
use crate::error::Error;
use crate::spec::{holder_spec, Spec};
use crate::{stats, store};
use hblock_core::lease::{Lease, NotHeld};
use redis_module::{Context, RedisResult, RedisString, RedisValue};

/// What Redis is told about this command (registration, COMMAND INFO/DOCS).
pub const SPEC: Spec = holder_spec(
    c"hblock.beat",
    c"Records a heartbeat of the lease held by owner and token; returns its beat count or NOTHELD.",
);

pub fn run(ctx: &Context, args: &[RedisString]) -> RedisResult {
    let call = apply_and_commit(ctx, args, Lease::beat, store::commit_beat)?;
    let result = call.outcome.unwrap_or(Err(NotHeld::NoSuchLock));
    // A lease this call found expired goes to the next waiter now.
    if result == Err(NotHeld::Expired) {
        call.serve_next_waiter(ctx)?;
    }
    match result {
        Ok(beats) => {
            stats::bump(&stats::BEATS);
            Ok(RedisValue::Integer(beats as i64))
        }
        Err(why) => {
            stats::bump(&stats::NOTHELD);
            Err(Error::NotHeld(why).into())
        }
    }
}
