//! The token floor's own persistence: one unsigned number in the RDB's
//! module aux data, and `HBLOCK.FLOOR n` in the replication stream and AOF.

use super::base::Ctx;
use redis_module::raw;
use std::ffi::c_longlong;

/// Writes one u64 to an RDB stream (aux_save).
pub fn save_u64(io: *mut raw::RedisModuleIO, value: u64) {
    // SAFETY: `io` is the stream Redis passed to the aux_save callback.
    unsafe {
        if let Some(save) = raw::RedisModule_SaveUnsigned {
            save(io, value);
        }
    }
}

/// Reads one u64 from an RDB stream (aux_load); None on an I/O error.
pub fn load_u64(io: *mut raw::RedisModuleIO) -> Option<u64> {
    // SAFETY: `io` is the stream Redis passed to the aux_load callback.
    unsafe {
        let value = raw::RedisModule_LoadUnsigned?(io);
        let failed = raw::RedisModule_IsIOError.is_some_and(|is_error| is_error(io) != 0);
        (!failed).then_some(value)
    }
}

/// Propagates `HBLOCK.FLOOR floor` to replicas and the AOF.
pub fn replicate_floor(ctx: Ctx, floor: u64) {
    let floor = c_longlong::try_from(floor).unwrap_or(c_longlong::MAX);
    // SAFETY: the format "l" takes exactly one long long, given here.
    unsafe {
        if let Some(replicate) = raw::RedisModule_Replicate {
            replicate(ctx, c"HBLOCK.FLOOR".as_ptr(), c"l".as_ptr(), floor);
        }
    }
}
