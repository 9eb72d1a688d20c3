//! Redis's client-change event: a closed connection's bound leases (BIND)
//! become due after their grace; the timer releases them, as RELEASE would
//! (nothing is written from inside the event).

use crate::{binding, blocking, ffi};
use redis_module::raw;
use std::ffi::c_void;

/// Subscribes to client changes. Called once from init.
pub fn subscribe(ctx: ffi::Ctx) -> bool {
    ffi::subscribe_server_event(ctx, raw::REDISMODULE_EVENT_CLIENT_CHANGE, on_client_event)
}

unsafe extern "C" fn on_client_event(
    ctx: ffi::Ctx,
    _event: raw::RedisModuleEvent,
    subevent: u64,
    data: *mut c_void,
) {
    if subevent != raw::REDISMODULE_SUBEVENT_CLIENT_CHANGE_DISCONNECTED || !binding::any() {
        return;
    }
    // SAFETY: for CLIENT_CHANGE, data is a RedisModuleClientInfo (V1, as
    // subscribed), alive for the callback.
    let Some(info) = (unsafe { data.cast::<raw::RedisModuleClientInfo>().as_ref() }) else {
        return;
    };
    if binding::connection_closed(info.id, ffi::now_ms()) {
        blocking::arm(ctx);
    }
}
