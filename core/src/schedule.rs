//! What must happen at a given time: a lease's deadline (check it, publish its
//! expiry, hand the lock to the next waiter) or the end of a waiter's WAIT.
//! Pure data with the clock passed in; one module timer armed at `next_due`
//! drives it (src/blocking.rs arms it, src/events/timer.rs handles it).
//!
//! The lock record remembers when its check is scheduled (`Lease::check_at`),
//! so no per-lock map is needed: beats move deadlines later without touching
//! the schedule (a check that fires early finds the lease still held and is
//! scheduled again), and only an earlier deadline replaces the entry. An entry
//! the record no longer points at (after RENAME, APPLY, promotion) only costs
//! one redundant check when it fires.

use crate::check_runs::Staged;
use crate::checks::LeaseChecks;
use crate::queue::{LockId, WaiterId};
use std::collections::BTreeSet;

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Due {
    /// Check `lock`; `at` is the time this entry was scheduled for.
    Lease {
        lock: LockId,
        at: i64,
    },
    WaitEnd(WaiterId),
}

/// Keeps a WAIT end cancellable.
pub type WaitSlot = (i64, WaiterId);

#[derive(Default)]
pub struct Schedule {
    leases: LeaseChecks,
    waits: BTreeSet<WaitSlot>,
}

impl Schedule {
    /// Makes sure `lock` is checked no later than `when`. `current` is the
    /// check its record says it has. Returns the check time to record.
    pub fn lease_check(&mut self, lock: &LockId, current: Option<i64>, when: i64) -> i64 {
        if let Some(at) = current {
            if at <= when {
                return at;
            }
            self.leases.remove(at, lock);
        }
        self.leases.insert(when, lock);
        when
    }

    /// Adds the lease checks noted while a data set loaded.
    pub fn lease_checks_loaded(&mut self, staged: Staged) {
        self.leases.insert_staged(staged);
    }

    /// Schedules the end of a WAIT; keep the slot to cancel it.
    pub fn wait_end(&mut self, waiter: WaiterId, when: i64) -> WaitSlot {
        self.waits.insert((when, waiter));
        (when, waiter)
    }

    pub fn cancel_wait(&mut self, slot: WaitSlot) {
        self.waits.remove(&slot);
    }

    /// The earliest time something is due.
    pub fn next_due(&self) -> Option<i64> {
        let lease = self.leases.first();
        let wait = self.waits.first().map(|(at, _)| *at);
        match (lease, wait) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Takes everything due at or before `now`: WAIT ends first (a waiter
    /// whose WAIT ran out is never granted), then lease checks, each in time
    /// order.
    pub fn take_due(&mut self, now: i64) -> Vec<Due> {
        let after = now.checked_add(1);
        let waits = match after {
            Some(after) => {
                let later = self.waits.split_off(&(after, 0));
                std::mem::replace(&mut self.waits, later)
            }
            None => std::mem::take(&mut self.waits),
        };
        let leases = self.leases.take_before(after);
        let waits = waits.into_iter().map(|(_, id)| Due::WaitEnd(id));
        let leases = leases.into_iter().map(|(at, lock)| Due::Lease { lock, at });
        waits.chain(leases).collect()
    }

    /// Takes only the WAIT ends due at or before `now` (while writes are
    /// paused, lease checks stay scheduled).
    pub fn take_due_waits(&mut self, now: i64) -> Vec<Due> {
        let later = match now.checked_add(1) {
            Some(after) => self.waits.split_off(&(after, 0)),
            None => BTreeSet::new(),
        };
        let due = std::mem::replace(&mut self.waits, later);
        due.into_iter().map(|(_, id)| Due::WaitEnd(id)).collect()
    }

    /// Lease checks of one database move to another (SWAPDB).
    pub fn swap_dbs(&mut self, a: i32, b: i32) {
        self.leases.swap_dbs(a, b);
    }

    /// A flush emptied databases `dbs` (None: every database): their lease
    /// checks go. Only for databases that hold no key at all, or live
    /// leases would never be checked again.
    pub fn drop_lease_checks(&mut self, dbs: Option<&[i32]>) {
        match dbs {
            Some(dbs) => self.leases.drop_dbs(dbs),
            None => self.leases.clear(),
        }
    }

    /// The locks of databases `dbs` with a lease check (every held lease).
    pub fn locks_in(&self, dbs: &[i32]) -> Vec<LockId> {
        self.leases.locks_in(dbs)
    }

    /// Brings every lease check due before `until` forward to `now` (after a
    /// replica is promoted, expired leases are handled at once).
    pub fn advance_leases(&mut self, until: i64, now: i64) {
        self.leases.advance(until, now);
    }

    #[cfg(test)]
    pub fn entries(&self) -> usize {
        self.leases.count() + self.waits.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(name: &str) -> LockId {
        LockId::new(0, name.as_bytes())
    }

    fn lease(name: &str, at: i64) -> Due {
        Due::Lease {
            lock: lock(name),
            at,
        }
    }

    #[test]
    fn due_in_time_order_waits_first_and_inclusive() {
        let mut s = Schedule::default();
        s.lease_check(&lock("b"), None, 200);
        s.lease_check(&lock("a"), None, 100);
        let w = s.wait_end(7, 100);
        assert_eq!(s.next_due(), Some(100));
        assert_eq!(s.take_due(99), []);
        assert_eq!(s.take_due(100), [Due::WaitEnd(7), lease("a", 100)]);
        assert_eq!(s.next_due(), Some(200));
        s.cancel_wait(w); // already taken: harmless
        assert_eq!(s.take_due(i64::MAX), [lease("b", 200)]);
        assert_eq!(s.next_due(), None);
    }

    #[test]
    fn while_paused_only_wait_ends_are_taken() {
        let mut s = Schedule::default();
        s.lease_check(&lock("b"), None, 50);
        s.lease_check(&lock("a"), None, 20);
        s.wait_end(3, 40);
        s.wait_end(4, 500);
        assert_eq!(s.take_due_waits(100), [Due::WaitEnd(3)]);
        assert_eq!(s.take_due_waits(i64::MAX), [Due::WaitEnd(4)]);
        // The expiries kept their order for when the pause ends.
        assert_eq!(s.take_due(100), [lease("a", 20), lease("b", 50)]);
    }

    #[test]
    fn the_record_keeps_one_check_at_the_earliest_time() {
        let mut s = Schedule::default();
        let at = s.lease_check(&lock("a"), None, 500);
        // A later deadline: the 500 check will re-check, nothing added.
        assert_eq!(s.lease_check(&lock("a"), Some(at), 900), 500);
        assert_eq!(s.entries(), 1);
        // Shorter terms: the entry moves earlier.
        let at = s.lease_check(&lock("a"), Some(at), 300);
        assert_eq!((at, s.entries(), s.next_due()), (300, 1, Some(300)));
        assert_eq!(s.take_due(1000), [lease("a", 300)]);
        // Consumed: the record forgets it and a new check can be made.
        assert_eq!(s.lease_check(&lock("a"), None, 1500), 1500);
        assert_eq!(s.next_due(), Some(1500));
    }

    #[test]
    fn cancelled_waits_never_fire() {
        let mut s = Schedule::default();
        let slot = s.wait_end(1, 50);
        s.wait_end(2, 60);
        s.cancel_wait(slot);
        assert_eq!(s.take_due(100), [Due::WaitEnd(2)]);
    }

    #[test]
    fn swapdb_moves_lease_checks() {
        let mut s = Schedule::default();
        for (db, at) in [(0, 10), (1, 20), (2, 30)] {
            s.lease_check(&LockId::new(db, b"k"), None, at);
        }
        s.swap_dbs(0, 1);
        let due = s.take_due(100);
        let dbs: Vec<i32> = due
            .iter()
            .map(|d| match d {
                Due::Lease { lock, .. } => lock.db,
                Due::WaitEnd(_) => -1,
            })
            .collect();
        assert_eq!(dbs, [1, 0, 2]);
    }

    #[test]
    fn promotion_brings_overdue_checks_forward() {
        let mut s = Schedule::default();
        s.lease_check(&lock("overdue"), None, 1_100);
        s.lease_check(&lock("later"), None, 50_000);
        s.advance_leases(1_200, 1_000);
        assert_eq!(s.take_due(1_000), [lease("overdue", 1_000)]);
        assert_eq!(s.next_due(), Some(50_000));
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let mut s = Schedule::default();
        s.lease_check(&lock("a"), None, i64::MAX);
        s.wait_end(1, i64::MIN);
        assert_eq!(s.take_due(i64::MAX).len(), 2);
    }
}
