//! Types, the clock, the selected database, the client, the server's
//! flags, the module's detached context, logging and INFO numbers.

use redis_module::raw;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

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
/// The module's data type as Redis registered it (null before load).
pub type LockType = *mut raw::RedisModuleType;

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

/// Wall-clock milliseconds, the clock Redis itself uses for PEXPIRE. Read
/// once per command (or timer run) and replicated as absolute times, never
/// re-read on replicas.
pub fn now_ms() -> i64 {
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

/// Whether this server is a replica, as the role-change event last said
/// (events/server.rs; read from the server's flags at load). The write
/// commands ask it on every call instead of RedisModule_GetContextFlags,
/// which also measures the memory in use (~140 instructions of a BEAT).
/// Redis changes the role only through replicationSetMaster/UnsetMaster
/// (REPLICAOF, FAILOVER, cluster failovers), which fire the event.
static REPLICA: AtomicBool = AtomicBool::new(false);

/// Reads the role from the server's flags (init).
pub fn read_role() {
    // SAFETY: a null context asks for the server-wide flags only (7.0+).
    let flags =
        unsafe { raw::RedisModule_GetContextFlags.map_or(0, |get| get(std::ptr::null_mut())) }
            as u32;
    REPLICA.store(
        flags & raw::REDISMODULE_CTX_FLAGS_SLAVE != 0,
        Ordering::Relaxed,
    );
}

/// The role-change event: `replica` is the new role.
pub fn role_changed(replica: bool) {
    REPLICA.store(replica, Ordering::Relaxed);
}

/// Whether this server is a replica (see [`REPLICA`]).
pub fn is_replica() -> bool {
    REPLICA.load(Ordering::Relaxed)
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
