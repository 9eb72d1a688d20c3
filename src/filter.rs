//! The module's one command filter. Every command of every client passes
//! through it, so each check starts with its cheapest test.
//! - `handoff`: `CLIENT UNBLOCK` of a waiter granted a moment ago.
//! - `second_load`: `MODULE LOAD` of hblock while it is loaded: say why it fails.

use redis_module::{raw, RedisString};
use std::ffi::c_int;

/// Registers the filter. Called once from init.
pub fn register(ctx: *mut raw::RedisModuleCtx) -> bool {
    // SAFETY: registration during OnLoad with our own callback.
    unsafe {
        let Some(register) = raw::RedisModule_RegisterCommandFilter else {
            return false;
        };
        !register(
            ctx,
            Some(on_command),
            raw::REDISMODULE_CMDFILTER_NOSELF as c_int,
        )
        .is_null()
    }
}

extern "C" fn on_command(fctx: *mut raw::RedisModuleCommandFilterCtx) {
    crate::handoff::on_command(fctx);
    crate::second_load::on_command(fctx);
}

/// How many arguments the filtered command has (its name included).
pub fn arg_count(fctx: *mut raw::RedisModuleCommandFilterCtx) -> c_int {
    // SAFETY: a plain API call on the live filter context.
    unsafe { raw::RedisModule_CommandFilterArgsCount.map_or(0, |count| count(fctx)) }
}

/// Argument `pos` as bytes (empty when there is none). Valid for the call.
pub fn arg<'a>(fctx: *mut raw::RedisModuleCommandFilterCtx, pos: c_int) -> &'a [u8] {
    // SAFETY: the filter context is live for the callback and the string it
    // returns stays valid until the callback returns.
    let s = unsafe {
        raw::RedisModule_CommandFilterArgGet.map_or(std::ptr::null_mut(), |get| get(fctx, pos))
    };
    if s.is_null() {
        &[]
    } else {
        RedisString::string_as_slice(s)
    }
}

/// Replaces argument `pos` with `value`.
pub fn replace_arg(fctx: *mut raw::RedisModuleCommandFilterCtx, pos: c_int, value: &[u8]) {
    // SAFETY: a new string (no context: not auto-freed) handed over to Redis,
    // which frees it with the command's arguments.
    unsafe {
        let (Some(create), Some(replace)) = (
            raw::RedisModule_CreateString,
            raw::RedisModule_CommandFilterArgReplace,
        ) else {
            return;
        };
        let s = create(std::ptr::null_mut(), value.as_ptr().cast(), value.len());
        if !s.is_null() {
            replace(fctx, pos, s);
        }
    }
}
