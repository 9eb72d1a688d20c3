//! `HBLOCK.FLOOR token`
//!
//! Internal: carries a jump of the data set's token floor (a new epoch after
//! a promotion or a restart) to replicas and the AOF. Raises the floor to
//! `token`, never lowers it. Any other caller is refused, as for APPLY.

use crate::command_info::{Kind, Spec};
use crate::error::Error;
use redis_module::{Context, ContextFlags, RedisResult, RedisString, RedisValue};

/// What Redis is told about this command (registration, COMMAND INFO/DOCS).
pub const SPEC: Spec = Spec {
    name: c"hblock.floor",
    flags: "write",
    acl: c"write",
    summary: c"Internal: raises the token floor; used by replication and AOF only.",
    arity: 2,
    key_flags: 0,
    wraps: false,
    args: &[(c"token", Kind::Integer, None)],
};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if !ctx
        .get_flags()
        .intersects(ContextFlags::REPLICATED | ContextFlags::LOADING)
    {
        return Err(Error::InternalOnly(c"HBLOCK.FLOOR").into());
    }
    let [_, token] = args.as_slice() else {
        return Err(Error::Arity.into());
    };
    let token = crate::args::token(token.as_slice()).map_err(Error::from)?;
    crate::tokens::observe_token(token);
    // As APPLY: into this server's own AOF and sub-replicas' backlog.
    ctx.replicate_verbatim();
    Ok(RedisValue::SimpleStringStatic("OK"))
}
