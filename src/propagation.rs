//! Whether the records hblock propagates (`HBLOCK.APPLY`) can reach anyone.
//!
//! Redis sends what modules replicate to its replicas, its replication
//! backlog and the AOF. With none of them it drops it, but RM_Replicate has
//! already built an argument object per argument and counted a change for
//! save points: a fifth of a pipelined BEAT. hblock skips it when nothing
//! can consume it: a master with AOF off and no save points, not in a
//! cluster, that has had no replica and has not been one since the module
//! was loaded (so it has no backlog). Any SYNC or PSYNC, a role change or a
//! cluster makes this permanent for the life of the module; CONFIG SET of
//! `appendonly` or `save` is followed at once. A replica that attaches later
//! gets every lock in its full resynchronization.

use redis_module::{raw, Context, ContextFlags};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

// Statics, not thread-locals: Redis calls the module on its main thread only,
// and a thread-local of a loaded library costs a __tls_get_addr call on
// every BEAT.
/// A replica, a backlog or a role change was seen: never skip again.
static CONSUMER_SEEN: AtomicBool = AtomicBool::new(false);
static SKIP: AtomicBool = AtomicBool::new(false);

/// Whether changes must be propagated now.
pub fn needed() -> bool {
    !SKIP.load(Relaxed)
}

/// Called once from init: a module loaded into a running server may find
/// replicas or a backlog there already.
pub fn init(ctx: &Context) {
    let number = |field: &std::ffi::CStr| {
        // Unknown: assume a consumer.
        crate::ffi::info_number(ctx.ctx, c"replication", field).unwrap_or(1)
    };
    if number(c"repl_backlog_active") != 0 || number(c"connected_slaves") != 0 {
        consumer_seen();
    }
    refresh(ctx.ctx);
}

/// A replica connects (SYNC, PSYNC) or the role changes.
pub fn consumer_seen() {
    CONSUMER_SEEN.store(true, Relaxed);
    SKIP.store(false, Relaxed);
}

/// Reads the server's state again (init, CONFIG SET).
pub fn refresh(ctx: *mut raw::RedisModuleCtx) {
    let flags = Context::new(ctx).get_flags();
    let consumers = ContextFlags::AOF | ContextFlags::RDB | ContextFlags::CLUSTER;
    if !flags.contains(ContextFlags::MASTER) || flags.intersects(consumers) {
        if flags.contains(ContextFlags::SLAVE) || flags.contains(ContextFlags::CLUSTER) {
            CONSUMER_SEEN.store(true, Relaxed);
        }
        SKIP.store(false, Relaxed);
        return;
    }
    SKIP.store(!CONSUMER_SEEN.load(Relaxed), Relaxed);
}

/// The command filter: a replica (or a tool that reads the stream) starts
/// with SYNC or PSYNC, before any of its data is produced.
pub fn on_command(name: &[u8]) {
    if !needed() && (name.eq_ignore_ascii_case(b"psync") || name.eq_ignore_ascii_case(b"sync")) {
        consumer_seen();
    }
}
