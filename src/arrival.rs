//! Records that arrive at a key name without a grant: RESTORE (and
//! RESTORE-ASKING, what MIGRATE sends in a cluster), COPY, RENAME, MOVE and
//! SWAPDB. The rule (docs/guarantees.md, "Records that arrive"):
//!
//! - A lease lives only under the name (and database) it was granted at. A
//!   held lease that COPY, RENAME, MOVE or SWAPDB brings to a name ends there
//!   (the record stays, free, with its token): the holder gets NOTHELD and
//!   the next grant of that name gets a token above the data set's floor, so
//!   no name's token goes down and no older lease comes back.
//! - RESTORE: a payload can be forged by anyone allowed `RESTORE` on a key.
//!   A token of 2^52 or more is refused as a bad payload (the floor stays
//!   where tokens below 2^53 last). A held lease whose token is not above
//!   this data set's floor is older than the newest lease here, maybe than
//!   one of that very name: it loads ended. One above the floor (a DUMP from
//!   another server) stays held, and raises the floor.
//! - RESTORE-ASKING is a cluster migration (MIGRATE sends it): a held lease
//!   stays held, whatever its token, so resharding keeps live leases live.
//!
//! Whole data sets (RDB files, the AOF, a replica's full sync) are loaded
//! as they are: they are this data set's own history.

use crate::lease::Lease;
use crate::record::LOCK_TYPE;
use hblock_core::limits::RESTORE_TOKEN_LIMIT;
use std::cell::Cell;
use std::ffi::c_void;

thread_local! {
    /// The command being run is RESTORE-ASKING (set by the command filter for
    /// every command, so a stale value never outlives its command; inside
    /// MULTI it holds for the last queued command, inside scripts it is off).
    static MIGRATING: Cell<bool> = const { Cell::new(false) };
}

/// From the command filter, for every command.
pub fn on_command(name: &[u8]) {
    let migrating = name.len() == 14 && name.eq_ignore_ascii_case(b"restore-asking");
    MIGRATING.with(|m| m.set(migrating));
}

/// A record rdb_load built: whether to keep it (false: the payload is
/// refused as bad data). A record of a RESTORE may load with its lease ended.
pub fn loaded(lease: &mut Lease) -> bool {
    if crate::ffi::loading_data_set() {
        return true;
    }
    if lease.token >= RESTORE_TOKEN_LIMIT {
        return false;
    }
    let migrating = MIGRATING.with(Cell::get);
    if !migrating && lease.token <= crate::tokens::floor() {
        lease.end_in_place();
    }
    true
}

/// A record COPY made: never a second holder of the same lease.
pub fn copied(lease: &mut Lease) {
    lease.end_in_place();
}

/// A lock value leaves its key (the data type's unlink callback): DEL,
/// overwrite, expiry and eviction free it next; RENAME and MOVE put the same
/// value under the new name, where its lease must not live on.
///
/// # Safety
/// `value` is a record of this module's type that Redis still holds.
pub unsafe fn unlinked(value: *const c_void) {
    // SAFETY: the caller's promise; Redis runs this on its main thread and
    // nothing else borrows the record during the callback.
    if let Some(lease) = unsafe { value.cast_mut().cast::<Lease>().as_mut() } {
        lease.end_in_place();
    }
}

/// SWAPDB `a` `b`: every name of both databases now shows the other's
/// record; their held leases end. Runs on master and replica alike (each
/// executes SWAPDB), from the event, before any other command.
pub fn swapped(ctx: crate::ffi::Ctx, a: i32, b: i32) {
    let Some(ty) = lock_type() else {
        return;
    };
    for db in [a, b] {
        crate::ffi::for_each_value(ctx, db, ty, &mut |value| {
            // SAFETY: a value of LOCK_TYPE, owned by Redis for the scan.
            unsafe { unlinked(value) };
        });
    }
}

/// The highest token of any record in any database (HBLOCK.FLOOR RESET).
pub fn highest_token(ctx: crate::ffi::Ctx) -> u64 {
    let Some(ty) = lock_type() else {
        return 0;
    };
    let mut highest = 0u64;
    let mut db = 0;
    while crate::ffi::for_each_value(ctx, db, ty, &mut |value| {
        // SAFETY: a value of LOCK_TYPE, owned by Redis for the scan.
        if let Some(lease) = unsafe { value.cast::<Lease>().as_ref() } {
            highest = highest.max(lease.token);
        }
    }) {
        db += 1;
    }
    highest
}

/// The registered lock type (None before init).
fn lock_type() -> Option<*mut redis_module::raw::RedisModuleType> {
    let ty = *LOCK_TYPE.raw_type.try_borrow().ok()?;
    (!ty.is_null()).then_some(ty)
}
