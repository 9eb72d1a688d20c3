//! The lease state machine: grant, heartbeat, missed-beat counting, expiry,
//! release, fencing tokens and takeovers.
//!
//! Pure Rust with the clock passed in as `now` (milliseconds of the Unix wall
//! clock, the clock Redis uses for PEXPIRE). Nothing here knows about Redis; the
//! command layer loads a [`Lease`], calls one of these methods and then writes,
//! replicates and notifies according to the returned [`Effects`].

use crate::owner::Owner;

/// Largest value any counter or token reaches: Redis integers are signed 64-bit.
pub const COUNTER_MAX: u64 = crate::limits::TOKEN_MAX as u64;

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
#[derive(Clone, PartialEq, Eq, Debug)]
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
}

/// What a transition did, so the caller knows what to write, publish and count.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Effects {
    /// The record changed: write it and replicate it.
    pub changed: bool,
    /// The server has just seen the previous lease expired (`hblock.expired`).
    pub expired: bool,
    /// A new lease was granted (`hblock.acquired`).
    pub acquired: bool,
    /// The new lease was granted over an expired one.
    pub takeover: bool,
    /// The holder released its lease (`hblock.released`).
    pub released: bool,
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
    /// The key issued token i64::MAX already; it must be deleted to start over.
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
        }
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
        match self.phase {
            Phase::Free => State::Free,
            Phase::Expired => State::Expired,
            Phase::Held if now >= self.deadline_ms() => State::Expired,
            Phase::Held => State::Held,
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
        View {
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

    /// Marks a held lease whose deadline has passed as expired. Returns true
    /// when this call is the one that saw it (publish `hblock.expired` once).
    pub fn observe_expiry(&mut self, now: i64) -> bool {
        if self.phase == Phase::Held && now >= self.deadline_ms() {
            self.phase = Phase::Expired;
            true
        } else {
            false
        }
    }

    /// ACQUIRE by `owner`. `requested` holds the INTERVAL/MISSES given in the
    /// call (None = not given); `defaults` fills the gaps of a new lease.
    pub fn acquire(
        &mut self,
        owner: &[u8],
        requested: (Option<u32>, Option<u16>),
        defaults: Terms,
        now: i64,
    ) -> Result<(Acquired, Effects), CoreError> {
        let mut effects = Effects {
            expired: self.observe_expiry(now),
            ..Effects::default()
        };
        effects.changed = effects.expired;
        match self.phase {
            Phase::Held if self.owner.as_bytes() == owner => {
                // The holder again: a heartbeat that may change the terms.
                let (interval, misses) = requested;
                self.interval_ms = interval.unwrap_or(self.interval_ms);
                self.misses = misses.unwrap_or(self.misses);
                self.last_beat_ms = now;
                self.beats = self.beats.saturating_add(1).min(COUNTER_MAX);
                effects.changed = true;
                Ok((Acquired::Token(self.token), effects))
            }
            Phase::Held => Ok((Acquired::Busy, effects)),
            Phase::Free | Phase::Expired => {
                if self.token >= COUNTER_MAX {
                    return Err(CoreError::TokensExhausted);
                }
                let takeover = self.phase == Phase::Expired;
                let terms = Terms::resolve(requested, defaults);
                self.token += 1;
                self.granted_ms = now;
                self.last_beat_ms = now;
                self.beats = 0;
                if takeover {
                    self.takeovers = self.takeovers.saturating_add(1).min(COUNTER_MAX);
                }
                self.interval_ms = terms.interval_ms;
                self.misses = terms.misses;
                self.phase = Phase::Held;
                self.owner = Owner::new(owner);
                effects.changed = true;
                effects.acquired = true;
                effects.takeover = takeover;
                Ok((Acquired::Token(self.token), effects))
            }
        }
    }

    /// BEAT by (owner, token). On success returns the lease's beat count.
    pub fn beat(&mut self, owner: &[u8], token: u64, now: i64) -> (Result<u64, NotHeld>, Effects) {
        let expired = self.observe_expiry(now);
        let effects = Effects {
            changed: expired,
            expired,
            ..Effects::default()
        };
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

    /// RELEASE by (owner, token): true when this call ended the caller's
    /// unexpired lease. The record stays, free, with its token.
    pub fn release(&mut self, owner: &[u8], token: u64, now: i64) -> (bool, Effects) {
        let expired = self.observe_expiry(now);
        let mut effects = Effects {
            changed: expired,
            expired,
            ..Effects::default()
        };
        if self.check_holder(owner, token).is_err() {
            return (false, effects);
        }
        self.phase = Phase::Free;
        self.owner = Owner::none();
        effects.changed = true;
        effects.released = true;
        (true, effects)
    }

    /// Whether (owner, token) holds the lease, after expiry has been observed.
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
mod tests {
    use super::*;

    const T: Terms = Terms {
        interval_ms: 1000,
        misses: 3,
    };
    const NONE: (Option<u32>, Option<u16>) = (None, None);

    fn held_by(owner: &[u8], now: i64) -> Lease {
        Lease::first(owner, T, now)
    }

    #[test]
    fn first_lease_gets_token_one_and_is_held() {
        let lease = held_by(b"a", 100);
        assert_eq!(lease.token, 1);
        assert_eq!(lease.state(100), State::Held);
        assert_eq!(lease.deadline_ms(), 3100);
        assert_eq!(lease.beats, 0);
    }

    #[test]
    fn expiry_boundary_is_interval_times_misses() {
        // (now, expected state, missed, ttl)
        let table = [
            (100, State::Held, 0, 3000),
            (1099, State::Held, 0, 2001),
            (1100, State::Held, 1, 2000),
            (3099, State::Held, 2, 1),
            (3100, State::Expired, 3, -1),
            (99_100, State::Expired, 99, -1),
            (50, State::Held, 0, 3050), // clock went backwards
        ];
        let lease = held_by(b"a", 100);
        for (now, state, missed, ttl) in table {
            let view = lease.view(now);
            assert_eq!(
                (view.state, view.missed, view.ttl_ms),
                (state, missed, ttl),
                "at {now}"
            );
        }
    }

    #[test]
    fn beat_refreshes_and_counts() {
        let mut lease = held_by(b"a", 0);
        let (beats, fx) = lease.beat(b"a", 1, 2999);
        assert_eq!(beats, Ok(1));
        assert!(fx.changed && !fx.expired);
        assert_eq!(lease.deadline_ms(), 5999);
        assert_eq!(lease.beat(b"a", 1, 5000).0, Ok(2));
        assert_eq!(lease.view(5000).missed, 0);
    }

    #[test]
    fn beat_refusals_say_why_and_change_nothing_but_expiry() {
        let mut lease = held_by(b"a", 0);
        let before = lease.clone();
        let table: [(&[u8], u64, NotHeld); 2] = [
            (b"b", 1, NotHeld::OtherOwner),
            (b"a", 2, NotHeld::TokenMismatch),
        ];
        for (owner, token, why) in table {
            let (result, fx) = lease.beat(owner, token, 10);
            assert_eq!(result, Err(why));
            assert_eq!(fx, Effects::default());
            assert_eq!(lease, before);
        }
    }

    #[test]
    fn an_expired_lease_is_never_revived() {
        let mut lease = held_by(b"a", 0);
        let (result, fx) = lease.beat(b"a", 1, 3000);
        assert_eq!(result, Err(NotHeld::Expired));
        assert!(fx.expired && fx.changed, "the server saw the expiry");
        assert_eq!(lease.phase, Phase::Expired);
        // Seen once: the second refusal publishes nothing.
        let (result, fx) = lease.beat(b"a", 1, 3001);
        assert_eq!(result, Err(NotHeld::Expired));
        assert!(!fx.expired && !fx.changed);
        // The holder must acquire again and gets a new token (a takeover).
        let (got, fx) = lease.acquire(b"a", NONE, T, 3002).unwrap();
        assert_eq!(got, Acquired::Token(2));
        assert!(fx.acquired && fx.takeover && !fx.expired);
        assert_eq!(lease.takeovers, 1);
    }

    #[test]
    fn acquire_table() {
        // (setup, owner, now, expected reply, expired, acquired, takeover, token after)
        type Setup = fn() -> Lease;
        type Row = (Setup, &'static [u8], i64, Acquired, bool, bool, bool, u64);
        let held: Setup = || held_by(b"a", 0);
        let released: Setup = || {
            let mut l = held_by(b"a", 0);
            assert!(l.release(b"a", 1, 5).0);
            l
        };
        let table: [Row; 6] = [
            (held, b"b", 10, Acquired::Busy, false, false, false, 1),
            (held, b"a", 10, Acquired::Token(1), false, false, false, 1),
            (held, b"b", 3000, Acquired::Token(2), true, true, true, 2),
            (held, b"a", 3000, Acquired::Token(2), true, true, true, 2),
            (
                released,
                b"b",
                10,
                Acquired::Token(2),
                false,
                true,
                false,
                2,
            ),
            (
                released,
                b"a",
                10,
                Acquired::Token(2),
                false,
                true,
                false,
                2,
            ),
        ];
        for (i, (setup, owner, now, reply, expired, acquired, takeover, token)) in
            table.into_iter().enumerate()
        {
            let mut lease = setup();
            let (got, fx) = lease.acquire(owner, NONE, T, now).unwrap();
            assert_eq!(got, reply, "row {i}");
            assert_eq!(
                (fx.expired, fx.acquired, fx.takeover),
                (expired, acquired, takeover),
                "row {i}"
            );
            assert_eq!(lease.token, token, "row {i}");
        }
    }

    #[test]
    fn busy_acquire_changes_nothing() {
        let mut lease = held_by(b"a", 0);
        let before = lease.clone();
        let (got, fx) = lease.acquire(b"b", (Some(5), Some(9)), T, 10).unwrap();
        assert_eq!(got, Acquired::Busy);
        assert!(!fx.changed);
        assert_eq!(lease, before);
    }

    #[test]
    fn holder_reacquire_is_a_heartbeat_that_may_change_terms() {
        let mut lease = held_by(b"a", 0);
        let (got, fx) = lease.acquire(b"a", (Some(200), None), T, 2000).unwrap();
        assert_eq!(got, Acquired::Token(1));
        assert!(fx.changed && !fx.acquired);
        assert_eq!((lease.interval_ms, lease.misses, lease.beats), (200, 3, 1));
        assert_eq!(lease.deadline_ms(), 2600);
        assert_eq!(lease.granted_ms, 0, "still the same lease");
    }

    #[test]
    fn new_lease_takes_requested_terms_else_defaults() {
        let mut lease = held_by(b"a", 0);
        lease.release(b"a", 1, 1);
        let defaults = Terms {
            interval_ms: 500,
            misses: 7,
        };
        lease.acquire(b"b", (None, Some(2)), defaults, 10).unwrap();
        assert_eq!((lease.interval_ms, lease.misses), (500, 2));
        assert_eq!((lease.beats, lease.granted_ms), (0, 10));
    }

    #[test]
    fn release_table() {
        // (owner, token, now, released, expired-seen)
        let table: [(&[u8], u64, i64, bool, bool); 4] = [
            (b"a", 1, 10, true, false),
            (b"b", 1, 10, false, false),
            (b"a", 2, 10, false, false),
            (b"a", 1, 3000, false, true),
        ];
        for (owner, token, now, released, expired) in table {
            let mut lease = held_by(b"a", 0);
            let (got, fx) = lease.release(owner, token, now);
            assert_eq!(
                (got, fx.released, fx.expired),
                (released, released, expired)
            );
            if released {
                assert_eq!(lease.state(now), State::Free);
                assert!(lease.owner.is_empty());
                assert_eq!(lease.token, 1, "release keeps the token");
            }
        }
    }

    #[test]
    fn after_release_beat_and_release_are_refused() {
        let mut lease = held_by(b"a", 0);
        assert!(lease.release(b"a", 1, 1).0);
        assert_eq!(lease.beat(b"a", 1, 2).0, Err(NotHeld::Released));
        assert_eq!(lease.release(b"a", 1, 2), (false, Effects::default()));
    }

    #[test]
    fn view_of_free_and_expired_locks() {
        let mut lease = held_by(b"a", 0);
        assert_eq!(lease.beat(b"a", 1, 500).0, Ok(1));
        let expired = lease.view(4000);
        assert_eq!(expired.state, State::Expired);
        assert_eq!(expired.owner, Some(&b"a"[..]));
        assert_eq!(
            (expired.ttl_ms, expired.age_ms, expired.missed),
            (-1, 4000, 3)
        );
        lease.acquire(b"b", NONE, T, 4000).unwrap();
        lease.release(b"b", 2, 4100);
        let free = lease.view(9000);
        assert_eq!(free.state, State::Free);
        assert_eq!(free.owner, None);
        assert_eq!((free.missed, free.ttl_ms, free.age_ms), (0, -1, -1));
        assert_eq!((free.token, free.takeovers), (2, 1));
    }

    #[test]
    fn tokens_stop_at_i64_max_instead_of_wrapping() {
        let mut lease = held_by(b"a", 0);
        lease.token = COUNTER_MAX;
        lease.release(b"a", COUNTER_MAX, 1);
        assert_eq!(
            lease.acquire(b"b", NONE, T, 2),
            Err(CoreError::TokensExhausted)
        );
    }

    #[test]
    fn extreme_terms_and_clocks_do_not_overflow() {
        let terms = Terms {
            interval_ms: 86_400_000,
            misses: 10_000,
        };
        let lease = Lease::first(b"a", terms, i64::MAX - 5);
        assert_eq!(lease.deadline_ms(), i64::MAX);
        assert_eq!(lease.view(i64::MIN).missed, 0);
        let lease = Lease::first(b"a", T, i64::MIN);
        assert_eq!(lease.view(i64::MAX).state, State::Expired);
    }

    #[test]
    fn record_stays_small() {
        // One 80-byte allocation with jemalloc holds a lock with an owner of up
        // to 22 bytes; see owner.rs.
        assert!(
            std::mem::size_of::<Lease>() <= 80,
            "{}",
            std::mem::size_of::<Lease>()
        );
    }
}
