//! Redis being operated: writes paused (CLIENT PAUSE, FAILOVER, SHUTDOWN
//! with a lagging replica), replicas that persist what they apply, and lock
//! writes refused on writable replicas.

use crate::support::waiting::{blocked_waiter, lapsing_leases, wait_for_waiters};
use crate::support::{
    acquire, call, counter, digest, error_of, eventually, info, info_bytes, info_field, info_int,
    lock_writes_refused, wait_in_sync, Options, Server, READONLY,
};
use redis::Value;
use std::time::{Duration, Instant};

// ---- 1. writes paused ----

#[test]
fn nothing_is_written_while_clients_are_paused() {
    // AOF on and a replica attached: any propagation during the pause aborts 7.0.
    let master = Server::with(Options::default().config("appendonly", "yes"));
    let replica = Server::replica_of(&master);
    let (mut m, mut r) = (master.conn(), replica.conn());
    wait_in_sync(&mut m, &mut r);
    let expired_before = counter(&mut m, "expired");
    // Deadlines 1200-1500 ms away, inside the 3000 ms pause below even when
    // the set-up up to it is slow (a busy CI host: a client preempted for a
    // while after each reply). The counter is compared from the pause's
    // start: a lease whose deadline passed while the server was busy may
    // still expire in the event-loop turn before CLIENT PAUSE.
    acquire(&mut m, "k", "owner", &["INTERVAL", "1500", "MISSES", "1"]);
    let mut pipe = redis::pipe();
    for i in 0..50 {
        pipe.cmd("HBLOCK.ACQUIRE")
            .arg(format!("lapse:{i}"))
            .arg("o")
            .arg("INTERVAL")
            .arg(1200 + 2 * i)
            .arg("MISSES")
            .arg(1)
            .ignore();
    }
    let _: () = pipe.query(&mut m).unwrap();
    let (_, waiter) = blocked_waiter(&master, "k", "next");
    wait_for_waiters(&mut m, 1);

    // Taken before the pause is asked: it ends 3000 ms after a moment later
    // than this, however long its reply takes to reach us.
    let paused_at = Instant::now();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(3000)
        .arg("WRITE")
        .query(&mut m)
        .unwrap();
    let expired_at_pause = counter(&mut m, "expired");
    std::thread::sleep(Duration::from_millis(1600));
    // Leases ran out during the pause (k's 1500 ms among them), but nothing
    // was decided or written.
    assert_eq!(counter(&mut m, "expired"), expired_at_pause);
    assert_eq!(info_bytes(&mut m, "k", "owner"), Some(b"owner".to_vec()));
    assert!(
        !waiter.is_finished(),
        "a waiter was granted during the pause"
    );

    // After the pause the expiries happen at once and the waiter gets the lock.
    let (reply, pong) = waiter.join().unwrap();
    assert!(paused_at.elapsed() >= Duration::from_millis(2900));
    assert!(matches!(reply.unwrap(), Value::Int(t) if t > 1));
    assert_eq!(pong, "after");
    assert!(counter(&mut m, "expired") >= expired_before + 51);
    wait_in_sync(&mut m, &mut r);
    assert_eq!(digest(&mut m), digest(&mut r));
}

#[test]
fn failover_with_lapsing_leases_keeps_both_servers_up() {
    let master = Server::with(Options::default().config("appendonly", "yes"));
    let replica = Server::replica_of(&master);
    let (mut m, mut r) = (master.conn(), replica.conn());
    wait_in_sync(&mut m, &mut r);
    for round in 0..3 {
        // Leases run out while FAILOVER pauses writes on the old master.
        lapsing_leases(&mut m, 200);
        let _: () = redis::cmd("FAILOVER").query(&mut m).unwrap();
        let switched = eventually(Duration::from_secs(10), || {
            (info_field(&mut r, "replication", "role")? == "master").then_some(())
        });
        assert!(switched.is_some(), "round {round}: FAILOVER did not finish");
        std::mem::swap(&mut m, &mut r);
        // The new master expires the lapsed leases as soon as it is promoted:
        // compare once those records have reached the replica.
        let equal = eventually(Duration::from_secs(5), || {
            wait_in_sync(&mut m, &mut r);
            (digest(&mut m) == digest(&mut r)).then_some(())
        });
        assert!(
            equal.is_some(),
            "round {round}: replica differs from master"
        );
    }
    // Both still serve; the new master grants once its failover delay
    // (auto: the 3 s default lease) has passed.
    assert!(acquire(&mut m, "after", "x", &["WAIT", "10000"]).is_some());
}

#[test]
fn shutdown_waiting_for_a_lagging_replica_saves_everything() {
    let opts = Options::default()
        .config("shutdown-timeout", "2")
        .config("dbfilename", "dump.rdb");
    let mut master = Server::with(opts);
    let replica = Server::replica_of(&master);
    let (mut m, mut r) = (master.conn(), replica.conn());
    wait_in_sync(&mut m, &mut r);
    for i in 0..100 {
        let _: () = redis::cmd("SET")
            .arg(format!("plain:{i}"))
            .arg(i)
            .query(&mut m)
            .unwrap();
    }
    lapsing_leases(&mut m, 100);
    let keys: i64 = redis::cmd("DBSIZE").query(&mut m).unwrap();
    // The replica lags: Redis pauses writes while it waits for it.
    let pid: i64 = info_field(&mut r, "server", "process_id")
        .unwrap()
        .parse()
        .unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status();
    let _: () = redis::cmd("SET")
        .arg("last")
        .arg("1")
        .query(&mut m)
        .unwrap();
    let _ = redis::cmd("SHUTDOWN").arg("SAVE").query::<Value>(&mut m);
    let status = master.wait_exit(Duration::from_secs(10));
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &pid.to_string()])
        .status();
    let status = status.expect("master did not exit");
    assert!(
        status.success(),
        "master exited with {status:?}\n{}",
        master.log()
    );
    master.relaunch();
    let mut m = master.conn();
    let after: i64 = redis::cmd("DBSIZE").query(&mut m).unwrap();
    assert_eq!(after, keys + 1, "keys lost over the shutdown");
}

// ---- 2. replicas persist ----

#[test]
fn a_replica_keeps_lock_records_in_its_own_aof_and_save_points() {
    let master = Server::start();
    let replica_opts = Options::default()
        .config("appendonly", "yes")
        .config("appendfsync", "always");
    let mut replica = Server::with(
        replica_opts
            .clone()
            .config("replicaof", &format!("127.0.0.1 {}", master.port)),
    );
    let (mut m, mut r) = (master.conn(), replica.conn());
    wait_in_sync(&mut m, &mut r);
    // After a full sync the replica rewrites its AOF; writes made before that
    // finishes are Redis's own business, not the module's.
    let rewritten = eventually(Duration::from_secs(10), || {
        let busy = info_field(&mut r, "persistence", "aof_rewrite_in_progress")? != "0"
            || info_field(&mut r, "persistence", "aof_rewrite_scheduled")? != "0";
        (!busy).then_some(())
    });
    assert!(
        rewritten.is_some(),
        "the replica's AOF rewrite did not finish"
    );
    let changes_before: i64 = info_field(&mut r, "persistence", "rdb_changes_since_last_save")
        .unwrap()
        .parse()
        .unwrap();
    for _ in 0..10 {
        let token = acquire(&mut m, "lock", "o", &[]).expect("granted");
        let t = token.to_string();
        let _: i64 = call(&mut m, &[b"HBLOCK.RELEASE", b"lock", b"o", t.as_bytes()]).unwrap();
    }
    wait_in_sync(&mut m, &mut r);
    let changes: i64 = info_field(&mut r, "persistence", "rdb_changes_since_last_save")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        changes >= changes_before + 20,
        "replica counted {changes} changes"
    );
    // Killed and restarted on its own (no master): the records are in its AOF.
    replica.crash_and_restart_with(replica_opts);
    let mut r = replica.conn();
    assert_eq!(info_int(&mut r, "lock", "token"), 10);
    // Started on its own as a master: a new epoch, so it never hands out a
    // token it or its old master gave.
    let token = acquire(&mut r, "lock", "n", &[]).expect("granted");
    assert!(token > 1 << 32, "{token}");
}

// ---- 6. writable replicas ----

#[test]
fn lock_writes_on_a_writable_replica_answer_readonly() {
    let master = Server::start();
    let replica = Server::with(
        Options::default()
            .config("replicaof", &format!("127.0.0.1 {}", master.port))
            .config("replica-read-only", "no"),
    );
    let (mut m, mut r) = (master.conn(), replica.conn());
    wait_in_sync(&mut m, &mut r);
    acquire(&mut m, "held", "o", &["INTERVAL", "60000"]);
    wait_in_sync(&mut m, &mut r);
    for args in [
        &[&b"HBLOCK.ACQUIRE"[..], b"new", b"o"][..],
        &[b"HBLOCK.ACQUIRE", b"held", b"x", b"WAIT", b"100"],
        &[b"HBLOCK.BEAT", b"held", b"o", b"1"],
        &[b"HBLOCK.RELEASE", b"held", b"o", b"1"],
    ] {
        assert_eq!(error_of(&mut r, args), READONLY);
    }
    // Reading works, and nothing was created on the replica.
    assert_eq!(info_bytes(&mut r, "held", "owner"), Some(b"o".to_vec()));
    assert!(info(&mut r, "new").is_none());
}

#[test]
fn lock_writes_follow_the_role_changed_at_run_time() {
    // The write commands keep the role from the role-change event instead of
    // asking the server on every call: REPLICAOF and REPLICAOF NO ONE on a
    // running server must move it both ways. (A writable replica: Redis
    // itself refuses write commands on a read-only one.)
    let master = Server::start();
    let other = Server::with(Options::default().config("replica-read-only", "no"));
    let (mut m, mut o) = (master.conn(), other.conn());
    let token = acquire(&mut m, "held", "o", &["INTERVAL", "60000"]).expect("granted");
    let token = token.to_string();
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(master.port)
        .query(&mut o)
        .expect("REPLICAOF");
    wait_in_sync(&mut m, &mut o);
    lock_writes_refused(&mut o, &token);
    let check: String = call(&mut o, &[b"HBLOCK.CHECK", b"held", b"o", token.as_bytes()])
        .expect("CHECK on the replica");
    assert_eq!(check, "OK");
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(&mut o)
        .expect("REPLICAOF NO ONE");
    let beats: i64 = call(&mut o, &[b"HBLOCK.BEAT", b"held", b"o", token.as_bytes()])
        .expect("BEAT on the promoted server");
    assert!(beats >= 1, "{beats}");
    // (A new lock would wait for the failover delay of an unplanned promotion.)
    let released: i64 = call(
        &mut o,
        &[b"HBLOCK.RELEASE", b"held", b"o", token.as_bytes()],
    )
    .expect("RELEASE on the promoted server");
    assert_eq!(released, 1);
}
