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

use crate::{arrival, binding, eviction, ffi, handoff, propagation, second_load, tokens};

/// Registers the filter. Called once from init.
pub fn register(ctx: ffi::Ctx) -> bool {
    ffi::register_command_filter(ctx, on_command)
}

extern "C" fn on_command(fctx: ffi::FilterCtx) {
    eviction::on_command();
    // The name is fetched once, and only the check its first letter can
    // concern runs (a SET pays one argument fetch and one compare).
    let name = ffi::filter_arg(fctx, 0);
    arrival::on_command(name);
    tokens::something_ran();
    match name.first().map(u8::to_ascii_lowercase) {
        Some(b'c') => {
            handoff::on_command(fctx, name);
            tokens::on_command(fctx, name);
        }
        Some(b'e' | b'f') => binding::on_command(fctx, name),
        Some(b'm') => second_load::on_command(fctx, name),
        Some(b'p' | b's') => {
            propagation::on_command(name);
            tokens::on_command(fctx, name);
        }
        _ => {}
    }
}
