//! The failover delay after a promotion: per lock, from what the new master
//! knows of it; nothing held back after a planned promotion; the operator's
//! CONFIG SET acts on a running delay; INFO shows it.

use crate::support::{acquire, call, config_set, counter, info_field, info_int, state, Server};
use redis::Connection;
use std::time::{Duration, Instant};

fn delay_left(c: &mut Connection) -> i64 {
    info_field(c, "hblock", "hblock_failover_delay_left_ms")
        .and_then(|v| v.parse().ok())
        .expect("hblock_failover_delay_left_ms in INFO hblock")
}

fn release(c: &mut Connection, key: &str, owner: &str, token: i64) {
    let released: i64 = call(
        c,
        &[
            b"HBLOCK.RELEASE",
            key.as_bytes(),
            owner.as_bytes(),
            token.to_string().as_bytes(),
        ],
    )
    .unwrap();
    assert_eq!(released, 1);
}

/// A master and a replica in sync that knows a 30-minute lease of
/// `walkthrough`, taken and released.
fn linked_pair_knowing_a_long_lease() -> (Server, Server) {
    let master = Server::start();
    let replica = Server::replica_of(&master);
    let (mut m, mut r) = (master.conn(), replica.conn());
    let t = acquire(&mut m, "walkthrough", "me", &["INTERVAL", "600000"]).unwrap();
    release(&mut m, "walkthrough", "me", t);
    crate::support::wait_in_sync(&mut m, &mut r);
    (master, replica)
}

/// Kills the master and waits until its replica (`r`) sees the link down.
fn crash(master: &mut Server, r: &mut Connection) {
    master.stop();
    let down = crate::support::eventually(Duration::from_secs(10), || {
        (info_field(r, "replication", "master_link_status")? == "down").then_some(())
    });
    assert!(down.is_some(), "the replica saw its master go");
}

fn promote(r: &mut Connection) {
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(r)
        .unwrap();
}

/// A master with a replica in sync that knows a 30-minute lease, taken once
/// and released, and a short one; then the master is killed and the
/// replica promoted by hand (the link is down: unplanned). Also returns the
/// instant just before REPLICAOF NO ONE was sent: the promotion, and so every
/// delay counted from it, comes later, however long its reply takes to reach
/// a busy test process.
fn crashed_master_with(walkthrough_ms: &str) -> (Server, Connection, Instant) {
    let mut master = Server::start();
    let replica = Server::replica_of(&master);
    let (mut m, mut r) = (master.conn(), replica.conn());
    let t = acquire(&mut m, "walkthrough", "me", &["INTERVAL", walkthrough_ms]).unwrap();
    release(&mut m, "walkthrough", "me", t);
    let t = acquire(&mut m, "short", "me", &["INTERVAL", "100", "MISSES", "2"]).unwrap();
    // Released, or (a client slower than 200 ms) already expired: either
    // way the lease ended, and its 200 ms terms are what the replica knows.
    let _: i64 = call(
        &mut m,
        &[b"HBLOCK.RELEASE", b"short", b"me", t.to_string().as_bytes()],
    )
    .unwrap();
    crate::support::wait_in_sync(&mut m, &mut r);
    crash(&mut master, &mut r);
    let promoted = Instant::now();
    promote(&mut r);
    (replica, r, promoted)
}

#[test]
fn a_long_lease_taken_once_holds_back_that_lock_only() {
    let (_replica, mut r, promoted) = crashed_master_with("600000");
    // The 30-minute lock: held back for its own lease, and INFO says so.
    assert_eq!(acquire(&mut r, "walkthrough", "b", &[]), None);
    assert_eq!(state(&mut r, "walkthrough"), "held-back");
    let ttl = info_int(&mut r, "walkthrough", "ttl");
    assert!(ttl > 1_700_000 && ttl <= 1_800_000, "ttl {ttl}");
    // A brand-new key: the default terms (1 s x 3), and INFO is not nil.
    assert_eq!(acquire(&mut r, "brand:new:key", "b", &[]), None);
    assert_eq!(state(&mut r, "brand:new:key"), "held-back");
    assert_eq!(info_int(&mut r, "brand:new:key", "token"), 0);
    let left = delay_left(&mut r);
    assert!(left > 1_700_000, "the longest hold left: {left}");
    // The short lock's own lease is 200 ms; the new key's 3 s.
    let short = acquire(&mut r, "short", "b", &["WAIT", "10000"]).expect("short granted");
    let short_at = promoted.elapsed();
    let fresh = acquire(&mut r, "brand:new:key", "b", &["WAIT", "10000"]).expect("new key granted");
    let fresh_at = promoted.elapsed();
    eprintln!("after the promotion: short lock granted at {short_at:?}, a new key at {fresh_at:?}");
    assert!(
        short > 1 << 32 && fresh > short,
        "a new epoch: {short} {fresh}"
    );
    assert!(fresh_at >= Duration::from_millis(2_900), "{fresh_at:?}");
    assert!(fresh_at < Duration::from_secs(10), "{fresh_at:?}");
    assert!(counter(&mut r, "failover_delayed") >= 3);
    // A lock granted here since the promotion lost nothing: released, its
    // 30-minute terms do not hold it back.
    let post = acquire(&mut r, "post", "b", &["INTERVAL", "600000"]).expect("granted");
    release(&mut r, "post", "b", post);
    assert_eq!(state(&mut r, "post"), "free");
    assert!(acquire(&mut r, "post", "c", &[]).is_some(), "not held back");
    // The walkthrough lock is still held back; the operator ends it.
    assert_eq!(acquire(&mut r, "walkthrough", "b", &[]), None);
    config_set(&mut r, "hblock.failover-delay", "0");
    assert!(
        acquire(&mut r, "walkthrough", "b", &[]).is_some(),
        "ended by CONFIG SET 0"
    );
    assert_eq!(delay_left(&mut r), 0);
    assert!(
        crate::support::info(&mut r, "another:new:key").is_none(),
        "nil again"
    );
}

#[test]
fn config_set_shortens_lengthens_and_serves_waiters_at_the_new_end() {
    let (replica, mut r, promoted) = crashed_master_with("600000");
    let url = replica.url();
    let waiter = std::thread::spawn(move || {
        let mut w = redis::Client::open(url).unwrap().get_connection().unwrap();
        let got = acquire(&mut w, "walkthrough", "w", &["WAIT", "20000"]);
        (got, Instant::now())
    });
    let queued = crate::support::eventually(Duration::from_secs(5), || {
        (info_int(&mut r, "walkthrough", "waiters") == 1).then_some(())
    });
    assert!(queued.is_some());
    // Explicit 60 s for every lock: the brand-new key is held longer now...
    config_set(&mut r, "hblock.failover-delay", "60000");
    let ttl = info_int(&mut r, "brand:new", "ttl");
    assert!(ttl > 50_000 && ttl <= 60_000, "lengthened: {ttl}");
    // ... and 1 s ends the walkthrough's hold 1 s after the promotion: its
    // waiter is granted then, without any other command.
    config_set(&mut r, "hblock.failover-delay", "1000");
    let (got, at) = waiter.join().unwrap();
    assert!(got.is_some(), "the waiter was granted");
    let waited = at.duration_since(promoted);
    eprintln!("waiter granted {waited:?} after the promotion (delay set to 1 s)");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
}

/// REPLICAOF NO ONE while linked (what Sentinel sends, SENTINEL FAILOVER
/// included) cannot tell a caught-up replica from one still reading a
/// backlog, and the old master, not paused, grants until it is demoted:
/// each lock waits its own lease.
#[test]
fn replicaof_no_one_while_linked_is_delayed() {
    // The master stays up and linked (bound to a name, not dropped).
    let (_master, replica) = linked_pair_knowing_a_long_lease();
    let mut r = replica.conn();
    promote(&mut r);
    assert_eq!(acquire(&mut r, "walkthrough", "b", &[]), None);
    assert_eq!(state(&mut r, "brand:new:key"), "held-back");
    assert!(delay_left(&mut r) > 1_700_000);
    // CONFIG SET 0 ends it for good: -1 again does not bring it back.
    config_set(&mut r, "hblock.failover-delay", "0");
    config_set(&mut r, "hblock.failover-delay", "-1");
    assert!(acquire(&mut r, "walkthrough", "b", &[]).is_some());
    assert_eq!(delay_left(&mut r), 0);
}

#[test]
fn failover_command_hands_over_with_no_delay() {
    let (master, replica) = linked_pair_knowing_a_long_lease();
    let (mut m, mut r) = (master.conn(), replica.conn());
    let _: () = redis::cmd("FAILOVER").query(&mut m).unwrap();
    let promoted = crate::support::eventually(Duration::from_secs(10), || {
        (info_field(&mut r, "replication", "role")? == "master").then_some(())
    });
    assert!(promoted.is_some(), "FAILOVER promoted the replica");
    assert!(acquire(&mut r, "walkthrough", "b", &[]).is_some());
    assert!(acquire(&mut r, "brand:new:key", "b", &[]).is_some());
    assert_eq!(delay_left(&mut r), 0);
}

/// A 10-minute lease of `key` taken and released on its master, and known
/// to that master's replica: (the master's index, the replica's).
fn released_long_lease_on(cluster: &crate::support::cluster::Cluster, key: &str) -> (usize, usize) {
    let master = cluster.master_of(key);
    let mut m = cluster.nodes[master].conn();
    let t = acquire(&mut m, key, "me", &["INTERVAL", "600000"]).unwrap();
    release(&mut m, key, "me", t);
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut m).unwrap();
    assert_eq!(acked, 1, "the replica has the record");
    let port = i64::from(cluster.nodes[master].port);
    let replica = (0..cluster.nodes.len())
        .find(|&i| {
            let mut c = cluster.nodes[i].conn();
            let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut c).unwrap_or_default();
            matches!(role.get(2), Some(redis::Value::Int(p)) if *p == port)
        })
        .expect("the master's replica");
    (master, replica)
}

#[test]
fn cluster_failover_without_force_holds_nothing_back() {
    use crate::support::cluster::Cluster;
    let cluster = Cluster::start();
    let key = "planned:lock";
    let (_, replica) = released_long_lease_on(&cluster, key);
    let mut r = cluster.nodes[replica].conn();
    let _: () = redis::cmd("CLUSTER").arg("FAILOVER").query(&mut r).unwrap();
    let promoted = crate::support::eventually(Duration::from_secs(15), || {
        (info_field(&mut r, "replication", "role")? == "master").then_some(())
    });
    assert!(promoted.is_some(), "CLUSTER FAILOVER promoted the replica");
    let granted = crate::support::eventually(Duration::from_secs(5), || {
        let got: redis::RedisResult<Option<i64>> =
            redis::cmd("HBLOCK.ACQUIRE").arg(key).arg("b").query(&mut r);
        got.ok().flatten()
    });
    assert!(
        granted.is_some(),
        "granted at once after a planned failover"
    );
    assert_eq!(delay_left(&mut r), 0);
    assert_eq!(counter(&mut r, "failover_delayed"), 0);
}

/// A promotion counts as planned only when the link to the master was up
/// until the promotion itself: neither a refused REPLICAOF NO ONE sent while
/// linked, nor one queued in MULTI while linked and run after the master
/// died, holds nothing back.
#[test]
fn promotions_asked_while_linked_but_run_after_the_crash_are_delayed() {
    for queued_in_multi in [false, true] {
        let (mut master, replica) = linked_pair_knowing_a_long_lease();
        let mut r = replica.conn();
        let mut asked = replica.conn();
        if queued_in_multi {
            let _: () = redis::cmd("MULTI").query(&mut asked).unwrap();
            let queued: String = redis::cmd("REPLICAOF")
                .arg("NO")
                .arg("ONE")
                .query(&mut asked)
                .unwrap();
            assert_eq!(queued, "QUEUED");
        } else {
            // Seen by the command filter, refused by ACL: it never runs.
            let _: () = redis::cmd("ACL")
                .arg(&[
                    "SETUSER",
                    "limited",
                    "on",
                    "nopass",
                    "~*",
                    "+@all",
                    "-replicaof",
                ])
                .query(&mut r)
                .unwrap();
            let _: () = redis::cmd("AUTH")
                .arg("limited")
                .arg("x")
                .query(&mut asked)
                .unwrap();
            let denied: redis::RedisResult<()> = redis::cmd("REPLICAOF")
                .arg("NO")
                .arg("ONE")
                .query(&mut asked);
            assert!(denied.is_err());
        }
        crash(&mut master, &mut r);
        if queued_in_multi {
            let _: redis::Value = redis::cmd("EXEC").query(&mut asked).unwrap();
        } else {
            promote(&mut r);
        }
        assert_eq!(
            info_field(&mut r, "replication", "role").as_deref(),
            Some("master")
        );
        assert_eq!(
            acquire(&mut r, "walkthrough", "b", &[]),
            None,
            "multi: {queued_in_multi}"
        );
        assert_eq!(state(&mut r, "walkthrough"), "held-back");
        assert!(delay_left(&mut r) > 0);
    }
}

/// The reviewer's case: a CLUSTER FAILOVER that fails (the master is already
/// dead) and the automatic failover that follows: unplanned, delayed.
#[test]
fn a_failed_cluster_failover_does_not_make_the_automatic_one_planned() {
    use crate::support::cluster::Cluster;
    let mut cluster = Cluster::start();
    let key = "unplanned:lock";
    let (master, replica) = released_long_lease_on(&cluster, key);
    let mut r = cluster.nodes[replica].conn();
    cluster.nodes[master].stop();
    // Asked at once, before the cluster marks the master failed: it cannot
    // complete without the master, whatever it answers.
    let _: redis::RedisResult<()> = redis::cmd("CLUSTER").arg("FAILOVER").query(&mut r);
    let promoted = crate::support::eventually(Duration::from_secs(30), || {
        (info_field(&mut r, "replication", "role")? == "master").then_some(())
    });
    assert!(
        promoted.is_some(),
        "the automatic failover promoted the replica"
    );
    assert_eq!(acquire(&mut r, key, "b", &[]), None, "held back");
    assert_eq!(state(&mut r, key), "held-back");
}

/// INFO's delay left is exact once the module has walked the records: a
/// long lease whose record was deleted before the crash holds nothing back.
#[test]
fn the_delay_left_counts_only_records_that_still_exist() {
    let mut master = Server::start();
    let replica = Server::replica_of(&master);
    let (mut m, mut r) = (master.conn(), replica.conn());
    // Linked first, so the replica sees the long lease come and go.
    crate::support::wait_in_sync(&mut m, &mut r);
    let t = acquire(&mut m, "gone", "me", &["INTERVAL", "600000"]).unwrap();
    release(&mut m, "gone", "me", t);
    let _: i64 = redis::cmd("DEL").arg("gone").query(&mut m).unwrap();
    for i in 0..2000 {
        acquire(&mut m, &format!("short:{i}"), "me", &["INTERVAL", "100"]).unwrap();
    }
    crate::support::wait_in_sync(&mut m, &mut r);
    crash(&mut master, &mut r);
    promote(&mut r);
    // Only keys without a record (the 3 s default) and the short leases.
    let exact = crate::support::eventually(Duration::from_secs(10), || {
        let left = delay_left(&mut r);
        (left <= 3000).then_some(left)
    });
    assert!(exact.is_some(), "delay left {}", delay_left(&mut r));
    assert!(
        crate::support::info(&mut r, "gone").is_some(),
        "a missing key is held back"
    );
}
