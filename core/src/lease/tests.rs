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

    lease.history_cap = 3;
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
    lease.history_cap = 0;
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
    lease.history_cap = 2;
    assert_eq!(lease.owner.as_bytes(), &long[..]);
    assert!(lease.owner.heap_ptr().is_some());
    lease.release(&long, 1, 5);
    assert_eq!(history_of(&lease)[0].0, long.to_vec());
    let copy = lease.clone();
    assert_eq!(copy, lease, "a copy carries the history");
}

// ---- locks with permits (LIMIT n) ----

fn semaphore(limit: u16) -> Lease {
    let mut lease = Lease::never_held(T);
    let fx = lease.set_limit(limit, 0);
    assert!(fx.changed);
    lease
}

fn got(result: Result<(Acquired, Effects), CoreError>) -> Option<u64> {
    match result.expect("tokens left").0 {
        Acquired::Token(t) => Some(t),
        Acquired::Busy => None,
    }
}

#[test]
fn permits_grant_up_to_the_limit_each_with_its_own_token() {
    let mut lease = semaphore(3);
    let a = got(lease.acquire(b"a", NONE, T, 0, 0)).unwrap();
    let b = got(lease.acquire(b"b", NONE, T, 10, 0)).unwrap();
    let c = got(lease.acquire(b"c", NONE, T, 20, 7)).unwrap();
    assert_eq!(
        (a, b, c),
        (1, 2, 8),
        "above the record's token and the floor"
    );
    assert_eq!(got(lease.acquire(b"d", NONE, T, 30, 0)), None, "three hold");
    assert_eq!(
        got(lease.acquire(b"b", NONE, T, 40, 0)),
        Some(2),
        "a heartbeat"
    );
    assert_eq!(lease.holder_count(40), 3);
    assert_eq!(lease.state(40), State::Held);
    assert_eq!(lease.token, 8, "INFO's token: the last issued");
    let tokens: Vec<u64> = lease.holders(40).iter().map(|h| h.token).collect();
    assert_eq!(tokens, [1, 2, 8]);
}

#[test]
fn each_holder_beats_releases_and_expires_on_its_own() {
    let mut lease = semaphore(2);
    let a = got(lease.acquire(b"a", NONE, T, 0, 0)).unwrap();
    let b = got(lease.acquire(b"b", NONE, T, 1000, 0)).unwrap();
    assert_eq!(lease.beat(b"a", a, 2500).0, Ok(1));
    assert_eq!(lease.beat(b"a", b, 2500).0, Err(NotHeld::TokenMismatch));
    assert_eq!(lease.check(b"b", b, 3999), Ok(()));
    // b's deadline (1000 + 3000) passes; a's (2500 + 3000) not yet.
    assert_eq!(lease.check(b"b", b, 4000), Err(NotHeld::Expired));
    assert_eq!(lease.next_deadline(), Some(4000));
    let fx = lease.observe_expiry(4000);
    assert!(fx.expired && fx.changed && fx.also_expired == 0);
    assert_eq!(lease.token, b + 1, "an end burns a number");
    assert_eq!(lease.holder_count(4000), 1);
    assert_eq!(lease.next_deadline(), Some(5500));
    assert_eq!(lease.beat(b"b", b, 4001).0, Err(NotHeld::Expired));
    // A grant now is a takeover; its token is above the burned number.
    let (result, fx) = lease.acquire(b"c", NONE, T, 4002, 0).unwrap();
    assert_eq!(result, Acquired::Token(b + 2));
    assert!(fx.takeover && fx.acquired);
    assert_eq!(lease.takeovers, 1);
    let (released, fx) = lease.release(b"a", a, 4003);
    assert!(released && fx.released);
    assert_eq!(lease.token, b + 3);
    assert!(!lease.release(b"a", a, 4004).0, "once");
    assert_eq!(lease.check(b"a", a, 4004), Err(NotHeld::Released));
}

#[test]
fn two_holders_expiring_together_are_two_expiries() {
    let mut lease = semaphore(2);
    got(lease.acquire(b"a", NONE, T, 0, 0)).unwrap();
    got(lease.acquire(b"b", NONE, T, 0, 0)).unwrap();
    let fx = lease.observe_expiry(10_000);
    assert!(fx.expired);
    assert_eq!(fx.also_expired, 1);
    assert_eq!(lease.holder_count(10_000), 0);
    assert_eq!(
        lease.state(10_000),
        State::Expired,
        "the last end was an expiry"
    );
    assert_eq!(lease.token, 4, "two grants, two ends");
}

#[test]
fn the_limit_changes_without_ending_leases() {
    // A plain lock's live lease becomes the first holder.
    let mut lease = held_by(b"a", 0);
    lease.set_limit(3, 10);
    assert_eq!(lease.limit(), 3);
    assert_eq!(lease.holders(10).len(), 1);
    assert_eq!(lease.beat(b"a", 1, 20).0, Ok(1));
    assert_eq!(
        lease.holder(20),
        lease.token,
        "WATCH compares the last token"
    );
    got(lease.acquire(b"b", NONE, T, 30, 0)).unwrap();
    got(lease.acquire(b"c", NONE, T, 30, 0)).unwrap();
    // Lowered: all three keep their leases, nobody new gets one.
    lease.set_limit(1, 40);
    assert_eq!(lease.holder_count(40), 3);
    assert!(!lease.has_free_permit(40));
    assert_eq!(got(lease.acquire(b"d", NONE, T, 40, 0)), None);
    for (owner, token) in [(&b"a"[..], 1), (b"b", 2), (b"c", 3)] {
        assert!(lease.release(owner, token, 50).0);
    }
    // Nobody holds and the limit is 1: a plain lock again.
    assert!(lease.permits().is_none());
    assert_eq!(got(lease.acquire(b"d", NONE, T, 60, 0)), Some(lease.token));
    assert_eq!(lease.state(60), State::Held);
}

#[test]
fn the_view_describes_the_lease_that_ends_first() {
    let mut lease = semaphore(3);
    let long = Terms {
        interval_ms: 10_000,
        misses: 3,
    };
    got(lease.acquire(b"long", (Some(10_000), None), long, 0, 0)).unwrap();
    got(lease.acquire(b"short", NONE, T, 0, 0)).unwrap();
    let view = lease.view(100);
    assert_eq!(view.owner, Some(&b"short"[..]));
    assert_eq!((view.ttl_ms, view.limit, view.holders), (2900, 3, 2));
    assert_eq!(view.token, 2);
    assert_eq!(
        lease.view(5000).owner,
        Some(&b"long"[..]),
        "short has ended"
    );
}

#[test]
fn a_new_limit_comes_only_with_the_grant() {
    let mut lease = held_by(b"a", 0);
    lease.release(b"a", 1, 1);
    // Granted: the limit changes with it.
    let (got, fx) = lease.acquire_with_limit(3, b"b", (NONE, T), 2, 0).unwrap();
    assert_eq!(got, Acquired::Token(2));
    assert!(fx.changed && fx.acquired);
    assert_eq!((lease.limit(), lease.holder_count(2)), (3, 1));
    // Tokens exhausted: an error, and the record is as it was.
    let last = crate::limits::TOKEN_ISSUE_MAX;
    let mut free = held_by(b"a", 0);
    free.release(b"a", 1, 1);
    let before = free.clone();
    let err = free.acquire_with_limit(5, b"b", (NONE, T), 2, last);
    assert_eq!(err, Err(CoreError::TokensExhausted));
    assert_eq!(free, before);
    // The lock's own limit: a plain acquire.
    let (got, _) = free.acquire_with_limit(1, b"b", (NONE, T), 2, 0).unwrap();
    assert_eq!(got, Acquired::Token(2));
    assert_eq!(free.limit(), 1);
}

#[test]
fn every_lease_end_a_record_can_hold_fits_its_history() {
    let max = crate::limits::TIME_MAX_MS;
    // The latest times a record may hold, ended past TIME_MAX_MS (a clock
    // beyond year 9999): the entries are kept within what fits.
    let mut plain = held_by(b"a", max);
    plain.history_cap = 3;
    assert!(plain.observe_expiry(i64::MAX).history);
    let mut permits = Lease::never_held(T);
    permits.history_cap = 3;
    permits.set_limit(3, 0);
    permits.acquire(b"b", NONE, T, max, 0).unwrap();
    assert!(permits.observe_expiry(i64::MAX).history);
    for lease in [plain, permits] {
        let history = lease.owner.history();
        assert!(!history.is_empty());
        assert!(crate::history::fits(history, lease.token), "{lease:?}");
    }
}
