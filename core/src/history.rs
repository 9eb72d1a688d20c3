//! A lock's holder history (opt-in, `hblock.history` N): its last N lease
//! ends, newest first, kept inside the record as one compact byte string,
//! the same bytes in memory, in the RDB file, in HBLOCK.APPLY and in the
//! digest (so there is one encoding, validated in one place, `entries`).
//!
//! Each entry: the owner's length (varint) and bytes, the token (varint),
//! the grant time (zigzag varint, ms), the end time as its distance from the
//! grant (zigzag varint, wrapping), then how it ended (one byte, [`How`]).
//! About 28 bytes with a 17-byte owner.

use crate::limits::{time_fits, OWNER_MAX_LEN as MAX_OWNER_LEN, TOKEN_MAX};
use crate::varint;

/// The most entries a lock keeps (`hblock.history`'s maximum).
pub const HISTORY_MAX: usize = 100;

/// How a lease ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum How {
    /// Its holder released it (HBLOCK.RELEASE).
    Released = 0,
    /// Its deadline passed without a beat (seen by the timer, a command or a
    /// takeover; the end time is the deadline).
    Expired = 1,
    /// Bound (BIND) to a connection that closed and was not re-bound within
    /// its grace.
    Unbound = 2,
    /// Granted to a blocked client that disconnected before it read its
    /// token: the server took the grant back.
    Undone = 3,
}

impl How {
    pub fn name(self) -> &'static str {
        match self {
            How::Released => "released",
            How::Expired => "expired",
            How::Unbound => "unbound",
            How::Undone => "undone",
        }
    }

    fn from_code(code: u8) -> Option<How> {
        match code {
            0 => Some(How::Released),
            1 => Some(How::Expired),
            2 => Some(How::Unbound),
            3 => Some(How::Undone),
            _ => None,
        }
    }
}

/// One lease end.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Entry<'a> {
    pub owner: &'a [u8],
    pub token: u64,
    pub granted_ms: i64,
    pub ended_ms: i64,
    pub how: How,
}

impl Entry<'_> {
    fn encode_into(&self, out: &mut Vec<u8>) {
        let mut buf = [0u8; varint::MAX_LEN];
        out.extend_from_slice(varint::encode(self.owner.len() as u64, &mut buf));
        out.extend_from_slice(self.owner);
        out.extend_from_slice(varint::encode(self.token, &mut buf));
        out.extend_from_slice(varint::encode(varint::zigzag(self.granted_ms), &mut buf));
        let length = self.ended_ms.wrapping_sub(self.granted_ms);
        out.extend_from_slice(varint::encode(varint::zigzag(length), &mut buf));
        out.push(self.how as u8);
    }
}

/// Reads one entry at `at`, moving past it; None when malformed.
fn decode<'a>(bytes: &'a [u8], at: &mut usize) -> Option<Entry<'a>> {
    let owner_len = usize::try_from(varint::decode(bytes, at)?).ok()?;
    if owner_len == 0 || owner_len > MAX_OWNER_LEN {
        return None;
    }
    let owner = bytes.get(*at..at.checked_add(owner_len)?)?;
    *at += owner_len;
    let token = varint::decode(bytes, at)?;
    if token == 0 || token > TOKEN_MAX as u64 {
        return None;
    }
    let granted_ms = varint::unzigzag(varint::decode(bytes, at)?);
    let ended_ms = granted_ms.wrapping_add(varint::unzigzag(varint::decode(bytes, at)?));
    let how = How::from_code(*bytes.get(*at)?)?;
    *at += 1;
    Some(Entry {
        owner,
        token,
        granted_ms,
        ended_ms,
        how,
    })
}

/// The entries of an encoded history, newest first; None when the bytes
/// are not a history this module could have written (at most
/// [`HISTORY_MAX`] well-formed entries).
pub fn entries(bytes: &[u8]) -> Option<Vec<Entry<'_>>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if out.len() == HISTORY_MAX {
            return None;
        }
        out.push(decode(bytes, &mut at)?);
    }
    Some(out)
}

/// The latest time an entry may carry, Unix ms: 9999-12-31T23:59:59.999Z.
pub use crate::limits::TIME_MAX_MS;

/// Whether `bytes` is a history that a record whose token is `token`
/// could hold: well-formed ([`entries`]), each entry's token at most the
/// record's (a record's token never goes down, and its history holds its
/// own past leases), and its times within 0..=[`TIME_MAX_MS`] (the
/// server's clock; `expired` ends at the deadline, which has passed). An
/// end before its grant is kept: the clock may have stepped back.
pub fn fits(bytes: &[u8], token: u64) -> bool {
    entries(bytes).is_some_and(|list| {
        list.iter()
            .all(|e| e.token <= token && time_fits(e.granted_ms) && time_fits(e.ended_ms))
    })
}

/// `history` with `entry` in front, keeping at most `cap` entries in all
/// (0: empty). `history` is trusted (it was validated when it arrived).
pub fn pushed(history: &[u8], entry: &Entry, cap: usize) -> Vec<u8> {
    let mut out = Vec::new();
    if cap == 0 {
        return out;
    }
    entry.encode_into(&mut out);
    let mut at = 0;
    for _ in 1..cap.min(HISTORY_MAX) {
        let start = at;
        if start >= history.len() || decode(history, &mut at).is_none() {
            break;
        }
        out.extend_from_slice(history.get(start..at).unwrap_or_default());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(owner: &[u8], token: u64, how: How) -> Entry<'_> {
        Entry {
            owner,
            token,
            granted_ms: 1_700_000_000_000 + token as i64,
            ended_ms: 1_700_000_005_000 + token as i64,
            how,
        }
    }

    #[test]
    fn newest_first_capped() {
        let mut history = Vec::new();
        for token in 1..=5 {
            history = pushed(
                &history,
                &entry(b"worker-1.host-abc", token, How::Released),
                3,
            );
        }
        let listed = entries(&history).unwrap();
        let tokens: Vec<u64> = listed.iter().map(|e| e.token).collect();
        assert_eq!(tokens, [5, 4, 3]);
        assert_eq!(listed[0], entry(b"worker-1.host-abc", 5, How::Released));
        let one = pushed(&history, &entry(b"x", 6, How::Expired), 1);
        assert_eq!(entries(&one).unwrap().len(), 1);
        assert!(pushed(&history, &entry(b"x", 6, How::Expired), 0).is_empty());
        // A 17-byte owner costs 28 bytes an entry.
        let single = pushed(&[], &entry(b"worker-1.host-abc", 5, How::Released), 1);
        assert_eq!(single.len(), 28);
    }

    #[test]
    fn round_trip_at_the_extremes_and_every_how() {
        let mut history = Vec::new();
        let hows = [How::Released, How::Expired, How::Unbound, How::Undone];
        for (i, how) in hows.into_iter().enumerate() {
            let e = Entry {
                owner: &[0u8, 255, 7],
                token: TOKEN_MAX as u64 - i as u64,
                granted_ms: i64::MIN + i as i64,
                ended_ms: i64::MAX,
                how,
            };
            history = pushed(&history, &e, HISTORY_MAX);
            assert_eq!(entries(&history).unwrap()[0], e);
        }
        let names: Vec<&str> = entries(&history)
            .unwrap()
            .iter()
            .map(|e| e.how.name())
            .collect();
        assert_eq!(names, ["undone", "unbound", "expired", "released"]);
    }

    #[test]
    fn malformed_histories_are_refused() {
        let good = pushed(&[], &entry(b"own", 1, How::Expired), 5);
        assert!(entries(&good[..good.len() - 1]).is_none(), "short");
        let mut bad_how = good.clone();
        *bad_how.last_mut().unwrap() = 9;
        assert!(entries(&bad_how).is_none());
        let mut no_owner = good.clone();
        no_owner[0] = 0;
        assert!(entries(&no_owner).is_none());
        let zero_token = pushed(&[], &entry(b"own", 0, How::Expired), 5);
        assert!(entries(&zero_token).is_none());
        let mut too_many = Vec::new();
        for _ in 0..=HISTORY_MAX {
            entry(b"o", 1, How::Released).encode_into(&mut too_many);
        }
        assert!(entries(&too_many).is_none());
        assert_eq!(entries(&[]).map(|e| e.len()), Some(0));
    }

    #[test]
    fn a_history_fits_its_record_token_and_the_clock() {
        let good = pushed(&[], &entry(b"own", 7, How::Expired), 5);
        assert!(fits(&good, 7) && fits(&good, 8) && fits(&[], 1));
        assert!(!fits(&good, 6), "a token above the record's");
        let forged = Entry {
            owner: b"x",
            token: TOKEN_MAX as u64,
            granted_ms: i64::MIN,
            ended_ms: i64::MAX,
            how: How::Released,
        };
        assert!(!fits(&pushed(&[], &forged, 5), TOKEN_MAX as u64));
        let stepped_back = Entry {
            owner: b"x",
            token: 1,
            granted_ms: 1_700_000_000_000,
            ended_ms: 1_699_999_999_000,
            how: How::Released,
        };
        assert!(
            fits(&pushed(&[], &stepped_back, 5), 1),
            "a clock step back is kept"
        );
        for bad in [-1, TIME_MAX_MS + 1] {
            let e = Entry {
                granted_ms: bad,
                ..stepped_back
            };
            assert!(!fits(&pushed(&[], &e, 5), 1));
            let e = Entry {
                ended_ms: bad,
                ..stepped_back
            };
            assert!(!fits(&pushed(&[], &e, 5), 1));
        }
        assert!(!fits(&good[..good.len() - 1], 7));
    }
}
