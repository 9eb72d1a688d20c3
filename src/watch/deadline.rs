//! WATCH's TIMEOUT on module timers, which are ms-precise (Redis checks its
//! blocked-client timeouts only every 1000/hz ms: `TIMEOUT 1` answered after
//! ~100 ms). One timer per watcher with a TIMEOUT, its id as the timer's
//! data; stopped when the watcher is done before it fires.
//!
//! Ending a TIMEOUT writes nothing (it unblocks the client, whose reply is
//! read-only), so it runs while Redis pauses writes too, as Redis's own
//! blocked-client timeouts do.

use super::{take_for_waking, unblock_woken, with, WatcherId};
use crate::ffi;
use std::ffi::c_void;

/// Arms the timer that ends watcher `id`'s TIMEOUT in `delay_ms` (a long
/// TIMEOUT fires early, at the timer's cap, and is armed again).
pub(super) fn arm(ctx: ffi::Ctx, id: WatcherId, delay_ms: i64) {
    let timer = ffi::create_timer_with_data(ctx, delay_ms, on_deadline, id);
    let unused = with(|w| match w.by_id.get_mut(&id) {
        Some(x) => {
            x.timer = timer;
            None
        }
        None => timer,
    })
    .flatten();
    if let Some(timer) = unused {
        ffi::stop_timer(ctx, timer);
    }
}

enum Next {
    Rearm(i64),
    Wake((ffi::BlockedClient, u64)),
}

extern "C" fn on_deadline(ctx: ffi::Ctx, data: *mut c_void) {
    let id = data as WatcherId; // the id given to create_timer_with_data
    let now = crate::commands::now_ms();
    let next = with(|w| {
        let x = w.by_id.get_mut(&id)?;
        // This timer has fired: never stop it (its id may be reused).
        x.timer = None;
        let deadline = x.deadline?;
        if x.woken {
            None
        } else if deadline > now {
            Some(Next::Rearm(deadline.saturating_sub(now)))
        } else {
            take_for_waking(w, id).map(Next::Wake)
        }
    })
    .flatten();
    match next {
        Some(Next::Rearm(delay)) => arm(ctx, id, delay),
        Some(Next::Wake(woken)) => unblock_woken(vec![woken]),
        None => {}
    }
}
