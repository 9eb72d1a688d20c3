//! The wait queues: clients blocked in `HBLOCK.ACQUIRE ... WAIT`, per lock, in
//! arrival order. Pure data; the module's wait state (src/blocking.rs)
//! holds them, its waiters (src/waiters.rs) own the handles.
//!
//! Removing a waiter from the middle (timeout, disconnect) is O(1): it leaves a
//! tombstone in its lock's queue that `head` skips, and a per-lock live count
//! keeps `len` exact.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// A lock's identity: its database and key name (binary-safe).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct LockId {
    pub db: i32,
    pub key: Box<[u8]>,
}

impl LockId {
    pub fn new(db: i32, key: &[u8]) -> LockId {
        LockId {
            db,
            key: key.into(),
        }
    }
}

pub type WaiterId = u64;

/// One blocked ACQUIRE. `H` is the client handle (a pointer in production).
#[derive(Debug)]
pub struct Waiter<H> {
    pub id: WaiterId,
    pub lock: LockId,
    pub owner: Box<[u8]>,
    /// INTERVAL and MISSES given with the call, for the lease it will get.
    pub terms: (Option<u32>, Option<u16>),
    /// When its WAIT runs out (wall-clock ms); None waits forever.
    pub deadline_ms: Option<i64>,
    /// Who waits and since when (HBLOCK.WAITERS).
    pub caller: Caller,
    pub handle: H,
}

/// The waiting connection's id (`CLIENT LIST`'s `id`) and when it was
/// queued (wall-clock ms): what HBLOCK.WAITERS shows besides the owner.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Caller {
    pub client: u64,
    pub queued_ms: i64,
}

impl<H> Waiter<H> {
    /// A waiter whose WAIT has run out is never granted.
    pub fn timed_out(&self, now: i64) -> bool {
        self.deadline_ms.is_some_and(|deadline| now >= deadline)
    }
}

struct LockQueue {
    order: VecDeque<WaiterId>,
    live: usize,
}

pub struct Queues<H> {
    next_id: WaiterId,
    waiters: HashMap<WaiterId, Waiter<H>>,
    locks: HashMap<LockId, LockQueue>,
    by_handle: HashMap<H, WaiterId>,
}

impl<H> Default for Queues<H> {
    fn default() -> Self {
        Queues {
            next_id: 1,
            waiters: HashMap::new(),
            locks: HashMap::new(),
            by_handle: HashMap::new(),
        }
    }
}

impl<H: Copy + Eq + Hash> Queues<H> {
    /// Appends a waiter at the back of its lock's queue.
    pub fn push(
        &mut self,
        lock: LockId,
        owner: &[u8],
        terms: (Option<u32>, Option<u16>),
        deadline_ms: Option<i64>,
        caller: Caller,
        handle: H,
    ) -> WaiterId {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let queue = self.locks.entry(lock.clone()).or_insert_with(|| LockQueue {
            order: VecDeque::new(),
            live: 0,
        });
        queue.order.push_back(id);
        queue.live += 1;
        self.by_handle.insert(handle, id);
        self.waiters.insert(
            id,
            Waiter {
                id,
                lock,
                owner: owner.into(),
                terms,
                deadline_ms,
                caller,
                handle,
            },
        );
        id
    }

    /// The first live waiter of a lock.
    pub fn head(&mut self, lock: &LockId) -> Option<&Waiter<H>> {
        let queue = self.locks.get_mut(lock)?;
        while let Some(id) = queue.order.front() {
            if self.waiters.contains_key(id) {
                return self.waiters.get(id);
            }
            queue.order.pop_front();
        }
        None
    }

    /// Takes a waiter out, wherever it is in its queue.
    pub fn remove(&mut self, id: WaiterId) -> Option<Waiter<H>> {
        let waiter = self.waiters.remove(&id)?;
        self.by_handle.remove(&waiter.handle);
        if let Some(queue) = self.locks.get_mut(&waiter.lock) {
            queue.live = queue.live.saturating_sub(1);
            if queue.live == 0 {
                self.locks.remove(&waiter.lock);
            } else if queue.order.len() > 2 * queue.live + 8 {
                // Departures from behind the head leave ids in `order`; drop
                // them once they outnumber the live waiters (amortized O(1)).
                let waiters = &self.waiters;
                queue.order.retain(|id| waiters.contains_key(id));
                queue.order.shrink_to(2 * queue.live + 8);
            }
        }
        Some(waiter)
    }

    /// Ids kept in a lock's queue, departed ones included (for tests).
    #[cfg(test)]
    fn slots(&self, lock: &LockId) -> usize {
        self.locks.get(lock).map_or(0, |q| q.order.len())
    }

    pub fn get(&self, id: WaiterId) -> Option<&Waiter<H>> {
        self.waiters.get(&id)
    }

    /// Live waiters of one lock.
    pub fn len(&self, lock: &LockId) -> usize {
        self.locks.get(lock).map_or(0, |q| q.live)
    }

    /// Live waiters of all locks.
    pub fn total(&self) -> usize {
        self.waiters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    pub fn has_waiters(&self, lock: &LockId) -> bool {
        self.locks.contains_key(lock)
    }

    /// Locks with waiters, in the given database or in all (`None`).
    pub fn locks_in(&self, db: Option<i32>) -> Vec<LockId> {
        self.locks
            .keys()
            .filter(|lock| db.is_none_or(|db| lock.db == db))
            .cloned()
            .collect()
    }

    /// Ids of the waiters of one lock, in queue order.
    pub fn ids_of(&self, lock: &LockId) -> Vec<WaiterId> {
        self.locks.get(lock).map_or_else(Vec::new, |q| {
            q.order
                .iter()
                .copied()
                .filter(|id| self.waiters.contains_key(id))
                .collect()
        })
    }

    /// The first `limit` waiters of one lock, in queue order.
    pub fn waiters_of(&self, lock: &LockId, limit: usize) -> Vec<&Waiter<H>> {
        self.locks.get(lock).map_or_else(Vec::new, |q| {
            q.order
                .iter()
                .filter_map(|id| self.waiters.get(id))
                .take(limit)
                .collect()
        })
    }

    /// Finds a waiter by its handle (disconnect and unblock callbacks).
    pub fn find(&self, handle: &H) -> Option<WaiterId> {
        self.by_handle.get(handle).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(name: &str) -> LockId {
        LockId::new(0, name.as_bytes())
    }

    fn push(q: &mut Queues<u32>, name: &str, owner: &str, handle: u32) -> WaiterId {
        q.push(
            lock(name),
            owner.as_bytes(),
            (None, None),
            None,
            Caller::default(),
            handle,
        )
    }

    #[test]
    fn departures_behind_the_head_do_not_accumulate() {
        let mut q = Queues::default();
        let _head = push(&mut q, "a", "head", 0);
        let ids: Vec<WaiterId> = (1..=20_000).map(|h| push(&mut q, "a", "w", h)).collect();
        for id in ids {
            q.remove(id);
        }
        assert_eq!(q.len(&lock("a")), 1);
        assert!(
            q.slots(&lock("a")) <= 10,
            "{} slots kept",
            q.slots(&lock("a"))
        );
        assert_eq!(q.head(&lock("a")).map(|w| w.handle), Some(0));
    }

    #[test]
    fn fifo_per_lock() {
        let mut q = Queues::default();
        let a = push(&mut q, "x", "a", 1);
        let _b = push(&mut q, "y", "b", 2);
        let c = push(&mut q, "x", "c", 3);
        assert_eq!(q.ids_of(&lock("x")), [a, c]);
        let listed: Vec<WaiterId> = q.waiters_of(&lock("x"), 10).iter().map(|w| w.id).collect();
        assert_eq!(listed, [a, c]);
        assert_eq!(q.waiters_of(&lock("x"), 1).len(), 1);
        assert!(q.waiters_of(&lock("z"), 10).is_empty());
        assert_eq!(q.head(&lock("x")).map(|w| w.id), Some(a));
        assert_eq!(q.remove(a).map(|w| w.handle), Some(1));
        assert_eq!(q.head(&lock("x")).map(|w| &*w.owner), Some(&b"c"[..]));
        assert_eq!((q.len(&lock("x")), q.len(&lock("y")), q.total()), (1, 1, 2));
    }

    #[test]
    fn removing_from_the_middle_keeps_order_and_counts_exact() {
        let mut q = Queues::default();
        let ids: Vec<_> = (0..5).map(|i| push(&mut q, "x", "o", i)).collect();
        q.remove(ids[2]);
        q.remove(ids[0]);
        assert_eq!(q.len(&lock("x")), 3);
        assert_eq!(q.ids_of(&lock("x")), [ids[1], ids[3], ids[4]]);
        assert_eq!(q.head(&lock("x")).map(|w| w.id), Some(ids[1]));
        assert!(q.remove(ids[2]).is_none(), "removed once");
        for id in [ids[1], ids[3], ids[4]] {
            q.remove(id);
        }
        assert!(!q.has_waiters(&lock("x")), "an empty queue is dropped");
        assert!(q.head(&lock("x")).is_none());
        assert!(q.is_empty());
    }

    #[test]
    fn deadlines_are_inclusive() {
        let mut q = Queues::default();
        let id = q.push(
            lock("x"),
            b"o",
            (None, None),
            Some(1000),
            Caller::default(),
            7u32,
        );
        let w = q.get(id).unwrap();
        assert!(!w.timed_out(999));
        assert!(w.timed_out(1000));
        let forever = q.push(lock("x"), b"o", (None, None), None, Caller::default(), 8u32);
        assert!(!q.get(forever).unwrap().timed_out(i64::MAX));
    }

    #[test]
    fn lookups_by_db_and_handle() {
        let mut q = Queues::default();
        q.push(
            LockId::new(0, b"k"),
            b"o",
            (None, None),
            None,
            Caller::default(),
            10u32,
        );
        let other = q.push(
            LockId::new(3, b"k"),
            b"o",
            (None, None),
            None,
            Caller::default(),
            11u32,
        );
        assert_eq!(q.locks_in(Some(3)), [LockId::new(3, b"k")]);
        assert_eq!(q.locks_in(None).len(), 2);
        assert_eq!(q.find(&11), Some(other));
        assert_eq!(q.find(&12), None);
        q.remove(other);
        assert_eq!(q.find(&11), None);
    }
}
