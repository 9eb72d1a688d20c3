//! `HBLOCK.RELEASE key owner token`
//!
//! Reply: 1 when this call ended the caller's unexpired lease, else 0. The key
//! stays, free, keeping its token so the next lease gets token + 1; the first
//! client waiting in ACQUIRE gets it at once.

use super::common::apply_to_lease;
use crate::spec::{holder_spec, Spec};
use hblock_core::lease::Lease;
use redis_module::{Context, RedisResult, RedisString, RedisValue};

/// What Redis is told about this command (registration, COMMAND INFO/DOCS).
pub const SPEC: Spec = holder_spec(
    c"hblock.release",
    c"Ends the lease held by owner and token; 1 if released, else 0.",
);

pub fn run(ctx: &Context, args: &[RedisString]) -> RedisResult {
    let call = apply_to_lease(ctx, args, Lease::release)?;
    call.serve_next_waiter(ctx)?;
    Ok(RedisValue::Integer(i64::from(
        call.outcome.unwrap_or(false),
    )))
}
