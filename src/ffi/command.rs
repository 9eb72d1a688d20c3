//! The module's commands: registering one (RedisModule_CreateCommand) and
//! running its handler on the call's own arguments.
//!
//! The crate's `redis_module!` table gives each handler a
//! `Vec<RedisString>`: a heap vector and a RetainString/FreeString pair per
//! argument, ~700 instructions of a ~4,100-instruction BEAT. The arguments
//! live in the client's argv until the command returns, so here the
//! handler borrows them instead: views made on the stack, never retained,
//! never freed.

use super::base::Ctx;
use redis_module::{raw, Context, RedisResult, RedisString};
use std::ffi::{c_int, CStr};
use std::mem::MaybeUninit;

/// A command's entry point as Redis calls it.
pub type CommandCallback = extern "C" fn(Ctx, *mut *mut raw::RedisModuleString, c_int) -> c_int;

/// A command's handler: the call's context and arguments (the name first).
pub type Handler = fn(&Context, &[RedisString]) -> RedisResult;

/// Calls of up to this many arguments borrow them from a stack array (every
/// command but a FENCED wrapping a long command); longer ones get a vector.
const STACK_ARGS: usize = 16;

/// Registers `callback` as command `name` with its flags and key positions
/// (OnLoad only). False when Redis refuses it.
pub fn create_command(
    ctx: Ctx,
    name: &CStr,
    callback: CommandCallback,
    flags: &CStr,
    first_key: c_int,
) -> bool {
    // SAFETY: the OnLoad context, NUL-terminated name and flags (Redis copies
    // both), and an `extern "C"` callback of this module that lives as long
    // as the module.
    unsafe {
        raw::RedisModule_CreateCommand.is_some_and(|create| {
            create(
                ctx,
                name.as_ptr(),
                Some(callback),
                flags.as_ptr(),
                first_key,
                first_key,
                first_key,
            ) == raw::REDISMODULE_OK as c_int
        })
    }
}

/// Runs `handler` on the call's arguments and replies with what it returns,
/// as the crate's own dispatcher does (same `Context`, same reply).
#[inline]
pub fn run_command(
    ctx: Ctx,
    argv: *mut *mut raw::RedisModuleString,
    argc: c_int,
    handler: Handler,
) -> c_int {
    let context = Context::new(ctx);
    let argc = usize::try_from(argc).unwrap_or(0);
    let argv: &[*mut raw::RedisModuleString] = if argv.is_null() || argc == 0 {
        &[]
    } else {
        // SAFETY: Redis passes its argv array of `argc` live strings, which
        // stays in place until this command returns.
        unsafe { std::slice::from_raw_parts(argv, argc) }
    };
    let response = if argv.len() <= STACK_ARGS {
        let mut views = [const { MaybeUninit::<RedisString>::uninit() }; STACK_ARGS];
        for (view, &arg) in views.iter_mut().zip(argv) {
            // No RetainString: a view of the client's argument, for this call
            // only. MaybeUninit never drops it, so it is never freed either.
            view.write(RedisString::from_redis_module_string(ctx, arg));
        }
        // SAFETY: the first `argv.len()` (<= STACK_ARGS) views are written
        // just above, and MaybeUninit<T> has T's layout. The slice borrows
        // `views`, so no view outlives this call.
        let args =
            unsafe { std::slice::from_raw_parts(views.as_ptr().cast::<RedisString>(), argv.len()) };
        handler(&context, args)
    } else {
        let args: Vec<RedisString> = argv
            .iter()
            .map(|&arg| RedisString::new(std::ptr::NonNull::new(ctx), arg))
            .collect();
        handler(&context, &args)
    };
    context.reply(response) as c_int
}
