//! Waiters and leases when their key changes under them: deleted, flushed,
//! overwritten, replaced, renamed, copied, moved, reloaded; the server
//! becoming a replica; hand-offs replicated and a promoted replica.

use crate::support::waiting::{joined, release, spawn_acquire, wait_for_key_waiters};
use crate::support::{
    acquire, counter, digest, error_text, eventually, info_bytes, state, wait_in_sync, Options,
    Server,
};
use std::time::{Duration, Instant};

#[test]
fn deleted_or_flushed_locks_go_to_the_first_waiter_as_new_keys() {
    let server = Server::start();
    let mut c = server.conn();
    let mut last_token = 0;
    for (key, wipe) in [("del", "DEL"), ("flush", "FLUSHALL"), ("unlink", "UNLINK")] {
        let first = acquire(&mut c, key, "a", &[]).expect("granted");
        release(&mut c, key, "a", first);
        let second = acquire(&mut c, key, "a", &[]).expect("granted");
        assert!(second > first && first > last_token);
        let waiter = spawn_acquire(&server, key, "w", &["WAIT", "0"]);
        wait_for_key_waiters(&mut c, key, 1);
        let wiped = Instant::now();
        let mut cmd = redis::cmd(wipe);
        if wipe != "FLUSHALL" {
            cmd.arg(key);
        }
        let _: redis::Value = cmd.query(&mut c).unwrap();
        let (token, at) = joined(waiter);
        let token = token.expect("granted");
        assert!(
            token > last_token,
            "{wipe}: the new, empty key gets a token never used before: {token}"
        );
        last_token = token;
        let delay = at.duration_since(wiped);
        eprintln!("{wipe} -> grant: {delay:?}");
        assert!(
            delay < Duration::from_secs(1),
            "{wipe}: granted after {delay:?}"
        );
        assert_eq!(info_bytes(&mut c, key, "owner").as_deref(), Some(&b"w"[..]));
    }
}

#[test]
fn a_key_overwritten_by_another_type_fails_its_waiters() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(acquire(&mut c, "lock", "a", &[]), Some(1));
    let waiter = spawn_acquire(&server, "lock", "w", &["WAIT", "0"]);
    wait_for_key_waiters(&mut c, "lock", 1);
    let _: () = redis::cmd("SET")
        .arg("lock")
        .arg("text")
        .query(&mut c)
        .unwrap();
    let (reply, _) = waiter.join().unwrap();
    let err = reply.expect_err("WRONGTYPE");
    assert!(error_text(&err).starts_with("WRONGTYPE"), "{err}");
    assert_eq!(counter(&mut c, "waiting"), 0);
}

#[test]
fn a_lock_key_whose_ttl_ends_goes_to_the_first_waiter_at_once() {
    let server = Server::start();
    let mut c = server.conn();
    let first = acquire(&mut c, "lock", "a", &["INTERVAL", "86400000"]).expect("granted");
    // A bounded wait: a waiter that is never granted fails instead of hanging.
    let waiter = spawn_acquire(&server, "lock", "w", &["WAIT", "5000"]);
    wait_for_key_waiters(&mut c, "lock", 1);
    // Taken before the PEXPIRE is sent: the TTL ends at least 50 ms after
    // this however long its reply takes to reach us (a client preempted
    // after the reply would otherwise see the grant "early").
    let set = Instant::now();
    let _: i64 = redis::cmd("PEXPIRE")
        .arg(&["lock", "50"])
        .query(&mut c)
        .unwrap();
    let (token, at) = joined(waiter);
    assert!(token.expect("granted when the TTL ended") > first);
    let delay = at.duration_since(set);
    eprintln!("PEXPIRE 50 -> grant: {delay:?}");
    assert!(
        delay >= Duration::from_millis(49),
        "granted before the TTL ended"
    );
    assert!(
        delay < Duration::from_secs(2),
        "granted {delay:?} after the TTL was set"
    );
}

#[test]
fn a_lock_replaced_by_a_copied_lock_grants_its_waiters_at_once() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(acquire(&mut c, "lock", "a", &[]), Some(1));
    assert_eq!(
        acquire(&mut c, "other", "b", &["INTERVAL", "600000"]),
        Some(2)
    );
    let waiter = spawn_acquire(&server, "lock", "w", &["WAIT", "0"]);
    wait_for_key_waiters(&mut c, "lock", 1);
    let copied: i64 = redis::cmd("COPY")
        .arg("other")
        .arg("lock")
        .arg("REPLACE")
        .query(&mut c)
        .unwrap();
    assert_eq!(copied, 1);
    // The copy's lease ended (one lease, one name): the waiter is granted.
    assert_eq!(joined(waiter).0, Some(3));
    assert_eq!(release(&mut c, "other", "b", 2), 1, "the source still held");
}

#[test]
fn waiters_get_an_error_when_the_master_becomes_a_replica() {
    let other = Server::start();
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(acquire(&mut c, "lock", "a", &[]), Some(1));
    let waiter = spawn_acquire(&server, "lock", "w", &["WAIT", "0"]);
    wait_for_key_waiters(&mut c, "lock", 1);
    let demoted = Instant::now();
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(other.port)
        .query(&mut c)
        .unwrap();
    let (reply, at) = waiter.join().unwrap();
    assert!(reply.is_err(), "{reply:?}");
    assert!(at.duration_since(demoted) < Duration::from_secs(2));
    assert_eq!(counter(&mut c, "waiting"), 0);
}

#[test]
fn hand_offs_replicate_and_a_promoted_replica_takes_over_expiries() {
    let master = Server::start();
    let replica = Server::replica_of(&master);
    let mut m = master.conn();
    let mut r = replica.conn();
    wait_in_sync(&mut m, &mut r);
    assert_eq!(acquire(&mut m, "lock", "a", &[]), Some(1));
    // w's lease must not run out during the test: the promoted replica's
    // one expiry is to be the late lease's.
    let waiter = spawn_acquire(&master, "lock", "w", &["WAIT", "0", "INTERVAL", "600000"]);
    wait_for_key_waiters(&mut m, "lock", 1);
    assert_eq!(release(&mut m, "lock", "a", 1), 1);
    assert_eq!(joined(waiter).0, Some(2));
    // An expiry decided by the master's timer replicates too.
    assert_eq!(
        acquire(&mut m, "short", "s", &["INTERVAL", "50", "MISSES", "1"]),
        Some(3)
    );
    let expired = eventually(Duration::from_secs(5), || {
        (counter(&mut m, "expired") == 1).then_some(())
    });
    assert!(expired.is_some());
    wait_in_sync(&mut m, &mut r);
    assert_eq!(digest(&mut m), digest(&mut r));
    assert_eq!(
        info_bytes(&mut r, "lock", "owner").as_deref(),
        Some(&b"w"[..])
    );

    // A lease that runs out while the server is a replica is handled once it
    // is promoted, with no command on the key. 3 s: long enough that the
    // master dies before its deadline even when syncing is slow (else the
    // master's own expiry replicates and the promoted replica has none left
    // to decide).
    let asked = Instant::now();
    assert_eq!(
        acquire(&mut m, "late", "x", &["INTERVAL", "3000", "MISSES", "1"]),
        Some(4)
    );
    wait_in_sync(&mut m, &mut r);
    drop(master); // the master dies before it sees the expiry
    let past_deadline = asked + Duration::from_millis(3150);
    std::thread::sleep(past_deadline.saturating_duration_since(Instant::now()));
    assert_eq!(counter(&mut r, "expired"), 0, "a replica decides nothing");
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(&mut r)
        .unwrap();
    let seen = eventually(Duration::from_secs(5), || {
        (counter(&mut r, "expired") == 1).then_some(())
    });
    assert!(
        seen.is_some(),
        "the promoted replica never published the expiry"
    );
    // After the promotion: the failover delay (auto: the 3 s default lease),
    // then a token of the new epoch.
    assert_eq!(acquire(&mut r, "late", "y", &[]), None, "held off");
    let token = acquire(&mut r, "late", "y", &["WAIT", "10000"]).expect("granted after the delay");
    assert!(token > 1 << 32, "a new epoch: {token}");
}

#[test]
fn timers_are_rearmed_after_loading() {
    // `appendfsync always`: with everysec Redis answers a write whose AOF
    // write it postponed behind a slow background fsync, and the SIGKILL
    // below would lose it (seen in CI).
    let mut server = Server::with(
        Options::default()
            .config("appendonly", "yes")
            .config("appendfsync", "always"),
    );
    let mut c = server.conn();
    // Leases long enough to outlive the reload and the restart below on a
    // busy host (one that lapsed before them would leave nothing to re-arm).
    assert_eq!(
        acquire(&mut c, "rdb", "a", &["INTERVAL", "1000", "MISSES", "1"]),
        Some(1)
    );
    let _: () = redis::cmd("DEBUG").arg("RELOAD").query(&mut c).unwrap();
    let seen = eventually(Duration::from_secs(10), || {
        (counter(&mut c, "expired") == 1).then_some(())
    });
    assert!(seen.is_some(), "expiry after DEBUG RELOAD");
    // DEBUG RELOAD started a new epoch (a master loading its files).
    let token = acquire(&mut c, "aof", "a", &["INTERVAL", "2000", "MISSES", "1"]);
    assert!(token.is_some_and(|t| t > 1 << 32), "{token:?}");
    server.crash_and_restart();
    let mut c = server.conn();
    let loaded: i64 = redis::cmd("EXISTS").arg("aof").query(&mut c).unwrap();
    assert_eq!(loaded, 1, "the AOF kept the acquire");
    let seen = eventually(Duration::from_secs(10), || {
        (counter(&mut c, "expired") == 1).then_some(())
    });
    assert!(seen.is_some(), "expiry after an AOF restart");
    assert_eq!(state(&mut c, "aof"), "expired");
}

#[test]
fn leases_renamed_copied_or_moved_end_at_the_new_name_and_the_source_expires_on_time() {
    let server = Server::start();
    let mut c = server.conn();
    // 2 s: the three commands below come before the deadlines even on a
    // busy host.
    for key in ["renamed", "copied", "moved"] {
        assert!(acquire(&mut c, key, "a", &["INTERVAL", "2000", "MISSES", "1"]).is_some());
    }
    let _: () = redis::cmd("RENAME")
        .arg("renamed")
        .arg("renamed2")
        .query(&mut c)
        .unwrap();
    let _: i64 = redis::cmd("COPY")
        .arg("copied")
        .arg("copied2")
        .query(&mut c)
        .unwrap();
    let _: i64 = redis::cmd("MOVE")
        .arg("moved")
        .arg(1)
        .query(&mut c)
        .unwrap();
    // The renamed, copied and moved leases ended at their new names; the
    // copy's source, touched by no command again, expires on time.
    let seen = eventually(Duration::from_secs(5), || {
        (counter(&mut c, "expired") == 1).then_some(())
    });
    assert!(seen.is_some(), "expired: {}", counter(&mut c, "expired"));
    assert_eq!(state(&mut c, "copied"), "expired");
    // MOVE left this connection on its own db (Valkey before #4024 did not).
    let client: String = redis::cmd("CLIENT").arg("INFO").query(&mut c).unwrap();
    assert!(client.contains(" db=0 "), "{client}");
    assert_eq!(state(&mut c, "renamed2"), "free");
    assert_eq!(state(&mut c, "copied2"), "free");
    let mut db1 = redis::Client::open(format!("{}1", server.url()))
        .and_then(|client| client.get_connection())
        .unwrap();
    assert_eq!(state(&mut db1, "moved"), "free");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counter(&mut c, "expired"), 1, "no expiry of an ended lease");
}
