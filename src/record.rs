//! The lock's Redis data type: RDB save/load, AOF rewrite, DEBUG DIGEST, COPY and
//! MEMORY USAGE. Also the one flat encoding of a record ([`Fields`]) shared by
//! RDB, AOF and HBLOCK.APPLY, validated in one place.

use crate::args::parse_i64;
use crate::lease::{Lease, Phase, COUNTER_MAX, NO_CHECK};
use crate::owner::{Owner, MAX_OWNER_LEN};
use hblock_core::limits::{INTERVAL_MAX, INTERVAL_MIN, MISSES_MAX, MISSES_MIN};
use redis_module::{native_types::RedisType, raw};
use std::ffi::{c_int, c_void};

/// Calls a varargs Redis API (RM_Replicate, RM_EmitAOF) as `function(target,
/// "HBLOCK.APPLY", format, key, <fields>)`: the one place where the format
/// string and its arguments meet. Format: s = the key, l = long long, b =
/// buffer and length: the key, the phase, the owner, then the 7 numbers of
/// [`Fields`] in order. A mismatch makes Redis read garbage (an AOF test
/// replays it). Use inside `unsafe`: every argument lives for the call.
macro_rules! call_with_apply_args {
    ($function:expr, $target:expr, $key:expr, $fields:expr) => {{
        let f: &$crate::record::Fields = &$fields;
        $function(
            $target,
            c"HBLOCK.APPLY".as_ptr(),
            c"slblllllll".as_ptr(),
            $key,
            f.phase as i64,
            f.owner.as_ptr().cast::<std::ffi::c_char>(),
            f.owner.len(),
            f.token as i64,
            f.interval_ms as i64,
            f.misses as i64,
            f.beats as i64,
            f.granted_ms,
            f.last_beat_ms,
            f.takeovers as i64,
        )
    }};
}
pub(crate) use call_with_apply_args;

/// Bump when the RDB layout changes, and keep loading the old layouts.
const ENCODING_VERSION: c_int = 1;

/// The type name is stored in RDB files: never change it.
pub static LOCK_TYPE: RedisType = RedisType::new(
    "hblock-lk",
    ENCODING_VERSION,
    raw::RedisModuleTypeMethods {
        version: 4, // the 7.0 layout; aux_save2 (7.2) is not used
        rdb_load: Some(rdb_load),
        rdb_save: Some(rdb_save),
        aof_rewrite: Some(aof_rewrite),
        mem_usage: Some(mem_usage),
        digest: Some(digest),
        free: Some(free),
        aux_load: None,
        aux_save: None,
        aux_save_triggers: 0,
        free_effort: None,
        unlink: Some(crate::eviction::on_unlink),
        copy: Some(copy),
        defrag: None,
        mem_usage2: None,
        free_effort2: None,
        unlink2: None,
        copy2: None,
        aux_save2: None,
    },
);

/// A record as a flat list of numbers and the owner: the argument order of
/// HBLOCK.APPLY and of the RDB layout.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Fields<'a> {
    pub phase: u64,
    pub owner: &'a [u8],
    pub token: u64,
    pub interval_ms: u64,
    pub misses: u64,
    pub beats: u64,
    pub granted_ms: i64,
    pub last_beat_ms: i64,
    pub takeovers: u64,
}

impl<'a> Fields<'a> {
    pub fn of(lease: &'a Lease) -> Fields<'a> {
        Fields {
            phase: lease.phase as u64,
            owner: lease.owner.as_bytes(),
            token: lease.token,
            interval_ms: u64::from(lease.interval_ms),
            misses: u64::from(lease.misses),
            beats: lease.beats,
            granted_ms: lease.granted_ms,
            last_beat_ms: lease.last_beat_ms,
            takeovers: lease.takeovers,
        }
    }

    /// The record, if these fields describe one the commands could have made.
    pub fn to_lease(self) -> Option<Lease> {
        let phase = Phase::from_code(self.phase)?;
        let owner_ok = match phase {
            Phase::Free => self.owner.is_empty(),
            Phase::Held | Phase::Expired => {
                !self.owner.is_empty() && self.owner.len() <= MAX_OWNER_LEN && self.token >= 1
            }
        };
        let in_range = (INTERVAL_MIN as u64..=INTERVAL_MAX as u64).contains(&self.interval_ms)
            && (MISSES_MIN as u64..=MISSES_MAX as u64).contains(&self.misses)
            && self.token <= COUNTER_MAX
            && self.beats <= COUNTER_MAX
            && self.takeovers <= COUNTER_MAX;
        if !owner_ok || !in_range {
            return None;
        }
        Some(Lease {
            token: self.token,
            granted_ms: self.granted_ms,
            last_beat_ms: self.last_beat_ms,
            beats: self.beats,
            takeovers: self.takeovers,
            interval_ms: self.interval_ms as u32,
            misses: self.misses as u16,
            phase,
            owner: Owner::new(self.owner),
            check_at: NO_CHECK,
        })
    }

    /// The arguments after the key, as HBLOCK.APPLY takes them (what the
    /// replication and AOF format strings produce; used to test `from_args`).
    #[cfg(test)]
    pub fn to_args(self) -> Vec<Vec<u8>> {
        let mut args = vec![self.phase.to_string().into_bytes(), self.owner.to_vec()];
        for n in [self.token, self.interval_ms, self.misses, self.beats] {
            args.push(n.to_string().into_bytes());
        }
        for n in [self.granted_ms, self.last_beat_ms] {
            args.push(n.to_string().into_bytes());
        }
        args.push(self.takeovers.to_string().into_bytes());
        args
    }

    /// Parses HBLOCK.APPLY's arguments after the key (9 of them).
    pub fn from_args(args: &[&'a [u8]]) -> Option<Fields<'a>> {
        let &[phase, owner, token, interval, misses, beats, granted, last_beat, takeovers] = args
        else {
            return None;
        };
        let unsigned = |b: &[u8]| parse_i64(b).filter(|v| *v >= 0).map(|v| v as u64);
        Some(Fields {
            phase: unsigned(phase)?,
            owner,
            token: unsigned(token)?,
            interval_ms: unsigned(interval)?,
            misses: unsigned(misses)?,
            beats: unsigned(beats)?,
            granted_ms: parse_i64(granted)?,
            last_beat_ms: parse_i64(last_beat)?,
            takeovers: unsigned(takeovers)?,
        })
    }
}

/// The record behind a type callback's value pointer.
///
/// # Safety
/// `value` must be a pointer this module stored with `set_value::<Lease>`.
unsafe fn lease_ref<'a>(value: *const c_void) -> Option<&'a Lease> {
    value.cast::<Lease>().as_ref()
}

extern "C" fn rdb_save(rdb: *mut raw::RedisModuleIO, value: *mut c_void) {
    // SAFETY: Redis passes back the value it got from set_value.
    let Some(lease) = (unsafe { lease_ref(value) }) else {
        return;
    };
    let f = Fields::of(lease);
    raw::save_unsigned(rdb, f.phase);
    raw::save_slice(rdb, f.owner);
    for n in [f.token, f.interval_ms, f.misses, f.beats] {
        raw::save_unsigned(rdb, n);
    }
    raw::save_signed(rdb, f.granted_ms);
    raw::save_signed(rdb, f.last_beat_ms);
    raw::save_unsigned(rdb, f.takeovers);
}

extern "C" fn rdb_load(rdb: *mut raw::RedisModuleIO, encver: c_int) -> *mut c_void {
    if encver != ENCODING_VERSION {
        return std::ptr::null_mut();
    }
    let load = || -> Option<Lease> {
        let phase = raw::load_unsigned(rdb).ok()?;
        let owner = raw::load_string_buffer(rdb).ok()?;
        let mut numbers = [0u64; 4];
        for n in &mut numbers {
            *n = raw::load_unsigned(rdb).ok()?;
        }
        let [token, interval_ms, misses, beats] = numbers;
        let granted_ms = raw::load_signed(rdb).ok()?;
        let last_beat_ms = raw::load_signed(rdb).ok()?;
        let takeovers = raw::load_unsigned(rdb).ok()?;
        Fields {
            phase,
            owner: owner.as_ref(),
            token,
            interval_ms,
            misses,
            beats,
            granted_ms,
            last_beat_ms,
            takeovers,
        }
        .to_lease()
    };
    // A null pointer makes Redis report the RDB as corrupt.
    load().map_or(std::ptr::null_mut(), |mut lease| {
        crate::blocking::watch_loaded(rdb, &mut lease);
        Box::into_raw(Box::new(lease)).cast()
    })
}

extern "C" fn aof_rewrite(
    aof: *mut raw::RedisModuleIO,
    key: *mut raw::RedisModuleString,
    value: *mut c_void,
) {
    // SAFETY: Redis passes back the value it got from set_value.
    let Some(lease) = (unsafe { lease_ref(value) }) else {
        return;
    };
    let Some(emit) = (unsafe { raw::RedisModule_EmitAOF }) else {
        return;
    };
    // SAFETY: the macro passes one argument per format letter.
    unsafe {
        call_with_apply_args!(emit, aof, key, Fields::of(lease));
    }
}

/// Bytes this record allocated: the record and, for a long owner, its buffer.
extern "C" fn mem_usage(value: *const c_void) -> usize {
    // SAFETY: Redis passes back the value it got from set_value.
    let Some(lease) = (unsafe { lease_ref(value) }) else {
        return 0;
    };
    let size_of = |ptr: *const c_void, fallback: usize| match unsafe { raw::RedisModule_MallocSize }
    {
        // SAFETY: both pointers were allocated through the Redis allocator.
        Some(malloc_size) => unsafe { malloc_size(ptr.cast_mut()) },
        None => fallback,
    };
    let mut total = size_of(value, std::mem::size_of::<Lease>());
    if let Some(ptr) = lease.owner.heap_ptr() {
        total += size_of(ptr.cast(), lease.owner.as_bytes().len());
    }
    total
}

extern "C" fn digest(md: *mut raw::RedisModuleDigest, value: *mut c_void) {
    // SAFETY: Redis passes back the value it got from set_value.
    let Some(lease) = (unsafe { lease_ref(value) }) else {
        return;
    };
    let f = Fields::of(lease);
    // SAFETY: `md` is the digest context Redis gave us; the buffer outlives the call.
    unsafe {
        let (Some(add_buffer), Some(add_long), Some(end)) = (
            raw::RedisModule_DigestAddStringBuffer,
            raw::RedisModule_DigestAddLongLong,
            raw::RedisModule_DigestEndSequence,
        ) else {
            return;
        };
        add_buffer(md, f.owner.as_ptr().cast_mut().cast(), f.owner.len());
        for n in [
            f.phase,
            f.token,
            f.interval_ms,
            f.misses,
            f.beats,
            f.takeovers,
        ] {
            add_long(md, n as i64);
        }
        add_long(md, f.granted_ms);
        add_long(md, f.last_beat_ms);
        end(md);
    }
}

extern "C" fn copy(
    _from: *mut raw::RedisModuleString,
    _to: *mut raw::RedisModuleString,
    value: *const c_void,
) -> *mut c_void {
    // SAFETY: Redis passes back the value it got from set_value.
    match unsafe { lease_ref(value) } {
        Some(lease) => {
            let mut copy = lease.clone();
            // The copy's own deadline is watched from the copy_to event.
            copy.set_scheduled_check(None);
            Box::into_raw(Box::new(copy)).cast()
        }
        None => std::ptr::null_mut(),
    }
}

extern "C" fn free(value: *mut c_void) {
    if !value.is_null() {
        // SAFETY: the value was made by Box::new(Lease) (set_value, rdb_load, copy).
        drop(unsafe { Box::from_raw(value.cast::<Lease>()) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::Terms;

    fn sample() -> Lease {
        let mut lease = Lease::first(
            b"own\0er",
            Terms {
                interval_ms: 250,
                misses: 4,
            },
            1_700_000_000_000,
        );
        lease.beats = 7;
        lease.takeovers = 2;
        lease
    }

    #[test]
    fn args_round_trip() {
        let lease = sample();
        let args = Fields::of(&lease).to_args();
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let back = Fields::from_args(&refs).and_then(Fields::to_lease);
        assert_eq!(back, Some(lease));
    }

    #[test]
    fn impossible_records_are_refused() {
        let lease = sample();
        let good = Fields::of(&lease);
        let long_owner = [b'x'; MAX_OWNER_LEN + 1];
        let bad = [
            Fields { phase: 3, ..good },
            Fields { owner: b"", ..good },
            Fields {
                owner: &long_owner,
                ..good
            },
            Fields { phase: 0, ..good }, // free but with an owner
            Fields {
                interval_ms: 0,
                ..good
            },
            Fields {
                misses: 10_001,
                ..good
            },
            Fields { token: 0, ..good },
            Fields {
                token: COUNTER_MAX + 1,
                ..good
            },
        ];
        for fields in bad {
            assert_eq!(fields.to_lease(), None, "{fields:?}");
        }
        assert!(Fields::from_args(&[b"1"]).is_none());
    }
}
