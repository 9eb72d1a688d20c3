//! The RedisModule calls the `redis-module` crate has no safe wrapper for,
//! each wrapped once with its SAFETY argument, so the rest of the module
//! calls plain functions. Every function pointer is filled in by
//! `RedisModule_Init` before any of our code runs; a missing one (an older
//! server) makes the wrapper do nothing and say so in its return value.
//!
//! All of these run on Redis's main thread, as Redis calls modules there.

use redis_module::raw;
use redis_module::RedisString;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::atomic::{AtomicPtr, Ordering};

pub type Ctx = *mut raw::RedisModuleCtx;
pub type BlockedClient = *mut raw::RedisModuleBlockedClient;
pub type TimerId = raw::RedisModuleTimerID;

/// The callbacks of a blocked client.
pub type ReplyCallback = extern "C" fn(Ctx, *mut *mut raw::RedisModuleString, c_int) -> c_int;
pub type FreeCallback = extern "C" fn(Ctx, *mut c_void);
pub type DisconnectCallback = extern "C" fn(Ctx, BlockedClient);
pub type TimerCallback = extern "C" fn(Ctx, *mut c_void);
pub type KeyEventCallback =
    extern "C" fn(Ctx, c_int, *const c_char, *mut raw::RedisModuleString) -> c_int;
pub type ServerEventCallback = unsafe extern "C" fn(Ctx, raw::RedisModuleEvent, u64, *mut c_void);
pub type FilterCtx = *mut raw::RedisModuleCommandFilterCtx;

/// A number from a section of INFO; None when the field is missing or not a
/// number. (The crate's `ServerInfo::field` leaks the string it returns.)
pub fn info_number(ctx: Ctx, section: &CStr, field: &CStr) -> Option<i64> {
    // SAFETY: the section and field names are NUL-terminated and live for
    // the calls; the info data is freed once, after its last use.
    unsafe {
        let get_info = raw::RedisModule_GetServerInfo?;
        let get_field = raw::RedisModule_ServerInfoGetFieldSigned?;
        let free_info = raw::RedisModule_FreeServerInfo?;
        let info = get_info(ctx, section.as_ptr());
        if info.is_null() {
            return None;
        }
        let mut err: c_int = 0;
        let value = get_field(info, field.as_ptr(), &mut err);
        free_info(ctx, info);
        (err == 0).then_some(value)
    }
}

/// Wall-clock milliseconds, the clock Redis uses for PEXPIRE.
pub fn milliseconds() -> i64 {
    // SAFETY: no arguments; a plain read of Redis's clock.
    unsafe { raw::RedisModule_Milliseconds.map_or(0, |ms| ms()) }
}

/// Whether Redis pauses writes now (CLIENT PAUSE, FAILOVER, SHUTDOWN waiting
/// for replicas): anything propagated now aborts the server.
pub fn writes_paused() -> bool {
    // SAFETY: no arguments; it only reads (and may end) Redis's pause state.
    unsafe { raw::RedisModule_AvoidReplicaTraffic.is_some_and(|avoid| avoid() != 0) }
}

/// The database selected in `ctx`.
pub fn selected_db(ctx: Ctx) -> i32 {
    // SAFETY: `ctx` is the live context of the current callback.
    unsafe { raw::RedisModule_GetSelectedDb.map_or(0, |get| get(ctx)) }
}

/// Selects database `db` in `ctx`; false when it does not exist.
pub fn select_db(ctx: Ctx, db: i32) -> bool {
    // SAFETY: `ctx` is the live context of the current callback; Redis checks
    // the range of `db`.
    unsafe {
        raw::RedisModule_SelectDb
            .is_some_and(|select| select(ctx, db) == raw::REDISMODULE_OK as c_int)
    }
}

/// The id of the client `ctx` runs for (0 without one).
pub fn client_id(ctx: Ctx) -> u64 {
    // SAFETY: `ctx` is the live context of the current command.
    unsafe { raw::RedisModule_GetClientId.map_or(0, |get| get(ctx)) }
}

/// Blocks the client of the command `ctx` runs with these callbacks; Redis
/// times it out after `timeout_ms` (0: never; WAIT runs on the module timer
/// instead). None when Redis refused.
pub fn block_client(
    ctx: Ctx,
    reply: ReplyCallback,
    on_unblock: ReplyCallback,
    free: Option<FreeCallback>,
    on_disconnect: DisconnectCallback,
    timeout_ms: i64,
) -> Option<BlockedClient> {
    // SAFETY: `ctx` is a live command context; the callbacks are `extern "C"`
    // functions of this module that live as long as it does.
    unsafe {
        let (Some(block), Some(set_disconnect)) = (
            raw::RedisModule_BlockClient,
            raw::RedisModule_SetDisconnectCallback,
        ) else {
            return None;
        };
        let free = free.map(|f| f as unsafe extern "C" fn(Ctx, *mut c_void));
        let bc = block(ctx, Some(reply), Some(on_unblock), free, timeout_ms);
        if bc.is_null() {
            return None;
        }
        set_disconnect(bc, Some(on_disconnect));
        Some(bc)
    }
}

/// Unblocks `bc`, handing `privdata` (null, or a pointer the reply and free
/// callbacks understand) to its reply callback.
///
/// The caller guarantees `bc` came from [`block_client`] and is unblocked
/// only once (a queued waiter leaves the queue as it is unblocked).
pub fn unblock_client(bc: BlockedClient, privdata: *mut c_void) {
    // SAFETY: see above: a live handle, unblocked once.
    unsafe {
        if let Some(unblock) = raw::RedisModule_UnblockClient {
            unblock(bc, privdata);
        }
    }
}

/// The handle of the blocked client a reply/timeout callback runs for.
pub fn blocked_client_handle(ctx: Ctx) -> BlockedClient {
    // SAFETY: `ctx` is the live context of a blocked-client callback.
    unsafe { raw::RedisModule_GetBlockedClientHandle.map_or(std::ptr::null_mut(), |get| get(ctx)) }
}

/// The private data given to [`unblock_client`], in a reply callback.
pub fn blocked_client_privdata(ctx: Ctx) -> *mut c_void {
    // SAFETY: `ctx` is the live context of a blocked-client callback.
    unsafe {
        raw::RedisModule_GetBlockedClientPrivateData.map_or(std::ptr::null_mut(), |get| get(ctx))
    }
}

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

/// The longest delay a module timer is armed for: 10 minutes. Redis 7.0
/// computes a module timer's time as `now_us + period * 1000` and returns
/// the time to the next one from its handler as an `int` of ms; a deadline
/// far away (a record loaded from an AOF, an RDB or a crafted RESTORE
/// payload can say anything) overflowed both: measured, a lease check due
/// in 146 million years made the server grow to 21 GB, and other far
/// deadlines made it spin at 100% CPU. A timer that fires early finds
/// nothing due and is armed again (once per 10 minutes at most when idle).
pub const TIMER_MAX_MS: i64 = 600_000;

/// Starts a timer that calls `callback` after `delay_ms` (no data), at most
/// [`TIMER_MAX_MS`] from now.
pub fn create_timer(ctx: Ctx, delay_ms: i64, callback: TimerCallback) -> Option<TimerId> {
    create_timer_with_data(ctx, delay_ms, callback, 0)
}

/// As [`create_timer`], handing `data` (a number, not a pointer) to the
/// callback as its data pointer.
pub fn create_timer_with_data(
    ctx: Ctx,
    delay_ms: i64,
    callback: TimerCallback,
    data: usize,
) -> Option<TimerId> {
    let delay_ms = delay_ms.clamp(0, TIMER_MAX_MS);
    // SAFETY: a live context and an `extern "C"` callback of this module; the
    // data is a plain number that nobody dereferences, so nothing leaks
    // when the timer is stopped.
    unsafe {
        raw::RedisModule_CreateTimer
            .map(|create| create(ctx, delay_ms, Some(callback), data as *mut c_void))
    }
}

/// Stops a timer of this module (never from inside its own callback).
pub fn stop_timer(ctx: Ctx, id: TimerId) {
    // SAFETY: a live context; Redis ignores ids it does not know.
    unsafe {
        if let Some(stop) = raw::RedisModule_StopTimer {
            stop(ctx, id, std::ptr::null_mut());
        }
    }
}

/// Invalidates WATCH and client-side caches of `key`.
pub fn signal_modified(ctx: Ctx, key: *mut raw::RedisModuleString) {
    // SAFETY: a live context and a key name valid for the call.
    unsafe {
        if let Some(signal) = raw::RedisModule_SignalModifiedKey {
            signal(ctx, key);
        }
    }
}

/// The module's detached context, made once at load (null before).
static DETACHED: AtomicPtr<raw::RedisModuleCtx> = AtomicPtr::new(std::ptr::null_mut());

/// Makes the module's detached context. Called once from init.
pub fn init_detached_context(ctx: Ctx) {
    // SAFETY: called with the OnLoad context; the detached context is never
    // freed, and used on the main thread only.
    let detached = unsafe {
        raw::RedisModule_GetDetachedThreadSafeContext.map_or(std::ptr::null_mut(), |get| get(ctx))
    };
    DETACHED.store(detached, Ordering::Relaxed);
}

/// A context of this module for callbacks that get none (the filter, the
/// data type's callbacks): for log lines and the module timer. Null before
/// init: check before arming a timer with it.
pub fn detached_context() -> Ctx {
    DETACHED.load(Ordering::Relaxed)
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

/// Logs `message` at warning level (any text: NUL bytes are escaped).
pub fn log_warning(ctx: Ctx, message: &str) {
    let Ok(message) = CString::new(message.replace('\0', "\\0")) else {
        return;
    };
    // SAFETY: NUL-terminated level and message; "%s" keeps Redis from reading
    // the message as a format string.
    unsafe {
        if let Some(log) = raw::RedisModule_Log {
            log(ctx, c"warning".as_ptr(), c"%s".as_ptr(), message.as_ptr());
        }
    }
}

/// Subscribes `callback` to the keyspace events of `classes` (OnLoad only).
pub fn subscribe_keyspace(ctx: Ctx, classes: c_int, callback: KeyEventCallback) -> bool {
    // SAFETY: the OnLoad context and an `extern "C"` callback of this module.
    unsafe {
        raw::RedisModule_SubscribeToKeyspaceEvents
            .is_some_and(|sub| sub(ctx, classes, Some(callback)) == raw::REDISMODULE_OK as c_int)
    }
}

/// Subscribes `callback` to server event `id` (OnLoad only).
pub fn subscribe_server_event(ctx: Ctx, id: u64, callback: ServerEventCallback) -> bool {
    let event = raw::RedisModuleEvent { id, dataver: 1 };
    // SAFETY: the OnLoad context and an `extern "C"` callback of this module.
    unsafe {
        raw::RedisModule_SubscribeToServerEvent
            .is_some_and(|sub| sub(ctx, event, Some(callback)) == raw::REDISMODULE_OK as c_int)
    }
}

/// Sets the module's options (REDISMODULE_OPTION[S]_* flags; OnLoad only).
pub fn set_module_options(ctx: Ctx, options: c_int) {
    // SAFETY: the OnLoad context; Redis only stores the flags.
    unsafe {
        if let Some(set) = raw::RedisModule_SetModuleOptions {
            set(ctx, options);
        }
    }
}

/// Starts this module's section of INFO (its name is the module's).
pub fn info_add_section(ctx: *mut raw::RedisModuleInfoCtx) {
    // SAFETY: the live context of an INFO callback; null means "the module's
    // own section".
    unsafe {
        if let Some(add) = raw::RedisModule_InfoAddSection {
            add(ctx, std::ptr::null_mut());
        }
    }
}

/// Adds `name:value` to the INFO section (Redis prefixes the module name).
pub fn info_add_u64(ctx: *mut raw::RedisModuleInfoCtx, name: &CStr, value: u64) {
    // SAFETY: the live context of an INFO callback; Redis copies the name.
    unsafe {
        if let Some(add) = raw::RedisModule_InfoAddFieldULongLong {
            add(ctx, name.as_ptr().cast_mut(), value);
        }
    }
}

/// How many arguments a filtered command has (its name included).
pub fn filter_arg_count(fctx: FilterCtx) -> c_int {
    // SAFETY: the live context of a command filter callback.
    unsafe { raw::RedisModule_CommandFilterArgsCount.map_or(0, |count| count(fctx)) }
}

/// The client that sent the filtered command; None where the server does
/// not say (Redis 7.0).
pub fn filter_client_id(fctx: FilterCtx) -> Option<u64> {
    // SAFETY: the live filter context.
    unsafe { raw::RedisModule_CommandFilterGetClientId.map(|get| get(fctx)) }
}

/// Argument `pos` of a filtered command as bytes (empty when there is none);
/// valid for the filter callback.
pub fn filter_arg<'a>(fctx: FilterCtx, pos: c_int) -> &'a [u8] {
    // SAFETY: the live filter context; the string it returns stays valid
    // until the callback returns.
    let s = unsafe {
        raw::RedisModule_CommandFilterArgGet.map_or(std::ptr::null_mut(), |get| get(fctx, pos))
    };
    if s.is_null() {
        &[]
    } else {
        RedisString::string_as_slice(s)
    }
}

/// Replaces argument `pos` of a filtered command with `value`.
pub fn filter_replace_arg(fctx: FilterCtx, pos: c_int, value: &[u8]) {
    // SAFETY: a new string (no context: not auto-freed) handed over to
    // Redis, which frees it with the command's arguments.
    unsafe {
        let Some(create) = raw::RedisModule_CreateString else {
            return;
        };
        let s = create(std::ptr::null_mut(), value.as_ptr().cast(), value.len());
        if let (false, Some(replace)) = (s.is_null(), raw::RedisModule_CommandFilterArgReplace) {
            replace(fctx, pos, s);
        }
    }
}

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

/// Registers the module's INFO callback (OnLoad only).
pub fn register_info(ctx: Ctx, callback: extern "C" fn(*mut raw::RedisModuleInfoCtx, c_int)) {
    // SAFETY: the OnLoad context and an `extern "C"` callback of this module.
    unsafe {
        if let Some(register) = raw::RedisModule_RegisterInfoFunc {
            register(ctx, Some(callback));
        }
    }
}

/// Registers a command filter for every command but the module's own.
pub fn register_command_filter(ctx: Ctx, callback: extern "C" fn(FilterCtx)) -> bool {
    // SAFETY: the OnLoad context and an `extern "C"` callback of this module.
    unsafe {
        raw::RedisModule_RegisterCommandFilter.is_some_and(|register| {
            !register(
                ctx,
                Some(callback),
                raw::REDISMODULE_CMDFILTER_NOSELF as c_int,
            )
            .is_null()
        })
    }
}

/// Sets a registered command's metadata and, where the server has the API
/// (Redis 7.2+, Valkey), its ACL categories. False when Redis refused.
pub fn set_command_info(
    ctx: Ctx,
    name: &CStr,
    info: &raw::RedisModuleCommandInfo,
    acl_categories: &CStr,
) -> bool {
    // SAFETY: the OnLoad context and a command registered just before;
    // `info` and what it points to live for the call, and Redis copies them.
    unsafe {
        let (Some(get_command), Some(set_info)) =
            (raw::RedisModule_GetCommand, raw::RedisModule_SetCommandInfo)
        else {
            return false;
        };
        let command = get_command(ctx, name.as_ptr());
        if command.is_null() || set_info(command, info) != raw::REDISMODULE_OK as c_int {
            return false;
        }
        // Redis 7.0 has no API for ACL categories of module commands: there
        // they are granted by name (+hblock.acquire) or with +@all.
        match raw::RedisModule_SetCommandACLCategories {
            Some(set_categories) => {
                set_categories(command, acl_categories.as_ptr()) == raw::REDISMODULE_OK as c_int
            }
            None => true,
        }
    }
}

mod call;
mod persist;
pub use call::{
    call_passing_reply, caller_may_configure, command_keys, is_keys_position_request, key_at_pos,
    CallFailed,
};
pub use persist::{load_u64, replicate_floor, save_u64};

/// Whether this server is a master that runs its clients' commands now: not
/// a replica, and not loading a data set (an RDB file, the AOF, a full sync,
/// DEBUG RELOAD; async loading included). A RESTORE payload loaded then is
/// a client's; loaded otherwise, it is the data set's own history or the
/// master's stream.
pub fn serving_as_master() -> bool {
    let loading = raw::REDISMODULE_CTX_FLAGS_LOADING | raw::REDISMODULE_CTX_FLAGS_ASYNC_LOADING;
    // SAFETY: Redis 7.0+ accepts a null context here and then reports only
    // the server-wide flags (role, loading).
    let flags =
        unsafe { raw::RedisModule_GetContextFlags.map_or(0, |get| get(std::ptr::null_mut())) }
            as u32;
    flags & raw::REDISMODULE_CTX_FLAGS_MASTER != 0 && flags & loading == 0
}

/// Propagates `HBLOCK.APPLY key <record>` (the compact record) to replicas
/// and the AOF, after the command running now.
pub fn replicate_apply(ctx: Ctx, key: *mut raw::RedisModuleString, record: &[u8]) {
    // SAFETY: s = the key, b = buffer and length; all live for the call.
    unsafe {
        if let Some(replicate) = raw::RedisModule_Replicate {
            replicate(
                ctx,
                c"HBLOCK.APPLY".as_ptr(),
                c"sb".as_ptr(),
                key,
                record.as_ptr().cast::<c_char>(),
                record.len(),
            );
        }
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
