//! The one flat encoding of a lock record ([`Fields`]), shared by the RDB
//! file, the AOF rewrite and HBLOCK.APPLY, validated in one place
//! ([`Fields::to_lease`]). The module's data type (src/datatype.rs) and
//! HBLOCK.APPLY read and write records through it.

use crate::args::parse_i64;
use crate::lease::{Lease, Phase, COUNTER_MAX, NO_CHECK};
use crate::limits::{time_fits, INTERVAL_MAX, INTERVAL_MIN, MISSES_MAX, MISSES_MIN};
use crate::owner::{Owner, MAX_OWNER_LEN};
use crate::permits::Permits;
use crate::varint;

/// The record's numbers, in the order of HBLOCK.APPLY's arguments and of the
/// RDB layout; the owner comes right after the first (the phase). This table
/// is the one description of a record: save, load, digest, APPLY and the
/// COMMAND DOCS of HBLOCK.APPLY (checked by a test) follow it.
pub const NUMBERS: [&str; 8] = [
    "phase",
    "token",
    "interval",
    "misses",
    "beats",
    "granted",
    "last-beat",
    "takeovers",
];
/// The phase's place among the numbers (RDB encoding 1 reads it first).
pub const PHASE: usize = 0;
const TOKEN: usize = 1;
const INTERVAL: usize = 2;
const MISSES: usize = 3;
const BEATS: usize = 4;
const GRANTED: usize = 5;
const LAST_BEAT: usize = 6;
const TAKEOVERS: usize = 7;

/// The first byte of a compact record, naming its layout: 1 = the numbers
/// as 8 little-endian i64 (still read: RDB files and replication streams of
/// earlier builds), 2 = the numbers as varints (written now).
pub const COMPACT_FIXED: u8 = 1;
pub const COMPACT_VARINT: u8 = 2;
const FIXED_NUMBERS: usize = 8 * 8;
/// The longest compact record: tag, numbers, a 1024-byte owner.
pub const COMPACT_MAX: usize = 1 + 8 * varint::MAX_LEN + MAX_OWNER_LEN;

/// A record in the compact form (`Fields::compact`), on the stack.
pub struct Compact {
    bytes: [u8; COMPACT_MAX],
    len: usize,
    /// Where the owner starts.
    owner_at: usize,
}

impl Compact {
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }

    fn put(&mut self, bytes: &[u8]) {
        if let Some(slot) = self.bytes.get_mut(self.len..self.len + bytes.len()) {
            slot.copy_from_slice(bytes);
            self.len += bytes.len();
        }
    }

    /// The varint numbers (without the tag) and the owner, apart.
    pub fn parts(&self) -> (&[u8], &[u8]) {
        let numbers = self.bytes.get(1..self.owner_at).unwrap_or_default();
        let owner = self.bytes.get(self.owner_at..self.len).unwrap_or_default();
        (numbers, owner)
    }
}

/// A record as the owner and its numbers (see [`NUMBERS`]). Times are signed
/// ms; the other numbers are never negative, so all fit an i64 (RDB stores
/// each as the same 64 bits, signed or not).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Fields<'a> {
    pub owner: &'a [u8],
    pub numbers: [i64; 8],
}

impl<'a> Fields<'a> {
    pub fn of(lease: &'a Lease) -> Fields<'a> {
        let mut numbers = [0i64; 8];
        numbers[PHASE] = lease.phase as i64;
        numbers[TOKEN] = lease.token as i64;
        numbers[INTERVAL] = i64::from(lease.interval_ms);
        numbers[MISSES] = i64::from(lease.misses);
        numbers[BEATS] = lease.beats as i64;
        numbers[GRANTED] = lease.granted_ms;
        numbers[LAST_BEAT] = lease.last_beat_ms;
        numbers[TAKEOVERS] = lease.takeovers as i64;
        Fields {
            owner: lease.owner.as_bytes(),
            numbers,
        }
    }

    /// The record, if these fields describe one the commands could have made.
    pub fn to_lease(self) -> Option<Lease> {
        let n = self.numbers;
        let counter = |v: i64| u64::try_from(v).ok().filter(|v| *v <= COUNTER_MAX);
        let phase = Phase::from_code(u64::try_from(n[PHASE]).ok()?)?;
        let token = counter(n[TOKEN])?;
        let owner_ok = match phase {
            Phase::Free => self.owner.is_empty(),
            Phase::Held | Phase::Expired => {
                !self.owner.is_empty() && self.owner.len() <= MAX_OWNER_LEN && token >= 1
            }
        };
        let interval_ok = (INTERVAL_MIN..=INTERVAL_MAX).contains(&n[INTERVAL]);
        let misses_ok = (MISSES_MIN..=MISSES_MAX).contains(&n[MISSES]);
        let times_ok = time_fits(n[GRANTED]) && time_fits(n[LAST_BEAT]);
        if !owner_ok || !interval_ok || !misses_ok || !times_ok {
            return None;
        }
        Some(Lease {
            token,
            granted_ms: n[GRANTED],
            last_beat_ms: n[LAST_BEAT],
            beats: counter(n[BEATS])?,
            takeovers: counter(n[TAKEOVERS])?,
            interval_ms: u32::try_from(n[INTERVAL]).ok()?,
            misses: u16::try_from(n[MISSES]).ok()?,
            phase,
            owner: Owner::new(self.owner),
            check_at: NO_CHECK,
            history_cap: 0,
        })
    }

    /// The arguments after the key, as HBLOCK.APPLY takes them (what the
    /// AOF rewrite's format string produces; used to test `from_args`).
    #[cfg(test)]
    pub fn to_args(self) -> Vec<Vec<u8>> {
        let mut args: Vec<Vec<u8>> = self
            .numbers
            .iter()
            .map(|n| n.to_string().into_bytes())
            .collect();
        args.insert(1, self.owner.to_vec());
        args
    }

    /// The compact form of the record: one binary string, [`COMPACT_VARINT`],
    /// the 8 numbers as varints in [`NUMBERS`] order, then the owner. The
    /// times are zigzag varints, `last-beat` as its distance from `granted`
    /// (wrapping, so every pair round-trips). A typical record is ~40 bytes
    /// with a 17-byte owner, not 82: less to replicate, write and load.
    /// Replication sends it as `HBLOCK.APPLY key <record>` (one argument
    /// object instead of ten); RDB encoding 3 saves its two `parts`.
    pub fn compact(&self) -> Compact {
        let mut out = Compact {
            bytes: [0u8; COMPACT_MAX],
            len: 0,
            owner_at: 0,
        };
        out.put(&[COMPACT_VARINT]);
        let mut buf = [0u8; varint::MAX_LEN];
        for code in self.codes() {
            out.put(varint::encode(code, &mut buf));
        }
        out.owner_at = out.len;
        out.put(self.owner);
        out
    }

    /// The numbers as the compact form's varints hold them: the times
    /// zigzagged, `last-beat` as its distance from `granted` (wrapping).
    fn codes(&self) -> [u64; 8] {
        let mut codes = self.numbers.map(|n| n as u64);
        codes[GRANTED] = varint::zigzag(self.numbers[GRANTED]);
        codes[LAST_BEAT] =
            varint::zigzag(self.numbers[LAST_BEAT].wrapping_sub(self.numbers[GRANTED]));
        codes
    }

    /// Reads the compact form (see `compact`; both layouts); ranges are
    /// checked by `to_lease`.
    pub fn from_compact(bytes: &'a [u8]) -> Option<Fields<'a>> {
        let (&tag, rest) = bytes.split_first()?;
        let mut numbers = [0i64; 8];
        let owner = match tag {
            COMPACT_FIXED => {
                if rest.len() < FIXED_NUMBERS {
                    return None;
                }
                let (numbers_bytes, owner) = rest.split_at(FIXED_NUMBERS);
                for (slot, chunk) in numbers.iter_mut().zip(numbers_bytes.chunks_exact(8)) {
                    *slot = i64::from_le_bytes(chunk.try_into().ok()?);
                }
                owner
            }
            COMPACT_VARINT => return Fields::from_parts(rest),
            _ => return None,
        };
        Some(Fields { owner, numbers })
    }

    /// Reads the varint numbers of the compact form (no tag), then takes the
    /// bytes after them as the owner.
    pub fn from_parts(bytes: &'a [u8]) -> Option<Fields<'a>> {
        let mut numbers = [0i64; 8];
        let (mut at, mut granted) = (0, 0);
        for (index, slot) in numbers.iter_mut().enumerate() {
            let code = varint::decode(bytes, &mut at)?;
            *slot = match index {
                GRANTED => varint::unzigzag(code),
                LAST_BEAT => varint::unzigzag(code).wrapping_add(granted),
                _ => code as i64, // round-trips; to_lease checks ranges
            };
            if index == GRANTED {
                granted = *slot;
            }
        }
        let owner = bytes.get(at..)?;
        Some(Fields { owner, numbers })
    }

    /// Parses HBLOCK.APPLY's arguments after the key: the phase, the owner,
    /// then the other numbers (9 in all). Ranges are checked by `to_lease`.
    pub fn from_args(args: &[&'a [u8]]) -> Option<Fields<'a>> {
        let (&phase, rest) = args.split_first()?;
        let (&owner, rest) = rest.split_first()?;
        if rest.len() != NUMBERS.len() - 1 {
            return None;
        }
        let mut numbers = [0i64; 8];
        numbers[PHASE] = parse_i64(phase)?;
        for (slot, arg) in numbers.iter_mut().skip(1).zip(rest) {
            *slot = parse_i64(arg)?;
        }
        Some(Fields { owner, numbers })
    }
}

/// The first byte of a record with permits (`with_permits`): the plain
/// compact record, then the holders. A plain lock never uses it, so its
/// replication and AOF records are what they were.
pub const COMPACT_PERMITS: u8 = 3;

/// The compact form of any record: a plain lock's `Fields::compact`, or
/// for a lock with permits [`COMPACT_PERMITS`], the length of the plain
/// compact record (varint), that record, then the permits
/// (`Permits::encode`). What replication (`HBLOCK.APPLY key <record>`) and
/// the AOF rewrite of a lock with permits carry.
pub fn compact_any(lease: &Lease, out: &mut Vec<u8>) {
    let base = Fields::of(lease).compact();
    match lease.permits() {
        None => out.extend_from_slice(base.as_bytes()),
        Some(permits) => {
            let mut buf = [0u8; varint::MAX_LEN];
            out.push(COMPACT_PERMITS);
            out.extend_from_slice(varint::encode(base.as_bytes().len() as u64, &mut buf));
            out.extend_from_slice(base.as_bytes());
            permits.encode(out);
        }
    }
}

/// Reads what [`compact_any`] wrote (and every older compact layout): the
/// record, with its permits. None for a record the commands could not have
/// made.
pub fn from_compact_any(bytes: &[u8]) -> Option<Lease> {
    let (&tag, rest) = bytes.split_first()?;
    if tag != COMPACT_PERMITS {
        return Fields::from_compact(bytes).and_then(Fields::to_lease);
    }
    let mut at = 0;
    let len = usize::try_from(varint::decode(rest, &mut at)?).ok()?;
    let base = rest.get(at..at.checked_add(len)?)?;
    let permits = rest.get(at + len..)?;
    let mut lease = Fields::from_compact(base).and_then(Fields::to_lease)?;
    attach_permits(&mut lease, permits)?;
    Some(lease)
}

/// Gives a record the permits encoded in `bytes`, if they fit it: the
/// record's own lease is not held (its holders are the permits') and no
/// holder's token is above the last token issued.
pub fn attach_permits(lease: &mut Lease, bytes: &[u8]) -> Option<()> {
    let permits = Permits::decode(bytes)?;
    let fits = lease.phase != Phase::Held
        && permits.holders.iter().all(|h| h.token <= lease.token)
        && !(permits.limit == 1 && permits.holders.is_empty());
    if !fits {
        return None;
    }
    lease.owner.set_permits(Some(permits));
    Some(())
}

/// RDB encoding 5: the whole record as ONE string. The 8 numbers as in
/// `compact` (varints), the owner's length and the owner, the holder
/// history's length and the history, then the permits (nothing for a plain
/// lock).
pub fn save_v5(lease: &Lease, out: &mut Vec<u8>) {
    // Written straight into `out` (not through `compact`'s 1 KB stack
    // record, zeroed for every lock): one reserve, then each varint byte a
    // plain push rather than `varint::encode` + a copy per number.
    let fields = Fields::of(lease);
    let owner = fields.owner;
    let history = lease.owner.history();
    out.reserve(10 * varint::MAX_LEN + owner.len() + history.len());
    for code in fields.codes() {
        varint::push(out, code);
    }
    varint::push(out, owner.len() as u64);
    out.extend_from_slice(owner);
    varint::push(out, history.len() as u64);
    out.extend_from_slice(history);
    if let Some(permits) = lease.permits() {
        permits.encode(out);
    }
}

/// Reads [`save_v5`]'s string. None unless it is a record the commands
/// could have made (the history's entries and tokens checked too).
pub fn load_v5(bytes: &[u8]) -> Option<Lease> {
    let mut numbers = [0i64; 8];
    let (mut at, mut granted) = (0, 0);
    for (index, slot) in numbers.iter_mut().enumerate() {
        let code = varint::decode(bytes, &mut at)?;
        *slot = match index {
            GRANTED => varint::unzigzag(code),
            LAST_BEAT => varint::unzigzag(code).wrapping_add(granted),
            _ => code as i64,
        };
        if index == GRANTED {
            granted = *slot;
        }
    }
    let take = |at: &mut usize| -> Option<&[u8]> {
        let len = usize::try_from(varint::decode(bytes, at)?).ok()?;
        let part = bytes.get(*at..at.checked_add(len)?)?;
        *at += len;
        Some(part)
    };
    let owner = take(&mut at)?;
    let history = take(&mut at)?;
    let permits = bytes.get(at..)?;
    let mut lease = Fields { owner, numbers }.to_lease()?;
    if !history.is_empty() {
        if crate::history::entries(history).is_none() || !crate::history::fits(history, lease.token)
        {
            return None;
        }
        lease.owner.set_history(history.into());
    }
    if !permits.is_empty() {
        attach_permits(&mut lease, permits)?;
    }
    Some(lease)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::Terms;

    fn sample() -> Lease {
        let mut lease = Lease::first(
            b"own\0er",
            Terms {
                interval_ms: 250,
                misses: 4,
            },
            1_700_000_000_000,
        );
        lease.beats = 7;
        lease.takeovers = 2;
        lease
    }

    #[test]
    fn args_round_trip() {
        let lease = sample();
        let args = Fields::of(&lease).to_args();
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let back = Fields::from_args(&refs).and_then(Fields::to_lease);
        assert_eq!(back, Some(lease));
    }

    #[test]
    fn compact_round_trip_and_refusals() {
        for owner in [&b"own\0er"[..], &[b'L'; MAX_OWNER_LEN][..]] {
            let mut lease = sample();
            lease.owner = Owner::new(owner);
            let record = Fields::of(&lease).compact();
            assert!(
                record.as_bytes().len() < 1 + 64 + owner.len(),
                "shorter than fixed"
            );
            let back = Fields::from_compact(record.as_bytes()).and_then(Fields::to_lease);
            assert_eq!(back, Some(lease));
        }
        let buf = Fields::of(&sample()).compact().as_bytes().to_vec();
        assert!(Fields::from_compact(&buf[..4]).is_none(), "short");
        assert!(Fields::from_compact(&[]).is_none());
        let mut other = buf.clone();
        other[0] = 3;
        assert!(Fields::from_compact(&other).is_none(), "unknown layout");
    }

    #[test]
    fn compact_times_round_trip_at_the_extremes() {
        let lease = sample();
        for (granted, last_beat) in [(i64::MIN, i64::MAX), (i64::MAX, i64::MIN), (-5, 3)] {
            let mut fields = Fields::of(&lease);
            fields.numbers[GRANTED] = granted;
            fields.numbers[LAST_BEAT] = last_beat;
            let record = fields.compact();
            assert_eq!(Fields::from_compact(record.as_bytes()), Some(fields));
        }
    }

    #[test]
    fn the_fixed_layout_of_earlier_builds_still_loads() {
        let lease = sample();
        let fields = Fields::of(&lease);
        let mut fixed = vec![COMPACT_FIXED];
        for n in fields.numbers {
            fixed.extend_from_slice(&n.to_le_bytes());
        }
        fixed.extend_from_slice(fields.owner);
        let back = Fields::from_compact(&fixed).and_then(Fields::to_lease);
        assert_eq!(back, Some(lease));
        assert!(Fields::from_compact(&fixed[..64]).is_none(), "short");
    }

    #[test]
    fn records_with_permits_round_trip_compact_and_rdb_5() {
        let mut lease = Lease::never_held(Terms {
            interval_ms: 1000,
            misses: 3,
        });
        lease.set_limit(4, 0);
        for (owner, now) in [(&b"a"[..], 10), (b"b\0", 20), (&[b'L'; 1024][..], 30)] {
            lease
                .acquire(owner, (None, None), lease.terms(), now, 0)
                .unwrap();
        }
        lease.release(b"a", 1, 40);
        lease.history_cap = 3;
        lease.release(b"b\0", 2, 50);
        let plain = sample();
        for record in [lease, plain] {
            let mut bytes = Vec::new();
            compact_any(&record, &mut bytes);
            // The history travels apart (APPLY's second argument).
            let mut back = from_compact_any(&bytes).unwrap();
            back.owner.set_history(record.owner.history().into());
            assert_eq!(back, record);
            let mut v5 = Vec::new();
            save_v5(&record, &mut v5);
            // Encoding 5 starts with the compact record's numbers, then
            // the owner's length and the owner.
            let compact = Fields::of(&record).compact();
            let (numbers, owner) = compact.parts();
            let mut start = numbers.to_vec();
            start.push(owner.len() as u8);
            if owner.len() < 128 {
                start.extend_from_slice(owner);
                assert!(v5.starts_with(&start));
            }
            assert_eq!(load_v5(&v5).as_ref(), Some(&record));
            assert!(load_v5(&v5[..v5.len() - 1]).is_none(), "short");
        }
        // A plain lock's compact record is what it always was.
        let mut bytes = Vec::new();
        compact_any(&sample(), &mut bytes);
        assert_eq!(bytes, Fields::of(&sample()).compact().as_bytes());
    }

    #[test]
    fn impossible_records_are_refused() {
        let lease = sample();
        let good = Fields::of(&lease);
        let long_owner = [b'x'; MAX_OWNER_LEN + 1];
        let changed = |index: usize, value: i64| {
            let mut f = good;
            f.numbers[index] = value;
            f
        };
        let bad = [
            changed(PHASE, 3),
            changed(PHASE, -1),
            Fields { owner: b"", ..good },
            Fields {
                owner: &long_owner,
                ..good
            },
            changed(PHASE, 0), // free but with an owner
            changed(INTERVAL, 0),
            changed(MISSES, 10_001),
            changed(TOKEN, 0),
            changed(TOKEN, -5),
            changed(BEATS, -1),
            changed(TAKEOVERS, -1),
            // Times outside 0..=TIME_MAX_MS: their lease ends would not
            // fit the history (the record could not be saved again).
            changed(GRANTED, i64::MIN),
            changed(GRANTED, -1),
            changed(LAST_BEAT, crate::limits::TIME_MAX_MS + 1),
            changed(LAST_BEAT, i64::MAX),
        ];
        for fields in bad {
            assert_eq!(fields.to_lease(), None, "{fields:?}");
        }
        assert!(Fields::from_args(&[b"1"]).is_none());
    }
}
