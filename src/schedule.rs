//! What must happen at a given time: a lease's deadline (check it, publish its
//! expiry, hand the lock to the next waiter) or the end of a waiter's WAIT.
//! Pure data with the clock passed in; one module timer armed at `next_due`
//! drives it (see `blocking.rs`).
//!
//! A lock has at most one lease check. Beats move deadlines later without
//! touching the schedule: a check that fires early finds the lease still held
//! and is scheduled again at the new deadline. Only an earlier deadline (new
//! lease, shorter terms) replaces the entry.

use crate::queue::{LockId, WaiterId};
use std::collections::{BTreeMap, HashMap};

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Due {
    Lease(LockId),
    WaitEnd(WaiterId),
}

/// Position of an entry: when, then insertion order.
pub type Slot = (i64, u64);

#[derive(Default)]
pub struct Schedule {
    entries: BTreeMap<Slot, Due>,
    lease_slots: HashMap<LockId, Slot>,
    seq: u64,
}

impl Schedule {
    fn insert(&mut self, when: i64, due: Due) -> Slot {
        self.seq = self.seq.wrapping_add(1);
        let slot = (when, self.seq);
        self.entries.insert(slot, due);
        slot
    }

    /// Makes sure the lock is checked no later than `when`.
    pub fn lease_check(&mut self, lock: LockId, when: i64) {
        if let Some(&slot) = self.lease_slots.get(&lock) {
            if slot.0 <= when {
                return;
            }
            self.entries.remove(&slot);
        }
        let slot = self.insert(when, Due::Lease(lock.clone()));
        self.lease_slots.insert(lock, slot);
    }

    /// Schedules the end of a WAIT; keep the slot to cancel it.
    pub fn wait_end(&mut self, waiter: WaiterId, when: i64) -> Slot {
        self.insert(when, Due::WaitEnd(waiter))
    }

    pub fn cancel(&mut self, slot: Slot) {
        if let Some(Due::Lease(lock)) = self.entries.remove(&slot) {
            self.lease_slots.remove(&lock);
        }
    }

    /// The earliest time something is due.
    pub fn next_due(&self) -> Option<i64> {
        self.entries.keys().next().map(|&(when, _)| when)
    }

    /// Takes everything due at or before `now`, earliest first.
    pub fn take_due(&mut self, now: i64) -> Vec<Due> {
        let due = match now.checked_add(1) {
            // Sequence numbers start at 1, so (now + 1, 0) precedes every entry at now + 1.
            Some(after) => {
                let later = self.entries.split_off(&(after, 0));
                std::mem::replace(&mut self.entries, later)
            }
            None => std::mem::take(&mut self.entries),
        };
        due.into_values()
            .inspect(|d| {
                if let Due::Lease(lock) = d {
                    self.lease_slots.remove(lock);
                }
            })
            .collect()
    }

    /// Lease checks of one database move to another (SWAPDB).
    pub fn swap_dbs(&mut self, a: i32, b: i32) {
        let swap = |db: i32| match db {
            x if x == a => b,
            x if x == b => a,
            x => x,
        };
        self.lease_slots = self
            .lease_slots
            .drain()
            .map(|(lock, slot)| {
                let moved = LockId {
                    db: swap(lock.db),
                    key: lock.key,
                };
                if let Some(Due::Lease(entry)) = self.entries.get_mut(&slot) {
                    *entry = moved.clone();
                }
                (moved, slot)
            })
            .collect();
    }

    /// Brings every lease check due before `until` forward to `now` (after a
    /// replica is promoted, expired leases are handled at once).
    pub fn advance_leases(&mut self, until: i64, now: i64) {
        let early: Vec<LockId> = self
            .lease_slots
            .iter()
            .filter(|(_, slot)| slot.0 < until)
            .map(|(lock, _)| lock.clone())
            .collect();
        for lock in early {
            self.lease_check(lock, now);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(name: &str) -> LockId {
        LockId::new(0, name.as_bytes())
    }

    #[test]
    fn due_in_time_order_and_inclusive() {
        let mut s = Schedule::default();
        s.lease_check(lock("b"), 200);
        let w = s.wait_end(7, 100);
        s.lease_check(lock("a"), 100);
        assert_eq!(s.next_due(), Some(100));
        assert_eq!(s.take_due(99), []);
        assert_eq!(s.take_due(100), [Due::WaitEnd(7), Due::Lease(lock("a"))]);
        assert_eq!(s.next_due(), Some(200));
        s.cancel(w); // already taken: harmless
        assert_eq!(s.take_due(i64::MAX), [Due::Lease(lock("b"))]);
        assert_eq!(s.next_due(), None);
    }

    #[test]
    fn one_lease_check_per_lock_at_the_earliest_time() {
        let mut s = Schedule::default();
        s.lease_check(lock("a"), 500);
        s.lease_check(lock("a"), 900); // a later deadline: the 500 check re-checks
        assert_eq!(s.len(), 1);
        s.lease_check(lock("a"), 300); // shorter terms: moved earlier
        assert_eq!(s.len(), 1);
        assert_eq!(s.next_due(), Some(300));
        assert_eq!(s.take_due(1000), [Due::Lease(lock("a"))]);
        s.lease_check(lock("a"), 1500); // after firing, a new check can be made
        assert_eq!(s.next_due(), Some(1500));
    }

    #[test]
    fn cancelled_waits_never_fire() {
        let mut s = Schedule::default();
        let slot = s.wait_end(1, 50);
        s.wait_end(2, 60);
        s.cancel(slot);
        assert_eq!(s.take_due(100), [Due::WaitEnd(2)]);
    }

    #[test]
    fn swapdb_moves_lease_checks() {
        let mut s = Schedule::default();
        s.lease_check(LockId::new(0, b"k"), 10);
        s.lease_check(LockId::new(1, b"k"), 20);
        s.lease_check(LockId::new(2, b"k"), 30);
        s.swap_dbs(0, 1);
        assert_eq!(
            s.take_due(100),
            [
                Due::Lease(LockId::new(1, b"k")),
                Due::Lease(LockId::new(0, b"k")),
                Due::Lease(LockId::new(2, b"k")),
            ]
        );
        s.lease_check(LockId::new(1, b"k"), 5);
        assert_eq!(s.len(), 1, "the swapped entry was dropped with take_due");
    }

    #[test]
    fn promotion_brings_overdue_checks_forward() {
        let mut s = Schedule::default();
        s.lease_check(lock("overdue"), 1_100);
        s.lease_check(lock("later"), 50_000);
        s.advance_leases(1_200, 1_000);
        assert_eq!(s.take_due(1_000), [Due::Lease(lock("overdue"))]);
        assert_eq!(s.next_due(), Some(50_000));
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let mut s = Schedule::default();
        s.lease_check(lock("a"), i64::MAX);
        s.wait_end(1, i64::MIN);
        assert_eq!(s.take_due(i64::MAX).len(), 2);
    }
}
