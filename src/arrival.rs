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

use hblock_core::lease::Lease;
use hblock_core::limits::RESTORE_TOKEN_LIMIT;
use std::cell::Cell;
use std::ffi::c_void;

thread_local! {
    /// A data set is loading (the LOADING server event, RDB/AOF/full sync):
    /// its records are its own history; saves a context-flags query per
    /// record on the load path.
    static LOADING: Cell<bool> = const { Cell::new(false) };
    /// On a master: the key whose RESTORE payload just loaded with its lease
    /// ended (None: the last one loaded as it was). On a replica or while
    /// loading the AOF: the key whose next RESTORE the master ended.
    static ENDED: std::cell::RefCell<Option<Vec<u8>>> = const { std::cell::RefCell::new(None) };
    /// The command being run is RESTORE-ASKING (set by the command filter for
    /// every command, so a stale value never outlives its command; inside
    /// MULTI the filter last saw EXEC and inside scripts EVAL, so there it is
    /// off: a RESTORE-ASKING in a transaction or script counts as RESTORE).
    static MIGRATING: Cell<bool> = const { Cell::new(false) };
}

/// From the command filter, for every command.
pub fn on_command(name: &[u8]) {
    let migrating = name.len() == 14 && name.eq_ignore_ascii_case(b"restore-asking");
    MIGRATING.with(|m| m.set(migrating));
}

/// A record rdb_load built for `key` (None when Redis does not say):
/// whether to keep it (false: the payload is refused as bad data).
///
/// On a master serving clients this is a client's RESTORE: the rule above.
/// Replicas and AOF replays run the same RESTORE with another floor (or none
/// yet), so they do not decide: the master's `restore` event sends
/// `HBLOCK.FLOOR ENDS key` ahead of the RESTORE (its propagation comes after
/// the event's), and they end exactly the leases the master ended.
pub fn loaded(lease: &mut Lease, key: Option<&[u8]>) -> bool {
    if LOADING.with(Cell::get) || !crate::ffi::serving_as_master() {
        let told = ENDED.with(|e| {
            let mut e = e.try_borrow_mut().ok()?;
            (e.as_deref() == key && key.is_some()).then(|| e.take())
        });
        if told.is_some() {
            lease.end_in_place();
        }
        return true;
    }
    if lease.token >= RESTORE_TOKEN_LIMIT {
        return false;
    }
    let migrating = MIGRATING.with(Cell::get);
    let ended = !migrating && lease.token <= crate::tokens::floor() && lease.end_in_place();
    set_ended(ended.then(|| key.map(<[u8]>::to_vec)).flatten());
    true
}

fn set_ended(key: Option<Vec<u8>>) {
    ENDED.with(|e| {
        if let Ok(mut e) = e.try_borrow_mut() {
            *e = key;
        }
    });
}

/// A data set starts loading (`true`: a told key whose RESTORE never came is
/// not carried into it) or ends loading (`false`).
pub fn loading(started: bool) {
    LOADING.with(|l| l.set(started));
    if started {
        set_ended(None);
    }
}

/// Whether a data set is loading (between the LOADING server event's start
/// and its end or failure).
pub fn loading_now() -> bool {
    LOADING.with(Cell::get)
}

/// `HBLOCK.FLOOR ENDS key` from the master link or the AOF: the RESTORE of
/// `key` that follows loaded ended on the master.
pub fn told_ends(key: &[u8]) {
    set_ended(Some(key.to_vec()));
}

/// The `restore` key event, after RESTORE put a record at `key`: on a master
/// whose rule ended that lease, `HBLOCK.FLOOR ENDS key` goes to replicas and
/// the AOF, ahead of the RESTORE itself (see `loaded`).
pub fn restored(ctx: crate::ffi::Ctx, key: *mut redis_module::raw::RedisModuleString) {
    if ctx.is_null() || key.is_null() || !crate::ffi::serving_as_master() {
        return;
    }
    let name = redis_module::RedisString::string_as_slice(key);
    let ended = ENDED.with(|e| {
        let mut e = e.try_borrow_mut().ok()?;
        (e.as_deref() == Some(name)).then(|| e.take())
    });
    if ended.is_some() && crate::propagation::needed() {
        crate::ffi::replicate_floor_ends(ctx, key);
    }
}

/// A record COPY made: never a second holder of the same lease.
pub fn copied(lease: &mut Lease) {
    lease.end_in_place();
}

/// A lock value leaves its key (the data type's unlink callback, and SWAPDB
/// for the held leases of both databases): DEL, overwrite, expiry and
/// eviction free it next; RENAME and MOVE put the same value under the new
/// name, where its lease must not live on.
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
