//! Lease checks by time, packed: one byte buffer per millisecond lists the
//! locks to look at then, each as `varint(db) varint(key length) key`.
//!
//! Deadlines are "now + lease", so the locks granted or renewed in the same
//! millisecond with the same terms share one bucket and its map entry: a
//! held lock costs the schedule its key name plus two bytes. A sorted set of
//! `(time, LockId)` cost ~85 bytes per lock at a million locks (a 32-byte
//! entry in tree nodes left half full by in-order inserts, plus the key's own
//! allocation).

use crate::queue::LockId;
use crate::varint;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;

#[derive(Default)]
pub struct LeaseChecks {
    buckets: BTreeMap<i64, Vec<u8>>,
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

    /// Adds the checks of a data set being loaded (`Staged`), in time order:
    /// each bucket is filled in one go and shrunk once. Inserting them one
    /// by one as the RDB delivers them (in hash order, so in no time order)
    /// was ~20% of a load: a tree lookup each, and every bucket growing, and
    /// shrunk, many times. A staged bucket's entries follow those already
    /// at its time, in the order they were staged.
    pub fn insert_staged(&mut self, staged: Staged) {
        let mut buckets: Vec<(i64, Vec<u8>)> = staged.buckets.into_iter().collect();
        buckets.sort_unstable_by_key(|(at, _)| *at);
        for (at, mut bucket) in buckets {
            match self.buckets.get_mut(&at) {
                Some(existing) => {
                    existing.extend_from_slice(&bucket);
                    existing.shrink_to_fit();
                }
                None => {
                    bucket.shrink_to_fit();
                    self.buckets.insert(at, bucket);
                }
            }
        }
    }

    /// Removes one check of `lock` at `at`; nothing when there is none.
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
        self.buckets.first_key_value().map(|(at, _)| *at)
    }

    /// Takes the checks due before `until` (all when None), in time order.
    pub fn take_before(&mut self, until: Option<i64>) -> Vec<(i64, LockId)> {
        let later = match until {
            Some(until) => self.buckets.split_off(&until),
            None => BTreeMap::new(),
        };
        let due = std::mem::replace(&mut self.buckets, later);
        let mut out = Vec::new();
        for (at, bucket) in due {
            out.extend(Entries::new(&bucket).map(|(_, db, key)| (at, LockId::new(db, key))));
        }
        out
    }

    /// Moves every check of one database to the other (SWAPDB).
    pub fn swap_dbs(&mut self, a: i32, b: i32) {
        for bucket in self.buckets.values_mut() {
            let mut swapped = Vec::with_capacity(bucket.len());
            for (_, db, key) in Entries::new(bucket) {
                let db = match db {
                    db if db == a => b,
                    db if db == b => a,
                    db => db,
                };
                encode(&mut swapped, db, key);
            }
            *bucket = swapped;
        }
    }

    /// Drops the checks of databases `dbs` (a flush emptied them).
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
    }

    /// Drops every check (a flush emptied every database).
    pub fn clear(&mut self) {
        self.buckets.clear();
    }

    /// The locks of databases `dbs` that have a check (held leases, and
    /// locks checked again after a change), each once.
    pub fn locks_in(&self, dbs: &[i32]) -> Vec<LockId> {
        let mut locks: Vec<LockId> = self
            .buckets
            .values()
            .flat_map(|bucket| Entries::new(bucket))
            .filter(|(_, db, _)| dbs.contains(db))
            .map(|(_, db, key)| LockId::new(db, key))
            .collect();
        locks.sort();
        locks.dedup();
        locks
    }

    /// Brings every check due before `until` forward to `now` at the latest.
    pub fn advance(&mut self, until: i64, now: i64) {
        let later = self.buckets.split_off(&until);
        let early = std::mem::replace(&mut self.buckets, later);
        for (at, bucket) in early {
            let target = self.buckets.entry(at.min(now)).or_default();
            target.extend_from_slice(&bucket);
        }
    }

    /// How many checks there are (counts them: for tests).
    pub fn count(&self) -> usize {
        self.buckets.values().map(|b| Entries::new(b).count()).sum()
    }
}

/// Checks noted while a data set loads, for [`LeaseChecks::insert_staged`]
/// when it ends: a bucket per time, as the schedule holds them, found by a
/// hash of the time (no allocation per lock, no tree lookup, nothing to
/// sort but the times). Sorting (time, offset) pairs of one staging buffer
/// and encoding every entry a second time cost ~470 instructions per lock.
#[derive(Default)]
pub struct Staged {
    buckets: HashMap<i64, Vec<u8>, BuildHasherDefault<TimeHasher>>,
}

impl Staged {
    pub fn push(&mut self, at: i64, db: i32, key: &[u8]) {
        encode(self.buckets.entry(at).or_default(), db, key);
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

/// A hasher for the staged times: one multiply (the times are the keys a
/// load brings, not chosen by a client, and their low bits vary).
#[derive(Default)]
struct TimeHasher(u64);

impl Hasher for TimeHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn write_i64(&mut self, value: i64) {
        self.0 = (self.0.rotate_left(5) ^ value as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

fn encode(out: &mut Vec<u8>, db: i32, key: &[u8]) {
    // The usual entry: both numbers one byte each.
    if let (Ok(db @ 0..=0x7f), Ok(len @ 0..=0x7f)) = (u8::try_from(db), u8::try_from(key.len())) {
        out.reserve(2 + key.len());
        out.push(db);
        out.push(len);
        out.extend_from_slice(key);
        return;
    }
    let mut buf = [0u8; varint::MAX_LEN];
    // A database number is never negative; the cast round-trips anyway.
    out.extend_from_slice(varint::encode(u64::from(db as u32), &mut buf));
    out.extend_from_slice(varint::encode(key.len() as u64, &mut buf));
    out.extend_from_slice(key);
}

/// The entries of one bucket with their byte ranges. Buckets are only
/// written by `encode`; a malformed one (impossible) just ends early.
struct Entries<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Entries<'a> {
    fn new(bytes: &'a [u8]) -> Entries<'a> {
        Entries { bytes, at: 0 }
    }
}

impl<'a> Iterator for Entries<'a> {
    /// The entry's bytes, its database and its key.
    type Item = (Range<usize>, i32, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let start = self.at;
        let db = varint::decode(self.bytes, &mut self.at)? as u32 as i32;
        let len = usize::try_from(varint::decode(self.bytes, &mut self.at)?).ok()?;
        let end = self.at.checked_add(len)?;
        let key = self.bytes.get(self.at..end)?;
        self.at = end;
        Some((start..end, db, key))
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
    fn a_malformed_bucket_ends_early_instead_of_panicking() {
        for bytes in [&[0x80u8][..], &[0, 5, b'a'], &[0xff; 12]] {
            assert_eq!(Entries::new(bytes).count(), 0);
        }
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
}
