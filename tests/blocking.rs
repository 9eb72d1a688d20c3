use crate::support::{
    acquire, call, counter, digest, error_text, eventually, info_bytes, info_int, state,
    wait_in_sync, Options, Server,
};
use redis::Connection;
use std::io::Write;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A blocking ACQUIRE on its own connection: its reply and when it arrived.
type Waiting = JoinHandle<(redis::RedisResult<Option<i64>>, Instant)>;

fn spawn_acquire(server: &Server, key: &str, owner: &str, opts: &[&str]) -> Waiting {
    let mut conn = server.conn();
    let mut cmd = redis::cmd("HBLOCK.ACQUIRE");
    cmd.arg(key).arg(owner);
    for o in opts {
        cmd.arg(*o);
    }
    std::thread::spawn(move || {
        let reply = cmd.query::<Option<i64>>(&mut conn);
        (reply, Instant::now())
    })
}

/// Waits until `n` clients wait on `key` (so arrival order is known).
fn wait_for_waiters(c: &mut Connection, key: &str, n: i64) {
    let seen = eventually(Duration::from_secs(5), || {
        (info_int(c, key, "waiters") == n).then_some(())
    });
    assert!(
        seen.is_some(),
        "{key}: never {n} waiters (now {})",
        info_int(c, key, "waiters")
    );
}

fn release(c: &mut Connection, key: &str, owner: &str, token: i64) -> i64 {
    call(
        c,
        &[
            b"HBLOCK.RELEASE",
            key.as_bytes(),
            owner.as_bytes(),
            token.to_string().as_bytes(),
        ],
    )
    .unwrap()
}

fn joined(w: Waiting) -> (Option<i64>, Instant) {
    let (reply, at) = w.join().expect("waiter thread");
    (reply.expect("ACQUIRE reply"), at)
}

#[test]
fn release_hands_the_lock_to_the_waiter_before_anything_else() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(acquire(&mut c, "lock", "a", &[]), Some(1));
    let waiter = spawn_acquire(&server, "lock", "b", &["WAIT", "0"]);
    wait_for_waiters(&mut c, "lock", 1);
    assert_eq!(counter(&mut c, "waiting"), 1);
    // Released and granted in one step: the very next command (in the same
    // pipeline, so no other client can run in between) sees b as the holder.
    let (released, info): (i64, Vec<redis::Value>) = redis::pipe()
        .cmd("HBLOCK.RELEASE")
        .arg("lock")
        .arg("a")
        .arg(1)
        .cmd("HBLOCK.INFO")
        .arg("lock")
        .query(&mut c)
        .unwrap();
    assert_eq!(released, 1);
    assert_eq!(info[1], redis::Value::BulkString(b"held".to_vec()));
    assert_eq!(info[3], redis::Value::BulkString(b"b".to_vec()));
    assert_eq!(info[5], redis::Value::Int(2));
    assert_eq!(joined(waiter).0, Some(2));
    assert_eq!(info_int(&mut c, "lock", "waiters"), 0);
    assert_eq!(counter(&mut c, "waiting"), 0);
    assert_eq!(acquire(&mut c, "lock", "c", &[]), None, "b holds it");
}

#[test]
fn expiry_grants_the_first_waiter_at_the_deadline() {
    let server = Server::with(Options::default().config("notify-keyspace-events", "Ed"));
    let mut c = server.conn();
    let before = Instant::now();
    assert_eq!(
        acquire(&mut c, "lock", "dead", &["INTERVAL", "300", "MISSES", "1"]),
        Some(1)
    );
    let after = Instant::now();
    let waiter = spawn_acquire(&server, "lock", "standby", &["WAIT", "0"]);
    let (token, granted_at) = joined(waiter);
    assert_eq!(token, Some(2));
    let earliest_deadline = before + Duration::from_millis(300);
    let latest_deadline = after + Duration::from_millis(300);
    assert!(
        granted_at >= earliest_deadline,
        "granted before the lease ended"
    );
    let late = granted_at.saturating_duration_since(latest_deadline);
    eprintln!("expiry-to-grant as seen by the client: {late:?}");
    // A polling standby would look again only after another interval (300 ms).
    assert!(
        late < Duration::from_millis(250),
        "granted {late:?} after the deadline"
    );
    assert_eq!(info_int(&mut c, "lock", "takeovers"), 1);
    assert_eq!(
        counter(&mut c, "expired"),
        1,
        "published without any command on the key"
    );
}

#[test]
fn expiry_is_published_by_the_timer_without_any_command() {
    let server = Server::with(Options::default().config("notify-keyspace-events", "Ed"));
    let mut sub = server.conn();
    let mut pubsub = sub.as_pubsub();
    pubsub.subscribe("__keyevent@0__:hblock.expired").unwrap();
    pubsub
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut c = server.conn();
    let before = Instant::now();
    assert_eq!(
        acquire(&mut c, "lock", "a", &["INTERVAL", "200", "MISSES", "1"]),
        Some(1)
    );
    let after = Instant::now();
    let msg = pubsub.get_message().expect("hblock.expired within 5 s");
    let at = Instant::now();
    assert_eq!(msg.get_payload::<String>().unwrap(), "lock");
    assert!(at >= before + Duration::from_millis(200), "published early");
    let late = at.saturating_duration_since(after + Duration::from_millis(200));
    eprintln!("deadline-to-event as seen by the subscriber: {late:?}");
    assert!(
        late < Duration::from_millis(500),
        "published {late:?} after the deadline"
    );
    assert_eq!(state(&mut c, "lock"), "expired");
    assert_eq!(counter(&mut c, "expired"), 1);
}

#[test]
fn wait_times_out_with_nil_and_counts() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(acquire(&mut c, "lock", "a", &[]), Some(1));
    let start = Instant::now();
    let waiter = spawn_acquire(&server, "lock", "b", &["WAIT", "150"]);
    let (reply, at) = joined(waiter);
    assert_eq!(reply, None);
    let waited = at.duration_since(start);
    assert!(
        waited >= Duration::from_millis(150),
        "answered after {waited:?}"
    );
    eprintln!("WAIT 150 answered after {waited:?}");
    assert_eq!(counter(&mut c, "wait_timeouts"), 1);
    assert_eq!(counter(&mut c, "waiting"), 0);
    assert_eq!(info_int(&mut c, "lock", "waiters"), 0);
    // A timed-out waiter is never granted afterwards.
    assert_eq!(release(&mut c, "lock", "a", 1), 1);
    assert_eq!(state(&mut c, "lock"), "free");
}

#[test]
fn waiters_are_served_in_arrival_order_and_never_overtaken() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(acquire(&mut c, "lock", "holder", &[]), Some(1));
    let mut waiters = Vec::new();
    for (i, owner) in ["w1", "w2", "w3", "w4"].iter().enumerate() {
        waiters.push((
            owner.to_string(),
            spawn_acquire(&server, "lock", owner, &["WAIT", "0"]),
        ));
        wait_for_waiters(&mut c, "lock", i as i64 + 1);
    }
    assert_eq!(counter(&mut c, "waiting"), 4);
    // Newcomers, blocking or not, queue behind them.
    assert_eq!(acquire(&mut c, "lock", "rude", &[]), None);
    let late = spawn_acquire(&server, "lock", "late", &["WAIT", "100"]);
    assert_eq!(joined(late).0, None);
    // The holder itself may still renew.
    assert_eq!(acquire(&mut c, "lock", "holder", &[]), Some(1));
    let (mut owner, mut token) = ("holder".to_string(), 1);
    for (expected_owner, waiter) in waiters {
        assert_eq!(release(&mut c, "lock", &owner, token), 1);
        let (got, _) = joined(waiter);
        assert_eq!(got, Some(token + 1), "{expected_owner}");
        assert_eq!(
            info_bytes(&mut c, "lock", "owner"),
            Some(expected_owner.clone().into_bytes())
        );
        owner = expected_owner;
        token += 1;
    }
    assert_eq!(token, 5);
    assert_eq!(info_int(&mut c, "lock", "waiters"), 0);
}

#[test]
fn multi_and_lua_ignore_wait() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(acquire(&mut c, "lock", "a", &[]), Some(1));
    let start = Instant::now();
    let (got,): (Option<i64>,) = redis::pipe()
        .atomic()
        .cmd("HBLOCK.ACQUIRE")
        .arg("lock")
        .arg("b")
        .arg("WAIT")
        .arg(0)
        .query(&mut c)
        .unwrap();
    assert_eq!(got, None);
    let lua: Option<i64> = redis::cmd("EVAL")
        .arg("return redis.call('HBLOCK.ACQUIRE', KEYS[1], 'c', 'WAIT', '0')")
        .arg(1)
        .arg("lock")
        .query(&mut c)
        .unwrap();
    assert_eq!(lua, None);
    assert!(start.elapsed() < Duration::from_secs(5), "answered at once");
    assert_eq!(info_int(&mut c, "lock", "waiters"), 0);
    assert_eq!(counter(&mut c, "waiting"), 0);
    // And a free lock is granted inside MULTI as usual.
    let (t,): (Option<i64>,) = redis::pipe()
        .atomic()
        .cmd("HBLOCK.ACQUIRE")
        .arg("other")
        .arg("b")
        .arg("WAIT")
        .arg(0)
        .query(&mut c)
        .unwrap();
    assert_eq!(t, Some(1));
}

fn client_id_of_waiter(server: &Server, key: &str, owner: &str) -> (i64, Waiting) {
    let mut conn = server.conn();
    let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut conn).unwrap();
    let key = key.to_string();
    let owner = owner.to_string();
    let handle = std::thread::spawn(move || {
        let reply = redis::cmd("HBLOCK.ACQUIRE")
            .arg(key)
            .arg(owner)
            .arg("WAIT")
            .arg(0)
            .query::<Option<i64>>(&mut conn);
        (reply, Instant::now())
    });
    (id, handle)
}

#[test]
fn disconnected_killed_and_unblocked_waiters_leave_the_queue() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(acquire(&mut c, "lock", "a", &[]), Some(1));

    // 1. A raw connection that blocks, then goes away.
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    raw.write_all(
        b"*5\r\n$14\r\nHBLOCK.ACQUIRE\r\n$4\r\nlock\r\n$4\r\ngone\r\n$4\r\nWAIT\r\n$1\r\n0\r\n",
    )
    .unwrap();
    wait_for_waiters(&mut c, "lock", 1);
    drop(raw);
    wait_for_waiters(&mut c, "lock", 0);

    // 2. CLIENT KILL.
    let (id, killed) = client_id_of_waiter(&server, "lock", "killed");
    wait_for_waiters(&mut c, "lock", 1);
    let n: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 1);
    assert!(
        killed.join().unwrap().0.is_err(),
        "the killed client's connection dropped"
    );
    wait_for_waiters(&mut c, "lock", 0);

    // 3. CLIENT UNBLOCK: the waiter gets nil.
    let (id, unblocked) = client_id_of_waiter(&server, "lock", "unblocked");
    wait_for_waiters(&mut c, "lock", 1);
    let n: i64 = redis::cmd("CLIENT")
        .arg("UNBLOCK")
        .arg(id)
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(joined(unblocked).0, None);
    assert_eq!(info_int(&mut c, "lock", "waiters"), 0);
    assert_eq!(counter(&mut c, "waiting"), 0);

    // 4. CLIENT UNBLOCK ... ERROR: Redis's UNBLOCKED error, and the queue is clean.
    let (id, errored) = client_id_of_waiter(&server, "lock", "errored");
    wait_for_waiters(&mut c, "lock", 1);
    let n: i64 = redis::cmd("CLIENT")
        .arg("UNBLOCK")
        .arg(id)
        .arg("ERROR")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 1);
    let err = errored.join().unwrap().0.expect_err("UNBLOCKED");
    assert!(error_text(&err).starts_with("UNBLOCKED"), "{err}");
    assert_eq!(info_int(&mut c, "lock", "waiters"), 0);
    assert_eq!(counter(&mut c, "waiting"), 0);

    // Nobody who left is granted: the lock is simply free after release.
    assert_eq!(release(&mut c, "lock", "a", 1), 1);
    assert_eq!(state(&mut c, "lock"), "free");
    assert_eq!(acquire(&mut c, "lock", "next", &[]), Some(2));
}

#[test]
fn deleted_or_flushed_locks_go_to_the_first_waiter_as_new_keys() {
    let server = Server::start();
    let mut c = server.conn();
    for (key, wipe) in [("del", "DEL"), ("flush", "FLUSHALL"), ("unlink", "UNLINK")] {
        assert_eq!(acquire(&mut c, key, "a", &[]), Some(1));
        release(&mut c, key, "a", 1);
        assert_eq!(acquire(&mut c, key, "a", &[]), Some(2));
        let waiter = spawn_acquire(&server, key, "w", &["WAIT", "0"]);
        wait_for_waiters(&mut c, key, 1);
        let wiped = Instant::now();
        let mut cmd = redis::cmd(wipe);
        if wipe != "FLUSHALL" {
            cmd.arg(key);
        }
        let _: redis::Value = cmd.query(&mut c).unwrap();
        let (token, at) = joined(waiter);
        assert_eq!(
            token,
            Some(1),
            "{wipe}: the new, empty key starts at token 1"
        );
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
    wait_for_waiters(&mut c, "lock", 1);
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
fn a_lock_replaced_by_another_lock_keeps_its_waiters() {
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(acquire(&mut c, "lock", "a", &[]), Some(1));
    assert_eq!(
        acquire(&mut c, "other", "b", &["INTERVAL", "600000"]),
        Some(1)
    );
    let waiter = spawn_acquire(&server, "lock", "w", &["WAIT", "0"]);
    wait_for_waiters(&mut c, "lock", 1);
    let copied: i64 = redis::cmd("COPY")
        .arg("other")
        .arg("lock")
        .arg("REPLACE")
        .query(&mut c)
        .unwrap();
    assert_eq!(copied, 1);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        info_int(&mut c, "lock", "waiters"),
        1,
        "still waiting on the new record"
    );
    assert_eq!(release(&mut c, "lock", "b", 1), 1);
    assert_eq!(joined(waiter).0, Some(2));
}

#[test]
fn waiters_get_an_error_when_the_master_becomes_a_replica() {
    let other = Server::start();
    let server = Server::start();
    let mut c = server.conn();
    assert_eq!(acquire(&mut c, "lock", "a", &[]), Some(1));
    let waiter = spawn_acquire(&server, "lock", "w", &["WAIT", "0"]);
    wait_for_waiters(&mut c, "lock", 1);
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
    let waiter = spawn_acquire(&master, "lock", "w", &["WAIT", "0"]);
    wait_for_waiters(&mut m, "lock", 1);
    assert_eq!(release(&mut m, "lock", "a", 1), 1);
    assert_eq!(joined(waiter).0, Some(2));
    // An expiry decided by the master's timer replicates too.
    assert_eq!(
        acquire(&mut m, "short", "s", &["INTERVAL", "50", "MISSES", "1"]),
        Some(1)
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
    // is promoted, with no command on the key.
    assert_eq!(
        acquire(&mut m, "late", "x", &["INTERVAL", "100", "MISSES", "1"]),
        Some(1)
    );
    wait_in_sync(&mut m, &mut r);
    drop(master); // the master dies before it sees the expiry
    std::thread::sleep(Duration::from_millis(150));
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
    assert_eq!(
        acquire(&mut r, "late", "y", &[]),
        Some(2),
        "tokens continue after promotion"
    );
}

#[test]
fn timers_are_rearmed_after_loading() {
    let mut server = Server::with(Options::default().config("appendonly", "yes"));
    let mut c = server.conn();
    assert_eq!(
        acquire(&mut c, "rdb", "a", &["INTERVAL", "300", "MISSES", "1"]),
        Some(1)
    );
    let _: () = redis::cmd("DEBUG").arg("RELOAD").query(&mut c).unwrap();
    let seen = eventually(Duration::from_secs(5), || {
        (counter(&mut c, "expired") == 1).then_some(())
    });
    assert!(seen.is_some(), "expiry after DEBUG RELOAD");
    assert_eq!(
        acquire(&mut c, "aof", "a", &["INTERVAL", "300", "MISSES", "1"]),
        Some(1)
    );
    server.crash_and_restart();
    let mut c = server.conn();
    let seen = eventually(Duration::from_secs(5), || {
        (counter(&mut c, "expired") == 1).then_some(())
    });
    assert!(seen.is_some(), "expiry after an AOF restart");
    assert_eq!(state(&mut c, "aof"), "expired");
}

#[test]
fn leases_renamed_copied_or_moved_still_expire_on_time() {
    let server = Server::start();
    let mut c = server.conn();
    for key in ["renamed", "copied", "moved"] {
        assert_eq!(
            acquire(&mut c, key, "a", &["INTERVAL", "200", "MISSES", "1"]),
            Some(1)
        );
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
    // Four leases, none touched by a command again: all expiries published.
    let seen = eventually(Duration::from_secs(5), || {
        (counter(&mut c, "expired") == 4).then_some(())
    });
    assert!(seen.is_some(), "expired: {}", counter(&mut c, "expired"));
    // MOVE left this connection on its own db (Valkey before #4024 did not).
    let client: String = redis::cmd("CLIENT").arg("INFO").query(&mut c).unwrap();
    assert!(client.contains(" db=0 "), "{client}");
    assert_eq!(state(&mut c, "renamed2"), "expired");
    assert_eq!(state(&mut c, "copied2"), "expired");
    let mut db1 = redis::Client::open(format!("{}1", server.url()))
        .and_then(|client| client.get_connection())
        .unwrap();
    assert_eq!(state(&mut db1, "moved"), "expired");
}
