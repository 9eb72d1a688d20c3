//! Tokens never repeat for a key name: across DEL, FLUSHALL, eviction,
//! RESTORE of an old DUMP, restarts, and failovers that lost grants.

use crate::support::{acquire, config_set, counter, info_field, info_int, Options, Server};
use std::time::{Duration, Instant};

fn release(c: &mut redis::Connection, key: &str, owner: &str, token: i64) {
    let _: i64 = redis::cmd("HBLOCK.RELEASE")
        .arg(&[key, owner])
        .arg(token)
        .query(c)
        .unwrap();
}

#[test]
fn a_deleted_flushed_evicted_or_restored_key_never_sees_an_old_token() {
    let server = Server::start();
    let mut c = server.conn();
    let t1 = acquire(&mut c, "k", "a", &[]).unwrap();
    let dump: Vec<u8> = redis::cmd("DUMP").arg("k").query(&mut c).unwrap();
    let _: i64 = redis::cmd("DEL").arg("k").query(&mut c).unwrap();
    let t2 = acquire(&mut c, "k", "a", &[]).unwrap();
    assert!(t2 > t1, "after DEL: {t2} > {t1}");
    let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
    let t3 = acquire(&mut c, "k", "a", &[]).unwrap();
    assert!(t3 > t2, "after FLUSHALL: {t3} > {t2}");
    // RESTORE of the first lease's DUMP: its record says token 1, released here.
    let _: () = redis::cmd("RESTORE")
        .arg("k")
        .arg(0)
        .arg(dump)
        .arg("REPLACE")
        .query(&mut c)
        .unwrap();
    release(&mut c, "k", "a", t1);
    let t4 = acquire(&mut c, "k", "b", &[]).unwrap();
    assert!(t4 > t3, "after RESTORE of an old DUMP: {t4} > {t3}");
    // Eviction under allkeys-random.
    config_set(&mut c, "maxmemory-policy", "allkeys-random");
    let used: i64 = info_field(&mut c, "memory", "used_memory")
        .unwrap()
        .parse()
        .unwrap();
    config_set(&mut c, "maxmemory", &(used + 200_000).to_string());
    // Random eviction: keep writing until the lock is among the evicted.
    let mut evicted = None;
    for i in 0..200_000 {
        let _: () = redis::cmd("SET")
            .arg(format!("fill:{i}"))
            .arg("x".repeat(100))
            .query(&mut c)
            .unwrap();
        let exists: i64 = redis::cmd("EXISTS").arg("k").query(&mut c).unwrap();
        if exists == 0 {
            evicted = Some(i);
            break;
        }
    }
    assert!(evicted.is_some(), "the lock was never evicted");
    config_set(&mut c, "maxmemory", "0");
    let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
    let t5 = acquire(&mut c, "k", "a", &[]).unwrap();
    assert!(t5 > t4, "after eviction: {t5} > {t4}");
}

#[test]
fn restarts_from_rdb_and_aof_after_del_keep_the_floor() {
    for (name, options) in [
        ("rdb", Options::default().config("save", "1 1")),
        (
            "aof",
            Options::default()
                .config("appendonly", "yes")
                .config("appendfsync", "always"),
        ),
    ] {
        let mut server = Server::with(options);
        let mut c = server.conn();
        let mut last = 0;
        for _ in 0..5 {
            last = acquire(&mut c, "k", "a", &[]).unwrap();
            release(&mut c, "k", "a", last);
        }
        let _: i64 = redis::cmd("DEL").arg("k").query(&mut c).unwrap();
        if name == "rdb" {
            let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
        }
        server.crash_and_restart();
        let mut c = server.conn();
        assert_eq!(
            info_field(&mut c, "keyspace", "db0"),
            None,
            "{name}: no keys"
        );
        let next = acquire(&mut c, "k", "a", &[]).unwrap();
        assert!(next > last, "{name}: {next} > {last}");
        assert!(
            counter(&mut c, "epoch") >= 1,
            "{name}: a master restart starts an epoch"
        );
    }
}

/// Grants of the old master that never reached the replica, then a crash
/// and a promotion: the promoted server's tokens are above all of them, and
/// with the failover delay a grant waits until the old lease could have ended.
#[test]
fn a_promotion_after_lost_grants_never_reuses_their_tokens() {
    let master = Server::start();
    let mut replica = Server::with(
        Options::default()
            .config("replicaof", &format!("127.0.0.1 {}", master.port))
            .config("appendonly", "yes")
            .config("appendfsync", "always"),
    );
    let (mut m, mut r) = (master.conn(), replica.conn());
    crate::support::wait_in_sync(&mut m, &mut r);
    let seen = acquire(&mut m, "k", "a", &[]).unwrap();
    release(&mut m, "k", "a", seen);
    crate::support::wait_in_sync(&mut m, &mut r);
    let lost = grants_the_replica_never_gets(master, &replica);
    let mut r = replica.conn();
    assert_eq!(
        info_int(&mut r, "k", "token"),
        seen,
        "the replica never got the lost grants"
    );
    // Taken before the promotion is asked: the delay starts later than this
    // however long the reply takes to reach a busy test process.
    let promoted = Instant::now();
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(&mut r)
        .unwrap();
    // Held off: the lock is not held by the promoted server's records.
    assert_eq!(acquire(&mut r, "k", "b", &[]), None);
    let ttl = info_int(&mut r, "k", "ttl");
    assert!(ttl > 0 && ttl <= 3000, "ttl shows the delay left: {ttl}");
    assert_eq!(counter(&mut r, "epoch"), 1);
    let token = acquire(&mut r, "k", "b", &["WAIT", "10000"]).expect("granted after the delay");
    let waited = promoted.elapsed();
    eprintln!("promotion to grant: {waited:?} (failover delay: the 3 s default lease)");
    assert!(
        waited >= Duration::from_millis(2900),
        "granted during the delay: {waited:?}"
    );
    assert!(lost.iter().all(|&t| token > t), "{token} vs {lost:?}");
    assert!(counter(&mut r, "failover_delayed") >= 1);
    // The promoted server restarts from its AOF before granting again.
    release(&mut r, "k", "b", token);
    replica.crash_and_restart_with(
        Options::default()
            .config("appendonly", "yes")
            .config("appendfsync", "always"),
    );
    let mut r = replica.conn();
    let after = acquire(&mut r, "k", "c", &[]).unwrap();
    assert!(after > token, "after the restart: {after} > {token}");
}

#[test]
fn failover_delay_is_a_config_and_zero_turns_it_off() {
    let master = Server::start();
    let replica = Server::replica_of(&master);
    let (mut m, mut r) = (master.conn(), replica.conn());
    crate::support::wait_in_sync(&mut m, &mut r);
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("hblock.failover-delay")
        .query(&mut r)
        .unwrap();
    assert_eq!(got, ["hblock.failover-delay", "-1"]);
    config_set(&mut r, "hblock.failover-delay", "0");
    drop(master);
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(&mut r)
        .unwrap();
    let token = acquire(&mut r, "fresh", "a", &[]).expect("no delay");
    assert!(token > 1 << 32, "{token}");
    let err = crate::support::error_of(
        &mut r,
        &[b"CONFIG", b"SET", b"hblock.failover-delay", b"-2"],
    );
    assert!(err.starts_with("ERR"), "{err}");
}

/// With the replica stopped and its link dropped, the master grants (and
/// releases) "k" five times, grants it once more and dies (SIGKILL); the
/// replica then runs again. Returns the tokens the replica never saw.
fn grants_the_replica_never_gets(master: Server, replica: &Server) -> Vec<i64> {
    let mut m = master.conn();
    let pid = replica.pid().expect("replica pid").to_string();
    let signal = |sig: &str| {
        let sent = std::process::Command::new("kill")
            .args([sig, &pid])
            .status();
        assert!(sent.is_ok_and(|s| s.success()), "kill {sig}");
    };
    signal("-STOP");
    // The master drops the link: what it grants now never reaches the replica.
    let _: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "replica"])
        .query(&mut m)
        .unwrap();
    let mut lost = Vec::new();
    for _ in 0..5 {
        let t = acquire(&mut m, "k", "a", &[]).unwrap();
        release(&mut m, "k", "a", t);
        lost.push(t);
    }
    lost.push(acquire(&mut m, "k", "last", &[]).unwrap()); // held when the master dies
    drop(master); // SIGKILL
    signal("-CONT");
    lost
}
