//! One lease check as the schedule packs it: `varint(db) varint(key length)
//! key`, appended to a byte buffer (a bucket per millisecond, checks.rs; a
//! loaded data set's run, check_runs.rs), and the walk over such a buffer.

use crate::varint;
use std::ops::Range;

pub(crate) fn encode(out: &mut Vec<u8>, db: i32, key: &[u8]) {
    // The usual entry: both numbers one byte each.
    if let (Ok(db @ 0..=0x7f), Ok(len @ 0..=0x7f)) = (u8::try_from(db), u8::try_from(key.len())) {
        out.reserve(2 + key.len());
        out.extend_from_slice(&[db, len]);
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
pub(crate) struct Entries<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Entries<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Entries<'a> {
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

    #[test]
    fn a_malformed_bucket_ends_early_instead_of_panicking() {
        for bytes in [&[0x80u8][..], &[0, 5, b'a'], &[0xff; 12]] {
            assert_eq!(Entries::new(bytes).count(), 0);
        }
    }
}
