//! HBLOCK.WATCH's registry: who watches which lock, having seen which
//! holder, and waking them when the holder changes or their TIMEOUT ends.
//! Blocking a watcher, its callbacks and its TIMEOUT's timer are the
//! command's own (commands/watch.rs).
//!
//! The holder of a lock is the token of its live lease, or 0 (free,
//! released, expired, missing, another type). Every change of holder goes
//! through `notify`: `store::commit` on the master (grant, release, expiry,
//! takeover), `store::commit_applied` (APPLY on a replica), and the timer
//! for keys deleted, flushed, overwritten, renamed or evicted and for
//! deadlines a replica's clock sees.
//! A woken watcher is answered the lock's INFO reply as it is when Redis
//! sends the reply; a TIMEOUT answers it unchanged.
//!
//! Every handle is unblocked (`RedisModule_UnblockClient`) exactly once:
//! Redis frees a handle blocked with `RedisModule_BlockClient` only then,
//! whatever ended the wait (7.0 leaked ~34 KB per watcher otherwise).
//! - woken (change of holder, TIMEOUT on the module timer): by the module,
//!   then Redis calls the reply callback (or, if the client left in
//!   between, only the disconnect callback: nothing left to free);
//! - still waiting when `CLIENT UNBLOCK` (the timeout callback), `CLIENT
//!   UNBLOCK ... ERROR`, a disconnect, `CLIENT KILL` or a role change (the
//!   disconnect callback) ends it: from that callback.
//!
//! Blocked with no Redis timeout: Redis checks its blocked-client timeouts
//! only every 1000/hz ms, a module timer (one per watcher with a TIMEOUT)
//! is ms-precise.

use crate::ffi::{self, BlockedClient, TimerId};
use crate::handoff::{self, Handle};
use hblock_core::queue::LockId;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

/// A watcher's id (also the data of its TIMEOUT's module timer).
pub type WatcherId = usize;

struct Watcher {
    lock: LockId,
    bc: BlockedClient,
    seen: u64,
    /// Its client's id: `CLIENT UNBLOCK <id>` of a woken watcher is filtered.
    client: u64,
    /// When its TIMEOUT ends (None: no limit).
    deadline: Option<i64>,
    /// The module timer that ends its TIMEOUT, while armed.
    timer: Option<TimerId>,
    /// Unblocked by the module: its reply is on its way.
    woken: bool,
}

#[derive(Default)]
struct Watchers {
    next_id: WatcherId,
    by_id: HashMap<WatcherId, Watcher>,
    /// Waiting watchers per lock, oldest first (woken ones are only in
    /// `by_id` and `by_client` until their reply or disconnect). A set: one
    /// leaving among thousands costs no scan.
    by_lock: HashMap<LockId, BTreeSet<WatcherId>>,
    /// Blocked-client handle -> id, for replies, CLIENT UNBLOCK and disconnects.
    by_client: HashMap<Handle, WatcherId>,
}

thread_local! {
    static WATCHERS: RefCell<Watchers> = RefCell::new(Watchers::default());
}

fn with_watchers<R>(f: impl FnOnce(&mut Watchers) -> R) -> Option<R> {
    WATCHERS.with(|w| w.try_borrow_mut().ok().map(|mut w| f(&mut w)))
}

/// Whether anyone watches any lock.
pub fn any() -> bool {
    with_watchers(|w| !w.by_lock.is_empty()).unwrap_or(false)
}

/// Whether anyone watches this lock (cheap when nobody watches anything).
pub fn is_watched(lock: &LockId) -> bool {
    with_watchers(|w| !w.by_lock.is_empty() && w.by_lock.contains_key(lock)).unwrap_or(false)
}

/// Watched locks of database `db` (all databases: None).
pub fn locks_in(db: Option<i32>) -> Vec<LockId> {
    with_watchers(|w| {
        w.by_lock
            .keys()
            .filter(|l| db.is_none_or(|d| d == l.db))
            .cloned()
            .collect()
    })
    .unwrap_or_default()
}

/// Registers the blocked client `bc` (connection `client`) as watching
/// `lock`, having seen holder `seen`, until `deadline` (None: no limit).
/// None only if the registry was busy (never: it is not borrowed across
/// calls into Redis).
pub fn add(
    lock: LockId,
    bc: BlockedClient,
    seen: u64,
    client: u64,
    deadline: Option<i64>,
) -> Option<WatcherId> {
    with_watchers(|w| {
        w.next_id = w.next_id.wrapping_add(1);
        let id = w.next_id;
        w.by_lock.entry(lock.clone()).or_default().insert(id);
        w.by_client.insert(bc as Handle, id);
        let watcher = Watcher {
            lock,
            bc,
            seen,
            client,
            deadline,
            timer: None,
            woken: false,
        };
        w.by_id.insert(id, watcher);
        id
    })
}

/// Notes the module timer that ends watcher `id`'s TIMEOUT. Gives the
/// timer back when the watcher is gone already: the caller stops it.
pub fn set_timer(id: WatcherId, timer: Option<TimerId>) -> Option<TimerId> {
    with_watchers(|w| match w.by_id.get_mut(&id) {
        Some(x) => {
            x.timer = timer;
            None
        }
        None => timer,
    })
    .flatten()
}

/// Watcher `id`'s TIMEOUT timer fired at `now`: a waiting watcher whose
/// deadline has passed is woken (its reply unchanged); one whose deadline
/// is further (a long TIMEOUT, capped by the timer) gets the delay left,
/// for the caller to arm again.
pub fn timer_fired(id: WatcherId, now: i64) -> Option<i64> {
    enum Next {
        Rearm(i64),
        Wake((BlockedClient, u64)),
    }
    let next = with_watchers(|w| {
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
    match next? {
        Next::Rearm(delay) => Some(delay),
        Next::Wake(woken) => {
            unblock_woken(vec![woken]);
            None
        }
    }
}

/// The holder of `lock` is now `holder`: wakes its watchers that saw another.
pub fn notify(lock: &LockId, holder: u64) {
    let woken = with_watchers(|w| {
        if w.by_lock.is_empty() {
            return Vec::new();
        }
        let Some(ids) = w.by_lock.remove(lock) else {
            return Vec::new();
        };
        let mut woken = Vec::new();
        let mut keep = BTreeSet::new();
        for id in ids {
            match w.by_id.get_mut(&id) {
                Some(x) if x.seen != holder => {
                    x.woken = true;
                    woken.push((x.bc, x.client));
                }
                Some(_) => {
                    keep.insert(id);
                }
                None => {}
            }
        }
        if !keep.is_empty() {
            w.by_lock.insert(lock.clone(), keep);
        }
        woken
    })
    .unwrap_or_default();
    unblock_woken(woken);
}

/// Takes a watcher off its lock's waiting set.
fn stop_waiting(w: &mut Watchers, lock: &LockId, id: WatcherId) {
    if let Some(ids) = w.by_lock.get_mut(lock) {
        ids.remove(&id);
        if ids.is_empty() {
            w.by_lock.remove(lock);
        }
    }
}

/// Marks a waiting watcher woken and takes it off its lock's set: its
/// handle and client id, None when it was not waiting.
fn take_for_waking(w: &mut Watchers, id: WatcherId) -> Option<(BlockedClient, u64)> {
    let x = w.by_id.get_mut(&id)?;
    if x.woken {
        return None;
    }
    x.woken = true;
    let (bc, client, lock) = (x.bc, x.client, x.lock.clone());
    stop_waiting(w, &lock, id);
    Some((bc, client))
}

/// Unblocks watchers taken by `take_for_waking` (never twice: they are
/// marked woken). Their replies are pending until the reply callback.
fn unblock_woken(woken: Vec<(BlockedClient, u64)>) {
    for (bc, client) in woken {
        handoff::watcher_woken(bc as Handle, client);
        ffi::unblock_client(bc, std::ptr::null_mut());
    }
}

/// A watcher that is done (replied to, CLIENT UNBLOCK, disconnected).
pub struct Gone {
    pub lock: LockId,
    /// Not unblocked by the module yet: the caller must unblock it.
    pub was_waiting: bool,
}

/// Forgets a watcher, waiting or woken, and stops its TIMEOUT's timer.
pub fn forget(ctx: ffi::Ctx, bc: BlockedClient) -> Option<Gone> {
    let (gone, timer) = with_watchers(|w| {
        let id = w.by_client.remove(&(bc as Handle))?;
        let x = w.by_id.remove(&id)?;
        stop_waiting(w, &x.lock, id);
        let gone = Gone {
            lock: x.lock,
            was_waiting: !x.woken,
        };
        Some((gone, x.timer))
    })
    .flatten()?;
    handoff::watcher_answered(bc as Handle);
    if let Some(timer) = timer {
        // Still armed (its callback clears it first), so never our own.
        ffi::stop_timer(ctx, timer);
    }
    Some(gone)
}
