//! A module name can be loaded once per server. Loading hblock again fails
//! inside the module API's own init, before any of this module's code runs in
//! the new copy, and Redis logs only "initialization failed". The copy that is
//! loaded sees the `MODULE LOAD` command go by and logs the reason first.

use crate::datatype::TYPE_NAME;
use crate::ffi;

/// Files larger than this are not read to see whether they are hblock.
const MAX_MODULE_FILE: u64 = 256 << 20;

/// The type name every hblock build carries.
const MARKER: &[u8] = TYPE_NAME.as_bytes();

pub fn on_command(fctx: ffi::FilterCtx, name: &[u8]) {
    if ffi::filter_arg_count(fctx) < 3
        || !name.eq_ignore_ascii_case(b"module")
        || !ffi::filter_arg(fctx, 1).eq_ignore_ascii_case(b"load")
    {
        return;
    }
    let path = ffi::filter_arg(fctx, 2);
    if is_hblock(path) {
        warn(&format!(
            "hblock is already loaded, so MODULE LOAD of {} fails: a module name \
             loads once per server, and hblock cannot be unloaded (it exports a \
             data type; MODULE UNLOAD refuses). To run another build, point the \
             loadmodule line at it and restart the server.",
            String::from_utf8_lossy(path).escape_debug()
        ));
    }
}

fn is_hblock(path: &[u8]) -> bool {
    let Ok(path) = std::str::from_utf8(path) else {
        return false;
    };
    let small = std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() <= MAX_MODULE_FILE);
    small && std::fs::read(path).is_ok_and(|bytes| bytes.windows(MARKER.len()).any(|w| w == MARKER))
}

fn warn(message: &str) {
    ffi::log_warning(ffi::detached_context(), message);
}
