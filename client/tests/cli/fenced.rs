//! The Rust library's `Lease::fenced`: writes go through while the lease is
//! held; once it is taken over they are refused with `Error::NotHeld`, not
//! applied, and the lease is marked lost.

use super::*;
use hblock_client::{Client, Error, LeaseOptions, LostReason};

/// A lease whose heartbeat stays quiet for the test's length (10 s interval,
/// not bound), so only the fenced write can find out that it is gone.
fn quiet_lease(client: &Client, key: &str, owner: &[u8]) -> hblock_client::Lease {
    let options = LeaseOptions {
        interval: Duration::from_secs(10),
        bind: None,
        ..LeaseOptions::default()
    };
    client
        .acquire_as(key, owner, &options, |_| {})
        .expect("acquire")
        .expect("granted")
}

#[test]
fn fenced_writes_apply_while_held_and_are_refused_with_not_held_after_a_takeover() {
    let server = Server::start();
    let client = Client::open(&server.url()).unwrap();
    let lease = quiet_lease(&client, "{job}:lock", b"w1");
    let mut c = server.conn();

    let set: String = lease.fenced(("SET", "{job}:last", "one")).unwrap();
    assert_eq!(set, "OK");
    let n: i64 = lease.fenced(("INCR", "{job}:count")).unwrap();
    assert_eq!(n, 1);
    // The wrapped command's own error is its error; the lease stays held and
    // the connection usable.
    let err = lease.fenced::<i64>(("INCR", "{job}:last")).unwrap_err();
    assert!(
        matches!(&err, Error::Redis(e) if e.code() == Some("ERR")),
        "{err:?}"
    );
    assert!(!lease.is_lost());
    let n: i64 = lease.fenced(("INCR", "{job}:count")).unwrap();
    assert_eq!(n, 2);

    // Taken over: released from elsewhere, granted to another owner.
    assert_eq!(
        support::waiting::release(&mut c, "{job}:lock", "w1", lease.token()),
        1
    );
    let other: i64 = redis::cmd("HBLOCK.ACQUIRE")
        .arg("{job}:lock")
        .arg("w2")
        .query(&mut c)
        .unwrap();
    assert!(other > lease.token());
    assert_eq!(lease.lost(), None, "nobody has told the lease yet");

    let refused = lease.fenced::<String>(("SET", "{job}:last", "stale"));
    let Err(Error::NotHeld(why)) = refused else {
        panic!("expected Error::NotHeld, got {refused:?}");
    };
    assert!(!why.is_empty());
    assert_eq!(lease.lost(), Some(LostReason::NotHeld(why)));
    let last: String = redis::cmd("GET").arg("{job}:last").query(&mut c).unwrap();
    assert_eq!(last, "one", "the refused write was not applied");
    let count: i64 = redis::cmd("GET").arg("{job}:count").query(&mut c).unwrap();
    assert_eq!(count, 2);
    // Still refused (the server decides every time), still lost.
    assert!(matches!(
        lease.fenced::<i64>(("INCR", "{job}:count")),
        Err(Error::NotHeld(_))
    ));
    assert!(lease.is_lost());
}

#[test]
fn a_lease_whose_heartbeat_finds_it_gone_reports_lost_and_fenced_is_refused() {
    let server = Server::start();
    let client = Client::open(&server.url()).unwrap();
    // Bound (the default): the heartbeat waits in HBLOCK.WATCH and notices a
    // change of holder at once.
    let options = LeaseOptions {
        interval: Duration::from_millis(200),
        ..LeaseOptions::default()
    };
    let lease = client
        .acquire_as("{job}:lock", b"w1", &options, |_| {})
        .unwrap()
        .expect("granted");
    let mut c = server.conn();
    let set: String = lease.fenced(("SET", "{job}:last", "one")).unwrap();
    assert_eq!(set, "OK");
    assert_eq!(
        support::waiting::release(&mut c, "{job}:lock", "w1", lease.token()),
        1
    );
    let lost = eventually(Duration::from_secs(5), || lease.lost());
    assert!(
        matches!(lost, Some(LostReason::NotHeld(_))),
        "the heartbeat marks the lease lost: {lost:?}"
    );
    assert!(matches!(
        lease.fenced::<String>(("SET", "{job}:last", "stale")),
        Err(Error::NotHeld(_))
    ));
    let last: String = redis::cmd("GET").arg("{job}:last").query(&mut c).unwrap();
    assert_eq!(last, "one");
}
