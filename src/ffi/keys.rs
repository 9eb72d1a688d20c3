//! Keys: signalling a change, the key of a data type callback, opening a
//! value of the module's type by name, walking a database, and propagating
//! the module's own commands.

use super::base::{select_db, selected_db, Ctx};
use redis_module::{raw, RedisString};
use std::ffi::{c_char, c_int, c_void};

/// Invalidates WATCH and client-side caches of `key`.
pub fn signal_modified(ctx: Ctx, key: *mut raw::RedisModuleString) {
    // SAFETY: a live context and a key name valid for the call.
    unsafe {
        if let Some(signal) = raw::RedisModule_SignalModifiedKey {
            signal(ctx, key);
        }
    }
}

/// The key name and db of a data type callback's key context.
pub fn key_of_opt_ctx(octx: *mut raw::RedisModuleKeyOptCtx) -> Option<(&'static [u8], i32)> {
    if octx.is_null() {
        return None;
    }
    // SAFETY: the live key context of a data type callback; the name is
    // read during the callback only (the 'static is the caller's promise).
    unsafe {
        let name = raw::RedisModule_GetKeyNameFromOptCtx?(octx);
        let db = raw::RedisModule_GetDbIdFromOptCtx?(octx);
        (!name.is_null()).then(|| (RedisString::string_as_slice(name.cast_mut()), db))
    }
}

/// Propagates `HBLOCK.APPLY key <record> [<history>]` (the compact record,
/// and the holder history when it changed) to replicas and the AOF, after
/// the command running now.
pub fn replicate_apply(
    ctx: Ctx,
    key: *mut raw::RedisModuleString,
    record: &[u8],
    history: Option<&[u8]>,
) {
    // SAFETY: s = the key, b = buffer and length; all live for the call.
    unsafe {
        let Some(replicate) = raw::RedisModule_Replicate else {
            return;
        };
        match history {
            None => replicate(
                ctx,
                c"HBLOCK.APPLY".as_ptr(),
                c"sb".as_ptr(),
                key,
                record.as_ptr().cast::<c_char>(),
                record.len(),
            ),
            Some(history) => replicate(
                ctx,
                c"HBLOCK.APPLY".as_ptr(),
                c"sbb".as_ptr(),
                key,
                record.as_ptr().cast::<c_char>(),
                record.len(),
                history.as_ptr().cast::<c_char>(),
                history.len(),
            ),
        };
    }
}

/// Propagates `HBLOCK.FLOOR ENDS key` to replicas and the AOF.
pub fn replicate_floor_ends(ctx: Ctx, key: *mut raw::RedisModuleString) {
    // SAFETY: c = a C string, s = the key; both live for the call.
    unsafe {
        if let Some(replicate) = raw::RedisModule_Replicate {
            replicate(
                ctx,
                c"HBLOCK.FLOOR".as_ptr(),
                c"cs".as_ptr(),
                c"ENDS".as_ptr(),
                key,
            );
        }
    }
}

/// Calls `f` with the value of type `ty` at `key` of database `db` (not for
/// a missing key or another type), through `ctx`, whose selected db is
/// restored afterwards. `f` may change what the value holds, never the
/// keyspace. The key's LRU/LFU is not touched.
pub fn with_value_at(
    ctx: Ctx,
    db: i32,
    key: &[u8],
    ty: *mut raw::RedisModuleType,
    f: &mut dyn FnMut(*mut c_void),
) {
    let before = selected_db(ctx);
    if !select_db(ctx, db) {
        return;
    }
    // SAFETY: `ctx` is live for this callback; the name string and the key
    // handle are created and freed here; the value is used while it is open.
    unsafe {
        if let (
            Some(create),
            Some(free),
            Some(open),
            Some(close),
            Some(get_type),
            Some(get_value),
        ) = (
            raw::RedisModule_CreateString,
            raw::RedisModule_FreeString,
            raw::RedisModule_OpenKey,
            raw::RedisModule_CloseKey,
            raw::RedisModule_ModuleTypeGetType,
            raw::RedisModule_ModuleTypeGetValue,
        ) {
            let name = create(ctx, key.as_ptr().cast::<c_char>(), key.len());
            if !name.is_null() {
                let mode = (raw::REDISMODULE_READ | raw::REDISMODULE_OPEN_KEY_NOTOUCH) as c_int;
                let handle = open(ctx, name, mode).cast::<raw::RedisModuleKey>();
                if !handle.is_null() {
                    if get_type(handle) == ty {
                        let value = get_value(handle);
                        if !value.is_null() {
                            f(value);
                        }
                    }
                    close(handle);
                }
                free(ctx, name);
            }
        }
    }
    select_db(ctx, before);
}

/// Whether database `db` exists (`ctx`'s selected db is left as it was).
pub fn db_exists(ctx: Ctx, db: i32) -> bool {
    let before = selected_db(ctx);
    let exists = select_db(ctx, db);
    select_db(ctx, before);
    exists
}

/// How many keys database `db` holds (None when it does not exist); `ctx`'s
/// selected db is left as it was.
pub fn db_size(ctx: Ctx, db: i32) -> Option<u64> {
    let before = selected_db(ctx);
    if !select_db(ctx, db) {
        return None;
    }
    // SAFETY: `ctx` is the live context of the current callback.
    let size = unsafe { raw::RedisModule_DbSize.map(|size| size(ctx)) };
    select_db(ctx, before);
    size
}

/// Calls `f` with the value of every key of module type `ty` in database
/// `db`, through `ctx` (whose selected db is restored afterwards). The
/// values are the module's own: `f` may change what they hold, never the
/// keyspace. False when the db does not exist.
pub fn for_each_value(
    ctx: Ctx,
    db: i32,
    ty: *mut raw::RedisModuleType,
    f: &mut dyn FnMut(*mut c_void),
) -> bool {
    if !db_exists(ctx, db) {
        return false;
    }
    if let Some(mut cursor) = ScanCursor::new() {
        cursor.step(ctx, db, usize::MAX, ty, f);
    }
    true
}

/// A keyspace scan that goes on across callbacks (RM_Scan's cursor); the
/// cursor is destroyed when this is dropped.
pub struct ScanCursor(*mut raw::RedisModuleScanCursor);

impl ScanCursor {
    pub fn new() -> Option<ScanCursor> {
        // SAFETY: no arguments; the cursor is freed in Drop.
        let cursor = unsafe { raw::RedisModule_ScanCursorCreate.map(|create| create()) }?;
        (!cursor.is_null()).then_some(ScanCursor(cursor))
    }

    /// Scans on in database `db` for up to `steps` RM_Scan calls (each
    /// visits one hash bucket), calling `f` with every value of type `ty`.
    /// False once the database is done (or does not exist).
    pub fn step(
        &mut self,
        ctx: Ctx,
        db: i32,
        steps: usize,
        ty: *mut raw::RedisModuleType,
        f: &mut dyn FnMut(*mut c_void),
    ) -> bool {
        let before = selected_db(ctx);
        if !select_db(ctx, db) {
            return false;
        }
        let mut more = true;
        for _ in 0..steps {
            more = scan_once(ctx, self.0, ty, &mut *f);
            if !more {
                break;
            }
        }
        select_db(ctx, before);
        more
    }
}

impl Drop for ScanCursor {
    fn drop(&mut self) {
        // SAFETY: the cursor made in `new`, destroyed once.
        unsafe {
            if let Some(destroy) = raw::RedisModule_ScanCursorDestroy {
                destroy(self.0);
            }
        }
    }
}

/// One RM_Scan call through `cursor` in `ctx`'s selected db; true while the
/// scan has more.
fn scan_once(
    ctx: Ctx,
    cursor: *mut raw::RedisModuleScanCursor,
    ty: *mut raw::RedisModuleType,
    f: &mut dyn FnMut(*mut c_void),
) -> bool {
    struct Scan<'a> {
        ty: *mut raw::RedisModuleType,
        f: &'a mut dyn FnMut(*mut c_void),
    }
    unsafe extern "C" fn each(
        _ctx: Ctx,
        _name: *mut raw::RedisModuleString,
        key: *mut raw::RedisModuleKey,
        data: *mut c_void,
    ) {
        // SAFETY: `data` is the Scan below, alive during the call; `key` is
        // Redis's handle of the key being visited (null for none).
        unsafe {
            let Some(scan) = data.cast::<Scan>().as_mut() else {
                return;
            };
            if key.is_null() {
                return;
            }
            let (Some(get_type), Some(get_value)) = (
                raw::RedisModule_ModuleTypeGetType,
                raw::RedisModule_ModuleTypeGetValue,
            ) else {
                return;
            };
            if get_type(key) == scan.ty {
                let value = get_value(key);
                if !value.is_null() {
                    (scan.f)(value);
                }
            }
        }
    }
    let mut scan = Scan { ty, f };
    // SAFETY: `ctx` is live for this callback, `cursor` alive (ScanCursor);
    // `scan` outlives the call.
    unsafe {
        raw::RedisModule_Scan.is_some_and(|run| {
            run(
                ctx,
                cursor,
                Some(each),
                (&mut scan as *mut Scan).cast::<c_void>(),
            ) != 0
        })
    }
}
