//! What is set up once at load: event subscriptions, module options, the
//! INFO callback, the command filter, command metadata.

use super::base::{Ctx, FilterCtx, KeyEventCallback, ServerEventCallback};
use redis_module::raw;
use std::ffi::{c_int, CStr};

/// Subscribes `callback` to the keyspace events of `classes` (OnLoad only).
pub fn subscribe_keyspace(ctx: Ctx, classes: c_int, callback: KeyEventCallback) -> bool {
    // SAFETY: the OnLoad context and an `extern "C"` callback of this module.
    unsafe {
        raw::RedisModule_SubscribeToKeyspaceEvents
            .is_some_and(|sub| sub(ctx, classes, Some(callback)) == raw::REDISMODULE_OK as c_int)
    }
}

/// Subscribes `callback` to server event `id` (OnLoad only).
pub fn subscribe_server_event(ctx: Ctx, id: u64, callback: ServerEventCallback) -> bool {
    let event = raw::RedisModuleEvent { id, dataver: 1 };
    // SAFETY: the OnLoad context and an `extern "C"` callback of this module.
    unsafe {
        raw::RedisModule_SubscribeToServerEvent
            .is_some_and(|sub| sub(ctx, event, Some(callback)) == raw::REDISMODULE_OK as c_int)
    }
}

/// Sets the module's options (REDISMODULE_OPTION[S]_* flags; OnLoad only).
pub fn set_module_options(ctx: Ctx, options: c_int) {
    // SAFETY: the OnLoad context; Redis only stores the flags.
    unsafe {
        if let Some(set) = raw::RedisModule_SetModuleOptions {
            set(ctx, options);
        }
    }
}

/// Starts this module's section of INFO (its name is the module's).
pub fn info_add_section(ctx: *mut raw::RedisModuleInfoCtx) {
    // SAFETY: the live context of an INFO callback; null means "the module's
    // own section".
    unsafe {
        if let Some(add) = raw::RedisModule_InfoAddSection {
            add(ctx, std::ptr::null_mut());
        }
    }
}

/// Adds `name:value` to the INFO section (Redis prefixes the module name).
pub fn info_add_u64(ctx: *mut raw::RedisModuleInfoCtx, name: &CStr, value: u64) {
    // SAFETY: the live context of an INFO callback; Redis copies the name.
    unsafe {
        if let Some(add) = raw::RedisModule_InfoAddFieldULongLong {
            add(ctx, name.as_ptr().cast_mut(), value);
        }
    }
}

/// Registers the module's INFO callback (OnLoad only).
pub fn register_info(ctx: Ctx, callback: extern "C" fn(*mut raw::RedisModuleInfoCtx, c_int)) {
    // SAFETY: the OnLoad context and an `extern "C"` callback of this module.
    unsafe {
        if let Some(register) = raw::RedisModule_RegisterInfoFunc {
            register(ctx, Some(callback));
        }
    }
}

/// Registers a command filter for every command but the module's own.
pub fn register_command_filter(ctx: Ctx, callback: extern "C" fn(FilterCtx)) -> bool {
    // SAFETY: the OnLoad context and an `extern "C"` callback of this module.
    unsafe {
        raw::RedisModule_RegisterCommandFilter.is_some_and(|register| {
            !register(
                ctx,
                Some(callback),
                raw::REDISMODULE_CMDFILTER_NOSELF as c_int,
            )
            .is_null()
        })
    }
}

/// Sets a registered command's metadata and, where the server has the API
/// (Redis 7.2+, Valkey), its ACL categories. False when Redis refused.
pub fn set_command_info(
    ctx: Ctx,
    name: &CStr,
    info: &raw::RedisModuleCommandInfo,
    acl_categories: &CStr,
) -> bool {
    // SAFETY: the OnLoad context and a command registered just before;
    // `info` and what it points to live for the call, and Redis copies them.
    unsafe {
        let (Some(get_command), Some(set_info)) =
            (raw::RedisModule_GetCommand, raw::RedisModule_SetCommandInfo)
        else {
            return false;
        };
        let command = get_command(ctx, name.as_ptr());
        if command.is_null() || set_info(command, info) != raw::REDISMODULE_OK as c_int {
            return false;
        }
        // Redis 7.0 has no API for ACL categories of module commands: there
        // they are granted by name (+hblock.acquire) or with +@all.
        match raw::RedisModule_SetCommandACLCategories {
            Some(set_categories) => {
                set_categories(command, acl_categories.as_ptr()) == raw::REDISMODULE_OK as c_int
            }
            None => true,
        }
    }
}
