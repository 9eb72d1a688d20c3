//! The command filter's view of a command: its arguments and its client.

use super::base::FilterCtx;
use redis_module::{raw, RedisString};
use std::ffi::c_int;

/// How many arguments a filtered command has (its name included).
pub fn filter_arg_count(fctx: FilterCtx) -> c_int {
    // SAFETY: the live context of a command filter callback.
    unsafe { raw::RedisModule_CommandFilterArgsCount.map_or(0, |count| count(fctx)) }
}

/// The client that sent the filtered command; None where the server does
/// not say (Redis 7.0).
pub fn filter_client_id(fctx: FilterCtx) -> Option<u64> {
    // SAFETY: the live filter context.
    unsafe { raw::RedisModule_CommandFilterGetClientId.map(|get| get(fctx)) }
}

/// Argument `pos` of a filtered command as bytes (empty when there is none);
/// valid for the filter callback.
pub fn filter_arg<'a>(fctx: FilterCtx, pos: c_int) -> &'a [u8] {
    // SAFETY: the live filter context; the string it returns stays valid
    // until the callback returns.
    let s = unsafe {
        raw::RedisModule_CommandFilterArgGet.map_or(std::ptr::null_mut(), |get| get(fctx, pos))
    };
    if s.is_null() {
        &[]
    } else {
        RedisString::string_as_slice(s)
    }
}

/// Replaces argument `pos` of a filtered command with `value`.
pub fn filter_replace_arg(fctx: FilterCtx, pos: c_int, value: &[u8]) {
    // SAFETY: a new string (no context: not auto-freed) handed over to
    // Redis, which frees it with the command's arguments.
    unsafe {
        let Some(create) = raw::RedisModule_CreateString else {
            return;
        };
        let s = create(std::ptr::null_mut(), value.as_ptr().cast(), value.len());
        if let (false, Some(replace)) = (s.is_null(), raw::RedisModule_CommandFilterArgReplace) {
            replace(fctx, pos, s);
        }
    }
}
