//! Unit tests of the lease state machine, with explicit timestamps.
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
    let (got, fx) = lease.acquire(b"a", NONE, T, 3002, 0).unwrap();
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
        let (got, fx) = lease.acquire(owner, NONE, T, now, 0).unwrap();
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
    let (got, fx) = lease.acquire(b"b", (Some(5), Some(9)), T, 10, 0).unwrap();
    assert_eq!(got, Acquired::Busy);
    assert!(!fx.changed);
    assert_eq!(lease, before);
}

#[test]
fn holder_reacquire_is_a_heartbeat_that_may_change_terms() {
    let mut lease = held_by(b"a", 0);
    let (got, fx) = lease.acquire(b"a", (Some(200), None), T, 2000, 0).unwrap();
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
    lease
        .acquire(b"b", (None, Some(2)), defaults, 10, 0)
        .unwrap();
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
    lease.acquire(b"b", NONE, T, 4000, 0).unwrap();
    lease.release(b"b", 2, 4100);
    let free = lease.view(9000);
    assert_eq!(free.state, State::Free);
    assert_eq!(free.owner, None);
    assert_eq!((free.missed, free.ttl_ms, free.age_ms), (0, -1, -1));
    assert_eq!((free.token, free.takeovers), (2, 1));
}

#[test]
fn tokens_stop_at_2_pow_53_minus_1_instead_of_wrapping() {
    let last = crate::limits::TOKEN_ISSUE_MAX;
    let mut lease = held_by(b"a", 0);
    lease.token = last - 1;
    lease.release(b"a", last - 1, 1);
    let (got, _) = lease.acquire(b"b", NONE, T, 2, 0).unwrap();
    assert_eq!(got, Acquired::Token(last));
    lease.release(b"b", last, 3);
    assert_eq!(
        lease.acquire(b"c", NONE, T, 4, 0),
        Err(CoreError::TokensExhausted)
    );
    // A floor that high stops new keys and old ones alike.
    let mut low = held_by(b"a", 0);
    low.release(b"a", 1, 1);
    assert_eq!(
        low.acquire(b"b", NONE, T, 2, last),
        Err(CoreError::TokensExhausted)
    );
    assert!(Lease::first_after(b"x", T, 0, last).is_err());
    assert!(Lease::first_after(b"x", T, 0, last - 1).is_ok());
}

#[test]
fn a_lease_ended_in_place_keeps_its_token_and_is_no_longer_held() {
    let mut lease = held_by(b"a", 0);
    assert!(lease.end_in_place());
    assert_eq!(lease.check(b"a", 1, 1), Err(NotHeld::Released));
    assert_eq!((lease.phase, lease.token), (Phase::Free, 1));
    assert!(!lease.end_in_place(), "only a held lease ends");
    let (got, _) = lease.acquire(b"b", NONE, T, 2, 0).unwrap();
    assert_eq!(got, Acquired::Token(2));
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

#[test]
fn new_leases_get_tokens_above_the_data_sets_floor() {
    let mut lease = held_by(b"a", 0);
    lease.release(b"a", 1, 10);
    // Another key got token 41 meanwhile: this one's next lease is 42.
    let (got, _) = lease.acquire(b"b", NONE, T, 20, 41).unwrap();
    assert!(matches!(got, Acquired::Token(42)));
    // A floor below the record's own token changes nothing.
    lease.release(b"b", 42, 30);
    let (got, _) = lease.acquire(b"c", NONE, T, 40, 7).unwrap();
    assert!(matches!(got, Acquired::Token(43)));
    // The holder's re-acquire keeps its token whatever the floor.
    let (got, _) = lease.acquire(b"c", NONE, T, 50, 1000).unwrap();
    assert!(matches!(got, Acquired::Token(43)));
    assert_eq!(Lease::first_after(b"x", T, 0, 0).map(|l| l.token), Ok(1));
    assert_eq!(Lease::first_after(b"x", T, 0, 99).map(|l| l.token), Ok(100));
    assert!(Lease::first_after(b"x", T, 0, COUNTER_MAX).is_err());
    let mut full = held_by(b"a", 0);
    full.release(b"a", 1, 1);
    assert!(full.acquire(b"b", NONE, T, 2, COUNTER_MAX).is_err());
}

#[test]
fn check_answers_like_beat_and_changes_nothing() {
    let mut lease = held_by(b"a", 0);
    let before = lease.clone();
    assert_eq!(lease.check(b"a", 1, 2999), Ok(()));
    assert_eq!(lease.check(b"b", 1, 10), Err(NotHeld::OtherOwner));
    assert_eq!(lease.check(b"a", 2, 10), Err(NotHeld::TokenMismatch));
    assert_eq!(lease.check(b"a", 1, 3000), Err(NotHeld::Expired));
    assert_eq!(lease, before, "check records nothing");
    lease.release(b"a", 1, 5);
    assert_eq!(lease.check(b"a", 1, 6), Err(NotHeld::Released));
}

#[test]
fn terms_after_acquire_keep_the_holders_and_default_the_rest() {
    let defaults = Terms {
        interval_ms: 500,
        misses: 2,
    };
    let lease = held_by(b"a", 100);
    assert_eq!(lease.terms_after_acquire(b"a", NONE, defaults, 200), T);
    assert_eq!(
        lease
            .terms_after_acquire(b"a", (None, Some(7)), defaults, 200)
            .lease_ms(),
        7000
    );
    assert_eq!(
        lease.terms_after_acquire(b"b", NONE, defaults, 200),
        defaults
    );
    // Expired: the holder's ACQUIRE is a new lease.
    assert_eq!(
        lease.terms_after_acquire(b"a", NONE, defaults, 3100),
        defaults
    );
}

#[test]
fn the_holder_is_the_token_of_the_live_lease_else_zero() {
    let mut lease = held_by(b"a", 100);
    assert_eq!(lease.holder(3099), 1);
    assert_eq!(lease.holder(3100), 0, "expired by the clock");
    let (released, _) = lease.release(b"a", 1, 200);
    assert!(released);
    assert_eq!(lease.holder(200), 0, "released");
}

fn history_of(lease: &Lease) -> Vec<(Vec<u8>, u64, i64, i64, &'static str)> {
    crate::history::entries(lease.owner.history())
        .unwrap()
        .iter()
        .map(|e| {
            (
                e.owner.to_vec(),
                e.token,
                e.granted_ms,
                e.ended_ms,
                e.how.name(),
            )
        })
        .collect()
}

#[test]
fn lease_ends_go_into_the_history_when_it_is_on() {
    let mut lease = held_by(b"a", 0);
    // Off (the default): nothing is recorded, the record has no history.
    let (_, fx) = lease.release(b"a", 1, 10);
    assert!(!fx.history);
    assert!(lease.owner.history().is_empty());

    lease.owner.set_history_cap(3);
    lease.acquire(b"b", NONE, T, 20, 0).unwrap();
    let (_, fx) = lease.release(b"b", 2, 50);
    assert!(fx.history && fx.released);
    // Expired: recorded at its deadline, by whichever call sees it.
    lease.acquire(b"c", NONE, T, 100, 0).unwrap();
    let (got, fx) = lease.acquire(b"d", NONE, T, 5000, 0).unwrap();
    assert_eq!(got, Acquired::Token(4));
    assert!(fx.history && fx.expired && fx.takeover);
    let (_, fx) = lease.release_as(b"d", 4, 5100, How::Unbound);
    assert!(fx.history);
    assert_eq!(
        history_of(&lease),
        [
            (b"d".to_vec(), 4, 5000, 5100, "unbound"),
            (b"c".to_vec(), 3, 100, 3100, "expired"),
            (b"b".to_vec(), 2, 20, 50, "released"),
        ]
    );
    // A beat, a refused release and a renewal record nothing.
    lease.acquire(b"e", NONE, T, 6000, 0).unwrap();
    let (_, fx) = lease.beat(b"e", 5, 6100);
    assert!(!fx.history);
    let (_, fx) = lease.release(b"x", 5, 6200);
    assert!(!fx.history);
    // The cap keeps the newest; the owner's bytes are unchanged by it.
    let (_, fx) = lease.release_as(b"e", 5, 6300, How::Undone);
    assert!(fx.history);
    let listed = history_of(&lease);
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0], (b"e".to_vec(), 5, 6000, 6300, "undone"));
    assert_eq!(listed[2].1, 3, "the oldest went");
    // Lowered to 0: the next end empties it and the record has none again.
    lease.owner.set_history_cap(0);
    lease.acquire(b"f", NONE, T, 7000, 0).unwrap();
    assert_eq!(history_of(&lease).len(), 3, "trimmed lazily");
    let (_, fx) = lease.release(b"f", 6, 7100);
    assert!(fx.history);
    assert!(lease.owner.history().is_empty());
    assert!(matches!(lease.owner, Owner::Inline { .. }));
}

#[test]
fn a_long_owner_keeps_its_bytes_with_a_history() {
    let long = [b'L'; 300];
    let mut lease = held_by(&long, 0);
    lease.owner.set_history_cap(2);
    assert_eq!(lease.owner.as_bytes(), &long[..]);
    assert!(lease.owner.heap_ptr().is_some());
    lease.release(&long, 1, 5);
    assert_eq!(history_of(&lease)[0].0, long.to_vec());
    let copy = lease.clone();
    assert_eq!(copy, lease, "a copy carries the history");
}
