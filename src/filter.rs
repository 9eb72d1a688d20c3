//! The module's one command filter. Every command of every client passes
//! through it, so each check starts with its cheapest test.
//! - `handoff`: `CLIENT UNBLOCK` of a waiter granted (or a watcher woken) a moment ago.
//! - `binding`: who runs the next script or transaction (BIND in scripts).
//! - `second_load`: `MODULE LOAD` of hblock while it is loaded: say why it fails.
//! - `propagation`: SYNC/PSYNC, a replica (or a stream reader) arriving.
//! - `eviction`: forgets the lock the command before unlinked.
//! - `arrival`: whether this command is RESTORE-ASKING (a cluster migration).
//! - `tokens`: a command ran, so a master link that went down before it did
//!   not go down with a promotion (planned promotions, tokens.rs).

use redis_module::raw;

/// Registers the filter. Called once from init.
pub fn register(ctx: *mut raw::RedisModuleCtx) -> bool {
    crate::ffi::register_command_filter(ctx, on_command)
}

extern "C" fn on_command(fctx: *mut raw::RedisModuleCommandFilterCtx) {
    crate::eviction::on_command();
    // The name is fetched once, and only the check its first letter can
    // concern runs (a SET pays one argument fetch and one compare).
    let name = arg(fctx, 0);
    crate::arrival::on_command(name);
    crate::tokens::something_ran();
    match name.first().map(u8::to_ascii_lowercase) {
        Some(b'c') => {
            crate::handoff::on_command(fctx, name);
            crate::tokens::on_command(fctx, name);
        }
        Some(b'e' | b'f') => crate::binding::on_command(fctx, name),
        Some(b'm') => crate::second_load::on_command(fctx, name),
        Some(b'p' | b's') => {
            crate::propagation::on_command(name);
            crate::tokens::on_command(fctx, name);
        }
        _ => {}
    }
}

pub use crate::ffi::{
    filter_arg as arg, filter_arg_count as arg_count, filter_replace_arg as replace_arg,
};
