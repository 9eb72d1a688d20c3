use crate::support::{
    acquire, call, counter, error_of, eventually, info_bytes, info_int, state, wait_for_state,
    Server,
};
use std::time::{Duration, Instant};

/// Short real leases: 50 ms x 2 misses = 100 ms.
const SHORT: [&str; 4] = ["INTERVAL", "50", "MISSES", "2"];

#[test]
fn a_lease_expires_after_interval_times_misses() {
    let server = Server::start();
    let mut c = server.conn();
    let granted = Instant::now();
    assert_eq!(acquire(&mut c, "lock", "alice", &SHORT), Some(1));
    wait_for_state(&mut c, "lock", "expired");
    assert!(
        // The server counts whole milliseconds: up to 1 ms less by ours.
        granted.elapsed() >= Duration::from_millis(99),
        "expired early"
    );
    assert_eq!(info_int(&mut c, "lock", "ttl"), -1);
    assert!(info_int(&mut c, "lock", "missed") >= 2);
    assert_eq!(
        info_bytes(&mut c, "lock", "owner").as_deref(),
        Some(&b"alice"[..])
    );
    assert!(info_int(&mut c, "lock", "age") >= 100);
}

#[test]
fn beats_keep_a_lease_alive_and_missed_counts_intervals() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(
        acquire(
            &mut c,
            "lock",
            "alice",
            &["INTERVAL", "40", "MISSES", "100"]
        ),
        Some(1)
    );
    let missed = eventually(Duration::from_secs(5), || {
        let m = info_int(&mut c, "lock", "missed");
        (m >= 3).then_some(m)
    });
    assert!(missed.is_some(), "missed never counted up");
    assert_eq!(state(&mut c, "lock"), "held");
    let beats: i64 = call(&mut c, &[b"HBLOCK.BEAT", b"lock", b"alice", b"1"]).unwrap();
    assert_eq!(beats, 1);
    assert!(
        info_int(&mut c, "lock", "missed") <= 1,
        "a beat resets missed"
    );
}

#[test]
fn an_expired_lease_is_never_revived_and_is_taken_over() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(acquire(&mut c, "lock", "alice", &SHORT), Some(1));
    wait_for_state(&mut c, "lock", "expired");
    assert_eq!(
        error_of(&mut c, &[b"HBLOCK.BEAT", b"lock", b"alice", b"1"]),
        "NOTHELD the lease expired"
    );
    let released: i64 = call(&mut c, &[b"HBLOCK.RELEASE", b"lock", b"alice", b"1"]).unwrap();
    assert_eq!(released, 0, "an expired lease cannot be released");
    assert_eq!(counter(&mut c, "expired"), 1, "seen once");
    assert_eq!(state(&mut c, "lock"), "expired", "nobody took it over yet");
    assert_eq!(acquire(&mut c, "lock", "bob", &[]), Some(2));
    assert_eq!(info_int(&mut c, "lock", "takeovers"), 1);
    assert_eq!(
        info_int(&mut c, "lock", "beats"),
        0,
        "a new lease starts at 0 beats"
    );
    assert_eq!(counter(&mut c, "takeovers"), 1);
    assert_eq!(
        error_of(&mut c, &[b"HBLOCK.BEAT", b"lock", b"alice", b"1"]),
        "NOTHELD the lock is held by another owner"
    );
}

#[test]
fn the_old_holder_gets_a_new_token_after_expiry() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(acquire(&mut c, "lock", "alice", &SHORT), Some(1));
    wait_for_state(&mut c, "lock", "expired");
    // The new lease is a long one: it must still be held at the BEAT below
    // (else "the lease expired") however slowly this client runs.
    assert_eq!(
        acquire(&mut c, "lock", "alice", &["INTERVAL", "600000"]),
        Some(2)
    );
    assert_eq!(info_int(&mut c, "lock", "takeovers"), 1);
    assert_eq!(
        error_of(&mut c, &[b"HBLOCK.BEAT", b"lock", b"alice", b"1"]),
        "NOTHELD the token does not match the current lease"
    );
    assert_eq!(counter(&mut c, "expired"), 1);
    assert_eq!(counter(&mut c, "acquired"), 2);
}
