//! The lock's Redis data type (`hblock-lk`) and every callback Redis calls
//! for it: RDB save/load (and the token floor's aux data, tokens.rs), AOF
//! rewrite, DEBUG DIGEST, COPY, MEMORY USAGE, free and unlink; and the two
//! walks over its values (SWAPDB, HBLOCK.FLOOR RESET). A record's fields and
//! their encodings are the core's (`hblock_core::record`).

use crate::{arrival, blocking, eviction, ffi, tokens};
use hblock_core::history;
use hblock_core::lease::Lease;
use hblock_core::queue::LockId;
use hblock_core::record::{self, Fields, PHASE};
use redis_module::{native_types::RedisType, raw};
use std::ffi::{c_int, c_void};

/// Bump when the RDB layout changes, and keep loading the old layouts.
/// 1: the phase, the owner, then 7 unsigned numbers (9 RDB items);
/// 2: the compact record (`Fields::compact`) as one string;
/// 3: its varint numbers, then the owner, as two strings. Each is usually
///    20 bytes or less, which Redis writes as they are instead of trying LZF
///    on them (that attempt was ~7% of SAVE, and compressed records cost a
///    decompression at load);
/// 4: as 3, the holder history (`hblock_core::history`) appended to the
///    numbers' string: nothing when a lock keeps none, so a file without
///    histories is byte for byte what encoding 3 wrote;
/// 5: the whole record as ONE string (`hblock_core::record::save_v5`):
///    numbers, owner, history and the holders of a lock with permits.
const ENCODING_VERSION: c_int = 5;

/// The type's name. It is stored in RDB files: never change it. Every
/// hblock build carries it (second_load.rs looks for it in a module file).
pub const TYPE_NAME: &str = "hblock-lk";

pub static LOCK_TYPE: RedisType = RedisType::new(
    TYPE_NAME,
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
        aux_load: Some(tokens::aux_load),
        aux_save: Some(tokens::aux_save),
        aux_save_triggers: raw::REDISMODULE_AUX_BEFORE_RDB as i32,
        free_effort: None,
        unlink: None,
        copy: Some(copy),
        defrag: None,
        mem_usage2: None,
        free_effort2: None,
        unlink2: Some(on_unlink),
        copy2: None,
        aux_save2: Some(tokens::aux_save2),
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
    // The buffer is taken out of its cell and put back: no borrow flag to
    // test per record (a nested call, which never happens, would just find
    // an empty buffer and allocate its own).
    let mut buffer = SAVE_BUFFER.take();
    buffer.clear();
    record::save_v5(lease, &mut buffer);
    ffi::save_bytes(rdb, &buffer);
    SAVE_BUFFER.set(buffer);
}

thread_local! {
    /// rdb_save's buffer, reused from record to record.
    static SAVE_BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
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
    // 3 and 4: the bytes after the numbers are the history (none in 3).
    let load_v3 = |with_history: bool| -> Option<Lease> {
        let numbers = ffi::load_bytes(rdb)?;
        let owner = ffi::load_bytes(rdb)?;
        let fields = Fields::from_parts(numbers.as_ref())?;
        let history = fields.owner;
        if !history.is_empty() && (!with_history || history::entries(history).is_none()) {
            return None;
        }
        let mut lease = Fields {
            owner: owner.as_ref(),
            ..fields
        }
        .to_lease()?;
        if !history.is_empty() && !history::fits(history, lease.token) {
            return None;
        }
        lease.owner.set_history(history.into());
        Some(lease)
    };
    let load = || match encver {
        1 => load_v1(),
        2 => load_v2(),
        3 => load_v3(false),
        4 => load_v3(true),
        5 => ffi::load_bytes(rdb).and_then(|bytes| record::load_v5(bytes.as_ref())),
        _ => None,
    };
    // A null pointer makes Redis report the RDB as corrupt.
    let at = ffi::loading_key(rdb);
    let admitted = load().and_then(|mut lease| {
        // A RESTORE payload may be refused, or load with its lease ended.
        arrival::loaded(&mut lease, at.map(|(key, _)| key)).then_some(lease)
    });
    admitted.map_or(std::ptr::null_mut(), |mut lease| {
        tokens::observe(&lease);
        if let Some((key, db)) = at {
            if arrival::loading_now() {
                blocking::stage_loaded_check(key, db, &mut lease);
            } else {
                blocking::schedule_loaded_check(key, db, &mut lease); // RESTORE
            }
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
    if lease.permits().is_some() {
        let mut record = Vec::new();
        record::compact_any(lease, &mut record);
        ffi::emit_aof_apply_record(aof, key, &record, lease.owner.history());
        return;
    }
    let f = Fields::of(lease);
    ffi::emit_aof_apply(aof, key, (f.owner, lease.owner.history()), &f.numbers);
}

/// Bytes this record allocated: the record, for a long owner its buffer,
/// and a holder history's allocations.
extern "C" fn mem_usage(value: *const c_void) -> usize {
    // SAFETY: Redis passes back the value it got from set_value.
    let Some(lease) = (unsafe { lease_ref(value) }) else {
        return 0;
    };
    let mut total = ffi::malloc_size(value, std::mem::size_of::<Lease>());
    if let Some(ptr) = lease.owner.heap_ptr() {
        total += ffi::malloc_size(ptr.cast(), lease.owner.as_bytes().len());
    }
    for (ptr, len) in lease.owner.history_allocations().into_iter().flatten() {
        total += ffi::malloc_size(ptr.cast(), len);
    }
    if let Some(permits) = lease.permits() {
        for (ptr, len) in permits.allocations() {
            total += ffi::malloc_size(ptr.cast(), len);
        }
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
    let history = lease.owner.history();
    if !history.is_empty() {
        ffi::digest_add(md, history, &[]);
    }
    if let Some(permits) = lease.permits() {
        let mut bytes = Vec::new();
        permits.encode(&mut bytes);
        ffi::digest_add(md, &bytes, &[]);
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
            arrival::copied(&mut copy);
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

/// The data type's unlink callback: a lock left the keyspace (DEL, UNLINK,
/// an overwrite by any command, expiry, eviction, the source of RENAME or
/// MOVE). Its waiters and watchers are looked at from the timer. This is
/// how overwrites are learnt: subscribing to the string, list, set, hash,
/// zset and stream key events cost every write of every other key a module
/// context (SET -P16 ran ~12% slower with hblock loaded).
unsafe extern "C" fn on_unlink(octx: *mut raw::RedisModuleKeyOptCtx, value: *const c_void) {
    // SAFETY: Redis passes the record that leaves its key, still alive.
    unsafe { arrival::unlinked(value) };
    let Some((key, db)) = ffi::key_of_opt_ctx(octx) else {
        return;
    };
    eviction::on_unlink(key, db);
    let ctx = ffi::detached_context();
    if !ctx.is_null() {
        blocking::note_key_for_timer(ctx, db, key, false);
    }
}

/// The registered lock type (None before init).
pub fn raw_type() -> Option<ffi::LockType> {
    let ty = *LOCK_TYPE.raw_type.try_borrow().ok()?;
    (!ty.is_null()).then_some(ty)
}

/// SWAPDB: every name of both databases now shows the other's record; their
/// held leases (`held`: the locks of both with a lease check, where they
/// are now) end (arrival.rs). Runs on master and replica alike (each
/// executes SWAPDB), from the event, before any other command; it costs the
/// held leases of the two databases, not their keys.
pub fn swapped(ctx: ffi::Ctx, held: &[LockId]) {
    let Some(ty) = raw_type() else {
        return;
    };
    for lock in held {
        ffi::with_value_at(ctx, lock.db, &lock.key, ty, &mut |value| {
            // SAFETY: a value of LOCK_TYPE, alive while its key is open.
            unsafe { arrival::unlinked(value) };
        });
    }
}

/// The highest token of any record in any database (HBLOCK.FLOOR RESET).
pub fn highest_token(ctx: ffi::Ctx) -> u64 {
    let Some(ty) = raw_type() else {
        return 0;
    };
    let mut highest = 0u64;
    let mut db = 0;
    while ffi::for_each_value(ctx, db, ty, &mut |value| {
        // SAFETY: a value of LOCK_TYPE, owned by Redis for the scan.
        if let Some(lease) = unsafe { value.cast::<Lease>().as_ref() } {
            highest = highest.max(lease.token);
        }
    }) {
        db += 1;
    }
    highest
}
