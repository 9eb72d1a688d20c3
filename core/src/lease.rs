//! The lease state machine: grant, heartbeat, missed-beat counting, expiry,
//! release, fencing tokens and takeovers.
//!
//! Pure Rust with the clock passed in as `now` (milliseconds of the Unix wall
//! clock, the clock Redis uses for PEXPIRE). Nothing here knows about Redis; the
//! command layer loads a [`Lease`], calls one of these methods and then writes,
//! replicates and notifies according to the returned [`Effects`].

use crate::history::How;
use crate::owner::Owner;

mod multi;

/// Largest value any counter or token reaches: Redis integers are signed 64-bit.
pub const COUNTER_MAX: u64 = crate::limits::TOKEN_MAX as u64;
use crate::limits::TOKEN_ISSUE_MAX;

/// `Lease::check_at` when no check is scheduled.
pub const NO_CHECK: i64 = i64::MIN;

/// What the server records about a lock. `phase` is the last state the server
/// *decided*; a `Held` lease whose deadline has passed is expired all the same
/// (see [`Lease::state`]) until a write turns it into `Expired`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Phase {
    Free = 0,
    Held = 1,
    Expired = 2,
}

impl Phase {
    pub fn from_code(code: u64) -> Option<Phase> {
        match code {
            0 => Some(Phase::Free),
            1 => Some(Phase::Held),
            2 => Some(Phase::Expired),
            _ => None,
        }
    }
}

/// The state a reader sees at a given instant.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum State {
    Free,
    Held,
    Expired,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Free => "free",
            State::Held => "held",
            State::Expired => "expired",
        }
    }
}

/// The lease's heartbeat terms.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Terms {
    /// Heartbeat interval in ms (1..=86_400_000).
    pub interval_ms: u32,
    /// Whole intervals that may pass without a beat (1..=10_000).
    pub misses: u16,
}

impl Terms {
    /// The INTERVAL and MISSES a call gave, the defaults for what it did not.
    pub fn resolve(requested: (Option<u32>, Option<u16>), defaults: Terms) -> Terms {
        Terms {
            interval_ms: requested.0.unwrap_or(defaults.interval_ms),
            misses: requested.1.unwrap_or(defaults.misses),
        }
    }

    /// `interval * misses`: at most 8.64e11 ms, so no overflow in i64.
    pub fn lease_ms(self) -> i64 {
        i64::from(self.interval_ms) * i64::from(self.misses)
    }
}

/// One lock record: one per key.
#[derive(Clone, Debug)]
pub struct Lease {
    /// The last fencing token issued for this key (0 before the first lease).
    pub token: u64,
    /// When the current (or last) lease was granted.
    pub granted_ms: i64,
    /// When the current (or last) lease last beat (the grant counts as a beat).
    pub last_beat_ms: i64,
    /// Beats of the current or last lease; a holder's re-ACQUIRE counts as one.
    pub beats: u64,
    /// Leases granted over an expired lease, over the key's life.
    pub takeovers: u64,
    pub interval_ms: u32,
    pub misses: u16,
    pub phase: Phase,
    /// The holder; empty when free.
    pub owner: Owner,
    /// When the server's timer will look at this lock next (see schedule.rs).
    /// Local bookkeeping: not saved, replicated or digested.
    pub check_at: i64,
    /// Lease ends the holder history keeps at the next end (`hblock.history`
    /// when the record was last opened for writing). Local bookkeeping, in
    /// the record's padding byte: not saved, replicated, digested or compared.
    pub history_cap: u8,
}

/// Records are equal when everything but the local bookkeeping
/// (`history_cap`) is.
impl PartialEq for Lease {
    fn eq(&self, other: &Lease) -> bool {
        self.token == other.token
            && self.granted_ms == other.granted_ms
            && self.last_beat_ms == other.last_beat_ms
            && self.beats == other.beats
            && self.takeovers == other.takeovers
            && self.interval_ms == other.interval_ms
            && self.misses == other.misses
            && self.phase == other.phase
            && self.owner == other.owner
            && self.check_at == other.check_at
    }
}

impl Eq for Lease {}

/// What a transition did, so the caller knows what to write, publish and count.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Effects {
    /// The record changed: write it and replicate it.
    pub changed: bool,
    /// The server has just seen the previous lease expired (`hblock.expired`).
    pub expired: bool,
    /// On a lock with permits: more leases it saw expired in the same step
    /// (one `hblock.expired` each).
    pub also_expired: u16,
    /// A new lease was granted (`hblock.acquired`).
    pub acquired: bool,
    /// The new lease was granted over an expired one.
    pub takeover: bool,
    /// The holder released its lease (`hblock.released`).
    pub released: bool,
    /// The holder history changed (a lease end was recorded, or a lowered
    /// `hblock.history` trimmed it): replicate it with the record.
    pub history: bool,
}

impl Effects {
    /// The effects of this step followed by `next`'s.
    pub fn and_then(self, next: Effects) -> Effects {
        Effects {
            changed: self.changed || next.changed,
            expired: self.expired || next.expired,
            also_expired: self.also_expired.saturating_add(next.also_expired),
            acquired: self.acquired || next.acquired,
            takeover: self.takeover || next.takeover,
            released: self.released || next.released,
            history: self.history || next.history,
        }
    }
}

/// Reply of an ACQUIRE.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Acquired {
    /// The caller holds the lease with this token (new or renewed).
    Token(u64),
    /// Another owner holds an unexpired lease.
    Busy,
}

/// Why a BEAT was refused. Each maps to a `NOTHELD ...` reply.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NotHeld {
    NoSuchLock,
    Released,
    Expired,
    OtherOwner,
    TokenMismatch,
}

/// Errors of the core that are not about who holds the lock.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CoreError {
    /// The next token would pass `TOKEN_ISSUE_MAX` (2^53 - 1): the key's own
    /// last token or the data set's floor is that high.
    TokensExhausted,
}

/// A read-only view of a lock at an instant, as HBLOCK.INFO reports it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct View<'a> {
    pub state: State,
    pub owner: Option<&'a [u8]>,
    pub token: u64,
    pub interval_ms: u32,
    pub misses: u16,
    pub missed: u64,
    pub ttl_ms: i64,
    pub beats: u64,
    pub age_ms: i64,
    pub takeovers: u64,
    /// How many may hold at once, and how many hold now.
    pub limit: u16,
    pub holders: u64,
}

/// One live lease of a lock, as HBLOCK.HOLDERS reports it (INFO's
/// per-lease fields).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct HolderView<'a> {
    pub owner: &'a [u8],
    pub token: u64,
    pub interval_ms: u32,
    pub misses: u16,
    pub missed: u64,
    pub ttl_ms: i64,
    pub beats: u64,
    pub age_ms: i64,
}

/// The per-lease numbers of one lease at `now`: (missed, ttl, age).
fn lease_numbers(granted_ms: i64, last_beat_ms: i64, terms: Terms, now: i64) -> (u64, i64, i64) {
    let elapsed = now.saturating_sub(last_beat_ms).max(0);
    let missed = (elapsed / i64::from(terms.interval_ms.max(1))) as u64;
    let deadline = last_beat_ms.saturating_add(terms.lease_ms());
    let ttl = if now < deadline {
        deadline.saturating_sub(now)
    } else {
        -1
    };
    (missed, ttl, now.saturating_sub(granted_ms).max(0))
}

impl Lease {
    /// A brand-new key: the first lease, token 1.
    pub fn first(owner: &[u8], terms: Terms, now: i64) -> Lease {
        Lease {
            token: 1,
            granted_ms: now,
            last_beat_ms: now,
            beats: 0,
            takeovers: 0,
            interval_ms: terms.interval_ms,
            misses: terms.misses,
            phase: Phase::Held,
            owner: Owner::new(owner),
            check_at: NO_CHECK,
            history_cap: 0,
        }
    }

    /// A record of a lock never held (token 0), for INFO of a key with no
    /// record: free, with these terms.
    pub fn never_held(terms: Terms) -> Lease {
        let mut lease = Lease::first(b"", terms, 0);
        lease.token = 0;
        lease.phase = Phase::Free;
        lease.owner = Owner::none();
        lease
    }

    /// The first lease of a new key when the data set last handed out
    /// `floor`: token `floor + 1` (1 on a fresh data set).
    pub fn first_after(
        owner: &[u8],
        terms: Terms,
        now: i64,
        floor: u64,
    ) -> Result<Lease, CoreError> {
        if floor >= TOKEN_ISSUE_MAX {
            return Err(CoreError::TokensExhausted);
        }
        let mut lease = Lease::first(owner, terms, now);
        lease.token = floor + 1;
        Ok(lease)
    }

    /// When the timer will look at this lock, if it is scheduled to.
    pub fn scheduled_check(&self) -> Option<i64> {
        (self.check_at != NO_CHECK).then_some(self.check_at)
    }

    pub fn set_scheduled_check(&mut self, at: Option<i64>) {
        self.check_at = at.unwrap_or(NO_CHECK);
    }

    pub fn terms(&self) -> Terms {
        Terms {
            interval_ms: self.interval_ms,
            misses: self.misses,
        }
    }

    /// The instant the current lease ends unless it beats again.
    pub fn deadline_ms(&self) -> i64 {
        self.last_beat_ms.saturating_add(self.terms().lease_ms())
    }

    /// The state at `now`: a held lease is expired once `now - last_beat >= interval * misses`.
    pub fn state(&self, now: i64) -> State {
        if let Some(permits) = self.permits() {
            if permits.live(now).next().is_some() {
                return State::Held;
            }
            if !permits.holders.is_empty() {
                return State::Expired;
            }
        }
        match self.phase {
            Phase::Free => State::Free,
            Phase::Expired => State::Expired,
            Phase::Held if now >= self.deadline_ms() => State::Expired,
            Phase::Held => State::Held,
        }
    }

    /// The lock's holder at `now`: the token of its live lease, or 0 (free,
    /// released, expired). HBLOCK.WATCH compares it with what a watcher saw;
    /// BIND drops a binding whose lease is no longer the holder.
    pub fn holder(&self, now: i64) -> u64 {
        if self.permits().is_some() {
            // A lock with permits: the last token issued, which changes at
            // every grant and every end (multi.rs).
            return self.token;
        }
        if self.state(now) == State::Held {
            self.token
        } else {
            0
        }
    }

    /// Whole intervals since the last beat (0 when free). A clock that went
    /// backwards counts as no time passed.
    pub fn missed(&self, now: i64) -> u64 {
        if self.phase == Phase::Free {
            return 0;
        }
        let elapsed = now.saturating_sub(self.last_beat_ms).max(0);
        let interval = i64::from(self.interval_ms.max(1));
        (elapsed / interval) as u64
    }

    pub fn view(&self, now: i64) -> View<'_> {
        let state = self.state(now);
        let holders = self.holder_count(now);
        if let Some(first) = self.permits().and_then(|p| {
            p.first_ending(now)
                .or_else(|| p.holders.iter().max_by_key(|h| h.deadline_ms()))
        }) {
            // The live lease that ends first (or, all past their deadline
            // but not yet seen, the one that ended last).
            let (missed, ttl_ms, age_ms) =
                lease_numbers(first.granted_ms, first.last_beat_ms, first.terms(), now);
            return View {
                state,
                owner: Some(&first.owner),
                token: self.token,
                interval_ms: first.interval_ms,
                misses: first.misses,
                missed,
                ttl_ms,
                beats: first.beats,
                age_ms,
                takeovers: self.takeovers,
                limit: self.limit(),
                holders,
            };
        }
        View {
            limit: self.limit(),
            holders,
            state,
            owner: (state != State::Free).then(|| self.owner.as_bytes()),
            token: self.token,
            interval_ms: self.interval_ms,
            misses: self.misses,
            missed: self.missed(now),
            ttl_ms: match state {
                State::Held => self.deadline_ms().saturating_sub(now),
                _ => -1,
            },
            beats: self.beats,
            age_ms: match state {
                State::Free => -1,
                _ => now.saturating_sub(self.granted_ms).max(0),
            },
            takeovers: self.takeovers,
        }
    }

    /// How many hold a live lease at `now`.
    pub fn holder_count(&self, now: i64) -> u64 {
        match self.permits() {
            Some(permits) => permits.live(now).count() as u64,
            None => u64::from(self.state(now) == State::Held),
        }
    }

    /// Whether `owner` holds a live lease at `now`.
    pub fn is_holder(&self, owner: &[u8], now: i64) -> bool {
        match self.permits() {
            Some(permits) => permits.by_owner(owner).is_some_and(|h| h.live(now)),
            None => self.state(now) == State::Held && self.owner.as_bytes() == owner,
        }
    }

    /// Whether a new owner could be granted a lease at `now` (a permit is
    /// free once expired leases are seen).
    pub fn has_free_permit(&self, now: i64) -> bool {
        self.holder_count(now) < u64::from(self.limit())
    }

    /// The earliest deadline of a lease the server still records as held:
    /// when the timer must look at this lock.
    pub fn next_deadline(&self) -> Option<i64> {
        match self.permits() {
            Some(permits) => permits.next_deadline(),
            None => (self.phase == Phase::Held).then(|| self.deadline_ms()),
        }
    }

    /// The lease with this token the server still records as held (its
    /// deadline may have passed unseen): its owner and beats.
    pub fn recorded_lease(&self, token: u64) -> Option<(&[u8], u64)> {
        match self.permits() {
            Some(permits) => permits.by_token(token).map(|h| (&*h.owner, h.beats)),
            None => (self.phase == Phase::Held && self.token == token)
                .then(|| (self.owner.as_bytes(), self.beats)),
        }
    }

    /// The live leases at `now`, in token order (HBLOCK.HOLDERS).
    pub fn holders(&self, now: i64) -> Vec<HolderView<'_>> {
        let view = |owner, token, (granted, last_beat, terms): (i64, i64, Terms), beats| {
            let (missed, ttl_ms, age_ms) = lease_numbers(granted, last_beat, terms, now);
            HolderView {
                owner,
                token,
                interval_ms: terms.interval_ms,
                misses: terms.misses,
                missed,
                ttl_ms,
                beats,
                age_ms,
            }
        };
        match self.permits() {
            Some(permits) => permits
                .live(now)
                .map(|h| {
                    view(
                        &*h.owner,
                        h.token,
                        (h.granted_ms, h.last_beat_ms, h.terms()),
                        h.beats,
                    )
                })
                .collect(),
            None if self.state(now) == State::Held => vec![view(
                self.owner.as_bytes(),
                self.token,
                (self.granted_ms, self.last_beat_ms, self.terms()),
                self.beats,
            )],
            None => Vec::new(),
        }
    }

    /// Marks a held lease whose deadline has passed as expired (its end,
    /// at the deadline, goes into the history). `expired` (and `changed`)
    /// when this call is the one that saw it (publish `hblock.expired` once).
    pub fn observe_expiry(&mut self, now: i64) -> Effects {
        if self.permits().is_some() {
            return self.multi_observe_expiry(now);
        }
        if self.phase == Phase::Held && now >= self.deadline_ms() {
            self.phase = Phase::Expired;
            let history = self.record_end(self.deadline_ms(), How::Expired);
            Effects {
                changed: true,
                expired: true,
                history,
                ..Effects::default()
            }
        } else {
            Effects::default()
        }
    }

    /// Records the end of the current lease in the holder history, if the
    /// record keeps one. True when the history changed.
    fn record_end(&mut self, ended_ms: i64, how: How) -> bool {
        let (token, granted_ms) = (self.token, self.granted_ms);
        self.owner
            .push_end(self.history_cap, token, granted_ms, ended_ms, how)
    }

    /// ACQUIRE by `owner`. `requested` holds the INTERVAL/MISSES given in the
    /// call (None = not given); `defaults` fills the gaps of a new lease. A
    /// new lease's token is above both this record's and `floor`, the last
    /// token the data set handed out (tokens never repeat for a key name).
    pub fn acquire(
        &mut self,
        owner: &[u8],
        requested: (Option<u32>, Option<u16>),
        defaults: Terms,
        now: i64,
        floor: u64,
    ) -> Result<(Acquired, Effects), CoreError> {
        let mut effects = self.observe_expiry(now);
        // The same terms BIND is checked against before this call.
        let terms = self.terms_after_acquire(owner, requested, defaults, now);
        if self.permits().is_some() {
            return self.multi_acquire(owner, terms, now, floor, effects);
        }
        match self.phase {
            Phase::Held if self.owner.as_bytes() == owner => {
                // The holder again: a heartbeat that may change the terms.
                self.interval_ms = terms.interval_ms;
                self.misses = terms.misses;
                self.last_beat_ms = now;
                self.beats = self.beats.saturating_add(1).min(COUNTER_MAX);
                effects.changed = true;
                Ok((Acquired::Token(self.token), effects))
            }
            Phase::Held => Ok((Acquired::Busy, effects)),
            Phase::Free | Phase::Expired => {
                let above = self.token.max(floor);
                if above >= TOKEN_ISSUE_MAX {
                    return Err(CoreError::TokensExhausted);
                }
                let takeover = self.phase == Phase::Expired;
                self.token = above + 1;
                self.granted_ms = now;
                self.last_beat_ms = now;
                self.beats = 0;
                if takeover {
                    self.takeovers = self.takeovers.saturating_add(1).min(COUNTER_MAX);
                }
                self.interval_ms = terms.interval_ms;
                self.misses = terms.misses;
                self.phase = Phase::Held;
                self.owner.set(owner);
                effects.changed = true;
                effects.acquired = true;
                effects.takeover = takeover;
                Ok((Acquired::Token(self.token), effects))
            }
        }
    }

    /// BEAT by (owner, token). On success returns the lease's beat count.
    pub fn beat(&mut self, owner: &[u8], token: u64, now: i64) -> (Result<u64, NotHeld>, Effects) {
        let effects = self.observe_expiry(now);
        if self.permits().is_some() {
            let result = self.multi_beat(owner, token, now);
            let changed = effects.changed || result.is_ok();
            return (result, Effects { changed, ..effects });
        }
        if let Err(why) = self.check_holder(owner, token) {
            return (Err(why), effects);
        }
        self.last_beat_ms = now;
        self.beats = self.beats.saturating_add(1).min(COUNTER_MAX);
        (
            Ok(self.beats),
            Effects {
                changed: true,
                ..effects
            },
        )
    }

    /// The terms `owner`'s ACQUIRE with `requested` would leave the lease
    /// with: the holder keeps what it does not change, anyone else gets a
    /// new lease on the requested terms and the defaults.
    pub fn terms_after_acquire(
        &self,
        owner: &[u8],
        requested: (Option<u32>, Option<u16>),
        defaults: Terms,
        now: i64,
    ) -> Terms {
        if let Some(permits) = self.permits() {
            let base = match permits.by_owner(owner).filter(|h| h.live(now)) {
                Some(holder) => holder.terms(),
                None => defaults,
            };
            return Terms::resolve(requested, base);
        }
        let renews = self.state(now) == State::Held && self.owner.as_bytes() == owner;
        let base = if renews {
            Terms {
                interval_ms: self.interval_ms,
                misses: self.misses,
            }
        } else {
            defaults
        };
        Terms::resolve(requested, base)
    }

    /// RELEASE by (owner, token): true when this call ended the caller's
    /// unexpired lease. The record stays, free, with its token.
    /// Ends a held lease where it stands, keeping the token and counters (a
    /// record that arrived at another key name: RENAME, MOVE, COPY, SWAPDB,
    /// RESTORE of an older lease). True when a lease was held.
    pub fn end_in_place(&mut self) -> bool {
        if self.permits().is_some() {
            return self.multi_end_in_place();
        }
        if self.phase != Phase::Held {
            return false;
        }
        self.phase = Phase::Free;
        self.owner.set(b"");
        true
    }

    pub fn release(&mut self, owner: &[u8], token: u64, now: i64) -> (bool, Effects) {
        self.release_as(owner, token, now, How::Released)
    }

    /// RELEASE by (owner, token), recorded in the history as `how` (the
    /// timer releases unbound leases and undone grants).
    pub fn release_as(&mut self, owner: &[u8], token: u64, now: i64, how: How) -> (bool, Effects) {
        if self.permits().is_some() {
            return self.multi_release(owner, token, now, how);
        }
        let mut effects = self.observe_expiry(now);
        if self.check_holder(owner, token).is_err() {
            return (false, effects);
        }
        effects.history |= self.record_end(now, how);
        self.phase = Phase::Free;
        self.owner.set(b"");
        effects.changed = true;
        effects.released = true;
        (true, effects)
    }

    /// Whether (owner, token) holds the lease, after expiry has been observed.
    /// Whether (owner, token) holds the live lease at `now`, without
    /// recording anything (CHECK, FENCED): BEAT's answers.
    pub fn check(&self, owner: &[u8], token: u64, now: i64) -> Result<(), NotHeld> {
        if self.permits().is_some() {
            return self.multi_check(owner, token, now);
        }
        if self.phase == Phase::Held && now >= self.deadline_ms() {
            return Err(NotHeld::Expired);
        }
        self.check_holder(owner, token)
    }

    fn check_holder(&self, owner: &[u8], token: u64) -> Result<(), NotHeld> {
        match self.phase {
            Phase::Free => Err(NotHeld::Released),
            Phase::Expired => Err(NotHeld::Expired),
            Phase::Held if self.owner.as_bytes() != owner => Err(NotHeld::OtherOwner),
            Phase::Held if self.token != token => Err(NotHeld::TokenMismatch),
            Phase::Held => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
