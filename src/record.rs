//! The lock's Redis data type: RDB save/load, AOF rewrite, DEBUG DIGEST, COPY and
//! MEMORY USAGE. Also the one flat encoding of a record ([`Fields`]) shared by
//! RDB, AOF and HBLOCK.APPLY, validated in one place.

use crate::ffi;
use hblock_core::lease::Lease;
use hblock_core::record::{Fields, PHASE};
use redis_module::{native_types::RedisType, raw};
use std::ffi::{c_int, c_void};

/// Bump when the RDB layout changes, and keep loading the old layouts.
/// 1: the phase, the owner, then 7 unsigned numbers (9 RDB items);
/// 2: the compact record (`Fields::compact`) as one string;
/// 3: its varint numbers, then the owner, as two strings. Each is usually
///    20 bytes or less, which Redis writes as they are instead of trying LZF
///    on them (that attempt was ~7% of SAVE, and compressed records cost a
///    decompression at load).
const ENCODING_VERSION: c_int = 3;

/// The type name is stored in RDB files: never change it.
pub static LOCK_TYPE: RedisType = RedisType::new(
    "hblock-lk",
    ENCODING_VERSION,
    raw::RedisModuleTypeMethods {
        // 5: aux_save2 for 7.2+/Valkey (7.0 reads the fields it knows).
        version: raw::REDISMODULE_TYPE_METHOD_VERSION as u64,
        rdb_load: Some(rdb_load),
        rdb_save: Some(rdb_save),
        aof_rewrite: Some(aof_rewrite),
        mem_usage: Some(mem_usage),
        digest: Some(digest),
        free: Some(free),
        aux_load: Some(crate::tokens::aux_load),
        aux_save: Some(crate::tokens::aux_save),
        aux_save_triggers: raw::REDISMODULE_AUX_BEFORE_RDB as i32,
        free_effort: None,
        unlink: None,
        copy: Some(copy),
        defrag: None,
        mem_usage2: None,
        free_effort2: None,
        unlink2: Some(crate::blocking::on_unlink),
        copy2: None,
        aux_save2: Some(crate::tokens::aux_save2),
    },
);

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
    let record = Fields::of(lease).compact();
    let (numbers, owner) = record.parts();
    ffi::save_bytes(rdb, numbers);
    ffi::save_bytes(rdb, owner);
}

extern "C" fn rdb_load(rdb: *mut raw::RedisModuleIO, encver: c_int) -> *mut c_void {
    // The crate checks RedisModule_IsIOError after every load: a short read
    // ends here with nothing built.
    let load_v1 = || -> Option<Lease> {
        let mut numbers = [0i64; 8];
        numbers[PHASE] = ffi::load_unsigned(rdb)? as i64;
        let owner = ffi::load_bytes(rdb)?;
        for n in numbers.iter_mut().skip(1) {
            *n = ffi::load_unsigned(rdb)? as i64;
        }
        Fields {
            owner: owner.as_ref(),
            numbers,
        }
        .to_lease()
    };
    let load_v2 = || -> Option<Lease> {
        let record = ffi::load_bytes(rdb)?;
        Fields::from_compact(record.as_ref()).and_then(Fields::to_lease)
    };
    let load_v3 = || -> Option<Lease> {
        let numbers = ffi::load_bytes(rdb)?;
        let owner = ffi::load_bytes(rdb)?;
        let fields = Fields::from_parts(numbers.as_ref())?;
        if !fields.owner.is_empty() {
            return None;
        }
        Fields {
            owner: owner.as_ref(),
            ..fields
        }
        .to_lease()
    };
    let load = || match encver {
        1 => load_v1(),
        2 => load_v2(),
        3 => load_v3(),
        _ => None,
    };
    // A null pointer makes Redis report the RDB as corrupt.
    let at = ffi::loading_key(rdb);
    let admitted = load().and_then(|mut lease| {
        // A RESTORE payload may be refused, or load with its lease ended.
        crate::arrival::loaded(&mut lease, at.map(|(key, _)| key)).then_some(lease)
    });
    admitted.map_or(std::ptr::null_mut(), |mut lease| {
        crate::tokens::observe(&lease);
        if let Some((key, db)) = at {
            crate::blocking::watch_loaded(key, db, &mut lease);
        }
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
    let f = Fields::of(lease);
    ffi::emit_aof_apply(aof, key, f.owner, &f.numbers);
}

/// Bytes this record allocated: the record and, for a long owner, its buffer.
extern "C" fn mem_usage(value: *const c_void) -> usize {
    // SAFETY: Redis passes back the value it got from set_value.
    let Some(lease) = (unsafe { lease_ref(value) }) else {
        return 0;
    };
    let mut total = ffi::malloc_size(value, std::mem::size_of::<Lease>());
    if let Some(ptr) = lease.owner.heap_ptr() {
        total += ffi::malloc_size(ptr.cast(), lease.owner.as_bytes().len());
    }
    total
}

extern "C" fn digest(md: *mut raw::RedisModuleDigest, value: *mut c_void) {
    // SAFETY: Redis passes back the value it got from set_value.
    let Some(lease) = (unsafe { lease_ref(value) }) else {
        return;
    };
    let f = Fields::of(lease);
    ffi::digest_add(md, f.owner, &f.numbers);
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
            crate::arrival::copied(&mut copy);
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
    #[test]
    fn apply_docs_name_the_record_fields_in_order() {
        let names = crate::command_info::apply_arg_names();
        let mut want: Vec<&str> = hblock_core::record::NUMBERS.to_vec();
        want.insert(1, "owner");
        assert_eq!(names, want);
    }
}
