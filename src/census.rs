//! After an unplanned promotion, the longest lease among the records that
//! can be held back (those from before the promotion), learnt by walking the
//! keyspace from the module timer a slice at a time, so that INFO's
//! `hblock_failover_delay_left_ms` is exact once the walk is done (until
//! then it is the upper bound tokens.rs keeps). A record deleted before the
//! walk reaches it no longer counts.

use crate::ffi::{Ctx, LockType, ScanCursor};
use hblock_core::lease::Lease;
use std::cell::RefCell;

/// RM_Scan calls (hash buckets) per timer run: about a thousand keys, a
/// millisecond or two of the server's time (1M keys walked in 2.0 s, other
/// clients' replies delayed 3.3 ms at most, on a loaded 2-core box).
const STEPS_PER_RUN: usize = 1024;

struct Walk {
    db: i32,
    cursor: ScanCursor,
    /// Records with a token up to this are from before the promotion.
    held_up_to: u64,
    longest: i64,
}

#[derive(Default)]
struct Census {
    walk: Option<Walk>,
    /// The walk's answer: the longest lease (ms) of a record that can be
    /// held back, None while unknown.
    longest: Option<i64>,
}

thread_local! {
    static CENSUS: RefCell<Census> = RefCell::new(Census::default());
}

/// An unplanned promotion: walk again from the start.
pub fn start(held_up_to: u64) {
    let walk = ScanCursor::new().map(|cursor| Walk {
        db: 0,
        cursor,
        held_up_to,
        longest: 0,
    });
    CENSUS.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            *c = Census {
                walk,
                longest: None,
            };
        }
    });
}

/// No delay runs any more (demoted, or every hold ended).
pub fn stop() {
    CENSUS.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            *c = Census::default();
        }
    });
}

pub fn walking() -> bool {
    CENSUS.with(|c| c.try_borrow().is_ok_and(|c| c.walk.is_some()))
}

/// The longest lease of a record that can be held back, once known.
pub fn longest() -> Option<i64> {
    CENSUS.with(|c| c.try_borrow().ok().and_then(|c| c.longest))
}

/// One slice of the walk over the records of type `ty` (the lock type),
/// from the timer (it reads, never writes).
pub fn step(ctx: Ctx, ty: LockType) {
    CENSUS.with(|c| {
        let Ok(mut c) = c.try_borrow_mut() else {
            return;
        };
        let Some(walk) = c.walk.as_mut() else {
            return;
        };
        let held_up_to = walk.held_up_to;
        let mut longest = walk.longest;
        let more = walk
            .cursor
            .step(ctx, walk.db, STEPS_PER_RUN, ty, &mut |value| {
                // SAFETY: a value of LOCK_TYPE, alive while it is visited.
                if let Some(lease) = unsafe { value.cast::<Lease>().as_ref() } {
                    if lease.token <= held_up_to {
                        longest = longest.max(lease.terms().lease_ms());
                    }
                }
            });
        walk.longest = longest;
        if more {
            return;
        }
        // This database is done: the next, or the answer.
        let next_db = walk.db.saturating_add(1);
        match (crate::ffi::db_exists(ctx, next_db), ScanCursor::new()) {
            (true, Some(cursor)) => {
                walk.db = next_db;
                walk.cursor = cursor;
            }
            _ => {
                c.longest = Some(longest);
                c.walk = None;
            }
        }
    });
}
