//! `HBLOCK.FENCED key owner token command [arg ...]`
//!
//! Runs `command arg ...` only if, at this moment by the server's clock,
//! `owner` holds the live lease of `key` under `token`; the reply is the
//! command's own (RESP2 or RESP3 as the caller speaks, errors included).
//! Otherwise BEAT's `NOTHELD ...` errors, and nothing runs.
//!
//! - Keys: the lock and the wrapped command's keys are this command's keys
//!   (getkeys-api), so ACL key patterns, COMMAND GETKEYS and cluster
//!   routing (CROSSSLOT, MOVED) treat them as one multi-key command.
//! - The wrapped command runs through RM_Call as the caller's user (ACL),
//!   in script mode (no `noscript` commands; min-replicas, disk errors), with
//!   deny-oom, and is replicated as itself: the check writes nothing.
//! - Refused with ERR: unknown commands, blocking ones, MULTI/EXEC/WATCH and
//!   whatever scripts may not call, and `HBLOCK.*`.

use super::check::holds;
use super::refuse_on_replica;
use crate::command_info::{Kind, Spec, KEY, OWNER, TOKEN};
use crate::error::Error;
use crate::ffi;
use redis_module::{raw, Context, RedisError, RedisResult, RedisString, RedisValue};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_int, CStr, CString};
use std::rc::Rc;

/// What Redis is told about this command (registration, COMMAND INFO/DOCS).
pub const SPEC: Spec = Spec {
    name: c"hblock.fenced",
    flags: "write deny-oom getkeys-api",
    acl: c"write",
    summary:
        c"Runs a command only while owner holds the live lease under token; its reply, or NOTHELD.",
    arity: -5,
    key_flags: raw::REDISMODULE_CMD_KEY_RO | raw::REDISMODULE_CMD_KEY_ACCESS,
    wraps: true,
    args: &[
        KEY,
        OWNER,
        TOKEN,
        (c"command", Kind::Text, None),
        (c"arg", Kind::Rest, None),
    ],
};

/// RM_Call flags: replicate, errors as replies, as the caller's user, the
/// caller's protocol, script mode, deny-oom.
const CALL_FLAGS: &std::ffi::CStr = c"v!EC0SM";

/// Why a command may not be wrapped, if it may not.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Verdict {
    Allowed,
    Unknown,
    Blocking,
    NotInScripts,
    Hblock,
}

/// A known command: whether it may be wrapped, and its name for RM_Call.
type Known = (Verdict, Rc<CStr>);

thread_local! {
    /// Known commands by lower-case name (COMMAND INFO once each).
    static KNOWN: RefCell<HashMap<Vec<u8>, Known>> = RefCell::new(HashMap::new());
    /// The one looked up last: most callers wrap the same command every time,
    /// and comparing its name is cheaper than hashing it (1.2% of a fenced SET).
    static LAST: RefCell<Option<(Vec<u8>, Known)>> = const { RefCell::new(None) };
}

fn known(lower: &[u8]) -> Option<Known> {
    let last = LAST.with(|l| {
        let l = l.try_borrow().ok()?;
        let (name, known) = l.as_ref()?;
        (name.as_slice() == lower).then(|| known.clone())
    });
    if last.is_some() {
        return last;
    }
    let found = KNOWN.with(|k| k.try_borrow().ok()?.get(lower).cloned())?;
    LAST.with(|l| {
        if let Ok(mut l) = l.try_borrow_mut() {
            *l = Some((lower.to_vec(), found.clone()));
        }
    });
    Some(found)
}

fn verdict_from_server(ctx: &Context, name: &str) -> Verdict {
    let Ok(RedisValue::Array(infos)) = ctx.call("COMMAND", &["INFO", name]) else {
        return Verdict::Unknown;
    };
    let Some(RedisValue::Array(info)) = infos.into_iter().next() else {
        return Verdict::Unknown;
    };
    let flags: Vec<String> = match info.into_iter().nth(2) {
        Some(RedisValue::Array(flags)) => flags
            .into_iter()
            .filter_map(|f| match f {
                RedisValue::SimpleString(s) | RedisValue::BulkString(s) => Some(s),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if flags.iter().any(|f| f == "blocking") {
        Verdict::Blocking
    } else if flags.iter().any(|f| f == "noscript") {
        Verdict::NotInScripts
    } else {
        Verdict::Allowed
    }
}

/// Names up to this long are lower-cased on the stack (every command's is).
const SHORT_NAME: usize = 64;

/// The wrapped command's name for RM_Call, or why it may not be wrapped.
/// The common case (a command seen before) allocates nothing.
fn wrappable(ctx: &Context, name: &[u8]) -> Result<Rc<CStr>, Verdict> {
    let mut short = [0u8; SHORT_NAME];
    let long;
    let lower: &[u8] = match short.get_mut(..name.len()) {
        Some(buf) => {
            buf.copy_from_slice(name);
            buf.make_ascii_lowercase();
            buf
        }
        None => {
            long = name.to_ascii_lowercase();
            &long
        }
    };
    if lower.starts_with(b"hblock.") {
        return Err(Verdict::Hblock);
    }
    let (verdict, cname) = match known(lower) {
        Some(known) => known,
        None => {
            let text = std::str::from_utf8(lower).map_err(|_| Verdict::Unknown)?;
            let cname: Rc<CStr> = CString::new(lower).map_err(|_| Verdict::Unknown)?.into();
            let v = verdict_from_server(ctx, text);
            if v == Verdict::Unknown {
                // Unknown names are not kept: the cache stays as small as the command table.
                return Err(v);
            }
            KNOWN.with(|cache| {
                if let Ok(mut cache) = cache.try_borrow_mut() {
                    cache.insert(lower.to_vec(), (v, cname.clone()));
                }
            });
            (v, cname)
        }
    };
    match verdict {
        Verdict::Allowed => Ok(cname),
        v => Err(v),
    }
}

fn refusal(name: &[u8], v: Verdict) -> RedisError {
    let name = String::from_utf8_lossy(name);
    let why = match v {
        Verdict::Unknown => "unknown command",
        Verdict::Blocking => "blocking commands cannot be fenced",
        Verdict::NotInScripts => {
            "commands not allowed in scripts (MULTI, EXEC, WATCH, ...) cannot be fenced"
        }
        Verdict::Hblock => "HBLOCK commands cannot be fenced",
        Verdict::Allowed => "refused",
    };
    RedisError::String(format!("ERR HBLOCK.FENCED '{name}': {why}"))
}

/// Answers Redis's keys position request: the lock, then the wrapped keys.
fn report_keys(ctx: &Context, args: &[RedisString]) {
    ffi::key_at_pos(ctx.ctx, 1);
    if let Some(wrapped) = args.get(4..) {
        for pos in ffi::command_keys(ctx.ctx, wrapped) {
            ffi::key_at_pos(ctx.ctx, pos.saturating_add(4));
        }
    }
}

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if ffi::is_keys_position_request(ctx.ctx) {
        report_keys(ctx, &args);
        return Ok(RedisValue::NoReply);
    }
    let [_, key, owner, token, command, rest @ ..] = args.as_slice() else {
        return Err(Error::Arity.into());
    };
    refuse_on_replica(ctx)?;
    let owner = crate::args::owner(owner.as_slice()).map_err(Error::from)?;
    let token = crate::args::token(token.as_slice()).map_err(Error::from)?;
    let name = command.as_slice();
    let cname = wrappable(ctx, name).map_err(|v| refusal(name, v))?;
    holds(ctx, key, owner, token)?;
    let denied = |text: &[u8]| {
        // Redis 7.0 words RM_Call's ACL refusal without the NOPERM code.
        let text = text.strip_prefix(b"ERR ").unwrap_or(text);
        text.starts_with(b"acl verification failed").then(|| {
            format!(
                "NOPERM this user has no permissions to run the '{}' command through HBLOCK.FENCED",
                String::from_utf8_lossy(name).to_lowercase()
            )
        })
    };
    match ffi::call_passing_reply(ctx.ctx, &cname, rest, CALL_FLAGS, denied) {
        Ok(()) => Ok(RedisValue::NoReply),
        Err(ffi::CallFailed(errno)) => Err(RedisError::String(format!(
            "ERR HBLOCK.FENCED '{}': not run ({})",
            String::from_utf8_lossy(name),
            std::io::Error::from_raw_os_error(errno as c_int)
        ))),
    }
}
