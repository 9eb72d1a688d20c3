//! Lease checks by time, packed: one byte buffer per millisecond lists the
//! locks to look at then, each as `varint(db) varint(key length) key`.
//!
//! Deadlines are "now + lease", so the locks granted or renewed in the same
//! millisecond with the same terms share one bucket and its map entry: a
//! held lock costs the schedule its key name plus two bytes. A sorted set of
//! `(time, LockId)` cost ~85 bytes per lock at a million locks (a 32-byte
//! entry in tree nodes left half full by in-order inserts, plus the key's own
//! allocation).
//!
//! The checks of a loaded data set are kept apart, as one run sorted by time
//! (check_runs.rs), and a flush drops the checks of the databases it emptied.

use crate::check_entries::{encode, Entries};
use crate::check_runs::{Run, Staged};
use crate::queue::LockId;
use std::collections::BTreeMap;

#[derive(Default)]
pub struct LeaseChecks {
    buckets: BTreeMap<i64, Vec<u8>>,
    /// The checks of loaded data sets, each in time order (check_runs.rs).
    runs: Vec<Run>,
}

impl LeaseChecks {
    /// Adds a check of `lock` at `at`.
    pub fn insert(&mut self, at: i64, lock: &LockId) {
        if !self.buckets.contains_key(&at) {
            // Deadlines move forward with the clock: the bucket before a new
            // one is most likely complete, so it gives back its spare room.
            if let Some((_, previous)) = self.buckets.range_mut(..at).next_back() {
                previous.shrink_to_fit();
            }
        }
        encode(self.buckets.entry(at).or_default(), lock.db, &lock.key);
    }

    /// Adds the checks of a data set that loaded (`Staged`) as one run in
    /// time order: no bucket, tree insert or allocation per lock. At one
    /// time, checks in buckets come before those of runs, and runs in the
    /// order they were added.
    pub fn insert_staged(&mut self, staged: Staged) {
        self.runs.extend(Run::from_staged(staged));
    }

    /// Removes one check of `lock` at `at` from its bucket; nothing when
    /// there is none. A loaded check (in a run) stays: it costs one
    /// redundant look when it fires.
    pub fn remove(&mut self, at: i64, lock: &LockId) {
        let Some(bucket) = self.buckets.get_mut(&at) else {
            return;
        };
        let found = Entries::new(bucket).find(|(_, db, key)| *db == lock.db && **key == *lock.key);
        if let Some((range, ..)) = found {
            bucket.drain(range);
        }
        if bucket.is_empty() {
            self.buckets.remove(&at);
        }
    }

    /// The earliest check's time.
    pub fn first(&self) -> Option<i64> {
        let bucket = self.buckets.first_key_value().map(|(at, _)| *at);
        self.runs.iter().filter_map(Run::first).chain(bucket).min()
    }

    /// Takes the checks due before `until` (all when None), in time order.
    pub fn take_before(&mut self, until: Option<i64>) -> Vec<(i64, LockId)> {
        let later = match until {
            Some(until) => self.buckets.split_off(&until),
            None => BTreeMap::new(),
        };
        let due = std::mem::replace(&mut self.buckets, later);
        let mut out = Vec::new();
        let mut sources = 0;
        for (at, bucket) in due {
            sources = 1;
            out.extend(Entries::new(&bucket).map(|(_, db, key)| (at, LockId::new(db, key))));
        }
        for run in &mut self.runs {
            let before = out.len();
            run.take_before(until, &mut out);
            sources += usize::from(out.len() > before);
        }
        self.runs.retain(|run| !run.is_done());
        if sources > 1 {
            out.sort_by_key(|(at, _)| *at); // stable: buckets, then runs
        }
        out
    }

    /// Moves every check of one database to the other (SWAPDB).
    pub fn swap_dbs(&mut self, a: i32, b: i32) {
        let swap = |db: i32| match db {
            db if db == a => b,
            db if db == b => a,
            db => db,
        };
        for bucket in self.buckets.values_mut() {
            let mut swapped = Vec::with_capacity(bucket.len());
            for (_, db, key) in Entries::new(bucket) {
                encode(&mut swapped, swap(db), key);
            }
            *bucket = swapped;
        }
        for run in &mut self.runs {
            run.rewrite(|db| Some(swap(db)));
        }
    }

    /// Drops every check of databases `dbs` (a flush emptied them).
    pub fn drop_dbs(&mut self, dbs: &[i32]) {
        if dbs.is_empty() {
            return;
        }
        self.buckets.retain(|_, bucket| {
            if Entries::new(bucket).any(|(_, db, _)| dbs.contains(&db)) {
                let mut kept = Vec::new();
                for (_, db, key) in Entries::new(bucket).filter(|(_, db, _)| !dbs.contains(db)) {
                    encode(&mut kept, db, key);
                }
                *bucket = kept;
            }
            !bucket.is_empty()
        });
        for run in &mut self.runs {
            if run.entries().any(|(_, db, _)| dbs.contains(&db)) {
                run.rewrite(|db| (!dbs.contains(&db)).then_some(db));
            }
        }
        self.runs.retain(|run| !run.is_done());
    }

    /// Drops every check (a flush emptied every database).
    pub fn clear(&mut self) {
        self.buckets.clear();
        self.runs.clear();
    }

    /// The locks of databases `dbs` that have a check (held leases, and
    /// locks checked again after a change), each once.
    pub fn locks_in(&self, dbs: &[i32]) -> Vec<LockId> {
        let buckets = self
            .buckets
            .values()
            .flat_map(|bucket| Entries::new(bucket))
            .map(|(_, db, key)| (db, key));
        let runs = self
            .runs
            .iter()
            .flat_map(Run::entries)
            .map(|(_, db, key)| (db, key));
        let mut locks: Vec<LockId> = buckets
            .chain(runs)
            .filter(|(db, _)| dbs.contains(db))
            .map(|(db, key)| LockId::new(db, key))
            .collect();
        locks.sort();
        locks.dedup();
        locks
    }

    /// Brings every check due before `until` forward to `now` at the latest.
    pub fn advance(&mut self, until: i64, now: i64) {
        for (at, lock) in self.take_before(Some(until)) {
            encode(
                self.buckets.entry(at.min(now)).or_default(),
                lock.db,
                &lock.key,
            );
        }
    }

    /// How many checks there are (counts them: for tests).
    pub fn count(&self) -> usize {
        let buckets: usize = self.buckets.values().map(|b| Entries::new(b).count()).sum();
        buckets
            + self
                .runs
                .iter()
                .map(|run| run.entries().count())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(db: i32, key: &[u8]) -> LockId {
        LockId::new(db, key)
    }

    #[test]
    fn flushed_databases_lose_their_checks_and_only_theirs() {
        let mut c = LeaseChecks::default();
        for (at, db, key) in [
            (10, 0, &b"a"[..]),
            (10, 1, b"b"),
            (20, 1, b"c"),
            (30, 2, b"d"),
        ] {
            c.insert(at, &lock(db, key));
        }
        c.drop_dbs(&[]);
        assert_eq!(c.count(), 4);
        c.drop_dbs(&[1]);
        assert_eq!(
            c.take_before(None),
            [(10, lock(0, b"a")), (30, lock(2, b"d"))],
            "db 1's checks gone, the 20 ms bucket with them"
        );
        c.insert(40, &lock(3, b"e"));
        c.clear();
        assert_eq!(c.count(), 0);
        assert_eq!(c.first(), None);
    }

    #[test]
    fn staged_checks_join_the_buckets_in_time_order() {
        let mut c = LeaseChecks::default();
        c.insert(20, &lock(0, b"first"));
        let mut staged = Staged::default();
        assert!(staged.is_empty());
        for (at, db, key) in [
            (30, 0, &b"c"[..]),
            (20, 1, b"b"),
            (10, 0, b"a"),
            (30, 2, b"d"),
            (20, 0, b""),
        ] {
            staged.push(at, db, key);
        }
        c.insert_staged(staged);
        assert_eq!(c.count(), 6);
        assert_eq!(
            c.take_before(None),
            [
                (10, lock(0, b"a")),
                (20, lock(0, b"first")),
                (20, lock(1, b"b")),
                (20, lock(0, b"")),
                (30, lock(0, b"c")),
                (30, lock(2, b"d")),
            ]
        );
    }

    #[test]
    fn checks_come_out_in_time_order_then_insertion_order() {
        let mut c = LeaseChecks::default();
        c.insert(20, &lock(0, b"b"));
        c.insert(10, &lock(0, b"z"));
        c.insert(20, &lock(3, b"a"));
        assert_eq!((c.first(), c.count()), (Some(10), 3));
        assert_eq!(c.take_before(Some(20)), [(10, lock(0, b"z"))]);
        assert_eq!(
            c.take_before(None),
            [(20, lock(0, b"b")), (20, lock(3, b"a"))]
        );
        assert_eq!(c.first(), None);
    }

    #[test]
    fn remove_takes_exactly_one_matching_entry() {
        let mut c = LeaseChecks::default();
        let long = vec![7u8; 300]; // a two-byte length
        for key in [&b"a"[..], &long, b"a", b"ab"] {
            c.insert(5, &lock(0, key));
        }
        c.insert(5, &lock(1, b"a"));
        c.remove(5, &lock(0, &long));
        c.remove(5, &lock(0, b"a"));
        c.remove(5, &lock(0, b"missing"));
        c.remove(6, &lock(0, b"a"));
        let left: Vec<LockId> = c.take_before(None).into_iter().map(|(_, l)| l).collect();
        assert_eq!(left, [lock(0, b"a"), lock(0, b"ab"), lock(1, b"a")]);
    }

    #[test]
    fn an_emptied_bucket_is_dropped() {
        let mut c = LeaseChecks::default();
        c.insert(5, &lock(0, b"a"));
        c.insert(9, &lock(0, b"b"));
        c.remove(5, &lock(0, b"a"));
        assert_eq!(c.first(), Some(9));
    }

    #[test]
    fn binary_keys_and_large_dbs_round_trip() {
        let mut c = LeaseChecks::default();
        let keys = [lock(0, b""), lock(i32::MAX, b"\x80\xff\0"), lock(-1, b"x")];
        for k in &keys {
            c.insert(1, k);
        }
        let back: Vec<LockId> = c.take_before(None).into_iter().map(|(_, l)| l).collect();
        assert_eq!(back, keys);
    }

    #[test]
    fn swapdb_and_advance_rewrite_entries() {
        let mut c = LeaseChecks::default();
        c.insert(10, &lock(0, b"k"));
        c.insert(10, &lock(1, b"k"));
        c.insert(30, &lock(2, b"k"));
        c.insert(500, &lock(0, b"late"));
        c.swap_dbs(0, 1);
        c.advance(100, 20);
        assert_eq!(
            c.take_before(None),
            [
                (10, lock(1, b"k")),
                (10, lock(0, b"k")),
                (20, lock(2, b"k")),
                (500, lock(1, b"late"))
            ]
        );
    }

    #[test]
    fn locks_of_some_databases_each_once() {
        let mut c = LeaseChecks::default();
        for (at, db, key) in [(5, 0, &b"a"[..]), (9, 0, b"a"), (5, 1, b"b"), (7, 2, b"c")] {
            c.insert(at, &LockId::new(db, key));
        }
        let got = c.locks_in(&[0, 1]);
        assert_eq!(got, vec![LockId::new(0, b"a"), LockId::new(1, b"b")]);
        assert!(c.locks_in(&[3]).is_empty());
    }

    fn staged(checks: &[(i64, i32, &[u8])]) -> Staged {
        let mut staged = Staged::default();
        for &(at, db, key) in checks {
            staged.push(at, db, key);
        }
        staged
    }

    #[test]
    fn a_flush_drops_the_checks_of_its_databases_only() {
        let mut c = LeaseChecks::default();
        c.insert(10, &lock(0, b"a"));
        c.insert(10, &lock(1, b"b"));
        c.insert(20, &lock(0, b"c"));
        c.insert_staged(staged(&[(15, 0, b"d"), (5, 2, b"e"), (15, 1, b"f")]));
        c.insert_staged(staged(&[(30, 0, b"g")]));
        c.drop_dbs(&[]);
        assert_eq!(c.count(), 7);
        c.drop_dbs(&[0]);
        assert_eq!((c.first(), c.count()), (Some(5), 3));
        assert_eq!(c.locks_in(&[0]), []);
        assert_eq!(
            c.take_before(None),
            [(5, lock(2, b"e")), (10, lock(1, b"b")), (15, lock(1, b"f"))]
        );
        c.insert(10, &lock(3, b"x"));
        c.insert_staged(staged(&[(15, 3, b"y")]));
        c.clear();
        assert_eq!((c.first(), c.count()), (None, 0));
    }

    #[test]
    fn loaded_checks_work_like_the_others() {
        let mut c = LeaseChecks::default();
        c.insert(20, &lock(0, b"bucket"));
        c.insert_staged(staged(&[
            (20, 0, b"run"),
            (40, 1, b"late"),
            (10, 1, b"early"),
        ]));
        assert_eq!((c.first(), c.count()), (Some(10), 4));
        // A loaded check is not removed alone: it fires once more, harmlessly.
        c.remove(20, &lock(0, b"run"));
        assert_eq!(c.count(), 4);
        assert_eq!(c.locks_in(&[1]), [lock(1, b"early"), lock(1, b"late")]);
        c.swap_dbs(0, 1);
        c.advance(30, 15);
        assert_eq!(
            c.take_before(Some(40)),
            [
                (10, lock(0, b"early")),
                (15, lock(1, b"bucket")),
                (15, lock(1, b"run"))
            ]
        );
        assert_eq!(c.first(), Some(40));
        assert_eq!(c.take_before(None), [(40, lock(0, b"late"))]);
        assert_eq!(c.first(), None);
    }
}
