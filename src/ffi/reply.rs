//! Replies built piece by piece (maps of bulk strings, errors with any
//! text), for the replies the crate's `RedisValue` cannot say.

use super::base::Ctx;
use redis_module::raw;
use std::ffi::{c_char, c_long, CString};

/// Replies with an error (any text: NUL bytes become spaces).
pub fn reply_error(ctx: Ctx, message: &str) {
    let message = CString::new(message.replace('\0', " ")).unwrap_or_default();
    // SAFETY: a NUL-terminated message on the live reply context.
    unsafe {
        if let Some(reply_error) = raw::RedisModule_ReplyWithError {
            reply_error(ctx, message.as_ptr());
        }
    }
}

/// Replies null (a missing key, a WAIT that ran out).
pub fn reply_null(ctx: Ctx) {
    raw::reply_with_null(ctx);
}

/// Replies `+OK`. (The crate's reply of a simple string copies it into a
/// new CString first.)
pub fn reply_ok(ctx: Ctx) {
    // SAFETY: a static NUL-terminated string on the live reply context.
    unsafe {
        if let Some(reply) = raw::RedisModule_ReplyWithSimpleString {
            reply(ctx, c"OK".as_ptr());
        }
    }
}

/// Replies an integer.
pub fn reply_integer(ctx: Ctx, value: i64) {
    raw::reply_with_long_long(ctx, value);
}

/// Replies a bulk string (any bytes).
pub fn reply_bulk(ctx: Ctx, bytes: &[u8]) {
    raw::reply_with_string_buffer(ctx, bytes.as_ptr().cast::<c_char>(), bytes.len());
}

/// Starts a map of `pairs` entries (RESP2: a flat array of twice as many);
/// each key and value follows as its own reply.
pub fn reply_map(ctx: Ctx, pairs: usize) {
    raw::reply_with_map(ctx, c_long::try_from(pairs).unwrap_or(c_long::MAX));
}

/// Starts an array of `len` elements; each follows as its own reply.
pub fn reply_array(ctx: Ctx, len: usize) {
    raw::reply_with_array(ctx, c_long::try_from(len).unwrap_or(c_long::MAX));
}
