//! The holders of a lock with more than one permit (`ACQUIRE ... LIMIT n`,
//! n > 1): each holder's own lease, in token order, and their compact
//! encoding (RDB, replication, AOF). A LIMIT 1 lock has none of this: its one
//! lease lives in the record's own fields (`lease.rs`), as it always has.
//!
//! The permits hang off the owner's slot (`owner::Spill`), so a LIMIT 1
//! record stays the size it was.

use crate::limits::{
    time_fits, INTERVAL_MAX, INTERVAL_MIN, LIMIT_MAX, LIMIT_MIN, MISSES_MAX, MISSES_MIN,
    OWNER_MAX_LEN, TOKEN_MAX,
};

/// Largest value a token or counter reaches (as `lease::COUNTER_MAX`).
const COUNTER_MAX: u64 = TOKEN_MAX as u64;
use crate::varint;

/// One holder's lease on a lock with permits.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Holder {
    pub token: u64,
    pub granted_ms: i64,
    pub last_beat_ms: i64,
    pub beats: u64,
    pub interval_ms: u32,
    pub misses: u16,
    pub owner: Box<[u8]>,
}

impl Holder {
    /// A new lease granted at `now` on (interval ms, misses).
    pub fn new(owner: &[u8], token: u64, (interval_ms, misses): (u32, u16), now: i64) -> Holder {
        Holder {
            token,
            granted_ms: now,
            last_beat_ms: now,
            beats: 0,
            interval_ms,
            misses,
            owner: owner.into(),
        }
    }

    /// The instant this lease ends unless it beats again (interval *
    /// misses after the last beat; at most 8.64e11 ms, no overflow).
    pub fn deadline_ms(&self) -> i64 {
        let lease_ms = i64::from(self.interval_ms) * i64::from(self.misses);
        self.last_beat_ms.saturating_add(lease_ms)
    }

    /// Live at `now`: its deadline not reached.
    pub fn live(&self, now: i64) -> bool {
        now < self.deadline_ms()
    }

    /// A heartbeat at `now` (BEAT, or the holder's own ACQUIRE).
    pub fn beat(&mut self, now: i64) -> u64 {
        self.last_beat_ms = now;
        self.beats = self.beats.saturating_add(1).min(COUNTER_MAX);
        self.beats
    }
}

/// The permits of a lock: its limit and its holders, in token order.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Permits {
    pub limit: u16,
    pub holders: Vec<Holder>,
}

impl Permits {
    pub fn new(limit: u16) -> Permits {
        Permits {
            limit,
            holders: Vec::new(),
        }
    }

    /// The holder `owner`, if it holds a permit (live or not yet seen expired).
    pub fn by_owner(&self, owner: &[u8]) -> Option<&Holder> {
        self.holders.iter().find(|h| &*h.owner == owner)
    }

    pub fn by_owner_mut(&mut self, owner: &[u8]) -> Option<&mut Holder> {
        self.holders.iter_mut().find(|h| &*h.owner == owner)
    }

    pub fn by_token(&self, token: u64) -> Option<&Holder> {
        self.holders.iter().find(|h| h.token == token)
    }

    /// Holders whose deadline is not reached at `now`.
    pub fn live(&self, now: i64) -> impl Iterator<Item = &Holder> {
        self.holders.iter().filter(move |h| h.live(now))
    }

    /// The earliest deadline of any holder (when the timer must look).
    pub fn next_deadline(&self) -> Option<i64> {
        self.holders.iter().map(Holder::deadline_ms).min()
    }

    /// The live lease that ends first (INFO's per-lease fields), the lowest
    /// token among equal deadlines.
    pub fn first_ending(&self, now: i64) -> Option<&Holder> {
        self.live(now).min_by_key(|h| (h.deadline_ms(), h.token))
    }

    /// Takes out the holder with this index.
    pub fn remove(&mut self, index: usize) -> Option<Holder> {
        (index < self.holders.len()).then(|| self.holders.remove(index))
    }

    /// The compact encoding: limit, count, then per holder token, interval,
    /// misses, beats, granted (zigzag), last beat (zigzag distance from
    /// granted), owner length and owner. Appended to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut buf = [0u8; varint::MAX_LEN];
        let mut put =
            |out: &mut Vec<u8>, n: u64| out.extend_from_slice(varint::encode(n, &mut buf));
        put(out, u64::from(self.limit));
        put(out, self.holders.len() as u64);
        for h in &self.holders {
            put(out, h.token);
            put(out, u64::from(h.interval_ms));
            put(out, u64::from(h.misses));
            put(out, h.beats);
            put(out, varint::zigzag(h.granted_ms));
            put(
                out,
                varint::zigzag(h.last_beat_ms.wrapping_sub(h.granted_ms)),
            );
            put(out, h.owner.len() as u64);
            out.extend_from_slice(&h.owner);
        }
    }

    /// Reads [`encode`](Permits::encode)'s bytes, all of them; None unless
    /// they describe permits the commands could have made (limit in range,
    /// tokens growing, owners distinct and 1..=1024 bytes, terms in range).
    pub fn decode(bytes: &[u8]) -> Option<Permits> {
        let mut at = 0;
        let number = |at: &mut usize| varint::decode(bytes, at);
        let limit = u16::try_from(number(&mut at)?).ok()?;
        if !(LIMIT_MIN..=LIMIT_MAX).contains(&limit) {
            return None;
        }
        let count = usize::try_from(number(&mut at)?).ok()?;
        if count > usize::from(LIMIT_MAX) {
            return None;
        }
        let mut holders: Vec<Holder> = Vec::with_capacity(count);
        for _ in 0..count {
            let token = number(&mut at)?;
            let interval = i64::try_from(number(&mut at)?).ok()?;
            let misses = i64::try_from(number(&mut at)?).ok()?;
            let beats = number(&mut at)?;
            let granted_ms = varint::unzigzag(number(&mut at)?);
            let last_beat_ms = varint::unzigzag(number(&mut at)?).wrapping_add(granted_ms);
            let len = usize::try_from(number(&mut at)?).ok()?;
            let end = at.checked_add(len)?;
            let owner = bytes.get(at..end)?;
            at = end;
            let token_ok = (1..=COUNTER_MAX).contains(&token)
                && holders.last().is_none_or(|last| last.token < token);
            let owner_ok = !owner.is_empty()
                && owner.len() <= OWNER_MAX_LEN
                && !holders.iter().any(|h| &*h.owner == owner);
            if !token_ok
                || !owner_ok
                || beats > COUNTER_MAX
                || !time_fits(granted_ms)
                || !time_fits(last_beat_ms)
                || !(INTERVAL_MIN..=INTERVAL_MAX).contains(&interval)
                || !(MISSES_MIN..=MISSES_MAX).contains(&misses)
            {
                return None;
            }
            holders.push(Holder {
                token,
                granted_ms,
                last_beat_ms,
                beats,
                interval_ms: interval as u32,
                misses: misses as u16,
                owner: owner.into(),
            });
        }
        (at == bytes.len()).then_some(Permits { limit, holders })
    }

    /// Bytes this value allocated beyond itself, as (address, size) pairs
    /// (MEMORY USAGE): the holders' vector and each owner.
    pub fn allocations(&self) -> impl Iterator<Item = (*const u8, usize)> + '_ {
        let vec = (self.holders.capacity() > 0).then(|| {
            (
                self.holders.as_ptr().cast::<u8>(),
                self.holders.capacity() * std::mem::size_of::<Holder>(),
            )
        });
        vec.into_iter().chain(
            self.holders
                .iter()
                .map(|h| (h.owner.as_ptr(), h.owner.len())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: (u32, u16) = (1000, 3);

    fn sample() -> Permits {
        let mut p = Permits::new(3);
        p.holders.push(Holder::new(b"a", 5, T, 100));
        p.holders.push(Holder::new(&[b'x'; 1024], 7, T, 200));
        p.holders[1].beat(1_700_000_000_000);
        p
    }

    #[test]
    fn encoding_round_trips() {
        for p in [Permits::new(2), sample()] {
            let mut bytes = Vec::new();
            p.encode(&mut bytes);
            assert_eq!(Permits::decode(&bytes), Some(p));
        }
    }

    #[test]
    fn impossible_permits_are_refused() {
        let mut bytes = Vec::new();
        sample().encode(&mut bytes);
        assert!(
            Permits::decode(&bytes[..bytes.len() - 1]).is_none(),
            "short"
        );
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Permits::decode(&longer).is_none(), "trailing bytes");
        let mut bad = Vec::new();
        Permits::new(1001).encode(&mut bad);
        assert!(Permits::decode(&bad).is_none(), "limit");
        let mut twice = sample();
        twice.holders[1].owner = b"a".as_slice().into();
        let mut bad = Vec::new();
        twice.encode(&mut bad);
        assert!(Permits::decode(&bad).is_none(), "one owner twice");
        let mut down = sample();
        down.holders[1].token = 5;
        let mut bad = Vec::new();
        down.encode(&mut bad);
        assert!(Permits::decode(&bad).is_none(), "tokens must grow");
        for (granted, last_beat) in [
            (i64::MIN, 100),
            (-1, 100),
            (100, crate::limits::TIME_MAX_MS + 1),
            (100, i64::MAX),
        ] {
            let mut forged = sample();
            forged.holders[0].granted_ms = granted;
            forged.holders[0].last_beat_ms = last_beat;
            let mut bad = Vec::new();
            forged.encode(&mut bad);
            assert!(
                Permits::decode(&bad).is_none(),
                "times {granted} {last_beat}"
            );
        }
        assert!(Permits::decode(&[]).is_none());
    }

    #[test]
    fn first_ending_is_the_earliest_live_deadline() {
        let p = sample();
        assert_eq!(p.first_ending(150).map(|h| h.token), Some(5));
        assert_eq!(p.next_deadline(), Some(3100));
        // Once the first has passed its deadline, the other is first.
        assert_eq!(p.first_ending(3100).map(|h| h.token), Some(7));
        assert_eq!(p.live(3100).count(), 1);
    }
}
