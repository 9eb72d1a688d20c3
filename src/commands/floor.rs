//! `HBLOCK.FLOOR token` | `HBLOCK.FLOOR RESET` | `HBLOCK.FLOOR ENDS key`
//!
//! `token`: internal: carries a jump of the data set's token floor (a new
//! epoch after a promotion or a restart) to replicas and the AOF. Raises the
//! floor to `token`, never lowers it. Any other caller is refused, as for
//! APPLY.
//!
//! `ENDS key` (internal): the RESTORE of `key` that follows in the stream
//! loaded with its lease ended on the master (docs/guarantees.md, "Records
//! that arrive at a name"): a replica or an AOF replay ends it too.
//!
//! `RESET`: the operator's way out of a floor pushed too high (tokens near
//! 2^53 from an old build's data or a forged record): the floor becomes the
//! start of the epoch after the highest token of the records that exist now,
//! in every database; the reply is the new floor. What it gives up: a token
//! of a deleted key above that may be handed out again. An `admin`
//! command (ACL `@admin @dangerous`); replicated as itself, so replicas and
//! the AOF recompute it from the same records.

use super::common::{from_master, refuse_on_replica};
use crate::error::Error;
use crate::spec::{Kind, Spec};
use crate::{arrival, datatype, ffi, tokens};
use hblock_core::args;
use redis_module::{Context, RedisResult, RedisString, RedisValue};

/// What Redis is told about this command (registration, COMMAND INFO/DOCS).
pub const SPEC: Spec = Spec {
    name: c"hblock.floor",
    flags: "write admin",
    acl: c"admin dangerous",
    summary: c"RESET: lowers the token floor to the highest token of existing locks (admin). Internal with a token: replication and AOF only.",
    arity: -2,
    key_flags: 0,
    wraps: false,
    args: &[(c"reset-or-token", Kind::Text, None)],
};

pub fn run(ctx: &Context, args: &[RedisString]) -> RedisResult {
    let from_master_link = from_master(ctx);
    if let [_, ends, key] = args {
        if !from_master_link {
            return Err(Error::InternalOnly(c"HBLOCK.FLOOR").into());
        }
        if !ends.as_slice().eq_ignore_ascii_case(b"ends") {
            return Err(Error::Invalid(args::Invalid::Syntax).into());
        }
        arrival::told_ends(key.as_slice());
        ctx.replicate_verbatim();
        ffi::reply_ok(ctx.ctx);
        return Ok(RedisValue::NoReply);
    }
    let [_, arg] = args else {
        return Err(Error::Arity.into());
    };
    if arg.as_slice().eq_ignore_ascii_case(b"reset") {
        if !from_master_link {
            refuse_on_replica(ctx)?;
            // Redis 7.0 puts module commands in no ACL category, so
            // `-@admin` cannot take this one away: ask for CONFIG's rights.
            if !ffi::caller_may_configure(ctx.ctx, c"hblock.failover-delay") {
                return Err(Error::OperatorOnly.into());
            }
        }
        let highest = datatype::highest_token(ctx.ctx);
        let floor = tokens::reset_floor(highest);
        ctx.replicate_verbatim();
        return Ok(RedisValue::Integer(
            i64::try_from(floor).unwrap_or(i64::MAX),
        ));
    }
    if !from_master_link {
        return Err(Error::InternalOnly(c"HBLOCK.FLOOR").into());
    }
    let token = args::token(arg.as_slice()).map_err(Error::from)?;
    tokens::observe_token(token);
    // As APPLY: into this server's own AOF and sub-replicas' backlog.
    ctx.replicate_verbatim();
    ffi::reply_ok(ctx.ctx);
    Ok(RedisValue::NoReply)
}
