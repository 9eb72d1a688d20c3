//! The lease checks of a loaded data set: staged while it loads (`Staged`,
//! two growing buffers, no allocation per lock), then kept as one run
//! (`Run`): the entries where they were staged, and a `(time, offset)`
//! pair per entry sorted by time. The schedule's other checks live
//! in a bucket per millisecond (checks.rs); a bucket each for a million
//! loaded locks cost an allocation (and its free at the next flush) per
//! distinct deadline, a tree insert each, and growing every bucket.
//!
//! Entries are `varint(db) varint(key length) key`, as in the buckets.

use crate::check_entries::{encode, Entries};
use crate::queue::LockId;

/// Checks noted while a data set loads, in the order they came (the RDB's
/// hash order, so no time order): each an `(time, offset)` pair and its
/// entry appended to one buffer. The pairs are packed as a run keeps them
/// (`Index`) while every time is within 2^31 ms of the first one: staging
/// a million checks in fresh memory (16 bytes a pair, and as much again to
/// sort them) was page faults worth ~10% of a reload.
#[derive(Default)]
pub struct Staged {
    packed: Vec<u64>,
    base: i64,
    /// Every pair, once one did not fit packed.
    wide: Vec<(i64, usize)>,
    bytes: Chunks,
}

impl Staged {
    pub fn push(&mut self, at: i64, db: i32, key: &[u8]) {
        let offset = self.bytes.push(db, key);
        if self.wide.is_empty() {
            if self.packed.is_empty() {
                self.base = at.saturating_sub(1 << 31);
            }
            if let Some(pair) = pack(self.base, at, offset) {
                self.packed.push(pair);
                return;
            }
            let base = self.base;
            self.wide = self.packed.iter().map(|&pair| unpack(base, pair)).collect();
            self.packed = Vec::new();
        }
        self.wide.push((at, offset));
    }

    pub fn is_empty(&self) -> bool {
        self.packed.is_empty() && self.wide.is_empty()
    }
}

/// Loaded checks in time order: the staged entries stay where they were
/// staged, and `index` lists them as `(time, offset)` sorted by time (8
/// bytes a lock, packed, on top of the entry itself).
/// Laying the entries out again in time order cost a random read per lock
/// (the RDB brings them in hash order), slower by wall clock than the
/// per-deadline buckets it replaced. Entries before `next` were taken. An
/// entry is never removed alone: one its record no longer points at only
/// costs a redundant check when it fires, as in the buckets.
pub struct Run {
    index: Index,
    bytes: Chunks,
    next: usize,
}

/// A run's sorted `(time, offset)` pairs: packed into one u64 each (the
/// time's distance from `base` above, the offset below 32 bits), half the
/// memory, whenever the run's times span less than 2^32 ms (49 days) and
/// its entries less than 4 GiB; as they are otherwise.
enum Index {
    Packed { base: i64, pairs: Vec<u64> },
    Wide(Vec<(i64, usize)>),
}

impl Index {
    /// `sorted` must be in time order.
    fn new(sorted: Vec<(i64, usize)>, bytes_len: usize) -> Index {
        let (Some(&(base, _)), Some(&(last, _))) = (sorted.first(), sorted.last()) else {
            return Index::Wide(sorted);
        };
        let span_fits = last
            .checked_sub(base)
            .is_some_and(|span| span <= i64::from(u32::MAX));
        if !span_fits || bytes_len > u32::MAX as usize {
            return Index::Wide(sorted);
        }
        let pairs = sorted
            .iter()
            .map(|&(at, offset)| ((at - base) as u64) << 32 | offset as u64)
            .collect();
        Index::Packed { base, pairs }
    }

    fn len(&self) -> usize {
        match self {
            Index::Packed { pairs, .. } => pairs.len(),
            Index::Wide(pairs) => pairs.len(),
        }
    }

    fn get(&self, at: usize) -> Option<(i64, usize)> {
        match self {
            Index::Packed { base, pairs } => pairs.get(at).map(|&pair| unpack(*base, pair)),
            Index::Wide(pairs) => pairs.get(at).copied(),
        }
    }

    /// How many pairs from `from` on are before `until`.
    fn count_before(&self, from: usize, until: i64) -> usize {
        match self {
            Index::Packed { base, pairs } => pairs
                .get(from..)
                .unwrap_or_default()
                .partition_point(|&pair| unpack(*base, pair).0 < until),
            Index::Wide(pairs) => pairs
                .get(from..)
                .unwrap_or_default()
                .partition_point(|(at, _)| *at < until),
        }
    }

    /// The pairs from `from` on.
    fn from(&self, from: usize) -> impl Iterator<Item = (i64, usize)> + '_ {
        (from..self.len()).filter_map(|at| self.get(at))
    }
}

/// Entries in chunks of at most 1 MiB (an entry longer than that gets a
/// chunk of its own); an entry's offset is its chunk's number above
/// `CHUNK_BITS`, its place in the chunk below. jemalloc hands allocations
/// above 8 MiB back to the system as soon as they are freed: one buffer
/// for a million entries was faulted in afresh at every load.
#[derive(Default)]
struct Chunks {
    chunks: Vec<Vec<u8>>,
}

const CHUNK_BITS: u32 = 20;
const CHUNK: usize = 1 << CHUNK_BITS;

impl Chunks {
    /// Appends an entry; returns its offset.
    fn push(&mut self, db: i32, key: &[u8]) -> usize {
        let need = 2 * crate::varint::MAX_LEN + key.len();
        let fits = self
            .chunks
            .last()
            .is_some_and(|last| last.len() + need <= CHUNK);
        if !fits {
            self.chunks.push(Vec::with_capacity(CHUNK.max(need)));
        }
        let number = self.chunks.len() - 1;
        let Some(chunk) = self.chunks.last_mut() else {
            return usize::MAX; // impossible: a chunk was just pushed
        };
        let position = chunk.len();
        encode(chunk, db, key);
        number << CHUNK_BITS | position
    }

    /// The bytes from `offset` to the end of its chunk.
    fn at(&self, offset: usize) -> Option<&[u8]> {
        let chunk = self.chunks.get(offset >> CHUNK_BITS)?;
        chunk.get(offset & (CHUNK - 1)..)
    }

    /// An offset above every entry's.
    fn end(&self) -> usize {
        self.chunks.len() << CHUNK_BITS
    }

    fn shrink_to_fit(&mut self) {
        if let Some(last) = self.chunks.last_mut() {
            last.shrink_to_fit();
        }
        self.chunks.shrink_to_fit();
    }
}

/// `(at, offset)` packed against `base`, if it fits.
fn pack(base: i64, at: i64, offset: usize) -> Option<u64> {
    let delta = u32::try_from(at.checked_sub(base)?).ok()?;
    let offset = u32::try_from(offset).ok()?;
    Some(u64::from(delta) << 32 | u64::from(offset))
}

fn unpack(base: i64, pair: u64) -> (i64, usize) {
    (
        base + (pair >> 32) as i64,
        (pair & u64::from(u32::MAX)) as usize,
    )
}

/// Entries below which a run is not compacted when half of it was taken.
const COMPACT_MIN: usize = 1024;

impl Run {
    /// Sorts the staged checks by time (a stable radix sort: the entries of
    /// one time keep the order they were staged in). None when nothing was
    /// staged.
    pub fn from_staged(staged: Staged) -> Option<Run> {
        let Staged {
            mut packed,
            base,
            mut wide,
            mut bytes,
        } = staged;
        bytes.shrink_to_fit();
        let index = if !wide.is_empty() {
            sort_by_time(&mut wide);
            Index::new(wide, bytes.end())
        } else if !packed.is_empty() {
            radix_sort(&mut packed, |pair| pair >> 32);
            packed.shrink_to_fit();
            Index::Packed {
                base,
                pairs: packed,
            }
        } else {
            return None;
        };
        Some(Run {
            index,
            bytes,
            next: 0,
        })
    }

    /// The database and key of the entry at `offset`.
    fn entry_at(&self, offset: usize) -> Option<(i32, &[u8])> {
        let (_, db, key) = Entries::new(self.bytes.at(offset)?).next()?;
        Some((db, key))
    }

    /// The earliest time not taken yet.
    pub fn first(&self) -> Option<i64> {
        self.index.get(self.next).map(|(at, _)| at)
    }

    pub fn is_done(&self) -> bool {
        self.next >= self.index.len()
    }

    /// Every entry not taken yet, with its time.
    pub fn entries(&self) -> impl Iterator<Item = (i64, i32, &[u8])> + '_ {
        self.index.from(self.next).filter_map(|(at, offset)| {
            let (db, key) = self.entry_at(offset)?;
            Some((at, db, key))
        })
    }

    /// Takes the entries due before `until` (all when None) into `out`.
    pub fn take_before(&mut self, until: Option<i64>, out: &mut Vec<(i64, LockId)>) {
        let due = match until {
            Some(until) => self.index.count_before(self.next, until),
            None => self.index.len().saturating_sub(self.next),
        };
        if due == 0 {
            return;
        }
        for (at, offset) in self.index.from(self.next).take(due) {
            if let Some((db, key)) = self.entry_at(offset) {
                out.push((at, LockId::new(db, key)));
            }
        }
        self.next += due;
        let left = self.index.len() - self.next;
        if !self.is_done() && self.next > left && self.next >= COMPACT_MIN {
            // Half of it was taken: give that memory back.
            self.rewrite(Some);
        }
    }

    /// Rewrites the entries not taken yet: `map` gives an entry's new
    /// database, or None to drop it.
    pub fn rewrite(&mut self, mut map: impl FnMut(i32) -> Option<i32>) {
        let (mut index, mut bytes) = (Vec::new(), Chunks::default());
        for (at, db, key) in self.entries() {
            if let Some(db) = map(db) {
                index.push((at, bytes.push(db, key)));
            }
        }
        bytes.shrink_to_fit();
        *self = Run {
            index: Index::new(index, bytes.end()),
            bytes,
            next: 0,
        };
    }
}

/// Sorts `(time, offset)` pairs by time, stably: an LSD radix sort on the
/// time's distance from the earliest, 11 bits a pass, as many passes as
/// the span of the times needs (two for half an hour of milliseconds).
fn sort_by_time(index: &mut Vec<(i64, usize)>) {
    let Some(min) = index.iter().map(|(at, _)| *at).min() else {
        return;
    };
    radix_sort(index, |(at, _)| at.wrapping_sub(min) as u64);
}

/// Sorts `items` by `key`, stably: LSD radix, 11 bits a pass, as many
/// passes as the largest key needs.
fn radix_sort<T: Copy + Default>(items: &mut Vec<T>, key: impl Fn(&T) -> u64) {
    const BITS: u32 = 11;
    const DIGITS: usize = 1 << BITS;
    let largest = items.iter().map(&key).max().unwrap_or(0);
    let bits = u64::BITS - largest.leading_zeros();
    if bits == 0 {
        return;
    }
    let mut other = vec![T::default(); items.len()];
    let mut shift = 0;
    while shift < bits {
        let digit = |item: &T| ((key(item) >> shift) as usize) & (DIGITS - 1);
        let mut counts = vec![0usize; DIGITS];
        for item in items.iter() {
            if let Some(count) = counts.get_mut(digit(item)) {
                *count += 1;
            }
        }
        let mut total = 0;
        for count in counts.iter_mut() {
            let here = *count;
            *count = total;
            total += here;
        }
        for item in items.iter() {
            if let Some(position) = counts.get_mut(digit(item)) {
                if let Some(slot) = other.get_mut(*position) {
                    *slot = *item;
                }
                *position += 1;
            }
        }
        std::mem::swap(items, &mut other);
        shift += BITS;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_of(checks: &[(i64, i32, &[u8])]) -> Run {
        let mut staged = Staged::default();
        for &(at, db, key) in checks {
            staged.push(at, db, key);
        }
        Run::from_staged(staged).expect("a run")
    }

    fn all(run: &Run) -> Vec<(i64, i32, Vec<u8>)> {
        run.entries()
            .map(|(at, db, key)| (at, db, key.to_vec()))
            .collect()
    }

    #[test]
    fn the_radix_sort_is_stable_and_handles_any_span() {
        let mut seed = 7u64;
        let mut random = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for span in [1u64, 2, 3000, 1 << 22, u64::MAX] {
            let mut index: Vec<(i64, usize)> = (0..5000)
                .map(|offset| ((random() % span) as i64 - 5, offset))
                .collect();
            let mut expected = index.clone();
            expected.sort(); // by time, then by offset: staging order
            sort_by_time(&mut index);
            assert_eq!(index, expected, "span {span}");
        }
        let mut extremes = vec![(i64::MAX, 0), (i64::MIN, 1), (0, 2), (i64::MIN, 3)];
        sort_by_time(&mut extremes);
        assert_eq!(
            extremes,
            [(i64::MIN, 1), (i64::MIN, 3), (0, 2), (i64::MAX, 0)]
        );
    }

    #[test]
    fn a_run_groups_by_time_in_staging_order() {
        let long = vec![b'k'; 300];
        let run = run_of(&[(30, 0, b"c"), (10, 200, &long), (30, 1, b"d"), (10, 0, b"")]);
        assert_eq!(
            all(&run),
            [
                (10, 200, long.clone()),
                (10, 0, vec![]),
                (30, 0, b"c".to_vec()),
                (30, 1, b"d".to_vec())
            ]
        );
        assert!(Run::from_staged(Staged::default()).is_none());
    }

    #[test]
    fn taking_and_compacting_keep_the_rest() {
        let checks: Vec<(i64, i32, Vec<u8>)> = (0..6000)
            .map(|i| (i / 2, (i % 3) as i32, format!("k{i}").into_bytes()))
            .collect();
        let refs: Vec<(i64, i32, &[u8])> = checks
            .iter()
            .map(|(at, db, key)| (*at, *db, key.as_slice()))
            .collect();
        let mut run = run_of(&refs);
        let mut out = Vec::new();
        run.take_before(Some(0), &mut out);
        assert!(out.is_empty());
        run.take_before(Some(2000), &mut out); // 2000 of 3000 times: compacted
        assert_eq!(out.len(), 4000);
        assert_eq!(out.last(), Some(&(1999, LockId::new(0, b"k3999"))));
        assert_eq!((run.next, run.first()), (0, Some(2000)));
        assert_eq!(all(&run).len(), 2000);
        run.rewrite(|db| (db != 1).then_some(db + 10));
        assert!(all(&run).iter().all(|(_, db, _)| *db == 10 || *db == 12));
        out.clear();
        run.take_before(None, &mut out);
        assert_eq!(out.len(), 1333);
        assert!(run.is_done() && run.first().is_none());
    }

    #[test]
    fn runs_whose_times_span_49_days_or_more_keep_wide_pairs() {
        for (times, packed) in [
            ([5, 5 + i64::from(u32::MAX), 7], true),
            ([5, 6 + i64::from(u32::MAX), 7], false),
            ([i64::MIN, i64::MAX, 0], false),
        ] {
            let mut run = run_of(&[
                (times[0], 0, b"a"),
                (times[1], 1, b"b"),
                (times[2], 2, b"c"),
            ]);
            assert_eq!(
                matches!(run.index, Index::Packed { .. }),
                packed,
                "{times:?}"
            );
            let mut sorted = times;
            sorted.sort();
            assert_eq!(run.first(), Some(sorted[0]));
            let mut out = Vec::new();
            run.take_before(Some(sorted[1]), &mut out);
            assert_eq!(out.len(), 1);
            run.take_before(sorted[2].checked_add(1), &mut out);
            let got: Vec<i64> = out.iter().map(|(at, _)| *at).collect();
            assert_eq!(got, sorted);
            let keys: Vec<&[u8]> = out.iter().map(|(_, lock)| &*lock.key).collect();
            assert_eq!(keys.len(), 3);
        }
    }

    #[test]
    fn staging_goes_wide_when_a_time_is_too_far_from_the_first() {
        let far = 1i64 << 40;
        let checks: [(i64, i32, &[u8]); 4] =
            [(10, 0, b"a"), (5, 0, b"b"), (far, 1, b"c"), (5, 2, b"d")];
        let mut staged = Staged::default();
        for (at, db, key) in checks {
            staged.push(at, db, key);
        }
        assert!(staged.packed.is_empty() && staged.wide.len() == 4);
        let run = Run::from_staged(staged).expect("a run");
        let got: Vec<(i64, i32, Vec<u8>)> = all(&run);
        assert_eq!(
            got,
            [
                (5, 0, b"b".to_vec()),
                (5, 2, b"d".to_vec()),
                (10, 0, b"a".to_vec()),
                (far, 1, b"c".to_vec())
            ]
        );
        let mut near = Staged::default();
        near.push(i64::MIN, 0, b"x");
        near.push(i64::MIN + 7, 0, b"y");
        assert_eq!(near.packed.len(), 2);
        let run = Run::from_staged(near).expect("a run");
        assert_eq!(all(&run).first().map(|(at, ..)| *at), Some(i64::MIN));
    }

    #[test]
    fn entries_span_many_chunks_and_a_long_key_gets_its_own() {
        let long = vec![b'L'; CHUNK + 10];
        let names: Vec<Vec<u8>> = (0..100_000)
            .map(|i| format!("{i:020}").into_bytes())
            .collect();
        let mut staged = Staged::default();
        for (i, name) in names.iter().enumerate() {
            staged.push(1_000 - (i % 1000) as i64, 0, name);
            if i == 50_000 {
                staged.push(0, 3, &long);
            }
        }
        assert!(staged.bytes.chunks.len() > 2);
        let run = Run::from_staged(staged).expect("a run");
        let got = all(&run);
        assert_eq!(got.len(), 100_001);
        assert_eq!(got.first(), Some(&(0, 3, long.clone())));
        assert!(got.windows(2).all(|w| w[0].0 <= w[1].0));
        let mut keys: Vec<&Vec<u8>> = got.iter().skip(1).map(|(_, _, key)| key).collect();
        keys.sort();
        assert!(keys.iter().zip(&names).all(|(a, b)| *a == b));
    }
}
