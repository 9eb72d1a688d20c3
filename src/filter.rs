//! The module's one command filter. Every command of every client passes
//! through it, so each check starts with its cheapest test.
//! - `handoff`: `CLIENT UNBLOCK` of a waiter granted a moment ago.
//! - `second_load`: `MODULE LOAD` of hblock while it is loaded: say why it fails.

use redis_module::raw;
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

pub use crate::ffi::{
    filter_arg as arg, filter_arg_count as arg_count, filter_replace_arg as replace_arg,
};
