//! What HBLOCK.FENCED needs: the key positions of a wrapped command (for
//! ACL, COMMAND GETKEYS and cluster routing) and RM_Call with its reply
//! passed through unchanged.

use super::base::Ctx;
use redis_module::{raw, RedisString};
use std::ffi::{c_int, CStr};

/// True when Redis asks for the command's key positions (getkeys-api).
pub fn is_keys_position_request(ctx: Ctx) -> bool {
    // SAFETY: the command's own context.
    unsafe { raw::RedisModule_IsKeysPositionRequest.is_some_and(|is_request| is_request(ctx) != 0) }
}

/// Reports argument `pos` as a key with key-spec `flags` (REDISMODULE_CMD_KEY_*;
/// 0: unknown, Redis then assumes read-write) during a keys position request.
pub fn key_at_pos(ctx: Ctx, pos: c_int, flags: c_int) {
    // SAFETY: the command's own context, during a keys position request.
    unsafe {
        match (
            raw::RedisModule_KeyAtPosWithFlags,
            raw::RedisModule_KeyAtPos,
        ) {
            (Some(with_flags), _) if flags != 0 => with_flags(ctx, pos, flags),
            (_, Some(key_at)) => key_at(ctx, pos),
            _ => {}
        }
    }
}

fn pointers(args: &[RedisString]) -> Vec<*mut raw::RedisModuleString> {
    args.iter().map(|a| a.inner).collect()
}

/// The key positions of the command `args[0] args[1..]`, relative to `args`,
/// each with its key-spec flags (0 when the server cannot say); empty for an
/// unknown command or a wrong number of arguments.
pub fn command_keys(ctx: Ctx, args: &[RedisString]) -> Vec<(c_int, c_int)> {
    let Ok(argc) = c_int::try_from(args.len()) else {
        return Vec::new();
    };
    let mut argv = pointers(args);
    let mut count: c_int = 0;
    let mut flags: *mut c_int = std::ptr::null_mut();
    // SAFETY: argv holds `argc` live strings; Redis returns arrays of `count`
    // ints (positions, flags) allocated with its allocator, freed here with
    // RM_Free.
    unsafe {
        let positions = match (
            raw::RedisModule_GetCommandKeysWithFlags,
            raw::RedisModule_GetCommandKeys,
        ) {
            (Some(with_flags), _) => {
                with_flags(ctx, argv.as_mut_ptr(), argc, &mut count, &mut flags)
            }
            (None, Some(get_keys)) => get_keys(ctx, argv.as_mut_ptr(), argc, &mut count),
            (None, None) => return Vec::new(),
        };
        let n = usize::try_from(count).unwrap_or(0);
        let keys = if positions.is_null() {
            Vec::new()
        } else {
            (0..n)
                .map(|i| {
                    let flag = if flags.is_null() { 0 } else { *flags.add(i) };
                    (*positions.add(i), flag)
                })
                .collect()
        };
        if let Some(free) = raw::RedisModule_Free {
            if !positions.is_null() {
                free(positions.cast());
            }
            if !flags.is_null() {
                free(flags.cast());
            }
        }
        keys
    }
}

const SHORT_ARGV: usize = 16;

/// RM_Call refused before running anything, with no reply of its own.
#[derive(Debug)]
pub struct CallFailed(pub i32);

/// Runs `name args...` with RM_Call and `flags`, and replies with what it
/// answered (an error reply included, with the `E` flag); an error reply
/// that `rewrite` has a better text for is replied with that text.
pub fn call_passing_reply(
    ctx: Ctx,
    name: &CStr,
    args: &[RedisString],
    flags: &CStr,
    rewrite: impl Fn(&[u8]) -> Option<String>,
) -> Result<(), CallFailed> {
    // Up to SHORT_ARGV arguments are passed from the stack.
    let mut short = [std::ptr::null_mut(); SHORT_ARGV];
    let mut long;
    let argv: &mut [*mut raw::RedisModuleString] = match short.get_mut(..args.len()) {
        Some(argv) => {
            for (p, a) in argv.iter_mut().zip(args) {
                *p = a.inner;
            }
            argv
        }
        None => {
            long = pointers(args);
            &mut long
        }
    };
    // SAFETY: format "v<flags>" takes an argv pointer and its length, given
    // here; the reply is handed to the client and then freed once.
    unsafe {
        let (Some(call), Some(reply_with), Some(free)) = (
            raw::RedisModule_Call,
            raw::RedisModule_ReplyWithCallReply,
            raw::RedisModule_FreeCallReply,
        ) else {
            return Err(CallFailed(0));
        };
        let reply = call(
            ctx,
            name.as_ptr(),
            flags.as_ptr(),
            argv.as_mut_ptr(),
            argv.len(),
        );
        if reply.is_null() {
            return Err(CallFailed(
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            ));
        }
        let better = error_text(reply).and_then(&rewrite);
        match better {
            Some(text) => super::reply::reply_error(ctx, &text),
            None => {
                reply_with(ctx, reply);
            }
        }
        free(reply);
    }
    Ok(())
}

/// The text of an error reply, None for any other reply.
///
/// # Safety
/// `reply` is a live call reply; the text borrows from it.
unsafe fn error_text<'a>(reply: *mut raw::RedisModuleCallReply) -> Option<&'a [u8]> {
    let reply_type = raw::RedisModule_CallReplyType?(reply);
    if reply_type != raw::REDISMODULE_REPLY_ERROR as c_int {
        return None;
    }
    let mut len: usize = 0;
    let ptr = raw::RedisModule_CallReplyStringPtr?(reply, &mut len);
    (!ptr.is_null()).then(|| std::slice::from_raw_parts(ptr.cast::<u8>(), len))
}

/// Whether the client running `ctx` may run `CONFIG GET <name>` (its ACL
/// user allows CONFIG): how an operator's command is told from a user's on
/// Redis 7.0, where module commands belong to no ACL category.
pub fn caller_may_configure(ctx: Ctx, name: &CStr) -> bool {
    // SAFETY: format "Ecc" (errors as replies, as the caller's user, two C
    // strings) takes the two strings given; the reply is freed once.
    unsafe {
        let (Some(call), Some(free)) = (raw::RedisModule_Call, raw::RedisModule_FreeCallReply)
        else {
            return false;
        };
        let reply = call(
            ctx,
            c"CONFIG".as_ptr(),
            c"ECcc".as_ptr(),
            c"GET".as_ptr(),
            name.as_ptr(),
        );
        if reply.is_null() {
            return false;
        }
        let allowed = error_text(reply).is_none();
        free(reply);
        allowed
    }
}
