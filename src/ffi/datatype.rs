//! The data type's I/O: RDB streams, the AOF rewrite, DEBUG DIGEST and
//! MEMORY USAGE.

use redis_module::{raw, RedisBuffer, RedisString};
use std::ffi::{c_char, c_void};

/// The allocation size of `ptr` (allocated by Redis's allocator), or
/// `fallback` without the API.
pub fn malloc_size(ptr: *const c_void, fallback: usize) -> usize {
    // SAFETY: the caller passes a pointer the Redis allocator returned.
    unsafe { raw::RedisModule_MallocSize.map_or(fallback, |size| size(ptr.cast_mut())) }
}

/// Adds one element of a DEBUG DIGEST sequence: a buffer, then numbers.
pub fn digest_add(md: *mut raw::RedisModuleDigest, owner: &[u8], numbers: &[i64]) {
    // SAFETY: `md` is the digest context of the running digest callback;
    // the buffer outlives the call (Redis hashes it at once).
    unsafe {
        let (Some(add_buffer), Some(add_long), Some(end)) = (
            raw::RedisModule_DigestAddStringBuffer,
            raw::RedisModule_DigestAddLongLong,
            raw::RedisModule_DigestEndSequence,
        ) else {
            return;
        };
        add_buffer(md, owner.as_ptr().cast_mut().cast(), owner.len());
        for n in numbers {
            add_long(md, *n);
        }
        end(md);
    }
}

/// The key name and database of the value an rdb_load is loading (None
/// when Redis does not say, as for some RESTOREs).
pub fn loading_key<'a>(io: *mut raw::RedisModuleIO) -> Option<(&'a [u8], i32)> {
    // SAFETY: `io` is the IO context of the running rdb_load; the name lives
    // as long as that load.
    unsafe {
        let name = raw::RedisModule_GetKeyNameFromIO.map_or(std::ptr::null(), |get| get(io));
        let db = raw::RedisModule_GetDbIdFromIO.map_or(0, |get| get(io));
        (!name.is_null()).then(|| (RedisString::string_as_slice(name), db))
    }
}

/// Writes one string (any bytes) to an RDB stream (rdb_save).
pub fn save_bytes(rdb: *mut raw::RedisModuleIO, bytes: &[u8]) {
    raw::save_slice(rdb, bytes);
}

/// Reads one string from an RDB stream (rdb_load); None on a short read.
pub fn load_bytes(rdb: *mut raw::RedisModuleIO) -> Option<RedisBuffer> {
    raw::load_string_buffer(rdb).ok()
}

/// Reads one unsigned number from an RDB stream (rdb_load, encoding 1).
pub fn load_unsigned(rdb: *mut raw::RedisModuleIO) -> Option<u64> {
    raw::load_unsigned(rdb).ok()
}

/// Emits `HBLOCK.APPLY key <record> [history]` into an AOF rewrite: the
/// compact record of a lock with permits, the history when there is one.
pub fn emit_aof_apply_record(
    aof: *mut raw::RedisModuleIO,
    key: *mut raw::RedisModuleString,
    record: &[u8],
    history: &[u8],
) {
    // SAFETY: s = the key, b = a buffer and its length; alive for the call.
    unsafe {
        let Some(emit) = raw::RedisModule_EmitAOF else {
            return;
        };
        if history.is_empty() {
            emit(
                aof,
                c"HBLOCK.APPLY".as_ptr(),
                c"sb".as_ptr(),
                key,
                record.as_ptr().cast::<c_char>(),
                record.len(),
            );
        } else {
            emit(
                aof,
                c"HBLOCK.APPLY".as_ptr(),
                c"sbb".as_ptr(),
                key,
                record.as_ptr().cast::<c_char>(),
                record.len(),
                history.as_ptr().cast::<c_char>(),
                history.len(),
            );
        }
    }
}

/// Emits `HBLOCK.APPLY key phase owner token interval misses beats granted
/// last-beat takeovers [history]` into an AOF rewrite: `numbers` in the
/// record's order (`hblock_core::record::NUMBERS`), the owner after the
/// first, the holder history last when there is one.
pub fn emit_aof_apply(
    aof: *mut raw::RedisModuleIO,
    key: *mut raw::RedisModuleString,
    (owner, history): (&[u8], &[u8]),
    numbers: &[i64; 8],
) {
    let [phase, token, interval, misses, beats, granted, last_beat, takeovers] = *numbers;
    // SAFETY: the format takes s = the key, l = a long long, b = a buffer and
    // its length: one argument per letter, each alive for the call.
    unsafe {
        let Some(emit) = raw::RedisModule_EmitAOF else {
            return;
        };
        if history.is_empty() {
            emit(
                aof,
                c"HBLOCK.APPLY".as_ptr(),
                c"slblllllll".as_ptr(),
                key,
                phase,
                owner.as_ptr().cast::<c_char>(),
                owner.len(),
                token,
                interval,
                misses,
                beats,
                granted,
                last_beat,
                takeovers,
            );
        } else {
            emit(
                aof,
                c"HBLOCK.APPLY".as_ptr(),
                c"slblllllllb".as_ptr(),
                key,
                phase,
                owner.as_ptr().cast::<c_char>(),
                owner.len(),
                token,
                interval,
                misses,
                beats,
                granted,
                last_beat,
                takeovers,
                history.as_ptr().cast::<c_char>(),
                history.len(),
            );
        }
    }
}
