//! `HBLOCK.FENCED key owner token command [arg ...]`
//!
//! Runs `command arg ...` only if, at this moment by the server's clock,
//! `owner` holds the live lease of `key` under `token`; the reply is the
//! command's own (RESP2 or RESP3 as the caller speaks, errors included).
//! Otherwise BEAT's `NOTHELD ...` errors, and nothing runs.
//!
//! - Keys: the lock and the wrapped command's keys are this command's keys
//!   (getkeys-api), so ACL key patterns, COMMAND GETKEYS and cluster
//!   routing (CROSSSLOT, MOVED) treat them as one multi-key command. Redis
//!   asks for them before the command runs (see [`report_keys`]): a wrapped
//!   `HBLOCK.*` adds no keys, and such lookups never nest more than
//!   [`KEY_LOOKUP_DEPTH_MAX`] deep, so no input can recurse through them.
//! - The wrapped command runs through RM_Call as the caller's user (ACL),
//!   in script mode (no `noscript` commands; min-replicas, disk errors), with
//!   deny-oom when the wrapped command is `denyoom` (FENCED itself is not:
//!   a fenced GET or DEL works over maxmemory), and is replicated as itself:
//!   the check writes nothing.
//! - Refused with ERR: unknown commands, blocking ones, MULTI/EXEC/WATCH and
//!   whatever scripts may not call, `HBLOCK.*`, and SELECT/READONLY/READWRITE/ASKING
//!   (they would change RM_Call's throwaway client, not the caller's).

use super::common::{owner_and_token, refuse_on_replica};
use crate::error::Error;
use crate::spec::{Kind, Spec, KEY, OWNER, TOKEN};
use crate::{ffi, view};
use redis_module::{raw, Context, RedisError, RedisResult, RedisString, RedisValue};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::{c_int, CStr, CString};
use std::rc::Rc;

/// What Redis is told about this command (registration, COMMAND INFO/DOCS).
pub const SPEC: Spec = Spec {
    name: c"hblock.fenced",
    flags: "write getkeys-api",
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
/// caller's protocol, script mode; `M` (deny-oom) for a `denyoom` command.
const CALL_FLAGS: &CStr = c"v!EC0S";
const CALL_FLAGS_DENY_OOM: &CStr = c"v!EC0SM";

/// Why a command may not be wrapped, if it may not.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Verdict {
    Allowed,
    Unknown,
    Blocking,
    NotInScripts,
    Hblock,
    ConnectionState,
    /// `COMMAND INFO` itself failed (renamed away by `rename-command`).
    NoCommandInfo,
}

/// A known command: whether it may be wrapped, its name for RM_Call, and
/// whether it is `denyoom` (refused over maxmemory).
#[derive(Clone)]
struct Known {
    verdict: Verdict,
    name: Rc<CStr>,
    deny_oom: bool,
}

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

/// What COMMAND INFO says of `name`: the verdict, and whether it is `denyoom`.
fn verdict_from_server(ctx: &Context, name: &str) -> (Verdict, bool) {
    // An unknown name gets an array of one nil; anything else than an
    // array is COMMAND itself failing.
    let Ok(RedisValue::Array(infos)) = ctx.call("COMMAND", &["INFO", name]) else {
        return (Verdict::NoCommandInfo, false);
    };
    let Some(RedisValue::Array(info)) = infos.into_iter().next() else {
        return (Verdict::Unknown, false);
    };
    // The command's own name: a command renamed by `rename-command` is
    // looked up by its new name but still reports its original one.
    let own_name = match info.first() {
        Some(RedisValue::SimpleString(s) | RedisValue::BulkString(s)) => s.to_ascii_lowercase(),
        _ => String::new(),
    };
    if CONNECTION_STATE.contains(&own_name.as_bytes()) {
        return (Verdict::ConnectionState, false);
    }
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
    let verdict = if flags.iter().any(|f| f == "blocking") {
        Verdict::Blocking
    } else if flags.iter().any(|f| f == "noscript") {
        Verdict::NotInScripts
    } else {
        Verdict::Allowed
    };
    (verdict, flags.iter().any(|f| f == "denyoom"))
}

/// Commands that only change the state of the connection that runs them:
/// run by RM_Call they change a throwaway client and would answer OK with
/// no effect on the caller's connection (`SELECT 1` would not select).
/// Matched against the name COMMAND INFO reports, which a `rename-command`
/// does not change.
const CONNECTION_STATE: [&[u8]; 4] = [b"select", b"readonly", b"readwrite", b"asking"];

/// Names up to this long are lower-cased on the stack (every command's is).
const SHORT_NAME: usize = 64;

/// Whether `name` is one of this module's commands (any case).
fn is_hblock(name: &[u8]) -> bool {
    name.get(..7)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(b"hblock."))
}

/// The wrapped command's name for RM_Call and whether it is `denyoom`, or
/// why it may not be wrapped. The common case (a command seen before)
/// allocates nothing.
fn wrappable(ctx: &Context, name: &[u8]) -> Result<(Rc<CStr>, bool), Verdict> {
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
    if is_hblock(lower) {
        return Err(Verdict::Hblock);
    }
    let found = match known(lower) {
        Some(known) => known,
        None => {
            let text = std::str::from_utf8(lower).map_err(|_| Verdict::Unknown)?;
            let name: Rc<CStr> = CString::new(lower).map_err(|_| Verdict::Unknown)?.into();
            let (verdict, deny_oom) = verdict_from_server(ctx, text);
            if matches!(verdict, Verdict::Unknown | Verdict::NoCommandInfo) {
                // Unknown names are not kept: the cache stays as small as the command table.
                return Err(verdict);
            }
            let found = Known {
                verdict,
                name,
                deny_oom,
            };
            KNOWN.with(|cache| {
                if let Ok(mut cache) = cache.try_borrow_mut() {
                    cache.insert(lower.to_vec(), found.clone());
                }
            });
            found
        }
    };
    match found.verdict {
        Verdict::Allowed => Ok((found.name, found.deny_oom)),
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
        Verdict::ConnectionState => {
            "commands that change the connection's state (SELECT, READONLY, READWRITE, ASKING) cannot be fenced"
        }
        Verdict::NoCommandInfo => {
            "COMMAND INFO, which tells what may be fenced, failed (renamed by rename-command?)"
        }
        Verdict::Allowed => "refused",
    };
    RedisError::String(format!("ERR HBLOCK.FENCED '{name}': {why}"))
}

/// How many key lookups of FENCED may be under way at once on one thread:
/// one, plus three nested in it through other modules' getkeys-api commands
/// (`FENCED ... OTHER.WRAP FENCED ...`). Deeper ones report the lock only.
const KEY_LOOKUP_DEPTH_MAX: u32 = 4;

thread_local! {
    /// FENCED key lookups under way on this thread. Thread-local because
    /// Valkey 8 with io-threads on a cluster asks for a command's keys on
    /// the I/O thread that read it (to compute its slot).
    static KEY_LOOKUP_DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// One key lookup under way; the count goes down when it is dropped.
struct KeyLookup;

impl KeyLookup {
    /// None when [`KEY_LOOKUP_DEPTH_MAX`] lookups are under way already.
    fn enter() -> Option<KeyLookup> {
        KEY_LOOKUP_DEPTH.with(|depth| {
            let now = depth.get();
            (now < KEY_LOOKUP_DEPTH_MAX).then(|| {
                depth.set(now + 1);
                KeyLookup
            })
        })
    }
}

impl Drop for KeyLookup {
    fn drop(&mut self) {
        KEY_LOOKUP_DEPTH.with(|depth| depth.set(depth.get().saturating_sub(1)));
    }
}

/// Answers Redis's keys position request: the lock, then the wrapped keys.
///
/// Redis asks before the command runs (COMMAND GETKEYS, ACL key patterns,
/// cluster routing, RM_GetCommandKeys of other modules, Valkey's key
/// prefetch), so this must stay bounded for any input: the wrapped
/// command's keys come from Redis (RM_GetCommandKeys), which would ask
/// FENCED again for a wrapped FENCED, once per level, until the stack
/// overflows. A wrapped `HBLOCK.*` (refused when it runs) adds no keys, and
/// lookups nested through other modules stop at [`KEY_LOOKUP_DEPTH_MAX`].
fn report_keys(ctx: &Context, args: &[RedisString]) {
    let count = args.len();
    let report = |pos: c_int, flags: c_int| {
        // Only positions of this call: Redis reads argv[pos] afterwards.
        if usize::try_from(pos).is_ok_and(|p| p >= 1 && p < count) {
            ffi::key_at_pos(ctx.ctx, pos, flags);
        }
    };
    // The lock is only read (a read-only key ACL, `%R~`, allows it).
    report(1, SPEC.key_flags as c_int);
    let Some(wrapped) = args.get(4..) else {
        return;
    };
    if wrapped
        .first()
        .is_none_or(|name| is_hblock(name.as_slice()))
    {
        return;
    }
    let Some(_lookup) = KeyLookup::enter() else {
        return;
    };
    for (pos, flags) in ffi::command_keys(ctx.ctx, wrapped) {
        report(pos.saturating_add(4), flags);
    }
}

thread_local! {
    /// Whether a wrapped command of FENCED is running on this thread.
    static RUNNING: Cell<bool> = const { Cell::new(false) };
}

/// A wrapped command running; the flag goes down when it is dropped.
struct Running;

impl Running {
    /// None when a wrapped command runs already: this FENCED is nested in
    /// it (through another module's command that calls FENCED, a keyspace
    /// event handler, ...).
    fn start() -> Option<Running> {
        RUNNING.with(|running| (!running.replace(true)).then_some(Running))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.with(|running| running.set(false));
    }
}

pub fn run(ctx: &Context, args: &[RedisString]) -> RedisResult {
    if ffi::is_keys_position_request(ctx.ctx) {
        report_keys(ctx, args);
        return Ok(RedisValue::NoReply);
    }
    // FENCED inside a command FENCED runs is HBLOCK.* fenced, if indirectly
    // (another module's command that calls FENCED): refused, so that no
    // input nests calls without limit.
    let Some(_running) = Running::start() else {
        return Err(RedisError::Str(
            "ERR HBLOCK.FENCED inside a command run by HBLOCK.FENCED: HBLOCK commands cannot be fenced",
        ));
    };
    let [_, key, owner, token, command, rest @ ..] = args else {
        return Err(Error::Arity.into());
    };
    refuse_on_replica(ctx)?;
    let (owner, token) = owner_and_token(owner, token)?;
    let name = command.as_slice();
    let (cname, deny_oom) = wrappable(ctx, name).map_err(|v| refusal(name, v))?;
    view::holds(ctx, key, owner, token)?;
    let denied = |text: &[u8]| acl_denial(text).map(|what| noperm(what, name));
    let flags = if deny_oom {
        CALL_FLAGS_DENY_OOM
    } else {
        CALL_FLAGS
    };
    match ffi::call_passing_reply(ctx.ctx, &cname, rest, flags, denied) {
        Ok(()) => Ok(RedisValue::NoReply),
        Err(ffi::CallFailed(errno)) => Err(RedisError::String(format!(
            "ERR HBLOCK.FENCED '{}': not run ({})",
            String::from_utf8_lossy(name),
            std::io::Error::from_raw_os_error(errno as c_int)
        ))),
    }
}

/// What an ACL refusal of the wrapped command was about.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Denied {
    Command,
    Key,
    Channel,
}

/// Whether `text`, an error reply of RM_Call, is its ACL refusal, and of
/// what. The servers word it differently:
/// - Redis 7.0: `ERR acl verification failed, ` + `can't run this command or
///   subcommand.` / `can't access at least one of the keys mentioned in the
///   command arguments.` / `can't publish to the channel mentioned in the
///   command.`
/// - Valkey: `NOPERM User <name> has no permissions to run the '<cmd>'
///   command` / `NOPERM No permissions to access a key` / `... a channel`
///   (or, verbose, `... access the '<key>' key` / `... channel`).
fn acl_denial(text: &[u8]) -> Option<Denied> {
    let text = text.strip_prefix(b"ERR ").unwrap_or(text);
    if let Some(why) = text.strip_prefix(b"acl verification failed") {
        // Redis's own fixed texts: no names in them.
        let has = |word: &[u8]| why.windows(word.len()).any(|w| w == word);
        return Some(if has(b"channel") {
            Denied::Channel
        } else if has(b"key") {
            Denied::Key
        } else {
            Denied::Command
        });
    }
    // Valkey's texts name users, commands and keys, but end with the kind.
    let why = text.strip_prefix(b"NOPERM ")?.trim_ascii_end();
    let why = why.strip_suffix(b".").unwrap_or(why);
    Some(if why.ends_with(b"channel") {
        Denied::Channel
    } else if why.ends_with(b"key") {
        Denied::Key
    } else {
        Denied::Command
    })
}

/// FENCED's NOPERM for an ACL refusal of the wrapped command `name`: the
/// same words on every server, naming what was denied.
fn noperm(what: Denied, name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name).to_lowercase();
    match what {
        Denied::Command => format!(
            "NOPERM this user has no permissions to run the '{name}' command through HBLOCK.FENCED"
        ),
        Denied::Key => format!(
            "NOPERM this user has no permissions to access a key of the '{name}' command through HBLOCK.FENCED"
        ),
        Denied::Channel => format!(
            "NOPERM this user has no permissions to access a channel of the '{name}' command through HBLOCK.FENCED"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_refusals_of_every_server_are_told_apart() {
        let table: [(&[u8], Option<Denied>); 10] = [
            (
                b"ERR acl verification failed, can't run this command or subcommand.",
                Some(Denied::Command),
            ),
            (
                b"ERR acl verification failed, can't access at least one of the keys mentioned in the command arguments.",
                Some(Denied::Key),
            ),
            (
                b"ERR acl verification failed, can't publish to the channel mentioned in the command.",
                Some(Denied::Channel),
            ),
            (
                b"NOPERM User keychannel has no permissions to run the 'publish' command",
                Some(Denied::Command),
            ),
            (b"NOPERM No permissions to access a key", Some(Denied::Key)),
            (
                b"NOPERM No permissions to access a channel",
                Some(Denied::Channel),
            ),
            (
                b"NOPERM User u has no permissions to access the 'k' key",
                Some(Denied::Key),
            ),
            (b"WRONGTYPE Operation against a key", None),
            (b"ERR unknown command", None),
            (b"", None),
        ];
        for (text, want) in table {
            assert_eq!(acl_denial(text), want, "{}", String::from_utf8_lossy(text));
        }
        assert!(noperm(Denied::Channel, b"PUBLISH").contains("channel of the 'publish' command"));
    }

    #[test]
    fn wrapped_hblock_commands_are_recognised_in_any_case() {
        for name in [
            &b"HBLOCK.FENCED"[..],
            b"hblock.fenced",
            b"hBlOcK.x",
            b"hblock.",
        ] {
            assert!(is_hblock(name), "{}", String::from_utf8_lossy(name));
        }
        for name in [&b"HBLOCK"[..], b"hblockx.fenced", b"SET", b"", b"hblock"] {
            assert!(!is_hblock(name), "{}", String::from_utf8_lossy(name));
        }
    }

    #[test]
    fn a_running_wrapped_command_refuses_a_nested_one_until_it_ends() {
        let outer = Running::start();
        assert!(outer.is_some());
        assert!(Running::start().is_none(), "nested");
        drop(outer);
        assert!(Running::start().is_some(), "the next call runs");
    }

    #[test]
    fn key_lookups_nest_at_most_the_bound_and_unwind() {
        let mut held = Vec::new();
        while let Some(lookup) = KeyLookup::enter() {
            held.push(lookup);
            assert!(held.len() <= KEY_LOOKUP_DEPTH_MAX as usize);
        }
        assert_eq!(held.len(), KEY_LOOKUP_DEPTH_MAX as usize);
        held.pop();
        assert!(
            KeyLookup::enter().is_some(),
            "a finished lookup frees its place"
        );
        held.clear();
        assert_eq!(KEY_LOOKUP_DEPTH.with(Cell::get), 0);
    }
}
