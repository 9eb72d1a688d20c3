//! Redis being operated: paused, failed over, shut down with a lagging
//! replica, replicas restarted, module arguments, eviction, writable replicas,
//! CLIENT UNBLOCK at the moment of a grant, keys looked at but not touched.

use crate::support::{
    acquire, call, counter, digest, error_of, eventually, info, info_bytes, info_field, info_int,
    refused_start, wait_in_sync, Options, Server,
};
use redis::{Connection, Value};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A client blocked in `ACQUIRE key owner INTERVAL 60000 WAIT 0` on its own
/// connection (a lease it is granted outlives the test's 5 s read timeout):
/// its client id, and the thread that returns (reply, the reply to a PING
/// sent after it) so that a missing reply shows as an off-by-one PING.
fn blocked_waiter(
    server: &Server,
    key: &str,
    owner: &str,
) -> (i64, JoinHandle<(redis::RedisResult<Value>, String)>) {
    let mut conn = server.conn();
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut conn).unwrap();
    let (key, owner) = (key.to_string(), owner.to_string());
    let thread = std::thread::spawn(move || {
        let reply = redis::cmd("HBLOCK.ACQUIRE")
            .arg(&key)
            .arg(&owner)
            .arg(&["INTERVAL", "60000", "WAIT", "0"])
            .query::<Value>(&mut conn);
        let pong = redis::cmd("PING")
            .arg("after")
            .query::<String>(&mut conn)
            .unwrap_or_else(|e| format!("error: {e}"));
        (reply, pong)
    });
    (id, thread)
}

fn wait_for_waiters(conn: &mut Connection, n: u64) {
    let queued = eventually(Duration::from_secs(5), || {
        (counter(conn, "waiting") == n).then_some(())
    });
    assert!(queued.is_some(), "{n} waiters never queued");
}

/// `n` leases that run out one after another over the next `n` ms or so.
fn lapsing_leases(conn: &mut Connection, n: usize) {
    let mut pipe = redis::pipe();
    for i in 0..n {
        let interval = (20 + i).to_string();
        pipe.cmd("HBLOCK.ACQUIRE")
            .arg(format!("lapse:{i}"))
            .arg("o")
            .arg("INTERVAL")
            .arg(interval)
            .arg("MISSES")
            .arg(1)
            .ignore();
    }
    let _: () = pipe.query(conn).expect("lapsing leases");
}

// ---- 1. writes paused ----

#[test]
fn nothing_is_written_while_clients_are_paused() {
    // AOF on and a replica attached: any propagation during the pause aborts 7.0.
    let master = Server::with(Options::default().config("appendonly", "yes"));
    let replica = Server::replica_of(&master);
    let (mut m, mut r) = (master.conn(), replica.conn());
    wait_in_sync(&mut m, &mut r);
    acquire(&mut m, "k", "owner", &["INTERVAL", "100", "MISSES", "1"]);
    lapsing_leases(&mut m, 50);
    let (_, waiter) = blocked_waiter(&master, "k", "next");
    wait_for_waiters(&mut m, 1);
    let expired_before = counter(&mut m, "expired");

    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(800)
        .arg("WRITE")
        .query(&mut m)
        .unwrap();
    let paused_at = Instant::now();
    std::thread::sleep(Duration::from_millis(400));
    // Leases ran out during the pause, but nothing was decided or written.
    assert_eq!(counter(&mut m, "expired"), expired_before);
    assert_eq!(info_bytes(&mut m, "k", "owner"), Some(b"owner".to_vec()));
    assert!(
        !waiter.is_finished(),
        "a waiter was granted during the pause"
    );

    // After the pause the expiries happen at once and the waiter gets the lock.
    let (reply, pong) = waiter.join().unwrap();
    assert!(paused_at.elapsed() >= Duration::from_millis(700));
    assert_eq!(reply.unwrap(), Value::Int(2));
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
    // Both still serve; the new master grants.
    assert!(acquire(&mut m, "after", "x", &[]).is_some());
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
    // Promoted, it never hands out a token it already gave.
    assert_eq!(acquire(&mut r, "lock", "n", &[]), Some(11));
}

// ---- 3. CLIENT UNBLOCK / CLIENT KILL at the moment of a grant ----

fn release_then(m: &mut Connection, key: &str, token: i64, then: &[&str]) -> Vec<Value> {
    let mut pipe = redis::pipe();
    pipe.cmd("HBLOCK.RELEASE").arg(key).arg("A").arg(token);
    let mut cmd = redis::cmd(then[0]);
    for arg in &then[1..] {
        cmd.arg(*arg);
    }
    pipe.add_command(cmd);
    pipe.query(m).expect("pipeline")
}

#[test]
fn client_unblock_of_a_just_granted_waiter_lets_it_read_its_token() {
    let server = Server::start();
    let mut m = server.conn();
    for mode in [None, Some("TIMEOUT"), Some("ERROR")] {
        let key = format!("u:{mode:?}");
        let token = acquire(&mut m, &key, "A", &["INTERVAL", "60000"]).unwrap();
        let (id, waiter) = blocked_waiter(&server, &key, "W");
        wait_for_waiters(&mut m, 1);
        let id = id.to_string();
        let mut unblock = vec!["CLIENT", "UNBLOCK", id.as_str()];
        unblock.extend(mode);
        let replies = release_then(&mut m, &key, token, &unblock);
        // W was served in the same pass: there was nothing left to unblock.
        assert_eq!(replies, [Value::Int(1), Value::Int(0)], "{mode:?}");
        let (reply, pong) = waiter.join().unwrap();
        assert_eq!(reply.unwrap(), Value::Int(token + 1), "{mode:?}");
        assert_eq!(pong, "after", "{mode:?}: one reply, in order");
        assert_eq!(info_bytes(&mut m, &key, "owner"), Some(b"W".to_vec()));
    }
    // A waiter still queued is unblocked as usual.
    let token = acquire(&mut m, "q", "A", &["INTERVAL", "60000"]).unwrap();
    let (id, waiter) = blocked_waiter(&server, "q", "W");
    wait_for_waiters(&mut m, 1);
    let n: i64 = redis::cmd("CLIENT")
        .arg("UNBLOCK")
        .arg(id)
        .query(&mut m)
        .unwrap();
    assert_eq!(n, 1);
    let (reply, pong) = waiter.join().unwrap();
    assert_eq!((reply.unwrap(), pong.as_str()), (Value::Nil, "after"));
    assert_eq!(info_int(&mut m, "q", "token"), token);
}

#[test]
fn a_waiter_killed_before_reading_its_grant_hands_the_lock_on() {
    let server = Server::start();
    let mut m = server.conn();
    let token = acquire(&mut m, "k", "A", &["INTERVAL", "60000"]).unwrap();
    let (first, _gone) = blocked_waiter(&server, "k", "W1");
    wait_for_waiters(&mut m, 1);
    let (_, second) = blocked_waiter(&server, "k", "W2");
    wait_for_waiters(&mut m, 2);
    let id = first.to_string();
    let replies = release_then(&mut m, "k", token, &["CLIENT", "KILL", "ID", &id]);
    assert_eq!(replies, [Value::Int(1), Value::Int(1)]);
    // W1 never learnt its token: that grant is undone and W2 is served at
    // once, not after W1's 60 s lease.
    let (reply, pong) = second.join().unwrap();
    assert_eq!(reply.unwrap(), Value::Int(token + 2));
    assert_eq!(pong, "after");
    assert_eq!(info_bytes(&mut m, "k", "owner"), Some(b"W2".to_vec()));
}

// ---- 4. module arguments ----

#[test]
fn bad_module_arguments_refuse_the_start_with_one_clear_line() {
    let cases: [(&[&str], &str); 7] = [
        (
            &["interval", "0"],
            "module argument 'interval' is '0': it must be an integer from 1 to 86400000",
        ),
        (&["interval", "-5"], "'interval' is '-5'"),
        (
            &["misses", "70000"],
            "'misses' is '70000': it must be an integer from 1 to 10000",
        ),
        (&["misses", "abc"], "'misses' is 'abc'"),
        (&["bogus", "1"], "unknown module argument 'bogus'"),
        (&["interval"], "'interval' needs a value"),
        (
            &["interval", "500", "INTERVAL", "600"],
            "'interval' is given twice",
        ),
    ];
    for (args, line) in cases {
        let opts = Options {
            module_args: args.iter().map(|a| a.to_string()).collect(),
            ..Options::default()
        };
        let log = refused_start(opts);
        assert!(log.contains(line), "{args:?}: log lacks {line:?}:\n{log}");
    }
    // Names are case-insensitive, as elsewhere in Redis.
    let server = Server::with(Options::default().module_arg("INTERVAL", "500"));
    let mut c = server.conn();
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("hblock.interval")
        .query(&mut c)
        .unwrap();
    assert_eq!(got, ["hblock.interval", "500"]);
}

#[test]
fn module_load_with_any_bytes_and_a_second_load_say_what_is_wrong() {
    let server = Server::with(Options::default().without_module());
    let mut c = server.conn();
    let module = crate::support::module_path();
    let load = |c: &mut Connection, args: &[&[u8]]| {
        let mut cmd = redis::cmd("MODULE");
        cmd.arg("LOAD").arg(module.to_str().unwrap());
        for a in args {
            cmd.arg(*a);
        }
        cmd.query::<Value>(c)
    };
    // A NUL in an argument is refused with an escaped log line, not a crash.
    assert!(load(&mut c, &[b"misses", b"1\0"]).is_err());
    assert!(load(&mut c, &[b"in\0terval", b"5"]).is_err());
    assert!(
        server.log().contains("module argument 'misses' is '1\\0'"),
        "{}",
        server.log()
    );
    // The module loads after a refused load, and a second load says why it fails.
    assert!(load(&mut c, &[b"interval", b"500"]).is_ok());
    assert_eq!(acquire(&mut c, "k", "o", &[]), Some(1));
    assert!(load(&mut c, &[]).is_err());
    assert!(
        server
            .log()
            .contains("hblock is already loaded, so MODULE LOAD of"),
        "{}",
        server.log()
    );
}

// ---- 5. eviction ----

#[test]
fn evictable_policies_are_warned_about_and_evicted_locks_counted() {
    let server = Server::with(Options::default().config("maxmemory-policy", "allkeys-lru"));
    assert!(server.log().contains("maxmemory-policy is allkeys-lru"));
    let mut c = server.conn();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("allkeys-random")
        .query(&mut c)
        .unwrap();
    assert!(eventually(Duration::from_secs(2), || server
        .log()
        .contains("maxmemory-policy is allkeys-random")
        .then_some(()))
    .is_some());

    let locks = 300;
    for i in 0..locks {
        acquire(&mut c, &format!("ev:{i}"), "o", &["INTERVAL", "600000"]);
    }
    let used: i64 = info_field(&mut c, "memory", "used_memory")
        .unwrap()
        .parse()
        .unwrap();
    let limit = (used + 2_000_000).to_string();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(&limit)
        .query(&mut c)
        .unwrap();
    let blob = "x".repeat(10_000);
    for i in 0..600 {
        let _: () = redis::cmd("SET")
            .arg(format!("fill:{i}"))
            .arg(&blob)
            .query(&mut c)
            .unwrap();
    }
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .query(&mut c)
        .unwrap();
    let left = (0..locks)
        .filter(|i| info(&mut c, &format!("ev:{i}")).is_some())
        .count() as u64;
    assert!(left < locks, "nothing was evicted");
    assert_eq!(counter(&mut c, "evicted"), locks - left);
}

#[test]
fn a_waiter_grant_that_would_create_a_key_over_maxmemory_gets_oom() {
    let server = Server::with(Options::default().config("maxmemory-policy", "noeviction"));
    let mut c = server.conn();
    acquire(&mut c, "k", "A", &["INTERVAL", "60000"]);
    let (_, waiter) = blocked_waiter(&server, "k", "W");
    wait_for_waiters(&mut c, 1);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(1)
        .query(&mut c)
        .unwrap();
    // The key is gone; granting W would create it while over maxmemory.
    let _: i64 = redis::cmd("DEL").arg("k").query(&mut c).unwrap();
    let (reply, pong) = waiter.join().unwrap();
    let err = reply.expect_err("OOM expected");
    assert_eq!(err.code(), Some("OOM"), "{err}");
    assert_eq!(pong, "after");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .query(&mut c)
        .unwrap();
    assert!(info(&mut c, "k").is_none());
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
    let readonly = "READONLY You can't write against a read only replica.";
    for args in [
        &[&b"HBLOCK.ACQUIRE"[..], b"new", b"o"][..],
        &[b"HBLOCK.ACQUIRE", b"held", b"x", b"WAIT", b"100"],
        &[b"HBLOCK.BEAT", b"held", b"o", b"1"],
        &[b"HBLOCK.RELEASE", b"held", b"o", b"1"],
    ] {
        assert_eq!(error_of(&mut r, args), readonly);
    }
    // Reading works, and nothing was created on the replica.
    assert_eq!(info_bytes(&mut r, "held", "owner"), Some(b"o".to_vec()));
    assert!(info(&mut r, "new").is_none());
}

// ---- 7. looking at a key never changes it; diskless loading kept ----

#[test]
fn restore_keeps_its_idle_time() {
    let server = Server::start();
    let mut c = server.conn();
    let _: () = redis::cmd("SET")
        .arg("plain")
        .arg("v")
        .query(&mut c)
        .unwrap();
    let payload: Vec<u8> = redis::cmd("DUMP").arg("plain").query(&mut c).unwrap();
    let _: i64 = redis::cmd("DEL").arg("plain").query(&mut c).unwrap();
    let _: () = redis::cmd("RESTORE")
        .arg("plain")
        .arg(0)
        .arg(payload)
        .arg("IDLETIME")
        .arg(1000)
        .query(&mut c)
        .unwrap();
    // The module's timer looks at restored keys within a few ms.
    std::thread::sleep(Duration::from_millis(100));
    let idle: i64 = redis::cmd("OBJECT")
        .arg("IDLETIME")
        .arg("plain")
        .query(&mut c)
        .unwrap();
    assert!(idle >= 1000, "OBJECT IDLETIME {idle}");
}

#[test]
fn diskless_swapdb_loading_stays_on_with_the_module() {
    let master = Server::with(
        Options::default()
            .config("repl-diskless-sync", "yes")
            .config("repl-diskless-sync-delay", "0"),
    );
    let mut m = master.conn();
    for i in 0..50 {
        acquire(&mut m, &format!("d:{i}"), "o", &["INTERVAL", "600000"]);
    }
    let replica = Server::with(
        Options::default()
            .config("replicaof", &format!("127.0.0.1 {}", master.port))
            .config("repl-diskless-load", "swapdb"),
    );
    let mut r = replica.conn();
    wait_in_sync(&mut m, &mut r);
    let log = replica.log();
    assert!(!log.contains("Skipping diskless-load"), "{log}");
    assert!(
        log.contains("Loading DB in memory") || log.contains("diskless"),
        "{log}"
    );
    assert_eq!(digest(&mut m), digest(&mut r));
}
