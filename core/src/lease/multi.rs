//! The transitions of a lock with permits (its holders in `owner::Spill`,
//! `permits::Permits`). The record's own fields then describe the lock, not
//! one lease: `token` is the last token issued (G), `takeovers` counts as
//! always, and the per-lease fields (phase, owner, times, beats, terms) are
//! those of the last lease that ended (phase Free or Expired, never Held),
//! which INFO shows while no one holds.
//!
//! Every end of a holder's lease (release, expiry, undone grant, unbound)
//! advances G by one, a number no lease receives: G then changes at every
//! change of the holder set, which is what HBLOCK.WATCH compares.

use super::{Acquired, CoreError, Effects, Lease, NotHeld, Phase, Terms};
use crate::history::How;
use crate::limits::TOKEN_ISSUE_MAX;
use crate::permits::{Holder, Permits};

impl Holder {
    pub fn terms(&self) -> Terms {
        Terms {
            interval_ms: self.interval_ms,
            misses: self.misses,
        }
    }
}

impl Lease {
    /// The permits, if this lock has any (LIMIT > 1, or holders left over
    /// after a lowered limit).
    pub fn permits(&self) -> Option<&Permits> {
        self.owner.permits()
    }

    /// How many owners may hold the lock at once.
    pub fn limit(&self) -> u16 {
        self.permits().map_or(1, |p| p.limit)
    }

    /// Sets the limit (ACQUIRE's LIMIT on a lock nobody holds or waits for,
    /// HBLOCK.LIMIT). Ends no lease: a lowered limit only stops grants until
    /// fewer hold. A plain lock's live lease becomes the first holder.
    /// `changed` when the record changed.
    pub fn set_limit(&mut self, limit: u16, now: i64) -> Effects {
        let mut fx = self.observe_expiry(now);
        if limit == self.limit() {
            return fx;
        }
        fx.changed = true;
        if let Some(permits) = self.owner.permits_mut() {
            permits.limit = limit;
            self.normalize();
            return fx;
        }
        // A plain lock gets permits: its live lease (if any) is the first holder.
        let mut permits = Permits::new(limit);
        if self.phase == Phase::Held {
            permits.holders.reserve_exact(1);
            permits.holders.push(Holder {
                token: self.token,
                granted_ms: self.granted_ms,
                last_beat_ms: self.last_beat_ms,
                beats: self.beats,
                interval_ms: self.interval_ms,
                misses: self.misses,
                owner: self.owner.as_bytes().into(),
            });
            self.phase = Phase::Free;
            self.owner.set(b"");
        }
        self.owner.set_permits(Some(permits));
        fx
    }

    /// ACQUIRE with a LIMIT that becomes the lock's (nobody holds or waits):
    /// the new limit and the grant happen together or not at all. When the
    /// acquire fails or answers Busy, the record is left as it was.
    pub fn acquire_with_limit(
        &mut self,
        limit: u16,
        owner: &[u8],
        (requested, defaults): ((Option<u32>, Option<u16>), Terms),
        now: i64,
        floor: u64,
    ) -> Result<(Acquired, Effects), CoreError> {
        if limit == self.limit() {
            return self.acquire(owner, requested, defaults, now, floor);
        }
        let before = self.clone();
        let limited = self.set_limit(limit, now);
        match self.acquire(owner, requested, defaults, now, floor) {
            Ok((Acquired::Token(token), fx)) => Ok((Acquired::Token(token), limited.and_then(fx))),
            other => {
                *self = before;
                other.map(|(got, _)| (got, Effects::default()))
            }
        }
    }

    /// A lock with permits whose limit is back to 1 and that nobody holds
    /// is a plain lock again.
    pub(super) fn normalize(&mut self) {
        if self
            .permits()
            .is_some_and(|p| p.limit == 1 && p.holders.is_empty())
        {
            self.owner.set_permits(None);
        }
    }

    /// Advances G past a lease that just ended (see the module docs).
    fn burn_token(&mut self) {
        if self.token < TOKEN_ISSUE_MAX {
            self.token += 1;
        }
    }

    /// The lease of `holder` ended at `ended_ms` (`how`): into the history
    /// and the record's per-lease fields; G advances.
    fn holder_ended(&mut self, holder: Holder, ended_ms: i64, how: How) -> bool {
        let lease = (holder.token, holder.granted_ms, ended_ms);
        let cap = self.history_cap;
        let history = self.owner.push_end_of(cap, &holder.owner, lease, how);
        self.granted_ms = holder.granted_ms;
        self.last_beat_ms = holder.last_beat_ms;
        self.beats = holder.beats;
        self.interval_ms = holder.interval_ms;
        self.misses = holder.misses;
        if how == How::Expired {
            self.phase = Phase::Expired;
            self.owner.set(&holder.owner);
        } else {
            self.phase = Phase::Free;
            self.owner.set(b"");
        }
        self.burn_token();
        history
    }

    /// Ends every holder whose deadline has passed, in deadline order.
    pub(super) fn multi_observe_expiry(&mut self, now: i64) -> Effects {
        let mut fx = Effects::default();
        loop {
            let due = self.permits().and_then(|p| {
                p.holders
                    .iter()
                    .enumerate()
                    .filter(|(_, h)| !h.live(now))
                    .min_by_key(|(_, h)| (h.deadline_ms(), h.token))
                    .map(|(i, _)| i)
            });
            let Some(holder) = due.and_then(|i| self.owner.permits_mut()?.remove(i)) else {
                break;
            };
            let deadline = holder.deadline_ms();
            fx.history |= self.holder_ended(holder, deadline, How::Expired);
            fx.changed = true;
            if fx.expired {
                fx.also_expired = fx.also_expired.saturating_add(1);
            }
            fx.expired = true;
        }
        if fx.changed {
            self.normalize();
        }
        fx
    }

    /// ACQUIRE on a lock with permits (`self.observe_expiry` done, `fx` its
    /// effects): the holder's heartbeat, a new holder when a permit is
    /// free, else Busy.
    pub(super) fn multi_acquire(
        &mut self,
        owner: &[u8],
        terms: Terms,
        now: i64,
        floor: u64,
        mut fx: Effects,
    ) -> Result<(Acquired, Effects), CoreError> {
        let token = self.token.max(floor);
        let Some(permits) = self.owner.permits_mut() else {
            return Ok((Acquired::Busy, fx));
        };
        if let Some(holder) = permits.by_owner_mut(owner) {
            holder.interval_ms = terms.interval_ms;
            holder.misses = terms.misses;
            holder.beat(now);
            fx.changed = true;
            return Ok((Acquired::Token(holder.token), fx));
        }
        if permits.holders.len() >= usize::from(permits.limit) {
            return Ok((Acquired::Busy, fx));
        }
        if token >= TOKEN_ISSUE_MAX {
            return Err(CoreError::TokensExhausted);
        }
        let token = token + 1;
        let terms = (terms.interval_ms, terms.misses);
        // Grow by one: a lock with permits pays for the holders it has.
        permits.holders.reserve_exact(1);
        permits.holders.push(Holder::new(owner, token, terms, now));
        self.token = token;
        // A takeover: a grant while the lock's last lease end was an expiry
        // (as on a plain lock, a grant over the expired lease). The record
        // then no longer shows that lease as the last one.
        if self.phase == Phase::Expired {
            self.phase = Phase::Free;
            self.owner.set(b"");
            self.takeovers = self.takeovers.saturating_add(1).min(super::COUNTER_MAX);
            fx.takeover = true;
        }
        fx.changed = true;
        fx.acquired = true;
        Ok((Acquired::Token(token), fx))
    }

    /// BEAT of one holder.
    pub(super) fn multi_beat(
        &mut self,
        owner: &[u8],
        token: u64,
        now: i64,
    ) -> Result<u64, NotHeld> {
        self.multi_check(owner, token, now)?;
        match self.owner.permits_mut().and_then(|p| p.by_owner_mut(owner)) {
            Some(holder) => Ok(holder.beat(now)),
            None => Err(NotHeld::Released),
        }
    }

    /// RELEASE (or the timer's release, `how`) of one holder: true when it
    /// ended that live lease.
    pub(super) fn multi_release(
        &mut self,
        owner: &[u8],
        token: u64,
        now: i64,
        how: How,
    ) -> (bool, Effects) {
        let mut fx = self.observe_expiry(now);
        let index = self.permits().and_then(|p| {
            p.holders
                .iter()
                .position(|h| &*h.owner == owner && h.token == token)
        });
        let Some(holder) = index.and_then(|i| self.owner.permits_mut()?.remove(i)) else {
            return (false, fx);
        };
        fx.history |= self.holder_ended(holder, now, how);
        self.normalize();
        fx.changed = true;
        fx.released = true;
        (true, fx)
    }

    /// Whether (owner, token) holds a live lease of this lock at `now`, and
    /// if not, why.
    pub(super) fn multi_check(&self, owner: &[u8], token: u64, now: i64) -> Result<(), NotHeld> {
        let Some(permits) = self.permits() else {
            return Err(NotHeld::Released);
        };
        match permits.by_owner(owner) {
            Some(h) if h.token != token => Err(NotHeld::TokenMismatch),
            Some(h) if !h.live(now) => Err(NotHeld::Expired),
            Some(_) => Ok(()),
            None if permits.by_token(token).is_some() => Err(NotHeld::OtherOwner),
            None if self.phase == Phase::Expired && self.owner.as_bytes() == owner => {
                Err(NotHeld::Expired)
            }
            // Its lease ended and was not the last one seen expired.
            None => Err(NotHeld::Released),
        }
    }

    /// Ends every holder's lease where it stands (a record arriving at
    /// another name, see `end_in_place`). True when any was held.
    pub(super) fn multi_end_in_place(&mut self) -> bool {
        let Some(permits) = self.owner.permits_mut() else {
            return false;
        };
        let any = !permits.holders.is_empty();
        permits.holders.clear();
        self.normalize();
        any
    }
}
